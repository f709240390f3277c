"""``DifferentialRow``: a row-wise softmax or LayerNorm of a spiking network (SpikeZIP-TF's
``spiking_softmax`` / ``Spiking_LayerNorm``; ``frontends.snn.units.DifferentialUnit`` on a
``nonlinear`` softmax or a ``layernorm`` node) as hardware.

``f`` is not reimplemented: the wrapper runs the GEMM overlay's own row unit
(``rtl_gen.gemm.rowwise``: ``RowUnit`` for softmax, ``NormUnit`` for LayerNorm) with the
constants its compiler emits for the node (``emit_softmax`` / ``emit_layernorm``: exp table,
gather entries, parameters, ``PCFG`` fields), so both engines compute the IR's integer ``f``
(``frontends.reference``) and follow any change to it. Around it:

- accumulate, one input element a cycle: with ``valid``, element ``k`` (a counter that wraps
  at the input size; rows are the last axis, contiguous) takes its increment ``d``:
  ``X[k] += d`` (``X`` holds codes; ``first``: the inference's first step, ``X[k] = zp_in +
  d``); a row with a nonzero ``d`` (any row on the first step) is marked changed;
- sweep, started by a ``sweep`` pulse (``sweep_first``: the first step, ``Y_prev`` is the
  output zero point): for each row in order, a changed row is recomputed by one ``ROW`` of
  one row (``rows = 1``) reading ``X``; each element the unit writes, ``Y``, leaves as
  ``out = Y - Y_prev[k]`` on ``out``/``out_addr``/``out_valid`` one cycle after the write,
  and ``Y_prev[k] = Y``; an unchanged row costs one cycle and outputs nothing (its
  increments are 0). ``busy`` is high from the cycle after ``sweep`` to the last output.

So the increments sum to ``f(X_final) - zp_out``. A step takes ``n`` accumulate cycles, the
``sweep`` cycle, ``rows + 1`` row checks and each changed row's ``ROW`` (``step_cycles``).
Several nodes of one kind can share the unit (``sel``: the node of the step's accumulate and
sweep), so one GEMM row unit serves every softmax (or LayerNorm) of a graph whose units run
one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from frontends.fixedpoint import signed_bits

from .streaming import sweep_ports

if TYPE_CHECKING:
    from frontends.ir import Graph
    from frontends.snn.units import DifferentialUnit

__all__ = ["DifferentialRow", "row_constants"]


def _abits(n: int) -> int:
    return max(1, (max(n, 2) - 1).bit_length())


class _Arena:
    def __init__(self):
        self.top = 0

    def take(self, size: int) -> int:
        base, self.top = self.top, self.top + size
        return base


class _OneRow:
    """What ``rowwise.emit_softmax``/``emit_layernorm`` read and write of the GEMM
    compiler's lowering, for a graph of the one node: its input at activation address 0 in
    original order."""

    def __init__(self, graph, x_name: str):
        self.graph = graph
        self.etab: list[int] = []
        self.params: list[tuple[int, int]] = []
        self.instrs: list = []
        self.idx: list[np.ndarray] = []
        self.row_bits = 0
        self.bias_bits = 2
        self.norm = False
        self.act = _Arena()
        size = graph.tensor(x_name).size
        self.act_base = {x_name: self.act.take(size)}
        self.layout = {x_name: np.arange(size)}

    def add_idx(self, entries) -> int:
        base = sum(len(e) for e in self.idx)
        self.idx.append(np.asarray(entries, np.int64).reshape(-1))
        return base


def row_constants(unit: DifferentialUnit, graph: Graph) -> dict:
    """The GEMM compiler's constants for ``unit``'s node (of ``graph``): ``kind``
    ("softmax"/"layernorm"), ``rows``, ``length``, the ``ROW`` and ``PCFG`` fields, one row's
    gather ``entries``, ``params`` (bias, multiplier) pairs, ``etab``, ``row_bits``,
    ``bias_bits``."""
    from ..gemm import rowwise

    node = unit.node
    if node.op == "nonlinear" and node.attrs.get("function") == "softmax":
        kind, emit = "softmax", rowwise.emit_softmax
    elif node.op == "layernorm":
        kind, emit = "layernorm", rowwise.emit_layernorm
    else:
        raise ValueError(f"{node.describe()}: not a row-wise softmax or LayerNorm")
    low = _OneRow(graph, node.inputs[0])
    emit(low, node, 0)
    fields = {i.op: dict(i.fields) for i in low.instrs}
    row, pcfg = fields["ROW"], fields["PCFG"]
    length = int(row["len"])
    entries = np.concatenate(low.idx)[:length]
    return dict(
        kind=kind,
        rows=int(row["rows"]),
        length=length,
        row=row,
        pcfg=pcfg,
        entries=entries,
        params=list(low.params),
        etab=list(low.etab),
        row_bits=low.row_bits,
        bias_bits=low.bias_bits,
    )


class _Part:
    """One node of a (shared) ``DifferentialRow``: its constants and where its ``X``/``Y``
    words, gather entries and parameters start in the unit's memories."""

    def __init__(self, unit: DifferentialUnit, graph: Graph, base: int, i: int, q: int, t: int):
        self.unit, self.c = unit, row_constants(unit, graph)
        self.rows, self.length = self.c["rows"], self.c["length"]
        self.n = self.rows * self.length
        if self.n != int(np.prod(unit.out_shape)) or self.n < 2:
            raise ValueError(f"{unit.node.describe()}: rows do not cover the output")
        self.base, self.i, self.q, self.t = base, i, q, t
        in_t, out_t = graph.tensor(unit.node.inputs[0]), graph.tensor(unit.node.outputs[0])
        self.in_signed, self.out_signed = in_t.dtype.signed, out_t.dtype.signed
        span = out_t.dtype.max - out_t.dtype.min
        self.out_bits = signed_bits(-span, span)


class DifferentialRow(wiring.Component):
    """The differential unit of one row-wise softmax or LayerNorm node of ``graph`` (or of
    several of one kind, ``units``, sharing the one GEMM row unit: ``sel`` picks the node
    of the step's accumulate and sweep; each node has its own ``X``, ``Y_prev`` words,
    gather entries, parameters and exp table); ``d_bits`` is the width of the input
    increments (2: spikes)."""

    def __init__(
        self,
        units: DifferentialUnit | Sequence[DifferentialUnit],
        graph: Graph,
        *,
        d_bits: int = 2,
    ):
        from ..gemm import rowwise

        units = list(units) if isinstance(units, (list, tuple)) else [units]
        self.parts: list[_Part] = []
        base = i = q = 0
        for t, unit in enumerate(units):
            part = _Part(unit, graph, base, i, q, t)
            if self.parts and part.c["kind"] != self.parts[0].c["kind"]:
                raise ValueError(f"{unit.node.describe()}: a shared row unit has one kind")
            self.parts.append(part)
            base, i, q = base + part.n, i + part.length, q + len(part.c["params"])
        first = self.parts[0]
        self.kind = first.c["kind"]
        self.unit, self.c = first.unit, first.c
        self.rows, self.length, self.n = first.rows, first.length, first.n
        self.total = base
        for part in self.parts:
            rs = int(part.c["row"]["rs"])
            if self.kind == "softmax":
                part.row_cycles = rowwise.row_cycles(1, part.length, rs)
            else:
                part.row_cycles = rowwise.norm_cycles(1, part.length, rs)
        self.row_cycles = first.row_cycles
        self.d_bits = d_bits
        self.out_bits = max(p.out_bits for p in self.parts)
        n_max = max(p.n for p in self.parts)
        sel = In(range(max(len(self.parts), 2)))
        super().__init__(sweep_ports(d_bits, self.out_bits, n_max, sel=sel))

    # a changed row: its CHECK starts the ROW, then ``row_cycles - 2`` cycles to the next
    # CHECK (``row_cycles`` counts the sequencer's EXEC and FETCH cycles around the unit's)
    def step_cycles(self, changed_rows: int, sel: int = 0) -> int:
        """Cycles of a time step of node ``sel`` from its first ``valid`` to the next
        step's, when ``changed_rows`` rows changed (all on the first step)."""
        p = self.parts[sel]
        return p.n + 1 + p.rows + 1 + changed_rows * (p.row_cycles - 2)

    def elaborate(self, platform) -> Module:
        from ..gemm.config import MULT_BITS
        from ..gemm.rowwise import E_BITS, ETAB_WORDS, NormUnit, RowUnit

        m = Module()
        parts = self.parts
        total = self.total
        softmax = self.kind == "softmax"
        act_ab = _abits(total)
        idx_ab = _abits(sum(p.length for p in parts))
        p_ab = _abits(sum(len(p.c["params"]) for p in parts))
        bias_bits = max(p.c["bias_bits"] for p in parts)
        # a LayerNorm's multipliers may be a transformer's wider ones (GemmConfig.mult_bits)
        mult_bits = max(
            [MULT_BITS] + [int(mu).bit_length() for p in parts for _b, mu in p.c["params"]]
        )
        if self.kind == "softmax":
            etab_img = [v for p in parts for v in p.c["etab"]]
            if any(len(p.c["etab"]) != ETAB_WORDS for p in parts):
                raise ValueError("a softmax node's exp table is not one table")
            f = RowUnit(
                act_abits=act_ab,
                idx_abits=idx_ab,
                p_abits=p_ab,
                etab_abits=_abits(len(etab_img)),
                qbits=max(1, max(p.c["row_bits"] for p in parts)),
            )
            etab = Memory(shape=unsigned(E_BITS), depth=len(etab_img), init=etab_img)
            m.submodules.etab = etab
            etab_rd = etab.read_port()
            m.d.comb += [etab_rd.addr.eq(f.etab_addr), f.etab_data.eq(etab_rd.data)]
        else:
            f = NormUnit(
                act_abits=act_ab,
                idx_abits=idx_ab,
                p_abits=p_ab,
                bias_bits=bias_bits,
                mult_bits=mult_bits,
            )
        m.submodules.f = f

        # constants: each node's one row of gather entries (gamma's sign as the flag above
        # the offset) and parameter words as the GEMM images store them
        pad = 1 << act_ab
        idx = [
            pad | (-int(e) - 2) if int(e) < -1 else int(e) for p in parts for e in p.c["entries"]
        ]
        bias_mask = (1 << bias_bits) - 1
        words = [
            ((int(b) & bias_mask) << mult_bits) | int(mu) for p in parts for b, mu in p.c["params"]
        ]
        idx_rom = Memory(shape=unsigned(act_ab + 1), depth=len(idx), init=idx)
        p_rom = Memory(shape=unsigned(bias_bits + mult_bits), depth=len(words), init=words)
        x_mem = Memory(shape=unsigned(8), depth=total, init=[])  # codes, as the unit reads
        y_mem = Memory(shape=signed(10), depth=total, init=[])
        m.submodules.idx_rom, m.submodules.p_rom = idx_rom, p_rom
        m.submodules.x_mem, m.submodules.y_mem = x_mem, y_mem
        idx_rd, p_rd = idx_rom.read_port(), p_rom.read_port()
        x_rd, x_wr = x_mem.read_port(), x_mem.write_port()
        y_rd, y_wr = y_mem.read_port(), y_mem.write_port()
        p_data = p_rd.data if self.kind == "layernorm" else p_rd.data[:MULT_BITS]
        m.d.comb += [
            idx_rd.addr.eq(f.idx_addr),
            f.idx_data.eq(idx_rd.data),
            p_rd.addr.eq(f.p_addr),
            f.p_data.eq(p_data),
            f.act_rdata.eq(x_rd.data),
        ]

        def pick(values, shape):
            """The selected node's constant of ``values`` (one per node)."""
            sig = Signal(shape)
            with m.Switch(self.sel):
                for k, v in enumerate(values):
                    with m.Case(k):
                        m.d.comb += sig.eq(v)
            return sig

        n_sel = pick([p.n for p in parts], range(total + 1))
        len_sel = pick([p.length for p in parts], range(max(p.length for p in parts) + 1))
        rows_max = max(p.rows for p in parts)
        rows_sel = pick([p.rows for p in parts], range(rows_max + 1))
        base_sel = pick([p.base for p in parts], range(total + 1))
        zp_in = pick([p.unit.in_zero_points[0] for p in parts], signed(10))
        zp_out = pick([p.unit.out_zero_point for p in parts], signed(10))
        out_signed = pick([int(p.out_signed) for p in parts], 1)

        # --- accumulate: read X[k] this cycle, write X[k] + d the next ----------------------
        k = Signal(range(total))
        j = Signal(range(max(p.length for p in parts)))
        r = Signal(range(rows_max))
        with m.If(self.valid):
            last = k == n_sel - 1
            m.d.sync += [
                k.eq(Mux(last, 0, k + 1)),
                j.eq(Mux(j == len_sel - 1, 0, j + 1)),
                r.eq(Mux(last, 0, Mux(j == len_sel - 1, r + 1, r))),
            ]
        acc1, first1 = Signal(), Signal()
        d1 = Signal(signed(self.d_bits))
        a1 = Signal(range(total))
        r1 = Signal(range(rows_max))
        m.d.sync += [
            acc1.eq(self.valid),
            first1.eq(self.first),
            d1.eq(self.d),
            a1.eq(base_sel + k),
            r1.eq(r),
        ]
        sweeping = Signal()
        m.d.comb += x_rd.addr.eq(Mux(sweeping, f.act_raddr, base_sel + k))
        m.d.comb += [
            x_wr.addr.eq(a1),
            x_wr.data.eq(Mux(first1, zp_in, x_rd.data) + d1),
            x_wr.en.eq(acc1),
        ]
        changed = Signal(rows_max)
        with m.If(acc1 & (first1 | (d1 != 0))):
            m.d.sync += changed.bit_select(r1, 1).eq(1)

        # --- the differential output: the unit's writes against Y_prev ----------------------
        w1 = Signal()
        wa1 = Signal(range(total))
        y1 = Signal(signed(10))
        sfirst = Signal()
        y_new = Mux(out_signed, f.act_wdata.as_signed(), f.act_wdata)
        m.d.sync += [w1.eq(f.act_we), wa1.eq(f.act_waddr), y1.eq(y_new)]
        m.d.comb += y_rd.addr.eq(f.act_waddr)
        prev = Mux(sfirst, zp_out, y_rd.data)
        m.d.comb += [y_wr.addr.eq(wa1), y_wr.data.eq(y1), y_wr.en.eq(w1)]
        m.d.comb += [
            self.out.eq(y1 - prev),
            self.out_addr.eq(wa1 - base_sel),
            self.out_valid.eq(w1),
        ]

        # --- sweep: one ROW per changed row ----------------------------------------------------
        rs_ = Signal(range(rows_max + 1))
        base = Signal(range(total + 1))
        for name in ("len", "rs", "xsigned"):
            m.d.comb += getattr(f, name).eq(pick([int(p.c["row"][name]) for p in parts], 16))
        for name in ("shift", "zp", "lo", "hi", "round"):
            values = [int(p.c["pcfg"][name]) for p in parts]
            m.d.comb += getattr(f, name).eq(pick(values, signed(17)))
        m.d.comb += [
            f.rows.eq(1),
            f.x.eq(base),
            f.y.eq(base),
            # softmax: the node's exp table (one after the other); LayerNorm: a precision
            f.t.eq(pick([int(p.c["row"]["t"]) + (p.t if softmax else 0) for p in parts], 8)),
            f.q.eq(pick([p.q for p in parts], 16)),
            f.i.eq(pick([p.i for p in parts], 16)),
        ]
        with m.FSM(name="sweep"):
            with m.State("IDLE"):
                with m.If(self.sweep):
                    m.d.sync += [rs_.eq(0), base.eq(base_sel), sfirst.eq(self.sweep_first)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [self.busy.eq(1), sweeping.eq(1)]
                with m.If(rs_ == rows_sel):
                    m.next = "IDLE"
                with m.Elif(changed.bit_select(rs_, 1)):
                    m.d.comb += f.start.eq(1)
                    m.next = "WAIT"
                with m.Else():
                    m.d.sync += [rs_.eq(rs_ + 1), base.eq(base + len_sel)]
            with m.State("WAIT"):
                m.d.comb += [self.busy.eq(1), sweeping.eq(1)]
                with m.If(~f.busy & ~w1):
                    m.d.sync += [
                        changed.bit_select(rs_, 1).eq(0),
                        rs_.eq(rs_ + 1),
                        base.eq(base + len_sel),
                    ]
                    m.next = "CHECK"
        return m
