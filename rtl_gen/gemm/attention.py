"""Activation x activation GEMMs on the overlay (``matmul``: Q x K^T, A x V per head): a
multiply-accumulate unit beside the post unit that reads both operands from the activation
buffer through the gather table.

``ROW`` kind 2 (``MATMUL``) with ``rows`` = M, ``len`` = K, ``t`` = N, ``rs`` = H heads,
``x`` = the gather base of B, ``ADDP``'s ``i`` = that of A, ``q`` = parameters (``params[q]``:
A's zero point and the multiplier; ``params[q+1]``: B's zero point), ``y`` = output, and
``PCFG``'s requantization: for head ``h``, row ``m``, column ``n``:
``acc = sum_k (act[idx[i + (h*M + m)*K + k]] - za) * (act[idx[x + (h*N + n)*K + k]] - zb)``,
``act[y + (h*M + m)*N + n] = clamp(((acc * mult + r) >> shift) + zp, lo, hi)``: the gather
table lists A's rows and B's columns (B transposed) as absolute activation addresses, so any
producer layout works and the heads' slices cost nothing. The operands share the
sequencer's activation port: two cycles a multiply-accumulate (``matmul_cycles``).
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from frontends.errors import ModelError
from frontends.ir import Node

from .codes import as_code, requant
from .config import MAX_MULT_BITS, MULT_BITS
from .program import LayerInfo, Program
from .rowwise import ParamRowUnit
from .state import LoweringState

__all__ = [
    "MatUnit",
    "emit_matmul",
    "emit_view",
    "emit_const_add",
    "CaddUnit",
    "cadd_cycles",
    "run_cadd",
    "CADD",
    "matmul_cycles",
    "run_matmul",
    "MATMUL",
]

MATMUL = 2  # ROW kinds
CADD = 3
CADD_SETUP = 1  # the parameter read before the first issue
CADD_TAIL = 11  # gather, address, reads, their registers, product, sum, requantizer, idle
MAT_SETUP = 2  # parameter reads before the first issue
MAT_TAIL = 13  # last b read, address, its register, product, accumulate, * mult in halves,
# requantizer, idle


def matmul_cycles(h: int, m: int, n: int, k: int) -> int:
    """Cycles from the ``ROW`` (matmul)'s EXEC to the next FETCH: the start register, the
    parameter reads, two cycles a multiply-accumulate, the pipeline."""
    return 1 + 1 + MAT_SETUP + 2 * h * m * n * k + MAT_TAIL


def _shapes(node: Node, graph) -> tuple[int, int, int, int, tuple, tuple]:
    a = node.attrs
    a_shape = tuple(a.get("a_shape") or graph.tensor(node.inputs[0]).shape)
    b_shape = tuple(a.get("b_shape") or graph.tensor(node.inputs[1]).shape)
    lead = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    m, k = a_shape[-2:]
    k2, n = b_shape[-2:]
    if k != k2:
        raise ModelError(f"{node.describe()}: inner sizes {k} and {k2} differ")
    return int(np.prod(lead, dtype=np.int64)), m, k, n, a_shape, b_shape


def emit_matmul(lowering: LoweringState, node: Node, first: int) -> LayerInfo:
    """``ROW`` kind 2 for a ``matmul`` node: the gather table lists A's rows and B's
    columns per head as activation addresses; the output is written in original order."""
    from .instrs import post_cfg
    from .isa import Instr

    graph, a = lowering.graph, node.attrs
    a_name, b_name = node.inputs
    ta, tb, ty = (graph.tensor(t) for t in (a_name, b_name, node.outputs[0]))
    for t in (ta, tb, ty):
        if t.dtype.width > 8:
            raise ModelError(
                f"{node.describe()}: tensor '{t.name}' is {t.dtype}; the gemm engine's "
                f"activations are at most 8 bits"
            )
    if ta.dtype.signed != tb.dtype.signed:
        raise ModelError(
            f"{node.describe()}: operands '{a_name}' and '{b_name}' differ in signedness; "
            f"the gemm engine's matmul takes two of the same kind"
        )
    h, m, k, n, a_shape, b_shape = _shapes(node, graph)
    if m > 4095 or k > 4095 or n > 255 or h > 63:
        raise ModelError(
            f"{node.describe()}: {h} heads of ({m} x {k}) x ({k} x {n}) exceed the matmul "
            f"fields (M, K <= 4095, N <= 255, heads <= 63)"
        )
    mult = int(np.asarray(node.weights["multiplier"]).reshape(-1)[0])
    if not 0 <= mult < 1 << MAX_MULT_BITS:
        raise ModelError(f"{node.describe()}: multiplier {mult} exceeds {MAX_MULT_BITS} bits")
    za, zb = (int(z) for z in a["input_zero_points"])
    lead = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    ai = np.broadcast_to(
        np.arange(int(np.prod(a_shape))).reshape(a_shape), tuple(lead) + (m, k)
    ).reshape(h * m, k)
    bi = np.broadcast_to(
        np.arange(int(np.prod(b_shape))).reshape(b_shape), tuple(lead) + (k, n)
    ).reshape(h, k, n)
    bi = bi.transpose(0, 2, 1).reshape(h * n, k)  # B's columns as rows
    a_addr = lowering.act_base[a_name] + lowering.layout[a_name][ai]
    b_addr = lowering.act_base[b_name] + lowering.layout[b_name][bi]
    q = len(lowering.params)
    lowering.params.extend([(za, mult), (zb, 0)])
    lowering.bias_bits = max(lowering.bias_bits, 9)  # the zero points ride in the bias field
    y_base = lowering.act.take(ty.size)
    lowering.act_base[node.outputs[0]] = y_base
    lowering.layout[node.outputs[0]] = np.arange(ty.size)
    i_a = lowering.add_idx(a_addr)
    i_b = lowering.add_idx(b_addr)
    lowering.matmul = True
    lowering.instrs.append(post_cfg(node))
    lowering.instrs.append(Instr("ADDP", fields={"y": y_base, "q": q, "i": i_a}))
    lowering.instrs.append(
        Instr(
            "ROW",
            fields={
                "kind": MATMUL,
                "rows": m,
                "len": k,
                "x": i_b,
                "t": n,
                "rs": h,
                "xsigned": int(ta.dtype.signed),
            },
            comment=f"{node.name}: matmul {h} x ({m} x {k}) x ({k} x {n})",
        )
    )
    return LayerInfo(
        node.name,
        node.op,
        node.source_op,
        m,
        k,
        n,
        h,
        0,
        0,
        0.0,
        first,
        len(lowering.instrs),
        h * m * n * k,
    )


def view_index(node: Node, size: int) -> np.ndarray:
    """For each element of a ``transpose``/``slice`` node's output (original order), the
    original flat index of the input element it is (``frontends.ir``: data movement)."""
    a = node.attrs
    shape = tuple(a.get("input_shape") or (size,))
    index = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    if node.op == "transpose":
        return np.transpose(index, tuple(a["perm"])).reshape(-1)
    sel = [slice(None)] * index.ndim
    for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        sel[axis] = slice(start, end, step)
    return index[tuple(sel)].reshape(-1)


def emit_view(lowering: LoweringState, node: Node) -> None:
    """A ``transpose`` or ``slice`` costs no instruction: its output is a view of its
    input's region (``layout`` maps each of its elements to where the input holds it); the
    region lives until the view's last reader (``Lowering.aliases``)."""
    x_name, y_name = node.inputs[0], node.outputs[0]
    x_t = lowering.graph.tensor(x_name)
    index = view_index(node, x_t.size)
    root = lowering.aliases.get(x_name, x_name)
    lowering.aliases[y_name] = root
    lowering.act_base[y_name] = lowering.act_base[x_name]
    lowering.layout[y_name] = lowering.layout[x_name][index]
    last = lowering.last_read.get(y_name, -1)
    if y_name in lowering.graph.outputs:
        last = len(lowering.graph.nodes)
    lowering.last_read[root] = max(lowering.last_read.get(root, -1), last)


def emit_const_add(lowering: LoweringState, node: Node, first: int) -> LayerInfo:
    """``ROW`` kind 3 (``CADD``) for an ``add`` of a constant (a bias after a requantized
    MatMul, a position embedding): ``acc = (a - za)*ma + K[j mod P]`` with the constant's
    terms ``K = (c - zb)*mb`` in the parameter memory, one per element of its period ``P``
    (the constant broadcast over the leading axes), then ``PCFG``'s requantization."""
    from .instrs import post_cfg
    from .isa import Instr

    graph, a = lowering.graph, node.attrs
    (a_name,) = node.inputs
    ta, ty = graph.tensor(a_name), graph.tensor(node.outputs[0])
    shape = tuple(a.get("input_shape") or ta.shape)
    const = np.asarray(node.weights["constant"], np.int64)
    lead = len(shape) - const.ndim
    period_shape = shape[lead:] if const.ndim else ()
    codes = np.broadcast_to(const, period_shape).reshape(-1) if const.ndim else const.reshape(1)
    period = max(1, codes.size)
    if ta.size % period or period > 4095 or ta.size // period > 4095:
        raise ModelError(
            f"{node.describe()}: a constant of {period} elements over {ta.size}; the gemm "
            f"engine adds one that repeats over the leading axes (<= 4095 x 4095)"
        )
    za, zb = (int(z) for z in a["input_zero_points"])
    ma, mb = (int(v) for v in np.asarray(node.weights["multiplier"]).reshape(-1))
    if not 0 <= ma < 1 << MAX_MULT_BITS:
        raise ModelError(f"{node.describe()}: multiplier {ma} exceeds {MAX_MULT_BITS} bits")
    terms = (codes - zb) * mb
    from frontends.fixedpoint import signed_bits

    lowering.bias_bits = max(
        lowering.bias_bits, 10, signed_bits(int(terms.min()), int(terms.max()))
    )
    q = len(lowering.params)
    lowering.params.append((za, ma))
    lowering.params.extend((int(t), 0) for t in terms)
    y_base = lowering.act.take(ty.size)
    lowering.act_base[node.outputs[0]] = y_base
    lowering.layout[node.outputs[0]] = np.arange(ty.size)
    i_a = lowering.add_idx(lowering.act_base[a_name] + lowering.layout[a_name])
    lowering.cadd = True
    lowering.instrs.append(post_cfg(node))
    lowering.instrs.append(Instr("ADDP", fields={"y": y_base, "q": q, "i": i_a}))
    lowering.instrs.append(
        Instr(
            "ROW",
            fields={
                "kind": CADD,
                "rows": ta.size // period,
                "len": period,
                "xsigned": int(ta.dtype.signed),
            },
            comment=f"{node.name}: add of a constant",
        )
    )
    return LayerInfo(
        node.name,
        node.op,
        node.source_op,
        ta.size,
        1,
        1,
        1,
        0,
        0,
        0.0,
        first,
        len(lowering.instrs),
        0,
    )


def cadd_cycles(n: int) -> int:
    """Cycles from a ``CADD``'s EXEC to the next FETCH: start register, parameter read,
    one element a cycle, the pipeline."""
    return 1 + 1 + CADD_SETUP + n + CADD_TAIL


def run_cadd(program: Program, act: np.ndarray, f: dict, addp: dict, pcfg: dict) -> None:

    rows, period, s = f["rows"], f["len"], bool(f["xsigned"])
    n = rows * period
    za, ma = program.params[addp["q"]]
    terms = program.params[addp["q"] + 1 : addp["q"] + 1 + period, 0]
    a = as_code(act[program.idx[addp["i"] : addp["i"] + n]], s).reshape(rows, period)
    acc = (a - za) * ma + terms[None, :]
    y = requant(acc, 1, pcfg["shift"], pcfg["zp"], pcfg["lo"], pcfg["hi"], pcfg["round"])
    act[addp["y"] : addp["y"] + n] = y.reshape(-1) & 0xFF


class CaddUnit(wiring.Component):
    """Runs ``CADD`` (``emit_const_add``): element ``j`` of ``rows * len`` read at
    ``act[idx[i + j]]``, its term at ``params[q + 1 + j mod len]``,
    ``act[y + j] = requant((a - za)*ma + K)``; one element a cycle, ``cadd_cycles``."""

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
        super().__init__(
            {
                "start": In(1),
                "rows": In(12),
                "len": In(12),
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
                "p_data": In(bias_bits + mult_bits),
                **extra,
                "busy": Out(1),
            }
        )

    def rq_bits(self) -> int:
        """The width of the sums the unit requantizes (``(a - za)*ma + K``)."""
        return self.bias_bits + self.mult_bits + 12

    def elaborate(self, platform):
        from .post import requant_out

        m = Module()
        mw = self.mult_bits
        setup, issuing, xs = Signal(), Signal(), Signal()
        q = Signal(14)
        za = Signal(signed(9))
        ma = Signal(mw)
        j = Signal(16)
        k, len_m1, rows_m1, r = Signal(12), Signal(12), Signal(12), Signal(12)
        ibase, y = Signal(16), Signal(16)
        with m.If(self.start):
            m.d.sync += [
                setup.eq(1),
                xs.eq(self.xsigned),
                q.eq(self.q),
                ibase.eq(self.i),
                y.eq(self.y),
                j.eq(0),
                k.eq(0),
                r.eq(0),
                len_m1.eq(self.len - 1),
                rows_m1.eq(self.rows - 1),
            ]
        # stage 0 issues the gather read; stage 1 registers the entry (a gather read
        # straight into the activation address, through the engine's port multiplexers, is
        # a block RAM to block RAM path); stage 1b the activation read and the term's
        # parameter read (element k of the period); stage 2 the product, 3 the sum
        k1, k1b = Signal(12), Signal(12)
        v1, v1b, v2 = Signal(), Signal(), Signal()
        addr1b = Signal(self.act_abits)
        m.d.comb += [
            self.idx_addr.eq(ibase + j),
            self.p_addr.eq(Mux(v1b, q + 1 + k1b, q)),
            self.act_raddr.eq(addr1b),
            self.act_re.eq(v1b),
        ]
        with m.If(setup & ~self.start):
            m.d.sync += [setup.eq(0), issuing.eq(1)]
        go = issuing
        with m.If(go):
            m.d.sync += [j.eq(j + 1), k.eq(k + 1)]
            with m.If(k == len_m1):
                m.d.sync += [k.eq(0), r.eq(r + 1)]
                with m.If(r == rows_m1):
                    m.d.sync += issuing.eq(0)
        m.d.sync += [
            v1.eq(go),
            k1.eq(k),
            v1b.eq(v1),
            k1b.eq(k1),
            addr1b.eq(self.idx_data[: self.act_abits]),
            v2.eq(v1b),
        ]
        # params[q] is on p_data the cycle after setup (p_addr = q while v1 is low)
        first = Signal()
        m.d.sync += first.eq(setup & ~self.start)
        with m.If(first):
            m.d.sync += [
                za.eq(self.p_data[mw : mw + 9].as_signed()),
                ma.eq(self.p_data[:mw]),
            ]
        # the activation and parameter block RAMs' outputs registered (2), the product
        # (2b), the sum (3): a block RAM's clock-to-out, the difference and the two
        # MULT18X18D of a 22-bit multiplier in one cycle were the placed ViT's path (44.9 MHz)
        val, term = Signal(signed(9)), Signal(signed(self.bias_bits))
        m.d.sync += [
            val.eq(Mux(xs, self.act_rdata.as_signed(), self.act_rdata)),
            term.eq(self.p_data[mw:].as_signed()),
        ]
        prod2b, term2b = Signal(signed(10 + mw + 1)), Signal(signed(self.bias_bits))
        total = Signal(signed(self.bias_bits + mw + 12))
        v2a, v2b, v3 = Signal(), Signal(), Signal()
        m.d.sync += v2a.eq(v2)
        m.d.sync += [v2b.eq(v2a), prod2b.eq((val - za) * ma), term2b.eq(term)]
        m.d.sync += [v3.eq(v2b), total.eq(prod2b + term2b)]
        with m.If(v3):
            m.d.sync += y.eq(y + 1)
        requant_out(self, m, v3, total, y)
        tail = Signal(4)
        m.d.sync += tail.eq(Cat(v3, tail[:3]))
        m.d.comb += self.busy.eq(
            setup | first | issuing | v1 | v1b | v2 | v2a | v2b | v3 | (tail != 0)
        )
        return m


def run_matmul(program: Program, act: np.ndarray, f: dict, addp: dict, pcfg: dict) -> None:
    """The model of one matmul ``ROW`` on the activation buffer ``act``."""

    h, m, k, n, s = f["rs"], f["rows"], f["len"], f["t"], bool(f["xsigned"])
    (za, mult), (zb, _) = program.params[addp["q"]], program.params[addp["q"] + 1]
    ai = program.idx[addp["i"] : addp["i"] + h * m * k]
    bi = program.idx[f["x"] : f["x"] + h * n * k]
    av = as_code(act[ai], s).reshape(h, m, k) - za
    bv = as_code(act[bi], s).reshape(h, n, k) - zb
    acc = np.einsum("hmk,hnk->hmn", av, bv)
    y = requant(acc, mult, pcfg["shift"], pcfg["zp"], pcfg["lo"], pcfg["hi"], pcfg["round"])
    act[addp["y"] : addp["y"] + h * m * n] = y.reshape(-1) & 0xFF


class MatUnit(ParamRowUnit):
    """Runs the matmul ``ROW`` (see the module docstring): per multiply-accumulate an A
    and a B gather-table read and activation read on the sequencer's ports (two cycles),
    ``(a - za) * (b - zb)`` into the accumulator, at each output's last step ``acc * mult``
    into the post unit's requantizer pipeline. ``busy`` until the last write; latency
    ``matmul_cycles``; ``shared_requant``: see ``ParamRowUnit``."""

    def rq_bits(self) -> int:
        """The width of the products the unit requantizes (``acc * mult``)."""
        return 36 + self.mult_bits + 1

    def elaborate(self, platform):
        from .post import requant_out

        m = Module()
        mw = self.mult_bits
        setup = Signal(2)  # parameter reads: 2 (params[q]), 1 (params[q+1])
        issuing, phase = Signal(), Signal()  # phase 0: A's entry, 1: B's
        xs = Signal()
        q = Signal(14)
        za, zb = Signal(signed(9)), Signal(signed(9))
        mult = Signal(mw)
        k_m1, n_m1, m_m1, h_m1 = Signal(12), Signal(8), Signal(12), Signal(6)
        kk, nn, mm, hh = Signal(12), Signal(8), Signal(12), Signal(6)
        a_row, b_row, b_head = Signal(16), Signal(16), Signal(16)  # table bases of the dot
        y = Signal(16)
        with m.If(self.start):
            m.d.sync += [
                setup.eq(2),
                xs.eq(self.xsigned),
                q.eq(self.q),
                k_m1.eq(self.len - 1),
                n_m1.eq(self.t - 1),
                m_m1.eq(self.rows - 1),
                h_m1.eq(self.rs - 1),
                kk.eq(0),
                nn.eq(0),
                mm.eq(0),
                hh.eq(0),
                a_row.eq(self.i),
                b_row.eq(self.x),
                b_head.eq(self.x),
                y.eq(self.y),
                phase.eq(0),
            ]
        m.d.comb += self.p_addr.eq(Mux(setup == 1, q + 1, q))
        zero_point = self.p_data[mw : mw + 9].as_signed()
        with m.If(setup == 2):
            m.d.sync += setup.eq(1)
        with m.If(setup == 1):
            m.d.sync += [setup.eq(0), issuing.eq(1), za.eq(zero_point)]
            m.d.sync += mult.eq(self.p_data[:mw])
        # zb: params[q+1] is on p_data the cycle after setup == 1
        zb_load = Signal()
        m.d.sync += zb_load.eq(setup == 1)
        with m.If(zb_load):
            m.d.sync += zb.eq(zero_point)

        # --- issue: A's entry (phase 0), B's (phase 1) -------------------------------------
        last_k, last_out = Signal(), Signal()
        m.d.comb += [
            last_k.eq(kk == k_m1),
            last_out.eq(last_k & (nn == n_m1) & (mm == m_m1) & (hh == h_m1)),
            self.idx_addr.eq(Mux(phase, b_row + kk, a_row + kk)),
        ]
        go = issuing & (setup == 0)
        with m.If(go):
            m.d.sync += phase.eq(~phase)
            with m.If(phase):
                m.d.sync += kk.eq(kk + 1)
                with m.If(last_k):
                    m.d.sync += [kk.eq(0), nn.eq(nn + 1), b_row.eq(b_row + k_m1 + 1)]
                    with m.If(nn == n_m1):
                        m.d.sync += [
                            nn.eq(0),
                            mm.eq(mm + 1),
                            a_row.eq(a_row + k_m1 + 1),
                            b_row.eq(b_head),
                        ]
                        with m.If(mm == m_m1):
                            m.d.sync += [mm.eq(0), hh.eq(hh + 1)]
                            m.d.sync += b_head.eq(b_row + k_m1 + 1)
                            m.d.sync += b_row.eq(b_row + k_m1 + 1)
                    with m.If(last_out):
                        m.d.sync += issuing.eq(0)
        # stage 1: the entry registered (see CaddUnit); 1b: its activation read; 2: its value
        v1, ph1, lk1 = Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(go), ph1.eq(phase), lk1.eq(last_k)]
        v1b, ph1b, lk1b = Signal(), Signal(), Signal()
        addr1b = Signal(self.act_abits)
        m.d.sync += [
            v1b.eq(v1),
            ph1b.eq(ph1),
            lk1b.eq(lk1),
            addr1b.eq(self.idx_data[: self.act_abits]),
        ]
        m.d.comb += [self.act_raddr.eq(addr1b), self.act_re.eq(v1b)]
        # 2a: the activation block RAM's output registered (2: its value) before the
        # differences and the product
        v2a, ph2a, lk2a = Signal(), Signal(), Signal()
        m.d.sync += [v2a.eq(v1b), ph2a.eq(ph1b), lk2a.eq(lk1b)]
        v2, ph2, lk2 = Signal(), Signal(), Signal()
        m.d.sync += [v2.eq(v2a), ph2.eq(ph2a), lk2.eq(lk2a)]
        val = Signal(signed(9))
        m.d.sync += val.eq(Mux(xs, self.act_rdata.as_signed(), self.act_rdata))
        a_val = Signal(signed(10))
        with m.If(v2 & ~ph2):
            m.d.sync += a_val.eq(val - za)
        # stage 3: the product; stage 4: the accumulator (restarting at k = 0)
        v3, lk3 = Signal(), Signal()
        prod = Signal(signed(20))
        m.d.sync += [v3.eq(v2 & ph2), lk3.eq(lk2)]
        with m.If(v2 & ph2):
            m.d.sync += prod.eq(a_val * (val - zb))
        acc = Signal(signed(36))
        fresh = Signal(init=1)  # the next product starts a dot product
        v4 = Signal()
        m.d.sync += v4.eq(v3 & lk3)
        with m.If(v3):
            m.d.sync += [acc.eq(Mux(fresh, prod, acc + prod)), fresh.eq(lk3)]
        # stage 5: * mult in two halves (one MULT18X18D column each), 5b their sum; then
        # the requantizer
        v5, v5b = Signal(), Signal()
        lo5, hi5 = Signal(unsigned(18 + mw)), Signal(signed(36 - 18 + mw + 1))
        scaled = Signal(signed(36 + mw + 1))
        m.d.sync += [v5.eq(v4), lo5.eq(acc[:18] * mult), hi5.eq(acc[18:].as_signed() * mult)]
        m.d.sync += [v5b.eq(v5), scaled.eq((hi5 << 18) + lo5)]
        with m.If(v5b):
            m.d.sync += y.eq(y + 1)  # the pipeline carries the address of each output
        requant_out(self, m, v5b, scaled, y)
        tail = Signal(4)
        m.d.sync += tail.eq(Cat(v5b, tail[:3]))
        m.d.comb += self.busy.eq(
            (setup != 0)
            | issuing
            | v1
            | v1b
            | v2a
            | v2
            | v3
            | v4
            | v5
            | v5b
            | (tail != 0)
            | zb_load
        )
        return m
