"""Element-wise functions on the overlay (``TAB``): the IR's ``nonlinear`` tables (GELU,
sigmoid, tanh, exp, ...) as a table memory behind the post unit, or as SMURF stochastic
function units (``rtl_gen.smurf``) in its place (``--nonlinear smurf``).

``TAB n x y t``: ``act[y + j] = F_t(act[x + j])``, ``j < n``, in address order.

- Table memory (``GemmConfig.tab_depth``): ``F_t(b) = tab[t*256 + b]`` for the stored byte
  ``b`` of the code, so the unit has no arithmetic: the compiler writes the node's table
  ``table[code - in.min]`` (``frontends.ir``) at the byte of each code. One element a cycle;
  ``tab_cycles``: EXEC, start register, ``n`` issues, activation read, table read, write.
- SMURF units (``SmurfTable``): unit ``t`` is fitted to the ``t``-th nonlinear node's table
  (``rtl_gen.smurf.from_ir``); its input code is ``c = code - in.min`` and its ones-count
  ``k`` over ``L`` clocks becomes the node's output code ``clamp(((k*A + B) >> S) + zp, lo,
  hi)`` with ``A/2**S`` the unit's output step in output codes and ``B/2**S`` its low end
  (``B`` carries the half for rounding). A run restarts every LFSR and counter, so the code
  is a function of the input code: ``SmurfTable.table`` is that function, and the graph
  the design is checked against (``smurf_graph``) holds it as the node's table, so RTL =
  golden holds as for every engine while the accuracy cost of the approximation is
  measured against the exact table's golden. One element at a time: read, feed, the unit's
  ``latency_cycles``, count, two map stages, write (``smurf_element_cycles``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from frontends.errors import ModelError
from frontends.ir import Graph, Node

from .program import LayerInfo, Program
from .state import LoweringState

__all__ = [
    "SmurfTable",
    "TableUnit",
    "smurf_graph",
    "emit_table",
    "tab_cycles",
    "smurf_element_cycles",
    "run_tab",
    "TABLE_WORDS",
    "MAP_SHIFT",
]

TABLE_WORDS = 256  # one table per stored byte value
MAP_SHIFT = 16  # S of the SMURF output map
TAB_PIPE = 4  # start register, activation read, table read, the cycle that sees it idle
SMURF_STEPS = 6  # per element beside the unit's latency: read, feed, count, map 1 and 2, write


def tab_cycles(n: int, smurf_cycles: int = 0) -> int:
    """Cycles from a TAB's EXEC to the next FETCH: with the table memory ``n + 5``
    (``TAB_PIPE``: start register, one issue a cycle, activation read, table read, the cycle
    that sees the unit idle); with SMURF units ``smurf_cycles`` an element."""
    if smurf_cycles:
        return 1 + 1 + n * smurf_cycles + 1
    return 1 + n + TAB_PIPE


def smurf_element_cycles(latency: int) -> int:
    """Cycles a SMURF-mode ``TAB`` spends per element for a unit of ``latency``
    (``SmurfPlan.latency_cycles``): activation read, feed, the unit, the count register,
    the map's two registers, the write."""
    return latency + SMURF_STEPS


# --- SMURF tables ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SmurfTable:
    """A SMURF unit standing for one ``nonlinear`` node: ``plan`` (its input code is ``code
    - in_min``), the output map ``clamp(((count*a + b) >> MAP_SHIFT) + zp, lo, hi)``, and
    how a stored byte becomes the code (``signed``: two's complement)."""

    node: str
    plan: object  # rtl_gen.smurf.SmurfPlan
    in_min: int
    signed: bool
    a: int
    b: int
    zp: int
    lo: int
    hi: int
    rmse: float = 0.0  # the fit's RMSE in output units (rtl_gen.smurf.FitReport)

    def map_counts(self, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, np.int64)
        y = ((counts * self.a + self.b) >> MAP_SHIFT) + self.zp
        return np.clip(y, self.lo, self.hi)

    @cached_property
    def by_code(self) -> np.ndarray:
        """The unit's output code for every input code ``in_min + c``, ``c < 2**B``
        (the plan's bit-exact cycle model)."""
        codes = np.arange(1 << self.plan.input_bits, dtype=np.int64)[:, None]
        return self.map_counts(self.plan.reference(codes)[:, 0])

    def table(self, size: int) -> np.ndarray:
        """The node's table (``table[code - in_min]``, ``size`` entries) this unit computes."""
        return self.by_code[:size]

    def byte_table(self) -> np.ndarray:
        """Output code by stored input byte (256 entries)."""
        raw = np.arange(TABLE_WORDS)
        code = np.where(raw >= 128, raw - 256, raw) if self.signed else raw
        c = np.clip(code - self.in_min, 0, (1 << self.plan.input_bits) - 1)
        return self.by_code[c]

    @property
    def latency(self) -> int:
        return self.plan.latency_cycles


def _output_map(plan, s_out: float, z_out: int) -> tuple[int, int]:
    """``(a, b)``: ``(count*a + b) / 2**S`` ~ ``(lo + (hi - lo)*count/L) / s_out + 1/2``."""
    out = plan.outputs[0]
    step = (out.hi - out.lo) / (plan.length * s_out)
    a = int(round(step * (1 << MAP_SHIFT)))
    b = int(round(out.lo / s_out * (1 << MAP_SHIFT))) + (1 << (MAP_SHIFT - 1))
    return a, b


def smurf_graph(graph: Graph, **options: object) -> tuple[Graph, tuple[SmurfTable, ...]]:
    """``graph`` with every element-wise ``nonlinear`` node's table replaced by what its
    SMURF unit computes, and the units in node order (``options`` go to
    ``rtl_gen.smurf.design``: ``length`` (default 256), ``basis`` (default ``auto``),
    ...). A function the SMURF generator does not take is refused naming the node."""
    from rtl_gen.smurf import DesignError
    from rtl_gen.smurf.from_ir import plan_for_node

    # basis "auto": the FSM basis unless Bernstein fits clearly better (GELU: the FSM fit's
    # RMSE was 0.3 output units on the digits ViT, 69 % accuracy; auto's 0.08-0.1, 96 %)
    options = {"length": 256, "basis": "auto", **options}
    nodes, units = [], []
    for node in graph.nodes:
        if node.op != "nonlinear" or node.attrs["function"] == "softmax":
            nodes.append(node)
            continue
        x_t, y_t = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
        if x_t.dtype.width > 8:
            raise ModelError(
                f"{node.describe()}: a SMURF unit takes 8-bit input codes; "
                f"'{x_t.name}' is {x_t.dtype}"
            )
        try:
            plan, fit = plan_for_node(graph, node, **options)
        except DesignError as exc:
            raise ModelError(f"{node.describe()}: {exc}") from None
        s_out = float(np.asarray(y_t.quant.scale).ravel()[0])
        z_out = int(np.asarray(y_t.quant.zero_point).ravel()[0])
        a, b = _output_map(plan, s_out, z_out)
        unit = SmurfTable(
            node.name,
            plan,
            int(node.attrs["input_min"]),
            x_t.dtype.signed,
            a,
            b,
            z_out,
            y_t.dtype.min,
            y_t.dtype.max,
            float(fit.rmse[0]),
        )
        units.append(unit)
        weights = dict(node.weights)
        weights["table"] = unit.table(len(node.weights["table"]))
        nodes.append(
            Node(
                node.name,
                node.op,
                node.inputs,
                node.outputs,
                dict(node.attrs, smurf=len(units) - 1),
                weights,
                node.source_op,
            )
        )
    return replace(graph, nodes=tuple(nodes)), tuple(units)


# --- compiler ----------------------------------------------------------------------------------


def _byte_table(node: Node, graph: Graph) -> list[int]:
    """The node's table at the stored byte of each input code (codes outside the type: 0)."""
    x_t = graph.tensor(node.inputs[0])
    table = np.asarray(node.weights["table"], np.int64)
    words = np.zeros(TABLE_WORDS, np.int64)
    codes = np.arange(x_t.dtype.min, x_t.dtype.max + 1)
    words[codes & 0xFF] = table[codes - int(node.attrs["input_min"])] & 0xFF
    return [int(w) for w in words]


def emit_table(lowering: LoweringState, node: Node, first: int) -> LayerInfo:
    """``TAB`` for an element-wise ``nonlinear`` node: the output keeps its input's layout;
    the table goes to the table memory (``lowering.tab``) unless the node has a SMURF unit
    (attr ``smurf``, from ``smurf_graph``)."""
    from .isa import Instr

    graph = lowering.graph
    x_name, y_name = node.inputs[0], node.outputs[0]
    x_t, y_t = graph.tensor(x_name), graph.tensor(y_name)
    for t in (x_t, y_t):
        if t.dtype.width > 8:
            raise ModelError(
                f"{node.describe()}: tensor '{t.name}' is {t.dtype}; the gemm "
                f"engine's tables take 8-bit codes"
            )
    if "smurf" in node.attrs:
        t = int(node.attrs["smurf"])
    else:
        t = len(lowering.tab) // TABLE_WORDS
        lowering.tab.extend(_byte_table(node, graph))
    if t > 255:
        raise ModelError(f"{node.describe()}: more than 256 tables; TAB addresses 256")
    n = x_t.size
    y_base = lowering.act.take(n)
    lowering.act_base[y_name] = y_base
    lowering.layout[y_name] = lowering.layout[x_name]
    lowering.instrs.append(
        Instr(
            "TAB",
            fields={"n": n, "x": lowering.act_base[x_name], "y": y_base, "t": t},
            comment=f"{node.name}: {node.attrs['function']}",
        )
    )
    return LayerInfo(
        node.name, node.op, node.source_op, n, 1, 1, 1, 0, 0, 0.0, first, len(lowering.instrs), 0
    )


# --- model -------------------------------------------------------------------------------------


def run_tab(program: Program, act: np.ndarray, f: dict) -> None:
    """The model of one ``TAB`` on the activation buffer ``act`` (stored bytes)."""
    n, x, y, t = f["n"], f["x"], f["y"], f["t"]
    raw = act[x : x + n] & 0xFF
    if program.smurf:
        out = program.smurf[t].byte_table()[raw]
    else:
        tab = np.asarray(program.tab, np.int64)
        out = tab[t * TABLE_WORDS + raw]
    act[y : y + n] = out & 0xFF


# --- hardware ----------------------------------------------------------------------------------


class TableUnit(wiring.Component):
    """Runs ``TAB``: reads ``act[x + j]`` through the sequencer's activation port, looks the
    byte up in the table memory (``tab_abits`` > 0) or runs it through SMURF unit ``t``
    (``smurf``), writes ``act[y + j]``. ``start`` samples ``n``/``x``/``y``/``t``; ``busy``
    until the last write. Latency: ``tab_cycles``."""

    def __init__(self, *, act_abits: int, tab_abits: int = 0, smurf: tuple = ()):
        self.act_abits, self.tab_abits, self.smurf = act_abits, tab_abits, tuple(smurf)
        ports = {
            "start": In(1),
            "n": In(16),
            "x": In(16),
            "y": In(16),
            "t": In(8),
            "act_raddr": Out(act_abits),
            "act_rdata": In(8),
            "act_re": Out(1),
            "act_waddr": Out(act_abits),
            "act_wdata": Out(8),
            "act_we": Out(1),
            "busy": Out(1),
        }
        if not self.smurf:
            ports["tab_addr"] = Out(max(1, tab_abits))
            ports["tab_data"] = In(8)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        running, last = Signal(), Signal()
        rd, wr = Signal(16), Signal(16)
        left = Signal(16)  # elements still to issue, minus one
        t = Signal(8)
        with m.If(self.start):
            m.d.sync += [
                running.eq(self.n != 0),
                rd.eq(self.x),
                wr.eq(self.y),
                left.eq(self.n - 1),
                last.eq(self.n == 1),
                t.eq(self.t),
            ]
        m.d.comb += [self.act_raddr.eq(rd), self.act_waddr.eq(wr)]
        if self.smurf:
            self._smurf(m, running, last, rd, wr, left, t)
        else:
            self._table(m, running, last, rd, wr, left, t)
        return m

    def _table(self, m, running, last, rd, wr, left, t):
        v1, v2 = Signal(), Signal()
        m.d.comb += self.act_re.eq(running)
        with m.If(running & ~self.start):
            m.d.sync += [rd.eq(rd + 1), left.eq(left - 1), last.eq(left == 1)]
            with m.If(last):
                m.d.sync += running.eq(0)
        m.d.sync += [v1.eq(running & ~self.start), v2.eq(v1)]
        m.d.comb += self.tab_addr.eq((t << 8) | self.act_rdata)
        m.d.comb += [self.act_we.eq(v2), self.act_wdata.eq(self.tab_data)]
        with m.If(v2):
            m.d.sync += wr.eq(wr + 1)
        m.d.comb += self.busy.eq(running | v1 | v2)

    def _smurf(self, m, running, last, rd, wr, left, t):
        from rtl_gen.smurf.unit import SmurfUnit

        # one element at a time: READ (activation address), FEED (the byte to unit t),
        # WAIT (its count, registered), MAP1 (count * a, registered), MAP2 (+ offset,
        # shift, clamp, registered), WRITE. (The map from the count to the clamped code in
        # one cycle held the units at 50 MHz on the ECP5.)
        read, feed, wait, map1, map2, write = (Signal() for _ in range(6))
        result = Signal(8)
        with m.If(self.start):
            m.d.sync += read.eq(self.n != 0)
        m.d.comb += self.act_re.eq(read & ~self.start)
        with m.If(read & ~self.start):
            m.d.sync += [read.eq(0), feed.eq(1)]
        with m.If(feed):
            m.d.sync += [feed.eq(0), wait.eq(1)]
        m.d.sync += [map2.eq(map1), map1.eq(0)]
        units = [SmurfUnit(u.plan) for u in self.smurf]
        count_bits = max(len(unit.o.payload[0]) for unit in units)
        count_r = Signal(count_bits)
        for k, (unit_spec, unit) in enumerate(zip(self.smurf, units)):
            plan = unit_spec.plan
            m.submodules[f"smurf{k}"] = unit
            raw = self.act_rdata
            value = Mux(raw[7], raw.as_signed(), raw) if unit_spec.signed else raw
            c = Signal(signed(11), name=f"smurf{k}_code")
            m.d.comb += c.eq(value - unit_spec.in_min)
            top = (1 << plan.input_bits) - 1
            m.d.comb += [
                unit.i.payload[0].eq(Mux(c < 0, 0, Mux(c > top, top, c[: plan.input_bits]))),
                unit.i.valid.eq(feed & (t == k)),
                unit.o.ready.eq(wait & (t == k)),
            ]
            with m.If(wait & (t == k) & unit.o.valid):
                m.d.sync += [count_r.eq(unit.o.payload[0]), map1.eq(1), wait.eq(0)]
            # each unit's own constant product (no operand mux in front of the multiplier);
            # the zero point rides in the offset: ((p + b) >> S) + zp == (p + b + zp*2**S) >> S
            prod = Signal(
                signed(count_bits + abs(unit_spec.a).bit_length() + 1), name=f"smurf{k}_prod"
            )
            m.d.sync += prod.eq(count_r * unit_spec.a)
            offset = unit_spec.b + (unit_spec.zp << MAP_SHIFT)
            y = Signal(signed(len(prod) + abs(offset).bit_length() + 2), name=f"smurf{k}_y")
            m.d.comb += y.eq((prod + offset) >> MAP_SHIFT)
            with m.If(map2 & (t == k)):
                m.d.sync += result.eq(
                    Mux(y < unit_spec.lo, unit_spec.lo, Mux(y > unit_spec.hi, unit_spec.hi, y))
                )
        m.d.sync += write.eq(map2)
        m.d.comb += [self.act_we.eq(write), self.act_wdata.eq(result)]
        with m.If(write):
            m.d.sync += [
                wr.eq(wr + 1),
                rd.eq(rd + 1),
                left.eq(left - 1),
                last.eq(left == 1),
                read.eq(~last),
            ]
            with m.If(last):
                m.d.sync += running.eq(0)
        m.d.comb += self.busy.eq(running | read | feed | wait | map1 | map2 | write)
