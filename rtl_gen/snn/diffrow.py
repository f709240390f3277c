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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import signed_bits

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


class DifferentialRow(wiring.Component):
    """The differential unit of one row-wise softmax or LayerNorm node of ``graph``;
    ``d_bits`` is the width of the input increments (2: spikes)."""

    def __init__(self, unit: DifferentialUnit, graph: Graph, *, d_bits: int = 2):
        from ..gemm import rowwise

        self.unit = unit
        self.c = row_constants(unit, graph)
        self.rows, self.length = self.c["rows"], self.c["length"]
        self.n = self.rows * self.length
        if self.n != int(np.prod(unit.out_shape)) or self.n < 2:
            raise ValueError(f"{unit.node.describe()}: rows do not cover the output")
        rs = int(self.c["row"]["rs"])
        if self.c["kind"] == "softmax":
            self.row_cycles = rowwise.row_cycles(1, self.length, rs)
        else:
            self.row_cycles = rowwise.norm_cycles(1, self.length, rs)
        in_t, out_t = graph.tensor(unit.node.inputs[0]), graph.tensor(unit.node.outputs[0])
        self.in_signed, self.out_signed = in_t.dtype.signed, out_t.dtype.signed
        self.d_bits = d_bits
        span = out_t.dtype.max - out_t.dtype.min
        self.out_bits = signed_bits(-span, span)
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "d": In(signed(d_bits)),
                "sweep": In(1),
                "sweep_first": In(1),
                "busy": Out(1),
                "out": Out(signed(self.out_bits)),
                "out_addr": Out(range(self.n)),
                "out_valid": Out(1),
            }
        )

    # a changed row: its CHECK starts the ROW, then ``row_cycles - 2`` cycles to the next
    # CHECK (``row_cycles`` counts the sequencer's EXEC and FETCH cycles around the unit's)
    def step_cycles(self, changed_rows: int) -> int:
        """Cycles of a time step from its first ``valid`` to the next step's, when
        ``changed_rows`` rows changed (all on the first step)."""
        return self.n + 1 + self.rows + 1 + changed_rows * (self.row_cycles - 2)

    def elaborate(self, platform) -> Module:
        from ..gemm.config import MULT_BITS
        from ..gemm.rowwise import E_BITS, NormUnit, RowUnit

        m = Module()
        c, u = self.c, self.unit
        n, rows, length = self.n, self.rows, self.length
        act_ab = _abits(n)
        idx_ab = _abits(length)
        p_ab = _abits(len(c["params"]))
        bias_bits = c["bias_bits"]
        if c["kind"] == "softmax":
            etab_ab = _abits(len(c["etab"]))
            f = RowUnit(
                act_abits=act_ab,
                idx_abits=idx_ab,
                p_abits=p_ab,
                etab_abits=etab_ab,
                qbits=max(1, c["row_bits"]),
            )
            etab = Memory(shape=unsigned(E_BITS), depth=len(c["etab"]), init=c["etab"])
            m.submodules.etab = etab
            etab_rd = etab.read_port()
            m.d.comb += [etab_rd.addr.eq(f.etab_addr), f.etab_data.eq(etab_rd.data)]
        else:
            f = NormUnit(act_abits=act_ab, idx_abits=idx_ab, p_abits=p_ab, bias_bits=bias_bits)
        m.submodules.f = f

        # constants: one row's gather entries (gamma's sign as the flag above the offset),
        # the parameter words as the GEMM images store them
        pad = 1 << act_ab
        idx = [pad | (-int(e) - 2) if int(e) < -1 else int(e) for e in c["entries"]]
        bias_mask = (1 << bias_bits) - 1
        words = [((int(b) & bias_mask) << MULT_BITS) | int(mu) for b, mu in c["params"]]
        idx_rom = Memory(shape=unsigned(act_ab + 1), depth=len(idx), init=idx)
        p_rom = Memory(shape=unsigned(bias_bits + MULT_BITS), depth=len(words), init=words)
        x_shape = signed(8) if self.in_signed else unsigned(8)
        x_mem = Memory(shape=x_shape, depth=n, init=[])
        y_mem = Memory(shape=signed(10), depth=n, init=[])
        m.submodules.idx_rom, m.submodules.p_rom = idx_rom, p_rom
        m.submodules.x_mem, m.submodules.y_mem = x_mem, y_mem
        idx_rd, p_rd = idx_rom.read_port(), p_rom.read_port()
        x_rd, x_wr = x_mem.read_port(), x_mem.write_port()
        y_rd, y_wr = y_mem.read_port(), y_mem.write_port()
        p_data = p_rd.data if c["kind"] == "layernorm" else p_rd.data[:MULT_BITS]
        m.d.comb += [
            idx_rd.addr.eq(f.idx_addr),
            f.idx_data.eq(idx_rd.data),
            p_rd.addr.eq(f.p_addr),
            f.p_data.eq(p_data),
            f.act_rdata.eq(x_rd.data),
        ]

        # --- accumulate: read X[k] this cycle, write X[k] + d the next ----------------------
        k = Signal(range(n))
        j = Signal(range(length))
        r = Signal(range(rows))
        with m.If(self.valid):
            last = k == n - 1
            m.d.sync += [
                k.eq(Mux(last, 0, k + 1)),
                j.eq(Mux(j == length - 1, 0, j + 1)),
                r.eq(Mux(last, 0, Mux(j == length - 1, r + 1, r))),
            ]
        acc1, first1 = Signal(), Signal()
        d1 = Signal(signed(self.d_bits))
        k1 = Signal(range(n))
        r1 = Signal(range(rows))
        m.d.sync += [
            acc1.eq(self.valid),
            first1.eq(self.first),
            d1.eq(self.d),
            k1.eq(k),
            r1.eq(r),
        ]
        sweeping = Signal()
        m.d.comb += x_rd.addr.eq(Mux(sweeping, f.act_raddr, k))
        m.d.comb += [
            x_wr.addr.eq(k1),
            x_wr.data.eq(Mux(first1, u.in_zero_points[0], x_rd.data) + d1),
            x_wr.en.eq(acc1),
        ]
        changed = Signal(rows)
        with m.If(acc1 & (first1 | (d1 != 0))):
            m.d.sync += changed.bit_select(r1, 1).eq(1)

        # --- the differential output: the unit's writes against Y_prev ----------------------
        w1 = Signal()
        a1 = Signal(range(n))
        y1 = Signal(signed(10))
        sfirst = Signal()
        y_new = f.act_wdata.as_signed() if self.out_signed else f.act_wdata
        m.d.sync += [w1.eq(f.act_we), a1.eq(f.act_waddr), y1.eq(y_new)]
        m.d.comb += y_rd.addr.eq(f.act_waddr)
        prev = Mux(sfirst, u.out_zero_point, y_rd.data)
        m.d.comb += [y_wr.addr.eq(a1), y_wr.data.eq(y1), y_wr.en.eq(w1)]
        m.d.comb += [self.out.eq(y1 - prev), self.out_addr.eq(a1), self.out_valid.eq(w1)]

        # --- sweep: one ROW per changed row ----------------------------------------------------
        rs_ = Signal(range(rows + 1))
        base = Signal(range(n + 1))
        row, pcfg = c["row"], c["pcfg"]
        for name in ("len", "t", "rs", "xsigned"):
            m.d.comb += getattr(f, name).eq(int(row[name]))
        for name in ("shift", "zp", "lo", "hi", "round"):
            m.d.comb += getattr(f, name).eq(int(pcfg[name]))
        m.d.comb += [f.rows.eq(1), f.x.eq(base), f.y.eq(base), f.q.eq(0), f.i.eq(0)]
        with m.FSM(name="sweep"):
            with m.State("IDLE"):
                with m.If(self.sweep):
                    m.d.sync += [rs_.eq(0), base.eq(0), sfirst.eq(self.sweep_first)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [self.busy.eq(1), sweeping.eq(1)]
                with m.If(rs_ == rows):
                    m.next = "IDLE"
                with m.Elif(changed.bit_select(rs_, 1)):
                    m.d.comb += f.start.eq(1)
                    m.next = "WAIT"
                with m.Else():
                    m.d.sync += [rs_.eq(rs_ + 1), base.eq(base + length)]
            with m.State("WAIT"):
                m.d.comb += [self.busy.eq(1), sweeping.eq(1)]
                with m.If(~f.busy & ~w1):
                    m.d.sync += [
                        changed.bit_select(rs_, 1).eq(0),
                        rs_.eq(rs_ + 1),
                        base.eq(base + length),
                    ]
                    m.next = "CHECK"
        return m
