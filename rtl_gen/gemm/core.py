"""``GemmCore``: one compute core of the overlay (the DSP core or the LUT core).

A core runs one ``GEMM`` instruction at a time (configured by the last ``CFG``, ``WIN`` and
``WSTEP`` for it): ``lanes`` output channels at once, one reduction step a cycle. Each cycle
its window counters name one activation (or the pad value, when the tap lies outside the
input plane) and it reads one weight word holding every lane's weight; each lane multiplies
and accumulates. The lanes' multipliers are

- ``dsp``: ``a * w`` on int8 weights, left to the FPGA's multipliers (SB_MAC16 /
  MULT18X18D), registered on both sides; with ``mult_regs`` each lane is an ECP5
  ``MULT18X18D`` instance (``dsp.Mult18``) whose own input and output registers add one
  pipeline cycle, and the activation and weight memories' outputs are registered before
  any logic (one more);
- ``shiftadd``: ``wbits``-bit two's-complement weights, the product as a sum of shifted
  activations (the sign bit's term subtracted);
- ``ternary``: 2-bit codes of -1/0/+1, the product as ``+a``, ``-a`` or 0;
- ``bitserial``: one weight bit a lane a cycle (BISMO-style, precision set at run time by
  CFG's ``wbits``): for each k the planes run most significant first, ``acc = 2*acc +/- (bit
  ? a : 0)`` (Horner; the sign plane subtracts), so a ``b``-bit weight costs ``b`` passes.

With ``pack`` (``dsp`` only) the lanes run in pairs on ``Mac16Pair``s (iCE40 ``SB_MAC16`` in
dual 8x8 mode): activations enter as int8, unsigned ones offset by -128 (the compiler adds
``128 * sum(w)`` to those channels' bias).

Loops (outer to inner): pixel (``ox`` wrapping at ``ow``), group, tile, plane (bit-serial
only), k = (channel, kernel row, kernel column). Window counters (design note): the address
``a`` of the current tap and its plane coordinates ``iy``/``ix`` move by adding the
compiler's steps (``dx``; ``sky`` at a kernel-row wrap; ``sci`` at a channel step; ``gstep``
to the next group; ``sx``/``srow`` to the next output pixel), so a convolution of any image
size costs two configuration words (``WIN``, ``WSTEP``), the tap is padding exactly when
``iy``/``ix`` leave ``[0, h)``/``[0, w)`` (an unsigned compare of the signed counter), and the
address arithmetic is modulo the activation memory's size (a padded tap's address is never
read). A dense layer is the window ``CFG`` resets to: every step adds ``sci = 1``.
When a unit (pixel, group, tile) ends, its accumulators move to hold registers that drain
one lane a cycle into the core's accumulator memory, at ``(pixel*g + group)*n + tile*lanes +
lane``, while the next unit accumulates; a unit whose last step would arrive before the
previous drain is over waits (``stall``).

A core may be started again once it stops ``computing``: the last unit's drain runs on and
the new GEMM's first unit waits for it as later units do.

Latency: the core is busy from the cycle after ``start`` (its fields are sampled then) and
issues from the next; a unit lasts ``max(planes*k, d_prev)`` cycles
(``d_prev``: lanes drained by the previous unit), then 4 pipeline cycles (gather read,
activation/weight read, operand registers, product; 6 with ``mult_regs``: the block RAM
outputs' registers and the DSP's input registers) and the last drain
(``timing.core_busy_cycles``); ``computing`` ends before that drain
(``timing.core_compute_cycles``). The drain writes the accumulator memory in ascending
address order, one element a cycle, from the last unit's capture on.
Throughput: ``lanes`` MACs a cycle (bit-serial: ``lanes / planes``).

With ``lane_acts`` (DSP lanes with the engine's lane cache) and ``CFG dw`` each lane takes
its own activation from ``act_lanes`` (the engine's lane cache, read at the same address):
a depthwise layer's channels on every lane, one tile of them per GEMM.

``stream`` (a GEMM issued ahead of the ``LOAD`` or ``POST`` that writes its input): the
first unit issues step ``k`` no earlier than the cycle after the ``k+1``-th ``act_written``
(an activation write) since its start; those held cycles count as ``stall``. ``abort``
ends a running GEMM (the program restarts after a memory reload).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .dsp import Mac16Pair, Mult18
from .isa import layout

__all__ = ["GemmCore", "MODES"]

MODES = ("dsp", "shiftadd", "ternary", "bitserial")
ACT_BITS = 8


def lane_product(m: Module, mode: str, a: Value, w: Value, wbits: int, name: str) -> Signal:
    """The product of a 9-bit signed activation ``a`` and a ``wbits``-bit weight ``w``."""
    width = 9 + wbits
    prod = Signal(signed(width), name=name)
    ws = w.as_signed()
    if mode == "dsp":
        m.d.comb += prod.eq(a * ws)
    elif mode == "ternary":
        m.d.comb += prod.eq(Mux(w == 0b01, a, Mux(w == 0b11, -a, 0)))
    else:
        terms = [Mux(w[i], a << i, 0) for i in range(wbits - 1)]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        m.d.comb += prod.eq(total - Mux(w[wbits - 1], a << (wbits - 1), 0))
    return prod


class GemmCore(wiring.Component):
    """One core: ``lanes`` lanes of ``mode`` multipliers with ``acc_bits`` accumulators.

    Without ``windows`` the core has no window counters: it runs one-pixel windows that
    never leave the plane (the dense window, ``CFG``'s reset), step k reading ``x + group *
    gstep + k``.

    Ports: ``start`` with the GEMM's ``x``/``gstep``/``w``/``pad`` and the core's CFG, ``win``
    (``WIN``) and ``step`` (``WSTEP``) fields (sampled the cycle after ``start``); memory ports
    ``act_addr``/``act_data``, ``w_addr``/``w_data`` (``w_addr_early``: the same address a cycle
    before; ``w_re``: the word read at ``w_addr`` is used), and the
    drain ``acc_addr``/``acc_data``/``acc_en``; status ``busy``, ``computing`` (``busy``
    but for the last unit's drain: its total is in the hold registers, so nothing it writes
    depends on the activations or weights any more) and ``stall``; ``act_re``: the
    activation read this cycle is used (not a pad entry), for checks in simulation.
    """

    def __init__(
        self,
        *,
        lanes: int,
        mode: str,
        wbits: int,
        acc_bits: int,
        act_abits: int,
        w_abits: int,
        acc_abits: int,
        pack: bool = False,
        primitives: bool = True,
        mult_regs: bool = False,
        windows: bool = True,
        lane_acts: bool = False,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown core mode '{mode}'; modes: {', '.join(MODES)}")
        if lanes < 1:
            raise ValueError(f"a core has at least one lane, got {lanes}")
        if pack and mode != "dsp":
            raise ValueError(f"only the dsp core packs its lanes on SB_MAC16s, not '{mode}'")
        if mult_regs and (mode != "dsp" or pack):
            raise ValueError("only the unpacked dsp core's lanes are MULT18X18D instances")
        self.lanes, self.mode, self.wbits, self.acc_bits = lanes, mode, wbits, acc_bits
        self.act_abits, self.acc_abits = act_abits, acc_abits
        self.pack, self.primitives, self.mult_regs = pack, primitives, mult_regs
        self.windows = windows
        if lane_acts and mode != "dsp":
            raise ValueError("per-lane activations (CFG dw) are built for DSP lanes only")
        self.lane_acts = lane_acts
        extra = {"act_lanes": In(lanes * ACT_BITS)} if lane_acts else {}
        super().__init__(
            {
                **extra,
                "start": In(1),
                "cfg": In(layout("CFG")),
                "win": In(layout("WIN")),
                "step": In(layout("WSTEP")),
                "x_base": In(16),
                "gstep": In(16),
                "w_base": In(16),
                "pad": In(8),
                "stream": In(1),
                "act_written": In(1),
                "abort": In(1),
                "act_addr": Out(act_abits),
                "act_data": In(ACT_BITS),
                "w_addr": Out(w_abits),
                "w_addr_early": Out(w_abits),
                "w_re": Out(1),
                "w_data": In(lanes * wbits),
                "acc_addr": Out(acc_abits),
                "acc_data": Out(signed(acc_bits)),
                "acc_en": Out(1),
                "busy": Out(1),
                "computing": Out(1),
                "stall": Out(1),
                "act_re": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        P, W = self.lanes, self.wbits

        # --- configuration, latched on start ----------------------------------------------
        # loop bounds minus one, so that "last" tests are equalities (no subtractor on the
        # issue path)
        A = self.act_abits
        ck, cn = Signal(12), Signal(10)
        xsigned = Signal()
        dw = Signal()  # CFG dw: lane l's activation from lane l of act_lanes
        w_base, pad = Signal(16), Signal(8)
        serial = self.mode == "bitserial"
        # window: plane size, kernel wraps, padding and the address steps (modulo 2**A)
        win_h, win_w = Signal(10), Signal(10)
        ckw2, ckh2, cow2 = Signal(5), Signal(5), Signal(10)  # kw - 2, kh - 2, ow - 2
        kw1, kh1, ow1 = Signal(), Signal(), Signal()  # kw == 1, kh == 1, ow == 1
        neg_pl = Signal(signed(12))
        sy, sx, dy, dx = Signal(4), Signal(4), Signal(4), Signal(4)
        s_ky, s_ci, s_row, s_g = Signal(A), Signal(A), Signal(A), Signal(A)

        # --- stage A: loop counters, window counters and issue -----------------------------
        running = Signal()
        p, gi, t, kk = Signal(12), Signal(10), Signal(8), Signal(12)
        plane, cplanes = Signal(4), Signal(4)  # bit-serial: plane, planes - 1
        w_addr = Signal(16)
        unit_base, grp_base = Signal(self.acc_abits + 1), Signal(self.acc_abits + 1)
        rem = Signal(11)
        spacing = Signal(range(P + 1))
        spacing_nz = Signal()  # spacing != 0 as a register (its compare fed the issue path)
        # last_k (kk == ck) is a register: as a 12-bit compare it led the UP5K's issue-enable
        # path (34.4 MHz); ck2 = k - 2 and k1 = (k == 1) give its next value
        last_k, ck2, k1 = Signal(), Signal(12), Signal()
        # the tile, group and pixel loops' "last" flags likewise (their compares led the
        # UP5K's weight-address path next): bound - 2 and bound == 1 give the next values
        last_t, ct2, t1 = Signal(), Signal(8), Signal()
        last_g, cg2, g1 = Signal(), Signal(10), Signal()
        last_p, cm2, p1 = Signal(), Signal(12), Signal()
        # window counters: kernel column/row and output column with registered last flags;
        # the tap's address and plane coordinates; the unit's and the pixel's origins
        kx, ky, ox = Signal(5), Signal(5), Signal(10)
        last_kx, last_ky, last_ox = Signal(), Signal(), Signal()
        addr, g_org, p_org = Signal(A), Signal(A), Signal(A)
        iy, ix, ry0, rx0 = (Signal(signed(12), name=n) for n in ("iy", "ix", "ry0", "rx0"))
        last_plane = (plane == cplanes) if serial else Const(1)
        last_unit = last_k & last_plane
        drain_lanes = Mux(rem < P, rem, P)
        # stream: the first unit's step k waits until the LOAD or POST behind this GEMM
        # has written k + 1 elements. credit counts the writes not yet consumed; has_credit is
        # (credit != 0) as a register, so the gate adds one LUT input to the issue path.
        gate, has_credit = Signal(), Signal()
        credit = Signal(12)
        starved = gate & ~has_credit
        stall = running & ((last_unit & spacing_nz) | starved)
        issue = running & ~stall
        m.d.comb += self.stall.eq(stall)

        windows = self.windows
        no_windows = Const(int(not windows), 1)  # one-pixel windows: k steps add 1

        def taps_from(origin, row, col):
            """The k loop restarts at a unit origin: tap (0, 0) of plane 0."""
            m.d.sync += addr.eq(origin)
            if windows:
                m.d.sync += [
                    iy.eq(row),
                    ix.eq(col),
                    kx.eq(0),
                    ky.eq(0),
                    last_kx.eq(kw1),
                    last_ky.eq(kh1),
                ]

        # start is registered: the sequencer's busy -> GEMM issue -> start decision fanning
        # out to every loop register was the UP5K's critical path (29.8 MHz). The fields are
        # sampled a cycle after EXEC, while FETCH still shows the GEMM word and its CFG.
        start = Signal()
        m.d.sync += start.eq(self.start)
        win, step = self.win, self.step
        with m.If(start):
            m.d.sync += [
                ck.eq(self.cfg.k - 1),
                cn.eq(self.cfg.n),
                xsigned.eq(self.cfg.xsigned),
                dw.eq(self.cfg.dw if self.lane_acts else 0),
                w_base.eq(self.w_base),
                pad.eq(self.pad),
                running.eq(1),
                p.eq(0),
                gi.eq(0),
                t.eq(0),
                kk.eq(0),
                w_addr.eq(self.w_base),
                unit_base.eq(0),
                grp_base.eq(0),
                rem.eq(self.cfg.n),
                ck2.eq(self.cfg.k - 2),
                k1.eq(self.cfg.k == 1),
                last_k.eq(self.cfg.k == 1),
                ct2.eq(self.cfg.tiles - 2),
                t1.eq(self.cfg.tiles == 1),
                last_t.eq(self.cfg.tiles == 1),
                cg2.eq(self.cfg.g - 2),
                g1.eq(self.cfg.g == 1),
                last_g.eq(self.cfg.g == 1),
                cm2.eq(self.cfg.m - 2),
                p1.eq(self.cfg.m == 1),
                last_p.eq(self.cfg.m == 1),
                s_g.eq(self.gstep),
                addr.eq(self.x_base),
                g_org.eq(self.x_base),
            ]
            if windows:
                m.d.sync += [
                    win_h.eq(win.h),
                    win_w.eq(win.w),
                    ckw2.eq(win.kw - 2),
                    ckh2.eq(win.kh - 2),
                    cow2.eq(win.ow - 2),
                    kw1.eq(win.kw == 1),
                    kh1.eq(win.kh == 1),
                    ow1.eq(win.ow == 1),
                    neg_pl.eq(-win.pl),
                    sy.eq(win.sy),
                    sx.eq(win.sx),
                    dy.eq(step.dy),
                    dx.eq(step.dx),
                    s_ky.eq(step.sky),
                    s_ci.eq(step.sci),
                    s_row.eq(step.srow),
                    p_org.eq(self.x_base),
                    iy.eq(-win.pt),
                    ix.eq(-win.pl),
                    ry0.eq(-win.pt),
                    rx0.eq(-win.pl),
                    kx.eq(0),
                    ky.eq(0),
                    ox.eq(0),
                    last_kx.eq(win.kw == 1),
                    last_ky.eq(win.kh == 1),
                    last_ox.eq(win.ow == 1),
                ]
            if serial:
                m.d.sync += [plane.eq(0), cplanes.eq(self.cfg.wbits - 1)]
        with m.Elif(issue):
            m.d.sync += w_addr.eq(w_addr + 1)
            with m.If(~last_k & no_windows):
                m.d.sync += [kk.eq(kk + 1), last_k.eq(kk == ck2), addr.eq(addr + 1)]
            with m.Elif(~last_k):
                m.d.sync += [kk.eq(kk + 1), last_k.eq(kk == ck2)]
                with m.If(~last_kx):
                    m.d.sync += [
                        kx.eq(kx + 1),
                        last_kx.eq(kx == ckw2),
                        addr.eq(addr + dx),
                        ix.eq(ix + dx),
                    ]
                with m.Elif(~last_ky):
                    m.d.sync += [
                        kx.eq(0),
                        last_kx.eq(kw1),
                        ky.eq(ky + 1),
                        last_ky.eq(ky == ckh2),
                        addr.eq(addr + s_ky),
                        ix.eq(rx0),
                        iy.eq(iy + dy),
                    ]
                with m.Else():
                    m.d.sync += [
                        kx.eq(0),
                        last_kx.eq(kw1),
                        ky.eq(0),
                        last_ky.eq(kh1),
                        addr.eq(addr + s_ci),
                        ix.eq(rx0),
                        iy.eq(ry0),
                    ]
            with m.Elif(~last_plane):
                m.d.sync += [kk.eq(0), last_k.eq(k1), plane.eq(plane + 1)]
                taps_from(g_org, ry0, rx0)
            with m.Else():
                m.d.sync += [
                    kk.eq(0),
                    last_k.eq(k1),
                    spacing.eq(drain_lanes - 1),
                    spacing_nz.eq(drain_lanes > 1),
                ]
                if serial:
                    m.d.sync += plane.eq(0)
                with m.If(~last_t):
                    m.d.sync += [
                        t.eq(t + 1),
                        unit_base.eq(unit_base + P),
                        rem.eq(rem - P),
                        last_t.eq(t == ct2),
                    ]
                    taps_from(g_org, ry0, rx0)
                with m.Else():
                    m.d.sync += [
                        t.eq(0),
                        rem.eq(cn),
                        grp_base.eq(grp_base + cn),
                        unit_base.eq(grp_base + cn),
                        last_t.eq(t1),
                    ]
                    with m.If(~last_g):
                        m.d.sync += [gi.eq(gi + 1), last_g.eq(gi == cg2), g_org.eq(g_org + s_g)]
                        taps_from(g_org + s_g, ry0, rx0)
                    with m.Else():
                        m.d.sync += [gi.eq(0), w_addr.eq(w_base), last_g.eq(g1)]
                        with m.If(~last_p & no_windows):
                            m.d.sync += [p.eq(p + 1), last_p.eq(p == cm2)]
                        with m.Elif(~last_p):
                            m.d.sync += [p.eq(p + 1), last_p.eq(p == cm2)]
                            with m.If(~last_ox):
                                m.d.sync += [
                                    ox.eq(ox + 1),
                                    last_ox.eq(ox == cow2),
                                    p_org.eq(p_org + sx),
                                    g_org.eq(p_org + sx),
                                    rx0.eq(rx0 + sx),
                                ]
                                taps_from(p_org + sx, ry0, rx0 + sx)
                            with m.Else():
                                m.d.sync += [
                                    ox.eq(0),
                                    last_ox.eq(ow1),
                                    p_org.eq(p_org + s_row),
                                    g_org.eq(p_org + s_row),
                                    rx0.eq(neg_pl),
                                    ry0.eq(ry0 + sy),
                                ]
                                taps_from(p_org + s_row, ry0 + sy, neg_pl)
                        with m.Else():
                            m.d.sync += [running.eq(0), last_p.eq(p1)]
        # spacing carries over a start: a GEMM may start while the last one's last drain
        # runs, and its first unit then waits for that drain like any later unit
        with m.If(~(issue & last_unit) & spacing_nz):
            m.d.sync += [spacing.eq(spacing - 1), spacing_nz.eq(spacing != 1)]
        take = issue & gate
        m.d.sync += credit.eq(credit + self.act_written - take)
        with m.If(self.act_written):
            m.d.sync += has_credit.eq(1)
        with m.Elif(take):
            m.d.sync += has_credit.eq(credit != 1)
        with m.If(start):
            m.d.sync += [gate.eq(self.stream), credit.eq(0), has_credit.eq(0)]
        with m.Elif(issue & last_unit):
            m.d.sync += gate.eq(0)
        # a memory reload restarts the program: a GEMM still waiting for its LOAD ends
        with m.If(self.abort):
            m.d.sync += [running.eq(0), gate.eq(0)]

        # --- stage B: the tap's address and pad flag registered; weight address ------------
        vb, first_b, last_b = Signal(), Signal(), Signal()
        base_b, d_b, w_addr_b = Signal(len(unit_base)), Signal(range(P + 1)), Signal(16)
        addr_b, pad_b = Signal(A), Signal()
        # bit-serial: shift the accumulators at a later plane's first k; negate the sign plane
        sh_b, neg_b = Signal(), Signal()
        # outside the plane: a negative counter is a large unsigned one
        inside = (iy.as_unsigned() < win_h) & (ix.as_unsigned() < win_w) if windows else 1
        m.d.sync += [
            vb.eq(issue),
            first_b.eq((kk == 0) & (plane == 0)),
            last_b.eq(last_unit),
            base_b.eq(unit_base),
            d_b.eq(drain_lanes),
            w_addr_b.eq(w_addr),
            sh_b.eq((kk == 0) & (plane != 0)),
            neg_b.eq(plane == 0),
            addr_b.eq(addr),
            pad_b.eq(~inside),
        ]
        m.d.comb += [
            self.act_addr.eq(addr_b),
            self.w_addr.eq(w_addr_b),
            self.act_re.eq(vb & ~pad_b & ~dw),
            # w_addr a cycle early (w_addr_b follows it unconditionally), for a memory whose
            # decoded word is registered; w_re: the word at w_addr is used
            self.w_addr_early.eq(w_addr),
            self.w_re.eq(vb),
        ]

        # --- stage C: activation and weights -> products -----------------------------------
        vc, first_c, last_c, pad_c = Signal(), Signal(), Signal(), Signal()
        base_c, d_c = Signal(len(unit_base)), Signal(range(P + 1))
        sh_c, neg_c = Signal(), Signal()
        m.d.sync += [
            vc.eq(vb),
            first_c.eq(first_b),
            last_c.eq(last_b),
            base_c.eq(base_b),
            d_c.eq(d_b),
            pad_c.eq(pad_b),
            sh_c.eq(sh_b),
            neg_c.eq(neg_b),
        ]
        act_data, w_data = self.act_data, self.w_data
        act_lanes = getattr(self, "act_lanes", None)
        held = []  # valid bits of the block RAM output stage
        if self.mult_regs:
            # ECP5: the block RAMs' outputs registered before any logic (a DP16KD's clock-to-
            # out is 5.8 ns and its read multiplexer spans the die: BRAM -> mux -> operand
            # register was the ResNet-8 board's critical path, 69 MHz)
            act_data = Signal.like(self.act_data, name="act_m", reset_less=True)
            w_data = Signal.like(self.w_data, name="w_m", reset_less=True)
            m.d.sync += [act_data.eq(self.act_data), w_data.eq(self.w_data)]
            if self.lane_acts:
                act_lanes = Signal.like(self.act_lanes, name="act_lanes_m", reset_less=True)
                m.d.sync += act_lanes.eq(self.act_lanes)
            stage = [vc, first_c, last_c, base_c, d_c, pad_c, sh_c, neg_c]
            later = [Signal.like(sig, name=f"{sig.name}_m") for sig in stage]
            m.d.sync += [dst.eq(src) for src, dst in zip(stage, later)]
            held.append(vc)
            vc, first_c, last_c, base_c, d_c, pad_c, sh_c, neg_c = later
        raw = Mux(pad_c, pad, act_data)
        a = Signal(signed(9))
        m.d.comb += a.eq(Mux(xsigned, raw.as_signed(), raw))
        # operand registers: memory outputs never feed a multiplier directly (ECP5: BRAM ->
        # MULT18X18D -> FF missed 100 MHz)
        a_r = Signal(signed(9), reset_less=True)
        w_r = Signal(P * W, reset_less=True)
        ve, first_e, last_e = Signal(), Signal(), Signal()
        base_e, d_e = Signal(len(unit_base)), Signal(range(P + 1))
        sh_e, neg_e = Signal(), Signal()
        m.d.sync += [
            ve.eq(vc),
            first_e.eq(first_c),
            last_e.eq(last_c),
            base_e.eq(base_c),
            d_e.eq(d_c),
            sh_e.eq(sh_c),
            neg_e.eq(neg_c),
        ]
        if not self.pack:
            m.d.sync += [a_r.eq(a), w_r.eq(w_data)]
        lane_a_r = [a_r] * P  # each lane's activation register (CFG dw: its own)
        if self.lane_acts and not self.pack:
            lane_a_r = []
            for lane in range(P):
                raw_l = Mux(pad_c, pad, Mux(dw, act_lanes[8 * lane :][:8], act_data))
                reg = Signal(signed(9), name=f"a{lane}_r", reset_less=True)
                m.d.sync += reg.eq(Mux(xsigned, raw_l.as_signed(), raw_l))
                lane_a_r.append(reg)
        control = [ve, first_e, last_e, base_e, d_e, sh_e]
        if self.mult_regs:  # the MULT18X18D's input registers: one more stage
            later = [Signal.like(sig, name=f"{sig.name}2") for sig in control]
            m.d.sync += [dst.eq(src) for src, dst in zip(control, later)]
            control = later
        vd, first_d, last_d = Signal(), Signal(), Signal()
        base_d, d_d = Signal(len(unit_base)), Signal(range(P + 1))
        sh_d = Signal()
        m.d.sync += [
            dst.eq(src) for src, dst in zip(control, (vd, first_d, last_d, base_d, d_d, sh_d))
        ]
        prods = []
        if self.pack:
            # int8 operands: unsigned activations offset by -128 (flip the top bit)
            def int8(raw_):
                a8_ = Signal(signed(8))
                m.d.comb += a8_.eq(Cat(raw_[:7], raw_[7] ^ ~xsigned))
                return a8_

            a8 = int8(raw)
            if self.lane_acts:  # CFG dw: each lane its own activation (or the pad value)
                lane_a8 = [
                    int8(Mux(pad_c, pad, Mux(dw, act_lanes[8 * lane :][:8], act_data)))
                    for lane in range(P)
                ]
            for pair in range((P + 1) // 2):
                mac = Mac16Pair(primitive=self.primitives)
                m.submodules[f"mac{pair}"] = mac
                if self.lane_acts:
                    m.d.comb += [mac.a.eq(lane_a8[2 * pair]), mac.own.eq(1)]
                    if 2 * pair + 1 < P:
                        m.d.comb += mac.a1.eq(lane_a8[2 * pair + 1])
                else:
                    m.d.comb += mac.a.eq(a8)
                m.d.comb += mac.w0.eq(w_data[2 * pair * W :][:W])
                if 2 * pair + 1 < P:
                    m.d.comb += mac.w1.eq(w_data[(2 * pair + 1) * W :][:W])
                prods += [mac.p0, mac.p1][: P - 2 * pair]
        elif serial:
            a_sel = Signal(signed(10))
            m.d.comb += a_sel.eq(Mux(neg_e, -a_r, a_r))
            for lane in range(P):
                reg = Signal(signed(10), name=f"prod{lane}_d", reset_less=True)
                m.d.sync += reg.eq(Mux(w_r[lane], a_sel, 0))
                prods.append(reg)
        elif self.mult_regs:
            for lane in range(P):
                mult = Mult18(a_bits=9, w_bits=W, primitive=self.primitives)
                m.submodules[f"mult{lane}"] = mult
                m.d.comb += [
                    mult.a.eq(lane_a_r[lane]),
                    mult.w.eq(w_r[lane * W : (lane + 1) * W].as_signed()),
                ]
                prods.append(mult.p)
        else:
            for lane in range(P):
                prod = lane_product(
                    m, self.mode, lane_a_r[lane], w_r[lane * W : (lane + 1) * W], W, f"prod{lane}"
                )
                reg = Signal(signed(len(prod)), name=f"prod{lane}_d", reset_less=True)
                m.d.sync += reg.eq(prod)
                prods.append(reg)

        # --- stage D: accumulate; drain ------------------------------------------------------
        accs = [
            Signal(signed(self.acc_bits), name=f"acc{lane}", reset_less=True) for lane in range(P)
        ]
        holds = [
            Signal(signed(self.acc_bits), name=f"hold{lane}", reset_less=True) for lane in range(P)
        ]
        drain_cnt = Signal(range(P + 1))
        draining = Signal()  # drain_cnt != 0 as a register: it enables every hold register
        drain_addr = Signal(len(unit_base))
        capture = vd & last_d
        if serial:
            with m.If(vd):
                for lane in range(P):
                    kept = Mux(sh_d, accs[lane] << 1, accs[lane])
                    total = Mux(first_d, 0, kept) + prods[lane]
                    m.d.sync += accs[lane].eq(total)
                    with m.If(last_d):
                        m.d.sync += holds[lane].eq(total)
        else:
            # the accumulators clear (synchronous reset) as a unit's total moves to the hold
            # registers, and on start, so the next unit adds to 0: no "first" gate in front
            # of each lane's adder (a LUT4 a bit on iCE40, whose carry chain takes the
            # adder's operands raw)
            for lane in range(P):
                total = accs[lane] + prods[lane]
                with m.If(start | capture):
                    m.d.sync += accs[lane].eq(0)
                with m.Elif(vd):
                    m.d.sync += accs[lane].eq(total)
                with m.If(capture):
                    m.d.sync += holds[lane].eq(total)
        m.d.comb += [
            self.acc_en.eq(draining),
            self.acc_addr.eq(drain_addr),
            self.acc_data.eq(holds[0]),
        ]
        with m.If(capture):
            m.d.sync += [drain_cnt.eq(d_d), drain_addr.eq(base_d), draining.eq(d_d != 0)]
        with m.Elif(draining):
            m.d.sync += [
                drain_cnt.eq(drain_cnt - 1),
                drain_addr.eq(drain_addr + 1),
                draining.eq(drain_cnt != 1),
            ]
            for lane in range(P - 1):
                m.d.sync += holds[lane].eq(holds[lane + 1])

        # computing: busy but for the last unit's drain (the barrier waits for this only).
        # Both are registers holding next cycle's value of
        #   computing = start | running | vb | vc | ve | vd,  busy = computing | drain_cnt != 0
        # (running implies busy next cycle: it stays, or its last issue sets vb), because the
        # sequencer's next-state enable behind a drain counter compare led the UP5K's path.
        computing, busy = Signal(), Signal()
        nxt_computing = self.start | start | running | vb | vc | ve
        for v in held:
            nxt_computing = nxt_computing | v
        if self.mult_regs:
            nxt_computing = nxt_computing | control[0]
        m.d.sync += [
            computing.eq(nxt_computing),
            busy.eq(nxt_computing | capture | (drain_cnt > 1)),
        ]
        m.d.comb += [self.computing.eq(computing), self.busy.eq(busy)]
        return m
