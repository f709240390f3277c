"""Row-wise operations on the overlay (``ROW``): the IR's integer softmax over the last axis
(``frontends.ir``, ``nonlinear`` with ``function == "softmax"`` and ``recip_shift``).

``ROW kind rows len x t rs xsigned`` with ``ADDP``'s ``y``/``q``/``i`` and ``PCFG``'s
``shift``/``zp``/``lo``/``hi``/``round``: for each row ``r < rows`` of ``len`` elements,
element ``j`` read at ``act[x + idx[i + r*len + j]]`` (the gather table puts the row in
order whatever the producer's layout):

- pass 1: ``mx = max_j v_j``;
- pass 2: ``e_j = etab[t*256 + 255 + v_j - mx]`` (the node's exp table, stored so that
  ``d = v - mx = 0`` is entry 255), ``S = sum_j e_j``;
- the division: ``inv = floor(2**rs / S)``, one bit a cycle (``rs`` cycles: a restoring
  division of ``2**rs``; ``frontends.fixedpoint.softmax_params``: the table's entries carry
  ``EXP_FRAC`` = 24 fraction bits, ``inv >= 2**24``);
- pass 3: ``act[y + r*len + j] = clamp((((e_j * inv) * mult + r) >> shift) + zp, lo, hi)``
  (``mult = params[q]``'s multiplier; ``post.requant_pipeline``).

Each pass issues one element a cycle (gather read, activation read, table read), then drains
its pipeline; ``row_cycles`` is the cost, which the model and the RTL share.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import ShapeLike
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from frontends.errors import ModelError
from frontends.fixedpoint import EXP_FRAC
from frontends.ir import Node

from .codes import as_code, requant
from .config import MULT_BITS
from .program import LayerInfo, Program
from .state import LoweringState

__all__ = [
    "RowUnit",
    "NormUnit",
    "emit_softmax",
    "emit_layernorm",
    "row_cycles",
    "norm_cycles",
    "run_row",
    "run_norm",
    "ETAB_WORDS",
    "E_BITS",
    "LAYERNORM",
]

ETAB_WORDS = 256  # one exp table per 256 words (8-bit inputs)
E_BITS = EXP_FRAC + 1  # exp table entries: round(2**EXP_FRAC * exp(s d)) <= 2**EXP_FRAC
PASS_TAIL = 7  # a pass's cycles beyond its issues: gather, address, activation, its
# register, table, its register, drain
OUT_TAIL = 15  # the output pass's: e*inv and *mult in two halves each, the requantizer
ROW_GAP = 0  # between the sum pass and the division


def row_cycles(rows: int, length: int, rs: int) -> int:
    """Cycles from a ``ROW``'s EXEC to the next FETCH: the start register, per row two
    passes, the division and the output pass, then the cycle that sees the unit idle."""
    per_row = 2 * (length + PASS_TAIL) + ROW_GAP + rs + length + OUT_TAIL
    return 1 + 1 + rows * per_row + 1


# --- compiler ----------------------------------------------------------------------------------


def emit_softmax(lowering: LoweringState, node: Node, first: int) -> LayerInfo:
    """``ROW`` (kind 0) for a row-wise softmax node: its exp table into the table memory
    ``lowering.etab``, the gather table over its input's rows, the output in original order."""
    from .instrs import post_cfg
    from .isa import Instr

    graph, a, w = lowering.graph, node.attrs, node.weights
    x_name, y_name = node.inputs[0], node.outputs[0]
    x_t, y_t = graph.tensor(x_name), graph.tensor(y_name)
    if "recip_shift" not in a:
        raise ModelError(
            f"{node.describe()}: a softmax with one division per element (a graph "
            f"from before recip_shift) cannot run on the gemm engine; re-import the model"
        )
    shape = tuple(a.get("input_shape") or x_t.shape)
    if int(a["axis"]) not in (len(shape) - 1, -1):
        raise ModelError(
            f"{node.describe()}: softmax over axis {a['axis']} of {shape}; the gemm "
            f"engine's row unit takes the last axis"
        )
    for t in (x_t, y_t):
        if t.dtype.width > 8:
            raise ModelError(
                f"{node.describe()}: tensor '{t.name}' is {t.dtype}; the gemm "
                f"engine's row unit takes 8-bit codes"
            )
    length = shape[-1]
    rows = x_t.size // length
    rs = int(a["recip_shift"])
    if rows > 4095 or length > 4095:
        raise ModelError(
            f"{node.describe()}: {rows} rows of {length}; ROW takes at most 4095 of each"
        )
    if not 16 <= rs <= 63:
        raise ModelError(f"{node.describe()}: recip_shift {rs} is outside 16..63")
    exp_table = np.asarray(w["exp_table"], np.int64)
    if exp_table.max() >= 1 << E_BITS or len(exp_table) > ETAB_WORDS:
        raise ModelError(f"{node.describe()}: its exp table does not fit 256 x {E_BITS} bits")
    t = len(lowering.etab) // ETAB_WORDS
    block = np.zeros(ETAB_WORDS, np.int64)
    block[ETAB_WORDS - len(exp_table) :] = exp_table  # d = 0 at entry 255
    lowering.etab.extend(int(v) for v in block)
    mult = int(np.asarray(w["multiplier"]).reshape(-1)[0])
    q = len(lowering.params)
    lowering.params.append((0, mult))
    lowering.row_bits = max(lowering.row_bits, rs - EXP_FRAC + 1)  # S >= 2**EXP_FRAC
    y_base = lowering.act.take(y_t.size)
    lowering.act_base[y_name] = y_base
    lowering.layout[y_name] = np.arange(y_t.size)
    i_base = lowering.add_idx(lowering.layout[x_name])
    lowering.instrs.append(post_cfg(node))
    lowering.instrs.append(Instr("ADDP", fields={"y": y_base, "q": q, "i": i_base}))
    lowering.instrs.append(
        Instr(
            "ROW",
            fields={
                "kind": 0,
                "rows": rows,
                "len": length,
                "x": lowering.act_base[x_name],
                "t": t,
                "rs": rs,
                "xsigned": int(x_t.dtype.signed),
            },
            comment=f"{node.name}: softmax",
        )
    )
    return LayerInfo(
        node.name,
        node.op,
        node.source_op,
        rows,
        length,
        1,
        1,
        0,
        0,
        0.0,
        first,
        len(lowering.instrs),
        0,
    )


# --- model -------------------------------------------------------------------------------------


def run_row(program: Program, act: np.ndarray, f: dict, addp: dict, pcfg: dict) -> None:
    """The model of one ``ROW`` on the activation buffer ``act`` (stored bytes)."""

    rows, length, s = f["rows"], f["len"], bool(f["xsigned"])
    n = rows * length
    offsets = program.idx[addp["i"] : addp["i"] + n]
    v = as_code(act[f["x"] + offsets], s).reshape(rows, length)
    etab = np.asarray(program.etab, np.int64)
    d = v - v.max(axis=1, keepdims=True)
    e = etab[f["t"] * ETAB_WORDS + ETAB_WORDS - 1 + d]
    inv = (1 << f["rs"]) // e.sum(axis=1, keepdims=True)
    mult = int(program.params[addp["q"], 1])
    y = requant(e * inv, mult, pcfg["shift"], pcfg["zp"], pcfg["lo"], pcfg["hi"], pcfg["round"])
    act[addp["y"] : addp["y"] + n] = y.reshape(-1) & 0xFF


# --- hardware ----------------------------------------------------------------------------------


def row_ports(
    act_abits: int, idx_abits: int, p_abits: int, p_data: ShapeLike, **extra: object
) -> dict:
    """The signature of a unit run by ``ROW`` (softmax, LayerNorm, matmul): the
    instruction's fields and the ``ADDP``/``PCFG`` registers it samples at ``start``, its
    gather-table, activation and parameter ports (``p_data`` the parameter word's shape),
    then ``extra`` ports, then ``busy``."""
    return {
        "start": In(1),
        "rows": In(12),
        "len": In(12),
        "x": In(16),
        "t": In(8),
        "rs": In(6),
        "xsigned": In(1),
        "y": In(16),
        "q": In(14),
        "i": In(16),
        "shift": In(6),
        "zp": In(signed(9)),
        "lo": In(signed(9)),
        "hi": In(signed(9)),
        "round": In(2),
        "idx_addr": Out(idx_abits),
        "idx_data": In(act_abits + 1),
        "act_raddr": Out(act_abits),
        "act_rdata": In(8),
        "act_re": Out(1),
        "act_waddr": Out(act_abits),
        "act_wdata": Out(8),
        "act_we": Out(1),
        "p_addr": Out(p_abits),
        "p_data": In(p_data),
        **extra,
        "busy": Out(1),
    }


class ParamRowUnit(wiring.Component):
    """A unit on the row ports (``row_ports``) whose parameter words hold a bias of
    ``bias_bits`` and a multiplier of ``mult_bits`` (``NormUnit``, ``attention.MatUnit``);
    ``shared_requant``: its products go to the post unit's requantizer (``post.requant_ports``
    of ``rq_bits``) instead of its own."""

    def rq_bits(self) -> int:
        """The width of the products the unit requantizes."""
        raise NotImplementedError

    def __init__(
        self,
        *,
        act_abits: int,
        idx_abits: int,
        p_abits: int,
        bias_bits: int,
        mult_bits: int = MULT_BITS,
        shared_requant: bool = False,
    ):
        from .post import requant_ports

        self.act_abits, self.bias_bits, self.mult_bits = act_abits, bias_bits, mult_bits
        extra = requant_ports(self.rq_bits()) if shared_requant else {}
        super().__init__(row_ports(act_abits, idx_abits, p_abits, bias_bits + mult_bits, **extra))


class RowUnit(wiring.Component):
    """Runs ``ROW`` (softmax rows; see the module docstring). ``start`` samples the
    instruction's fields and the ``ADDP``/``PCFG`` registers; ``busy`` until the last
    write. Reads through the gather table, the activation buffer, the parameter memory and
    its exp table memory (``etab_*``); writes through the activation port. Latency
    ``row_cycles``. ``qbits``: the reciprocal's width (``inv < 2**qbits``);
    ``shared_requant``: see ``ParamRowUnit``."""

    def __init__(
        self,
        *,
        act_abits: int,
        idx_abits: int,
        p_abits: int,
        etab_abits: int,
        qbits: int,
        shared_requant: bool = False,
    ):
        from .post import requant_ports

        self.act_abits, self.qbits = act_abits, qbits
        extra = requant_ports(self.rq_bits()) if shared_requant else {}
        super().__init__(
            row_ports(
                act_abits,
                idx_abits,
                p_abits,
                unsigned(MULT_BITS),
                etab_addr=Out(etab_abits),
                etab_data=In(E_BITS),
                **extra,
            )
        )

    def rq_bits(self) -> int:
        """The width of the products the unit requantizes (``e * inv * mult``)."""
        return E_BITS + self.qbits + MULT_BITS + 1

    def elaborate(self, platform):
        from .post import requant_out

        m = Module()
        s_bits = E_BITS + 12  # sum of up to 4095 entries
        # registered fields
        rows_m1, len_m1 = Signal(12), Signal(12)
        x, t, rs, xs = Signal(16), Signal(8), Signal(6), Signal()
        ybase, q, ibase = Signal(16), Signal(14), Signal(16)
        mult = Signal(MULT_BITS)
        # control: phase one-hot flags
        p_max, p_sum, p_div, p_out, drain = Signal(), Signal(), Signal(), Signal(), Signal()
        issuing = Signal()
        j, r = Signal(12), Signal(12)
        last_j = Signal()
        row_i, row_y = Signal(16), Signal(16)  # i + r*len, y + r*len
        with m.If(self.start):
            m.d.sync += [
                rows_m1.eq(self.rows - 1),
                len_m1.eq(self.len - 1),
                x.eq(self.x),
                t.eq(self.t),
                rs.eq(self.rs),
                xs.eq(self.xsigned),
                ybase.eq(self.y),
                q.eq(self.q),
                ibase.eq(self.i),
                row_i.eq(self.i),
                row_y.eq(self.y),
                r.eq(0),
                j.eq(0),
                last_j.eq(self.len == 1),
                p_max.eq(1),
                issuing.eq(1),
            ]
        m.d.comb += self.p_addr.eq(q)
        with m.If(p_max):
            m.d.sync += mult.eq(self.p_data)

        # --- issue: gather read (stage 0), address register (1), activation read (1b), value
        # (2), table (3). The gather entry + x into the activation address in one cycle,
        # behind the gather block RAM's clock-to-out, was the ECP5 engine's critical path
        # (46.5 MHz placed); a register holds the address ---------------------------------------
        # The activation and exp-table block RAMs' outputs are registered (val at 2, e at 3r)
        # before any arithmetic: a block RAM's clock-to-out, routing and a compare, adder or
        # multiplier behind it were the next paths.
        s1, s1b, s2a, s2, s3, s3r = (Signal() for _ in range(6))
        first1, first1b, first2a, first2 = Signal(), Signal(), Signal(), Signal()
        addr1b = Signal(self.act_abits)
        m.d.comb += self.idx_addr.eq(row_i + j)
        with m.If(issuing & ~self.start):
            m.d.sync += [j.eq(j + 1), last_j.eq(j + 1 == len_m1)]
            with m.If(last_j):
                m.d.sync += [issuing.eq(0), drain.eq(1), j.eq(0), last_j.eq(len_m1 == 0)]
        m.d.sync += [
            s1.eq(issuing & ~self.start),
            first1.eq(j == 0),
            s1b.eq(s1),
            first1b.eq(first1),
            addr1b.eq(x + self.idx_data[: self.act_abits]),
            s2a.eq(s1b),
            first2a.eq(first1b),
            s2.eq(s2a),
            first2.eq(first2a),
            s3.eq(s2),
            s3r.eq(s3),
        ]
        m.d.comb += [self.act_raddr.eq(addr1b), self.act_re.eq(s1b)]
        val = Signal(signed(9))
        m.d.sync += val.eq(Mux(xs, self.act_rdata.as_signed(), self.act_rdata))
        mx = Signal(signed(9))
        with m.If(s2 & p_max):
            m.d.sync += mx.eq(Mux(first2 | (val > mx), val, mx))
        m.d.comb += self.etab_addr.eq(Cat((val - mx + 255)[:8], t))
        total = Signal(s_bits)
        e = Signal(E_BITS)
        m.d.sync += e.eq(self.etab_data)
        with m.If(s3r & p_sum):
            m.d.sync += total.eq(total + e)
        with m.If(p_max):
            m.d.sync += total.eq(0)

        # --- the output pass: e*inv, *mult, requantize, write ----------------------------------
        # each product in two registered halves, then their sum (a 25 x 30-bit product and
        # its adders in one cycle would be the unit's critical path)
        inv = Signal(self.qbits)
        split = min(18, self.qbits)
        pbits = E_BITS + self.qbits
        s4, s4b, s5, s5b = Signal(), Signal(), Signal(), Signal()
        p4lo, p4hi = Signal(unsigned(E_BITS + split)), Signal(unsigned(pbits))
        p4 = Signal(unsigned(pbits))
        p5lo, p5hi = Signal(unsigned(18 + MULT_BITS)), Signal(unsigned(pbits + MULT_BITS))
        p5 = Signal(signed(pbits + MULT_BITS + 1))
        wa4, wa4b, wa5, wa5b = Signal(16), Signal(16), Signal(16), Signal(16)
        wcount = Signal(16)  # output element of the row
        with m.If(s3r & p_out):
            m.d.sync += wcount.eq(wcount + 1)
        with m.If(p_div):
            m.d.sync += wcount.eq(0)
        m.d.sync += [
            s4.eq(s3r & p_out),
            p4lo.eq(e * inv[:split]),
            p4hi.eq(e * inv[split:]) if self.qbits > split else p4hi.eq(0),
            wa4.eq(row_y + wcount),
            s4b.eq(s4),
            p4.eq((p4hi << split) + p4lo),
            wa4b.eq(wa4),
            s5.eq(s4b),
            p5lo.eq(p4[:18] * mult),
            p5hi.eq(p4[18:] * mult),
            wa5.eq(wa4b),
            s5b.eq(s5),
            p5.eq((p5hi << 18) + p5lo),
            wa5b.eq(wa5),
        ]
        requant_out(self, m, s5b, p5, wa5b)
        out_busy = Signal()
        tail = Signal(4)
        m.d.sync += tail.eq(Cat(s5b, tail[:3]))
        m.d.comb += out_busy.eq(s4 | s4b | s5 | s5b | (tail != 0))

        # --- the division: inv = floor(2**rs / S), one quotient bit a cycle -----------------
        rem = Signal(s_bits + 1)
        left = Signal(6)
        twice = Signal(s_bits + 2)
        m.d.comb += twice.eq(rem << 1)
        with m.If(p_div):
            with m.If(twice >= total):
                m.d.sync += [rem.eq(twice - total), inv.eq(Cat(1, inv))]
            with m.Else():
                m.d.sync += [rem.eq(twice), inv.eq(Cat(0, inv))]
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += [p_div.eq(0), p_out.eq(1), issuing.eq(1)]

        # --- phase changes once a pass has drained -------------------------------------------
        with m.If(drain & ~s1 & ~s1b & ~s2a & ~s2 & ~s3 & ~s3r & ~out_busy & ~issuing):
            m.d.sync += drain.eq(0)
            with m.If(p_max):
                m.d.sync += [p_max.eq(0), p_sum.eq(1), issuing.eq(1)]
            with m.If(p_sum):
                m.d.sync += [p_sum.eq(0), p_div.eq(1), rem.eq(1), inv.eq(0), left.eq(rs)]
            with m.If(p_out):
                m.d.sync += p_out.eq(0)
                with m.If(r != rows_m1):
                    m.d.sync += [
                        r.eq(r + 1),
                        row_i.eq(row_i + len_m1 + 1),
                        row_y.eq(row_y + len_m1 + 1),
                        p_max.eq(1),
                        issuing.eq(1),
                    ]
        m.d.comb += self.busy.eq(p_max | p_sum | p_div | p_out | drain)
        return m


# --- LayerNorm ---------------------------------------------------------------------------------

LAYERNORM = 1  # ROW kind
SQRT_STEPS = 32  # the integer square root of a 64-bit number, two bits a cycle
INV_BITS = 40  # inv = floor(2**(p + q) / R) < 2**INV_BITS
NORM_A, NORM_B, NORM_C = 6, 7, 15  # pass tails: reads + drain; + D, D**2, V; + output


def norm_cycles(rows: int, length: int, rs: int) -> int:
    """Cycles from a LayerNorm ``ROW``'s EXEC to the next FETCH: start register, per row
    the sum pass, the variance pass, the square root, the division and the output pass,
    then the cycle that sees the unit idle."""
    per_row = (length + NORM_A) + (length + NORM_B) + SQRT_STEPS + rs + (length + NORM_C)
    return 1 + 1 + rows * per_row + 1


def emit_layernorm(lowering: LoweringState, node: Node, first: int) -> LayerInfo:
    """``ROW`` kind 1 for a ``layernorm`` node (``frontends.ir``): rows of the last axis
    gathered in order (gamma's sign rides in each gather entry's flag bit), ``params[q]``
    holds ``epsilon_codes``, ``params[q + 1 + c]`` channel c's bias and multiplier."""
    from frontends.fixedpoint import signed_bits

    from .instrs import post_cfg
    from .isa import Instr

    graph, a, w = lowering.graph, node.attrs, node.weights
    x_name, y_name = node.inputs[0], node.outputs[0]
    x_t, y_t = graph.tensor(x_name), graph.tensor(y_name)
    shape = tuple(a.get("input_shape") or x_t.shape)
    c = shape[-1]
    rows = x_t.size // c
    p, q_bits = int(a["sqrt_shift"]), int(a["norm_bits"])
    span = c * (x_t.dtype.max - x_t.dtype.min)
    v_max = c * span * span + int(a["epsilon_codes"])
    if (
        rows > 4095
        or c > 4095
        or (v_max << (2 * p)).bit_length() > 2 * SQRT_STEPS
        or q_bits + 1 > INV_BITS
        or p + q_bits > 63
        or p > 255
    ):
        raise ModelError(
            f"{node.describe()}: {rows} rows of {c} with sqrt_shift {p} and norm_bits "
            f"{q_bits} exceed the row unit (64-bit square root, {INV_BITS}-bit reciprocal)"
        )
    for t in (x_t, y_t):
        if t.dtype.width > 8:
            raise ModelError(
                f"{node.describe()}: tensor '{t.name}' is {t.dtype}; the row unit takes 8-bit codes"
            )
    bias = np.asarray(w["bias"], np.int64).reshape(-1)
    mult = np.asarray(w["multiplier"], np.int64).reshape(-1)
    sign = np.asarray(w["sign"], np.int64).reshape(-1)
    q = len(lowering.params)
    lowering.params.append((int(a["epsilon_codes"]), 0))
    lowering.params.extend((int(b), int(m)) for b, m in zip(bias, mult))
    lowering.bias_bits = max(
        lowering.bias_bits,
        signed_bits(int(min(bias.min(), 0)), int(max(bias.max(), a["epsilon_codes"]))),
    )
    lowering.norm = True
    y_base = lowering.act.take(y_t.size)
    lowering.act_base[y_name] = y_base
    lowering.layout[y_name] = np.arange(y_t.size)
    # a negative gamma: the entry -(offset + 2), which the table image stores as the
    # offset with the pad flag set (``compiler.program_images``)
    offsets = lowering.layout[x_name]
    entries = np.where(np.tile(sign, rows) < 0, -offsets - 2, offsets)
    i_base = lowering.add_idx(entries)
    lowering.instrs.append(post_cfg(node))
    lowering.instrs.append(Instr("ADDP", fields={"y": y_base, "q": q, "i": i_base}))
    lowering.instrs.append(
        Instr(
            "ROW",
            fields={
                "kind": LAYERNORM,
                "rows": rows,
                "len": c,
                "x": lowering.act_base[x_name],
                "t": p,
                "rs": p + q_bits,
                "xsigned": int(x_t.dtype.signed),
            },
            comment=f"{node.name}: layernorm",
        )
    )
    return LayerInfo(
        node.name,
        node.op,
        node.source_op,
        rows,
        c,
        1,
        1,
        0,
        0,
        0.0,
        first,
        len(lowering.instrs),
        0,
    )


def run_norm(program: Program, act: np.ndarray, f: dict, addp: dict, pcfg: dict) -> None:
    """The model of one LayerNorm ``ROW``."""
    import math

    rows, c, s = f["rows"], f["len"], bool(f["xsigned"])
    n = rows * c
    entries = np.asarray(program.idx[addp["i"] : addp["i"] + n], np.int64)
    sign = np.where(entries < -1, -1, 1).reshape(rows, c)
    offsets = np.where(entries < -1, -entries - 2, entries)
    x = as_code(act[f["x"] + offsets], s).reshape(rows, c)
    eps = int(program.params[addp["q"], 0])
    prm = program.params[addp["q"] + 1 : addp["q"] + 1 + c]
    p, pq = f["t"], f["rs"]
    d = (c * x - x.sum(axis=1, keepdims=True)).astype(object)
    out = np.empty((rows, c), np.int64)
    for r in range(rows):
        v = int((d[r] * d[r]).sum()) + eps
        inv = (1 << pq) // math.isqrt(v << (2 * p))
        acc = sign[r].astype(object) * d[r] * inv + prm[:, 0].astype(object)
        out[r] = requant(
            acc,
            prm[:, 1].astype(object),
            pcfg["shift"],
            pcfg["zp"],
            pcfg["lo"],
            pcfg["hi"],
            pcfg["round"],
        )
    act[addp["y"] : addp["y"] + n] = out.reshape(-1) & 0xFF


class NormUnit(ParamRowUnit):
    """Runs the LayerNorm ``ROW`` (``emit_layernorm``; ``frontends.ir``'s ``layernorm``):
    per row a sum pass (``S``), a variance pass (``D = C*x - S``, ``V = sum D**2 + eps``),
    the integer square root ``R = isqrt(V << 2p)`` two bits a cycle, ``inv = floor(2**rs /
    R)`` one bit a cycle, and the output pass ``requant(+-D*inv + bias[c], mult[c])``
    (gamma's sign from the gather entry's flag); ``mult_bits``: the multipliers' width.
    Latency ``norm_cycles``."""

    def rq_bits(self) -> int:
        """The width of the products the unit requantizes (``(+-D*inv + bias) * mult``)."""
        return 24 + INV_BITS + 3 + self.mult_bits + 1

    def elaborate(self, platform):
        from .post import requant_out

        m = Module()
        ab, mw = self.act_abits, self.mult_bits
        rows_m1, len_m1, clen = Signal(12), Signal(12), Signal(13)
        x, p2, rs, xs = Signal(16), Signal(8), Signal(6), Signal()
        q = Signal(14)
        p_sum, p_var, p_sqrt, p_div, p_out, drain = (Signal() for _ in range(6))
        issuing = Signal()
        j, r = Signal(12), Signal(12)
        last_j = Signal()
        row_i, row_y = Signal(16), Signal(16)
        with m.If(self.start):
            m.d.sync += [
                rows_m1.eq(self.rows - 1),
                len_m1.eq(self.len - 1),
                clen.eq(self.len),
                x.eq(self.x),
                p2.eq(self.t << 1),
                rs.eq(self.rs),
                xs.eq(self.xsigned),
                q.eq(self.q),
                row_i.eq(self.i),
                row_y.eq(self.y),
                r.eq(0),
                j.eq(0),
                last_j.eq(self.len == 1),
                p_sum.eq(1),
                issuing.eq(1),
            ]
        # --- issue: gather (0), address register (1), activation + parameter reads (1b), value
        # (2); the gather entry + x straight into the activation address was the ECP5
        # engine's critical path (46.5 MHz placed) -------------------------------------------
        # (the activation block RAM's output is registered, val at 2, before the adders and
        # the C*x multiplier; the parameter read follows a cycle later, at 2a, to stay
        # beside it)
        s1, s1b, s2a, s2 = Signal(), Signal(), Signal(), Signal()
        k1, k1b, k2a = Signal(12), Signal(12), Signal(12)
        neg1, neg1b, neg2a, neg2 = Signal(), Signal(), Signal(), Signal()
        addr1b = Signal(ab)
        go = issuing & ~self.start
        m.d.comb += self.idx_addr.eq(row_i + j)
        with m.If(go):
            m.d.sync += [j.eq(j + 1), last_j.eq(j + 1 == len_m1)]
            with m.If(last_j):
                m.d.sync += [issuing.eq(0), drain.eq(1), j.eq(0), last_j.eq(len_m1 == 0)]
        m.d.sync += [
            s1.eq(go),
            k1.eq(j),
            s1b.eq(s1),
            k1b.eq(k1),
            neg1b.eq(neg1),
            addr1b.eq(x + self.idx_data[:ab]),
            s2a.eq(s1b),
            k2a.eq(k1b),
            neg2a.eq(neg1b),
            s2.eq(s2a),
            neg2.eq(neg2a),
        ]
        m.d.comb += [
            self.act_raddr.eq(addr1b),
            self.act_re.eq(s1b),
            neg1.eq(self.idx_data[ab]),
            self.p_addr.eq(Mux(p_out, q + 1 + k2a, q)),
        ]
        val = Signal(signed(9))
        m.d.sync += val.eq(Mux(xs, self.act_rdata.as_signed(), self.act_rdata))
        total = Signal(signed(22))  # S
        with m.If(s2 & p_sum):
            m.d.sync += total.eq(total + val)
        with m.If(p_sum & ~s1 & ~s1b & ~s2a & ~s2 & issuing & (j == 0)):
            m.d.sync += total.eq(0)
        eps = Signal(self.bias_bits)
        with m.If(p_sum):
            m.d.sync += eps.eq(self.p_data[mw:])
        # D = C*x - S for the variance and the output pass (stage 3)
        s3, neg3 = Signal(), Signal()
        d3 = Signal(signed(24))
        bias3 = Signal(signed(self.bias_bits))
        mult3 = Signal(mw)
        m.d.sync += [
            s3.eq(s2),
            neg3.eq(neg2),
            d3.eq(clen * val - total),
            bias3.eq(self.p_data[mw:].as_signed()),
            mult3.eq(self.p_data[:mw]),
        ]
        # variance: D**2 (stage 4), V (stage 5)
        s4 = Signal()
        sq4 = Signal(unsigned(46))
        var = Signal(unsigned(64))
        m.d.sync += [s4.eq(s3 & p_var), sq4.eq(d3 * d3)]
        with m.If(s4):
            m.d.sync += var.eq(var + sq4)
        with m.If(p_sum):
            m.d.sync += var.eq(0)

        # --- square root: R = isqrt(var << 2p), two bits a cycle (digit by digit) ----------
        num = Signal(64)
        root = Signal(33)
        rem = Signal(36)
        steps = Signal(6)
        trial = Signal(36)
        cand = Signal(36)
        m.d.comb += [cand.eq(Cat(num[62:64], rem)), trial.eq(Cat(1, 0, root))]
        with m.If(p_sqrt):
            m.d.sync += [num.eq(num << 2), steps.eq(steps - 1)]
            with m.If(cand >= trial):
                m.d.sync += [rem.eq(cand - trial), root.eq(Cat(1, root))]
            with m.Else():
                m.d.sync += [rem.eq(cand), root.eq(Cat(0, root))]
        # --- division: inv = floor(2**rs / R) ------------------------------------------------
        inv = Signal(INV_BITS)
        drem = Signal(34)
        left = Signal(6)
        twice = Signal(35)
        m.d.comb += twice.eq(drem << 1)
        with m.If(p_sqrt & (steps == 1)):
            m.d.sync += [p_sqrt.eq(0), p_div.eq(1), left.eq(rs), drem.eq(1), inv.eq(0)]
        with m.If(p_div):
            with m.If(twice >= root):
                m.d.sync += [drem.eq(twice - root), inv.eq(Cat(1, inv))]
            with m.Else():
                m.d.sync += [drem.eq(twice), inv.eq(Cat(0, inv))]
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += [p_div.eq(0), p_out.eq(1), issuing.eq(1)]

        # --- output: +-D*inv in two halves (4, 4b), + bias (5), * mult in two halves (6, 6b),
        # requantizer (a 24 x 40-bit product in one cycle held the unit at 67 MHz) ----------
        o4, o4b, o5, o6, o6b = Signal(), Signal(), Signal(), Signal(), Signal()
        neg4, neg4b = Signal(), Signal()
        lo4 = Signal(signed(24 + 20 + 1))
        hi4 = Signal(signed(24 + INV_BITS - 20 + 1))
        prod4 = Signal(signed(24 + INV_BITS + 1))
        bias4, bias4b = Signal(signed(self.bias_bits)), Signal(signed(self.bias_bits))
        mult4, mult4b, mult5, mult6 = (Signal(mw) for _ in range(4))
        acc_bits = 24 + INV_BITS + 3
        acc5 = Signal(signed(acc_bits))
        lo6 = Signal(unsigned(24 + mw))
        hi6 = Signal(signed(acc_bits - 24 + mw + 1))
        scaled6 = Signal(signed(acc_bits + mw + 1))
        wa = Signal(16)
        m.d.sync += [
            o4.eq(s3 & p_out),
            neg4.eq(neg3),
            lo4.eq(d3 * inv[:20]),
            hi4.eq(d3 * inv[20:]),
            bias4.eq(bias3),
            mult4.eq(mult3),
            o4b.eq(o4),
            neg4b.eq(neg4),
            prod4.eq((hi4 << 20) + lo4),
            bias4b.eq(bias4),
            mult4b.eq(mult4),
            o5.eq(o4b),
            acc5.eq(Mux(neg4b, bias4b - prod4, bias4b + prod4)),
            mult5.eq(mult4b),
            o6.eq(o5),
            lo6.eq(acc5[:24] * mult5),
            hi6.eq(acc5[24:].as_signed() * mult5),
            o6b.eq(o6),
            scaled6.eq((hi6 << 24) + lo6),
        ]
        with m.If(o6b):
            m.d.sync += wa.eq(wa + 1)
        with m.If(p_div):
            m.d.sync += wa.eq(row_y)
        requant_out(self, m, o6b, scaled6, wa)
        tail = Signal(4)
        m.d.sync += tail.eq(Cat(o6b, tail[:3]))
        out_busy = Signal()
        m.d.comb += out_busy.eq(o4 | o4b | o5 | o6 | o6b | (tail != 0))

        # --- phase changes once a pass has drained -------------------------------------------
        with m.If(drain & ~s1 & ~s1b & ~s2a & ~s2 & ~s3 & ~s4 & ~out_busy & ~issuing):
            m.d.sync += drain.eq(0)
            with m.If(p_sum):
                m.d.sync += [p_sum.eq(0), p_var.eq(1), issuing.eq(1)]
            with m.If(p_var):
                m.d.sync += [
                    p_var.eq(0),
                    p_sqrt.eq(1),
                    num.eq((var + eps) << p2),
                    rem.eq(0),
                    root.eq(0),
                    steps.eq(SQRT_STEPS),
                ]
            with m.If(p_out):
                m.d.sync += p_out.eq(0)
                with m.If(r != rows_m1):
                    m.d.sync += [
                        r.eq(r + 1),
                        row_i.eq(row_i + len_m1 + 1),
                        row_y.eq(row_y + len_m1 + 1),
                        p_sum.eq(1),
                        issuing.eq(1),
                    ]
        m.d.comb += self.busy.eq(p_sum | p_var | p_sqrt | p_div | p_out | drain)
        return m
