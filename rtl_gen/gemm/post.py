"""``PostUnit``: requantization, ReLU and clamp of a core's accumulators (``POST``), and the
residual add (``ADD``), written back to the activation buffer.

``POST``: for pixel ``q < mc`` (outer; ``mc`` 0: ``m``) and channel ``c < n``:
``act[y + c*m + q] = clamp((((acc[q*n + c] + bias[p+c]) * mult[p+c] + r) >> shift) + zp,
lo, hi)`` (``frontends.fixedpoint.requantize``; ReLU is ``lo = zp``). One element a cycle;
latency 10 cycles (accumulator/parameter read, their registers, + bias, * multiplier in two
halves, their sum, + rounding constant, coarse shift, fine shift, zero point and range
compares, clamp/write).

``ADD``: ``act[y + j] = clamp((((a_j - za)*ma + (b_j - zb)*mb + r) >> shift) + zp, lo, hi)``
with ``a_j = act[a + j]`` and ``b_j = act[b + idx[i + j]]`` (``gather``; else
``act[b + j]``) read through the shared activation port (each gather entry read two cycles
before its operand, the first while the unit is idle, so registered addresses feed the
port), two cycles an element (``add_period`` 4, for a single-ported activation memory: four,
the two after the reads left idle, where the write of an element read nine cycles earlier
falls), one multiplier used twice; each operand's difference, product and the sum are
registered steps.

``MAX``: ``act[y + j] = clamp((((max_e act[a + idx[i + j*k + e]]) - z)*mu + r) >> shift) +
zp, lo, hi)``, entries with the pad flag never winning; one window entry a cycle (gather
read, activation read, compare), then the ``ADD`` datapath's multiplier and requantizer.
``ADD`` and ``MAX`` exist with ``residual``; ``MAX`` not without ``pool`` (then a no-op).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import MULT_BITS

__all__ = ["PostUnit", "requant_pipeline", "requant_ports", "requant_out"]


def requant_pipeline(
    m: Module,
    valid: Value,
    prod: Value,
    addr: Value,
    *,
    shift: Value,
    zp: Value,
    lo: Value,
    hi: Value,
    mode: Value,
    half_even: bool = True,
) -> tuple[Signal, Signal, Signal]:
    """``clamp(round(prod / 2**shift) + zp, lo, hi)`` in five stages (rounding constant and
    remainder flags; shift by the multiple-of-8 part; shift by the rest and round half to
    even; zero point and range flags; clamp, combinational into the write). ``mode``: 0 half
    up, 1 floor, 2 ceil, 3 half to even (``frontends.fixedpoint``). ``shift``/``mode``/
    ``zp``/``lo``/``hi`` must be steady two cycles before the first element. Returns
    ``(valid, addr, result)`` of the last stage."""
    width = len(prod) + 1
    one = Signal(unsigned(width))
    rconst, mask = Signal(unsigned(width)), Signal(unsigned(width))
    m.d.sync += one.eq(1 << shift)
    m.d.sync += [rconst.eq(Mux(mode == 0, one >> 1, Mux(mode == 2, one - 1, 0))), mask.eq(one - 1)]
    # stage 1: add the rounding constant; remainder above / at half
    v1, a1 = Signal(), Signal(len(addr))
    t1 = Signal(signed(width + 1))
    gt1, eq1 = Signal(), Signal()
    m.d.sync += [v1.eq(valid), a1.eq(addr), t1.eq(prod + rconst)]
    if half_even:
        # the remainder prod mod 2**shift against half of 2**shift: its bit shift-1 and
        # whether any bit below it is set, AND-OR trees (a subtract and two compare chains
        # over the product's width were the UP5K board's critical path, 30 MHz)
        at_half = (prod & mask & ~(mask >> 1)).any()
        below = (prod & (mask >> 1)).any()
        odd = (mode == 3) & (shift != 0) & at_half
        m.d.sync += [gt1.eq(odd & below), eq1.eq(odd & ~below)]
    # stage 2: coarse shift; stage 3: fine shift and the half-to-even bump
    v2, a2, gt2, eq2 = Signal(), Signal(len(addr)), Signal(), Signal()
    t2 = Signal(signed(width + 1))
    m.d.sync += [
        v2.eq(v1),
        a2.eq(a1),
        gt2.eq(gt1),
        eq2.eq(eq1),
        t2.eq(t1 >> Cat(Const(0, 3), shift[3:])),
    ]
    # The bump's carry is added into the low 10 bits only; of the bits above, stage 4 needs
    # whether they are all zeros or all ones after the carry, and the sign: flags of the
    # shifted value's high bits, so no carry chain runs over the product's width here (it
    # was the UP5K board's critical path, 34 MHz).
    v3, a3 = Signal(), Signal(len(addr))
    fine = Signal(signed(width + 2))
    m.d.comb += fine.eq(t2 >> shift[:3])
    high = fine[10:]
    low3 = Signal(11)  # fine[:10] + bump, its carry in bit 10
    h_zero, h_ones, h_sign = Signal(), Signal(), Signal()
    m.d.sync += [
        v3.eq(v2),
        a3.eq(a2),
        low3.eq(fine[:10] + (gt2 | (eq2 & fine[0]))),
        h_zero.eq(~high.any()),
        h_ones.eq(high.all()),
        h_sign.eq(high[-1]),
    ]
    # stage 4: zero point on the low 10 bits only, and whether t3 is outside them: lo, hi
    # and zp are 9-bit, so |t3| >= 512 saturates whatever zp is. (Full-width zero point and
    # clamp were the critical path: ECP5 at 100 MHz, a 45-bit compare chain on the UP5K.)
    # The range compares are made here too, against lo - zp and hi - zp (registers: lo, hi
    # and zp hold for the whole instruction), so only a mux sits in front of the write (the
    # compares of small there were the UP5K's path, 43 MHz).
    v4, a4 = Signal(), Signal(len(addr))
    small, big, neg, below, above = Signal(signed(11)), Signal(), Signal(), Signal(), Signal()
    lo_zp, hi_zp = Signal(signed(11)), Signal(signed(11))
    m.d.sync += [lo_zp.eq(lo - zp), hi_zp.eq(hi - zp)]
    # the bits above 9 after the carry: all zeros (all ones plus the carry wrap to zeros), or
    # all ones (with a carry, bit 9 is 0: no need to know); the carry never reaches the sign
    # bit (the top two bits of fine are copies, so its high bits are all ones when it does:
    # the result is then 0)
    carry = low3[10]
    high_zero = Mux(carry, h_ones, h_zero)
    low = low3[:10].as_signed()
    m.d.sync += [
        v4.eq(v3),
        a4.eq(a3),
        small.eq(low + zp),
        below.eq(low < lo_zp),
        above.eq(low > hi_zp),
        big.eq(~(~low3[9] & high_zero) & ~(low3[9] & h_ones)),
        neg.eq(h_sign),
    ]
    result = Signal(signed(10))
    m.d.comb += result.eq(Mux(big, Mux(neg, lo, hi), Mux(below, lo, Mux(above, hi, small))))
    return v4, a4, result


def requant_ports(bits: int) -> dict:
    """The ports of a unit that hands its products to the post unit's requantizer
    (``PostUnit``'s ``ext_*``): valid, the product (``bits`` wide, signed), its address."""
    return {"rq_valid": Out(1), "rq_prod": Out(signed(bits)), "rq_addr": Out(16)}


def requant_out(unit: wiring.Component, m: Module, valid: Value, prod: Value, addr: Value) -> None:
    """``unit``'s products into a requantizer: the post unit's when it has the
    ``requant_ports`` (the same latency: the shared pipeline is the same), else its own
    ``requant_pipeline`` (the ``PCFG`` ports) into its activation write port."""
    if "rq_valid" in unit.signature.members:
        assert len(prod) <= len(unit.rq_prod), (len(prod), len(unit.rq_prod))
        m.d.comb += [unit.rq_valid.eq(valid), unit.rq_prod.eq(prod), unit.rq_addr.eq(addr)]
        return
    vo, ao, result = requant_pipeline(
        m,
        valid,
        prod,
        addr,
        shift=unit.shift,
        zp=unit.zp,
        lo=unit.lo,
        hi=unit.hi,
        mode=unit.round,
        half_even=True,
    )
    m.d.comb += [unit.act_we.eq(vo), unit.act_waddr.eq(ao), unit.act_wdata.eq(result[:8])]


class PostUnit(wiring.Component):
    """Ports: ``start`` with ``n``/``y``/``p`` (POST) or ``add``/``a``/``b``/``i`` (ADD), the
    PCFG registers ``m``/``shift``/``zp``/``lo``/``hi``/``round``; memory ports to the selected
    accumulator memory, the parameter memory, a gather/activation read pair (ADD) and the
    activation write port; ``busy``; ``issuing`` (a POST may start again once this is low:
    the elements in the pipeline carry their addresses, the PCFG registers must hold); for
    checks in simulation, ``acc_re`` (a POST reads ``acc[acc_addr]`` this cycle) and
    ``act_re`` (an ADD/MAX uses the activation read this cycle); ``p_used``: ``p_data`` is
    used this cycle (a POST's element, an ADD's operand, a MAX's output); ``p_addr_early``:
    ``p_addr`` a cycle before, for a parameter memory whose word is registered before its
    decoder (``protect.ProtectedRead``). ``mult_bits``: the multipliers' width in the
    parameter word (``GemmConfig.mult_bits``). ``ext_bits``: the units beside the post unit
    (``ROW``) hand it their products (``ext_valid``, ``ext_prod`` of that width,
    ``ext_addr``) instead of each carrying a requantizer: one requantizer, shared, since
    their writes never meet the post unit's; ``post_we`` is then ``act_we`` for the post
    unit's own writes only."""

    def __init__(
        self,
        *,
        acc_bits: int,
        bias_bits: int,
        act_abits: int,
        idx_abits: int,
        acc_abits: int,
        p_abits: int,
        residual: bool = True,
        half_even: bool = True,
        add_period: int = 2,
        pool: bool = True,
        mult_bits: int = MULT_BITS,
        ext_bits: int = 0,
    ):
        if add_period not in (2, 4):
            raise ValueError(f"add_period={add_period}: an ADD element takes 2 or 4 cycles")
        self.add_period, self.has_pool = add_period, pool
        self.acc_bits, self.bias_bits, self.residual = acc_bits, bias_bits, residual
        self.half_even, self.mult_bits = half_even, mult_bits
        self.act_abits, self.ext_bits = act_abits, ext_bits
        ext = {}
        if ext_bits:
            ext = {
                "ext_valid": In(1),
                "ext_prod": In(signed(ext_bits)),
                "ext_addr": In(16),
                "post_we": Out(1),
            }
        super().__init__(
            {
                "start": In(1),
                "add": In(1),
                "pool": In(1),
                "k": In(8),
                "n": In(16),
                "y": In(16),
                "p": In(14),
                "a": In(16),
                "b": In(16),
                "i": In(16),
                "xsigned": In(1),
                "gather": In(1),
                "m": In(12),
                "mc": In(11),
                "shift": In(6),
                "zp": In(signed(9)),
                "lo": In(signed(9)),
                "hi": In(signed(9)),
                "round": In(2),
                "acc_addr": Out(acc_abits),
                "acc_data": In(signed(acc_bits)),
                "p_addr": Out(p_abits),
                "p_addr_early": Out(p_abits),
                "p_data": In(bias_bits + mult_bits),
                "idx_addr": Out(idx_abits),
                "idx_data": In(act_abits + 1),
                "act_raddr": Out(act_abits),
                "act_rdata": In(8),
                "act_waddr": Out(act_abits),
                "act_wdata": Out(8),
                "act_we": Out(1),
                "acc_re": Out(1),
                "act_re": Out(1),
                "p_used": Out(1),
                "busy": Out(1),
                "issuing": Out(1),
                **ext,
            }
        )

    def elaborate(self, platform):
        m = Module()
        mw = self.mult_bits
        sum_bits = max(self.acc_bits, self.bias_bits) + 1
        bias = self.p_data[mw:].as_signed()
        mult = self.p_data[:mw]

        # --- POST: issue ---------------------------------------------------------------------
        running, is_add, is_max = Signal(), Signal(), Signal()
        q, c = Signal(12), Signal(12)
        j = Signal(24)
        row, wa = Signal(16), Signal(16)
        nn, nn_m1, m_m1 = Signal(16), Signal(16), Signal(12)  # n, n - 1, m - 1 (equality tests)
        p_base = Signal(14)
        issue = running & ~is_add
        count = Signal(12)  # pixels this POST writes; m is the channel pitch
        m.d.comb += count.eq(Mux(self.mc != 0, self.mc, self.m))
        m.d.comb += [self.acc_addr.eq(j), self.p_addr.eq(p_base + c)]  # ADD overrides
        m.d.comb += self.acc_re.eq(issue)  # POST reads acc[j] this cycle
        # last_c (c == n - 1) and last_q (q == m - 1) are registers: as 16- and 12-bit
        # compares in front of running's next state they led the UP5K's path (34.5 MHz);
        # nn_m2 = n - 2, mm2 = m - 2, n1 = (n == 1), m1 = (m == 1) give their next values
        last_c, last_q, n1, m1 = Signal(), Signal(), Signal(), Signal()
        nn_m2, mm2 = Signal(16), Signal(12)
        with m.If(self.start):
            # without the residual datapath ADD and MAX are no-ops
            go = 1 if self.residual else ~(self.add | self.pool)
            if not self.has_pool:
                go = go & ~self.pool
            m.d.sync += [
                running.eq(go),
                q.eq(0),
                c.eq(0),
                j.eq(0),
                row.eq(self.y),
                wa.eq(self.y),
                nn.eq(self.n),
                nn_m1.eq(self.n - 1),
                m_m1.eq(count - 1),
                p_base.eq(self.p),
                nn_m2.eq(self.n - 2),
                mm2.eq(count - 2),
                n1.eq(self.n == 1),
                m1.eq(count == 1),
                last_c.eq(self.n == 1),
                last_q.eq(count == 1),
            ]
            if self.residual:
                pool = self.pool if self.has_pool else 0  # without: MAX is a no-op
                m.d.sync += [is_add.eq(self.add | pool), is_max.eq(pool)]
        with m.Elif(issue):
            m.d.sync += j.eq(j + 1)
            with m.If(~last_c):
                m.d.sync += [c.eq(c + 1), wa.eq(wa + self.m), last_c.eq(c == nn_m2)]
            with m.Else():
                m.d.sync += [c.eq(0), row.eq(row + 1), wa.eq(row + 1), last_c.eq(n1)]
                with m.If(~last_q):
                    m.d.sync += [q.eq(q + 1), last_q.eq(q == mm2)]
                with m.Else():
                    m.d.sync += [running.eq(0), last_q.eq(m1)]

        # the accumulator and parameter words are registered before the bias add (a block
        # RAM's clock-to-out and the add in one cycle were the ECP5's path, 107.7 MHz); the
        # product in two registered halves, then their sum: one 26x15 multiply and its
        # partial-product adder in a cycle was the ECP5's path (99.8 MHz); the low half is
        # 15x15 unsigned, the high half signed, each one SB_MAC16 / MULT18X18D
        v1, v1b, v2, v2b, v3 = Signal(), Signal(), Signal(), Signal(), Signal()
        wa1, wa1b, wa2, wa2b, wa3 = (Signal(16) for _ in range(5))
        acc1b, bias1b = Signal(signed(self.acc_bits)), Signal(signed(self.bias_bits))
        mult1b = Signal(unsigned(mw))
        sum2 = Signal(signed(sum_bits))
        mult2 = Signal(unsigned(mw))
        split = min(15, sum_bits - 1)
        lo2b = Signal(unsigned(split + mw))
        hi2b = Signal(signed(sum_bits - split + mw + 1))
        prod3 = Signal(signed(sum_bits + mw + 1))
        m.d.sync += [
            v1.eq(issue),
            wa1.eq(wa),
            v1b.eq(v1),
            wa1b.eq(wa1),
            acc1b.eq(self.acc_data),
            bias1b.eq(bias),
            mult1b.eq(mult),
            v2.eq(v1b),
            wa2.eq(wa1b),
            sum2.eq(acc1b + bias1b),
            mult2.eq(mult1b),
            v2b.eq(v2),
            wa2b.eq(wa2),
            lo2b.eq(sum2[:split] * mult2),
            hi2b.eq(sum2[split:].as_signed() * mult2),
            v3.eq(v2b),
            wa3.eq(wa2b),
            prod3.eq((hi2b << split) + lo2b),
        ]

        # --- ADD: element j reads a_j (phase 0), then b_j (phase 1) ------------------------
        add_run = running & is_add & ~is_max
        max_run = running & is_max
        phase = Signal(range(self.add_period))  # 0: a_j read, 1: b_j read, 2-3: idle
        read_a, read_b = phase == 0, phase == 1
        aj, jb, add_wa = Signal(16), Signal(16), Signal(16)  # MAX: aj counts window entries
        g_base = Signal(16)  # the gathered operand's base
        xs, gather = Signal(), Signal()
        # The activation addresses are registers, so no adder sits in front of the memory's
        # address: a_ptr = a + j; g_addr = g_base + idx[i + j] (or + j), loaded the cycle
        # before its read from a gather entry read the cycle before that (idx_ptr: the next
        # entry; at the start the unit is idle and reads idx[i]). The gather table's
        # clock-to-out and that add in front of the activation address were the ECP5's
        # critical path (49.4 MHz).
        a_ptr, g_addr = Signal(self.act_abits), Signal(self.act_abits)
        idx_ptr = Signal(len(self.idx_addr))
        g_load = Signal()  # idx_data is the next element's entry (ADD)
        with m.If(self.start):
            m.d.sync += [
                a_ptr.eq(self.a),
                g_base.eq(Mux(self.pool, self.a, self.b)),
                idx_ptr.eq(self.i + 1),
                xs.eq(self.xsigned),
                phase.eq(0),
                aj.eq(0),
                gather.eq(self.gather),
            ]
        with m.Elif(add_run):
            m.d.sync += phase.eq(phase + 1)
            with m.If(read_b):
                m.d.sync += [
                    aj.eq(aj + 1),
                    jb.eq(aj),
                    a_ptr.eq(a_ptr + 1),
                    idx_ptr.eq(idx_ptr + 1),
                ]
                with m.If(aj == nn_m1):
                    m.d.sync += running.eq(0)
        if self.residual:  # else nothing reads: no address adders in front of the ports
            m.d.sync += g_load.eq(self.start | (add_run & read_b))
            gathered = Mux(gather, self.idx_data[: self.act_abits], aj)
            with m.If(g_load | max_run):  # (MAX: an entry a cycle)
                m.d.sync += g_addr.eq(g_base + gathered)
            m.d.comb += [
                self.idx_addr.eq(Mux(running, idx_ptr, self.i)),
                self.act_raddr.eq(Mux(read_b | is_max, g_addr, a_ptr)),
            ]

        # --- MAX: window entry e of output mj issues at stage 0 (its gather entry, read the
        # cycle before, into g_addr and pad1); activation read at 1, its data at 2,
        # registered (val_r), compare at 3; the window's maximum mx is complete at s_m (a
        # block RAM's clock-to-out, ~5.8 ns on the ECP5, and the compare in front of mx were
        # its critical path, 76 MHz) -----------------------------------------------------------
        we, k_m1, mj = Signal(8), Signal(8), Signal(16)
        mv1, first1, last1, mv2, first2, last2, pad2, s_m = (Signal() for _ in range(8))
        mv3, first3, last3, pad3, pad1 = (Signal() for _ in range(5))
        j1, j2, j3, jm = Signal(16), Signal(16), Signal(16), Signal(16)
        mx = Signal(signed(10))
        with m.If(self.start):
            m.d.sync += [we.eq(0), mj.eq(0), k_m1.eq(self.k - 1)]
        with m.Elif(max_run):
            m.d.sync += [aj.eq(aj + 1), idx_ptr.eq(idx_ptr + 1)]
            with m.If(we != k_m1):
                m.d.sync += we.eq(we + 1)
            with m.Else():
                m.d.sync += [we.eq(0), mj.eq(mj + 1)]
                with m.If(mj == nn_m1):
                    m.d.sync += running.eq(0)
        with m.If(is_add):
            m.d.comb += self.p_addr.eq(p_base + phase[0])
        self._early_p_addr(m, p_base, c, last_c, issue, phase, add_run, is_add)
        s_a, s_b, add_v = Signal(), Signal(), Signal()  # a_j / b_j data (and za,ma / zb,mb)
        val, val_r = Signal(signed(9)), Signal(signed(9))
        m.d.comb += val.eq(Mux(xs, self.act_rdata.as_signed(), self.act_rdata))
        # the activation and parameter block RAMs' outputs, registered before any logic
        zero_point = self.p_data[mw : mw + 9].as_signed()  # ADD: za/zb fit 9 bits
        zp_r, mult_r = Signal(signed(9)), Signal(unsigned(mw))
        sa_r, sb_r = Signal(), Signal()
        if self.residual:
            m.d.sync += [s_a.eq(add_run & read_a), s_b.eq(add_run & read_b)]
            m.d.sync += [
                val_r.eq(val),
                zp_r.eq(zero_point),
                mult_r.eq(mult),
                sa_r.eq(s_a),
                sb_r.eq(s_b),
            ]
            m.d.sync += [
                mv1.eq(max_run),
                first1.eq(we == 0),
                last1.eq(we == k_m1),
                j1.eq(mj),
                mv2.eq(mv1),
                first2.eq(first1),
                last2.eq(last1),
                j2.eq(j1),
                pad1.eq(self.idx_data[self.act_abits]),
                pad2.eq(pad1),
                mv3.eq(mv2),
                first3.eq(first2),
                last3.eq(last2),
                j3.eq(j2),
                pad3.eq(pad2),
                s_m.eq(mv3 & last3),
            ]
            # act_rdata is used the next cycle (a_j, b_j; a window entry unless padded)
            m.d.comb += self.act_re.eq((add_run & (read_a | read_b)) | (mv1 & ~pad1))
            keep = pad3 | (~first3 & (val_r <= mx))
            with m.If(mv3):
                # a padded first entry seeds -512, below every code, so it never wins
                m.d.sync += mx.eq(Mux(keep, Mux(first3, -512, mx), val_r))
                with m.If(last3):
                    m.d.sync += jm.eq(j3)
        # (operand - zero point) * multiplier in three registered steps: the difference
        # (from the activation block RAM's output), the product (one MULT18X18D / SB_MAC16
        # between registers), then a_j's product kept or the sum written; the difference,
        # product and sum in one cycle behind the block RAM were the ECP5's critical path
        # (about 50 MHz). Each step carries its flags and the element's index.
        diff_x, mult_x = Signal(signed(11)), Signal(unsigned(mw))
        prod_y = Signal(signed(11 + mw + 1))
        sa_x, sb_x, sm_x, sa_y, sb_y, sm_y = (Signal() for _ in range(6))
        j_x, j_y = Signal(16), Signal(16)
        prod_a = Signal(signed(11 + mw + 1))
        add_sum = Signal(signed(11 + mw + 2))
        if self.residual:
            m.d.sync += [
                diff_x.eq(Mux(s_m, mx, val_r) - zp_r),
                mult_x.eq(mult_r),
                sa_x.eq(sa_r),
                sb_x.eq(sb_r),
                sm_x.eq(s_m),
                j_x.eq(Mux(s_m, jm, jb)),
                prod_y.eq(diff_x * mult_x),
                sa_y.eq(sa_x),
                sb_y.eq(sb_x),
                sm_y.eq(sm_x),
                j_y.eq(j_x),
                add_v.eq(sb_y | sm_y),
            ]
        with m.If(sa_y):
            m.d.sync += prod_a.eq(prod_y)
        with m.If(sb_y):
            m.d.sync += [add_sum.eq(prod_a + prod_y), add_wa.eq(j_y)]
        with m.If(sm_y):
            m.d.sync += [add_sum.eq(prod_y), add_wa.eq(j_y)]

        # --- shared output stage ---------------------------------------------------------------
        own = v3 | add_v
        out_prod = Signal(signed(max(len(prod3), len(add_sum), self.ext_bits)))
        out_addr = Signal(17)  # bit 16: the post unit's own write
        mine = Mux(v3, prod3, add_sum) if self.residual else prod3
        if self.ext_bits:
            mine = Mux(own, mine, self.ext_prod)
        m.d.comb += [
            out_prod.eq(mine),
            out_addr.eq(
                Cat(
                    (
                        Mux(v3, wa3, Mux(add_v, self.y + add_wa, self.ext_addr))
                        if self.ext_bits
                        else Mux(v3, wa3, self.y + add_wa)
                    )[:16],  # (y + add_wa is 17 bits wide: the flag is bit 16)
                    own,
                )
            ),
        ]
        valid = (own | self.ext_valid) if self.ext_bits else own
        vo, ao, result = requant_pipeline(
            m,
            valid,
            out_prod,
            out_addr,
            shift=self.shift,
            zp=self.zp,
            lo=self.lo,
            hi=self.hi,
            mode=self.round,
            half_even=self.half_even,
        )
        m.d.comb += [self.act_we.eq(vo), self.act_waddr.eq(ao), self.act_wdata.eq(result[:8])]
        if self.ext_bits:
            m.d.comb += self.post_we.eq(vo & ao[16])
        m.d.comb += self.p_used.eq(v1 | s_a | s_b | s_m)
        # the requantizer pipeline (4 registers after v3/add_v) keeps the unit busy (a
        # unit beside it counts its own elements there)
        tail = Signal(4)
        m.d.sync += tail.eq(Cat(own, tail[:3]))
        m.d.comb += self.issuing.eq(running)
        m.d.comb += self.busy.eq(
            running
            | v1
            | v1b
            | v2
            | v2b
            | v3
            | s_a
            | s_b
            | sa_r
            | sb_r
            | mv3
            | sa_x
            | sb_x
            | sm_x
            | sa_y
            | sb_y
            | sm_y
            | add_v
            | mv1
            | mv2
            | s_m
            | (tail != 0)
        )
        return m

    def _early_p_addr(self, m, p_base, c, last_c, issue, phase, add_run, is_add):
        """``p_addr_early``: ``p_addr`` of the next cycle. Registers mirror ``p_base + c``
        (``pa``), ``pa + 1`` and ``p_base + 1``, so only multiplexers sit in front of the
        memory's address (the adders of ``c + 1`` and ``p_base + c`` there were the ECP5's
        critical path, 115 MHz)."""
        width = len(self.p_addr_early)  # the address wraps there, as p_base + c does
        pa, pa1, pb1 = Signal(width), Signal(width), Signal(width)
        with m.If(self.start):
            m.d.sync += [pa.eq(self.p), pa1.eq(self.p + 1), pb1.eq(self.p + 1)]
        with m.Elif(issue & ~last_c):
            m.d.sync += [pa.eq(pa1), pa1.eq(pa1 + 1)]
        with m.Elif(issue):
            m.d.sync += [pa.eq(p_base), pa1.eq(pb1)]
        post_next = Mux(issue, Mux(last_c, p_base, pa1), pa)  # p_base + c of the next cycle
        phase_next = Mux(add_run, (phase + 1)[0], phase[0])  # (period 2 or 4: bit 0)
        add_next = Mux(phase_next, pb1, p_base)  # p_base + phase of the next cycle
        m.d.comb += self.p_addr_early.eq(Mux(self.start, self.p, Mux(is_add, add_next, post_next)))
