"""``GraphPlan``: the graph spiking engine's frozen parameters (``GraphEngine``), its golden
model (``frontends.snn.graph.run_graph``) and its exact cycle model.

``from_graph`` converts the IR graph (``convert_graph``) and gives every unit a hardware
driver (``Driver``): ST-BIF ``dense`` (on tokens) -> ``TokenDense``, ``matmul`` of two
activations -> ``SesaUnit``, ``add`` of spikes -> ``IncrementAdder``, a differential
(round-half-even) ``add`` or ``requant`` -> ``DifferentialAdd``, ``avgpool`` ->
``DifferentialPool``, row softmax and LayerNorm -> ``DifferentialRow``, element-wise code
tables -> ``DifferentialTable``; ``transpose``/``slice`` become index tables on their consumers'
reads. A unit with no hardware driver yet (ST-BIF adds of multi-bit increments, max-pool,
convolutions, concat) is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from frontends import reference
from frontends.errors import ModelError
from frontends.fixedpoint import signed_bits
from frontends.snn.graph import GraphRun, SpikingGraph, convert_graph, run_graph
from frontends.snn.units import DifferentialUnit, MoveUnit, StbifUnit

if TYPE_CHECKING:
    from amaranth.lib import wiring

    from frontends.ir import Graph, IntType

    from .graph_engine import GraphEngine

__all__ = ["GraphPlan", "Driver", "Settled"]

MAX_STEPS = (1 << 16) - 1
LANES = 4  # neurons a dense unit updates a cycle (at most; a power of two dividing n_out)


def dense_lanes(n_out: int, most: int = LANES) -> int:
    """The largest power of two up to ``most`` that divides ``n_out``."""
    lanes = 1
    while lanes * 2 <= most and n_out % (lanes * 2) == 0:
        lanes *= 2
    return lanes


@dataclass(eq=False)
class Driver:
    """One unit of the graph and how the engine drives it: ``kind`` ``stream`` / ``row`` /
    ``scan``; ``unit_kind`` the hardware unit (``add``, ``table``, ``row``, ``dense``,
    ``sesa``); ``inputs``/``output`` tensor names (inputs as the unit sees them, views
    included)."""

    name: str
    kind: str
    unit_kind: str
    unit: StbifUnit | DifferentialUnit
    inputs: tuple[str, ...]
    output: str
    n_elements: int
    in_ranges: tuple[tuple[int, int], ...]
    d_bits: tuple[int, ...]
    drain: int = 0
    lanes: int = 1  # output elements a word (dense units: neurons updated a cycle)
    sel: int = 0  # a shared unit's (row units') index of this node
    side_elements: tuple[int, ...] = ()
    event_table: list = field(default_factory=list)
    hw: object = None  # the hardware unit (built once, ``GraphPlan.create_unit``)


def _row_kind(d: Driver) -> str:
    return "layernorm" if d.unit.node.op == "layernorm" else "softmax"


def _bits_of(v: int) -> int:
    return max(1, int(v).bit_length())


@dataclass(frozen=True)
class Settled:
    """What ``GraphPlan.settle`` finds per input vector."""

    outputs: np.ndarray  # (B, n_out) output codes after the run to silence
    cycles: np.ndarray
    steps: np.ndarray
    synops: np.ndarray  # synaptic additions


@dataclass(eq=False)
class GraphPlan:
    graph: Graph
    sg: SpikingGraph
    drivers: list[Driver]
    buffers: dict  # tensor -> (words, bits an element, elements a word)
    views: dict  # tensor -> (buffer tensor, index table or None)
    t_max: int
    mag_bits: int

    @classmethod
    def from_graph(cls, graph: Graph, *, t_max: int | None = None) -> GraphPlan:
        sg = convert_graph(graph)
        t_max = sg.t_max if t_max is None else t_max
        if not 1 <= t_max <= MAX_STEPS:
            raise ModelError(f"model '{graph.name}': t_max {t_max} is outside 1..{MAX_STEPS}")
        zps = sg.zero_points
        inp = sg.input_tensor
        views: dict = {inp: (inp, None)}
        spans: dict = {}  # tensor -> max |increment| a step

        def tracer_range(name):
            dt = graph.tensor(name).dtype
            return dt.min - zps[name], dt.max - zps[name]

        lo, hi = tracer_range(inp)
        spans[inp] = max(abs(lo), abs(hi))
        buffers: dict = {}
        drivers: list[Driver] = []
        for u in sg.units:
            node = u.node
            out = node.outputs[0]
            if isinstance(u, MoveUnit):
                src, table = views[node.inputs[0]]
                size_in = int(np.prod(sg.shapes[node.inputs[0]]))
                base = np.arange(size_in) if table is None else table
                moved = reference.OPS[node.op](node, base.reshape(1, *sg.shapes[node.inputs[0]]))
                moved = np.ascontiguousarray(moved).reshape(-1).astype(np.int64)
                same = (
                    src != inp
                    and len(moved) == size_in
                    and np.array_equal(moved, np.arange(size_in))
                )
                views[out] = (src, None if same else moved)
                spans[out] = spans[node.inputs[0]]
                continue
            views[out] = (out, None)
            size = int(np.prod(sg.shapes[out]))
            ranges = tuple(tracer_range(i) for i in node.inputs)
            d_in = tuple(spans[i] for i in node.inputs)
            if isinstance(u, StbifUnit):
                spans[out] = 1
            else:
                dt = graph.tensor(out).dtype
                spans[out] = dt.max - dt.min
            buffers[out] = (size, signed_bits(-spans[out], spans[out]), 1)
            d_bits = tuple(signed_bits(-s, s) for s in d_in)
            common = dict(
                name=node.name,
                unit=u,
                inputs=tuple(node.inputs),
                output=out,
                in_ranges=ranges,
                d_bits=d_bits,
            )
            where = node.describe()
            if isinstance(u, StbifUnit) and u.synapse.kind == "dense":
                tokens = int(u.synapse.attrs.get("tokens", 1))
                n_in = int(np.prod(sg.shapes[node.inputs[0]]))
                feat = n_in // tokens
                n_out = u.synapse.weights["weight"].shape[0]
                lanes = dense_lanes(n_out)
                e = np.arange(n_in)
                table = [(e // feat) * (n_out // lanes), (e % feat) * (n_out // lanes)]
                buffers[out] = (size // lanes, buffers[out][1], lanes)
                drivers.append(
                    Driver(
                        kind="scan",
                        unit_kind="dense",
                        n_elements=size,
                        lanes=lanes,
                        side_elements=(n_in,),
                        event_table=table,
                        **common,
                    )
                )
            elif isinstance(u, StbifUnit) and u.synapse.kind == "matmul":
                a_shape, b_shape = u.synapse.attrs["a_shape"], u.synapse.attrs["b_shape"]
                drivers.append(
                    Driver(
                        kind="scan",
                        unit_kind="sesa",
                        n_elements=size,
                        side_elements=(int(np.prod(a_shape)), int(np.prod(b_shape))),
                        **common,
                    )
                )
            elif isinstance(u, StbifUnit) and u.synapse.kind == "add" and max(d_in) == 1:
                drivers.append(
                    Driver(kind="stream", unit_kind="add", n_elements=size, drain=3, **common)
                )
            elif isinstance(u, DifferentialUnit) and (
                node.op == "layernorm"
                or (node.op == "nonlinear" and node.attrs.get("function") == "softmax")
            ):
                drivers.append(Driver(kind="row", unit_kind="row", n_elements=size, **common))
            elif isinstance(u, DifferentialUnit) and node.op == "avgpool":
                n_in = int(np.prod(sg.shapes[node.inputs[0]]))
                drivers.append(
                    Driver(
                        kind="row",
                        unit_kind="pool",
                        n_elements=size,
                        side_elements=(n_in,),
                        **common,
                    )
                )
            elif isinstance(u, DifferentialUnit) and node.op in ("add", "requant"):
                drivers.append(
                    Driver(kind="stream", unit_kind="dadd", n_elements=size, drain=3, **common)
                )
            elif (
                isinstance(u, DifferentialUnit)
                and node.op == "nonlinear"
                and "table" in node.weights
            ):
                drivers.append(
                    Driver(kind="stream", unit_kind="table", n_elements=size, drain=3, **common)
                )
            else:
                what = (
                    f"a differential '{node.op}' (it rounds half to even)"
                    if isinstance(u, DifferentialUnit)
                    else f"an ST-BIF '{node.op}'"
                    + (" on multi-bit increments" if node.op == "add" else "")
                )
                raise ModelError(
                    f"{where}: {what} has no unit in the spiking graph engine yet; it "
                    f"runs ST-BIF dense (on tokens), matmul and add-of-spikes units, "
                    f"differential adds, requantizations and means, row softmax and "
                    f"LayerNorm, element-wise tables, transpose and slice"
                )
        if not drivers:
            raise ModelError(f"model '{graph.name}' has no spiking units")
        out = sg.output_tensor
        if not (drivers[-1].output == out and drivers[-1].unit_kind == "dense"):
            raise ModelError(
                f"model '{graph.name}': the spiking graph engine reads its output from an "
                f"ST-BIF dense layer's tracers; the output '{out}' is not one"
            )
        mags = [spans[i] for d in drivers if d.kind == "scan" for i in d.inputs]
        mag_bits = _bits_of(max(mags + [1]))
        plan = cls(graph, sg, drivers, buffers, views, t_max, mag_bits)
        for d in drivers:
            if d.unit_kind == "sesa":
                sesa = plan.create_unit(d)
                attrs = d.unit.synapse.attrs
                tabs = []
                for side, shape in ((False, attrs["a_shape"]), (True, attrs["b_shape"])):
                    idx = np.indices(shape).reshape(len(shape), -1).T
                    ev = [sesa.event(side, tuple(int(v) for v in ix)) for ix in idx]
                    tabs += [
                        np.array([x["p_base"] for x in ev]),
                        np.array([x["o_base"] for x in ev]),
                    ]
                d.event_table = tabs
        return plan

    # --- sizes -----------------------------------------------------------------------------------
    @property
    def input_tensor(self) -> str:
        return self.sg.input_tensor

    @property
    def n_in(self) -> int:
        return int(np.prod(self.sg.shapes[self.sg.input_tensor]))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.sg.shapes[self.sg.output_tensor]))

    @property
    def in_dtype(self) -> IntType:
        return self.graph.tensor(self.sg.input_tensor).dtype

    @property
    def out_dtype(self) -> IntType:
        return self.graph.tensor(self.sg.output_tensor).dtype

    @property
    def in_zero_point(self) -> int:
        return int(self.sg.zero_points[self.sg.input_tensor])

    @property
    def out_zero_point(self) -> int:
        return int(self.sg.zero_points[self.sg.output_tensor])

    @property
    def output_driver(self) -> int:
        return len(self.drivers) - 1

    @property
    def max_elements(self) -> int:
        return max(max((d.n_elements, *d.side_elements)) for d in self.drivers)

    @property
    def exact(self) -> bool:
        return self.t_max >= self.sg.t_max

    @staticmethod
    def safe(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")[-40:]

    def create_unit(self, d: Driver) -> wiring.Component:
        """The hardware unit of driver ``d`` (one per driver)."""
        if d.hw is not None:
            return d.hw
        from .diffadd import DifferentialAdd
        from .diffpool import DifferentialPool
        from .diffrow import DifferentialRow
        from .difftable import DifferentialTable
        from .increment import IncrementAdder
        from .sesa import SesaUnit
        from .token_dense import TokenDense

        def shift_bits(bits):
            span = (1 << (bits - 1)) - 1
            return 0 if span <= 1 else max(1, (span.bit_length() - 1).bit_length())

        if d.unit_kind == "dense":
            d.hw = TokenDense(
                d.unit, d.in_ranges[0], shift_bits=shift_bits(d.d_bits[0]), lanes=d.lanes
            )
        elif d.unit_kind == "sesa":
            d.hw = SesaUnit(d.unit, d.in_ranges, shift_bits=max(shift_bits(b) for b in d.d_bits))
        elif d.unit_kind == "add":
            ranges = d.in_ranges if len(d.in_ranges) == 2 else (d.in_ranges[0], (0, 0))
            d.hw = IncrementAdder(d.unit, ranges)
        elif d.unit_kind == "dadd":
            d.hw = DifferentialAdd(d.unit, d.in_ranges, d_bits=d.d_bits)
        elif d.unit_kind == "pool":
            d.hw = DifferentialPool(d.unit, d.in_ranges[0], d_bits=d.d_bits[0])
        elif d.unit_kind == "table":
            d.hw = DifferentialTable(d.unit, d_bits=d.d_bits[0])
        else:  # one row unit for every softmax, one for every LayerNorm
            group = [
                x for x in self.drivers if x.unit_kind == "row" and _row_kind(x) == _row_kind(d)
            ]
            hw = DifferentialRow(
                [x.unit for x in group], self.graph, d_bits=max(x.d_bits[0] for x in group)
            )
            for k, x in enumerate(group):
                x.hw, x.sel = hw, k
        return d.hw

    # --- models -------------------------------------------------------------------------------
    def run(
        self, codes: np.ndarray, *, trace: tuple = (), observe: Callable | None = None
    ) -> GraphRun:
        return run_graph(self.sg, codes, t_max=self.t_max, trace=trace, observe=observe)

    def reference(self, codes: np.ndarray) -> np.ndarray:
        """The output codes, (B, n_out)."""
        run = self.run(codes)
        return run.codes[self.sg.output_tensor].reshape(len(codes), -1)

    def _init_busy(self) -> int:
        busy = [0]
        for d in self.drivers:
            hw = self.create_unit(d)
            if d.unit_kind == "dense":
                busy.append(hw.words)
            elif d.unit_kind == "sesa":
                busy.append(hw.clear_cycles - 1)
        return max(busy)

    def _driver_cycles(self, d: Driver, incs: list[np.ndarray], t: int) -> np.ndarray:
        """Cycles of driver ``d`` in step ``t`` per sample, its input increments ``incs``
        (each (B, ...))."""
        hw = self.create_unit(d)
        batch = len(incs[0])
        if d.kind == "stream":
            return np.full(batch, d.n_elements + d.drain, np.int64)
        if d.unit_kind == "pool":
            return np.full(batch, hw.n_in + 3 + hw.busy_cycles, np.int64)
        if d.kind == "row":
            part = hw.parts[d.sel]
            rows = incs[0].reshape(batch, part.rows, part.length).any(axis=2).sum(axis=1)
            changed = np.full(batch, part.rows) if t == 0 else rows
            return np.array([hw.step_cycles(int(c), d.sel) + 2 for c in changed], np.int64)
        if d.unit_kind == "dense":
            busy = [hw.row_words]
            sweep = hw.words + 3
        else:
            busy = [hw.n_cols, hw.m_rows]
            sweep = hw.n_p + 4
        total = np.full(batch, 1 + sweep, np.int64)
        for side, inc in enumerate(incs[: len(busy)]):
            mag = np.abs(inc.reshape(batch, -1))
            # one cycle an element and one to end; a nonzero element: one to see it, a
            # cycle a bit of its magnitude and one more, each set bit its event and one
            total += mag.shape[1] + 1 + 2 * (mag > 0).sum(axis=1)
            v = mag.copy()
            while v.any():
                total += (v > 0).sum(axis=1) + (v & 1).sum(axis=1) * (busy[side] + 1)
                v >>= 1
        return total

    def _synops(self, d: Driver, incs: list[np.ndarray]) -> np.ndarray:
        """Additions of driver ``d``'s synapses in one step per sample: each event (a set
        bit of an input increment) adds a row of ``n_out`` weights (dense) or a tracer row
        or column (SESA); other units have no synapses."""
        if d.kind != "scan":
            return np.zeros(len(incs[0]), np.int64)
        hw = self.create_unit(d)
        fans = [hw.n_out] if d.unit_kind == "dense" else [hw.n_cols, hw.m_rows]
        total = np.zeros(len(incs[0]), np.int64)
        for fan, inc in zip(fans, incs):
            v = np.abs(inc.reshape(len(inc), -1))
            while v.any():
                total += (v & 1).sum(axis=1) * fan
                v >>= 1
        return total

    def settle(self, codes: np.ndarray, *, chunk: int = 64) -> Settled:
        """The output codes, ``(B, n_out)``, and ``GraphEngine``'s cycles, time steps and
        synaptic additions per input vector (see its docstring), from one golden run of
        ``chunk`` vectors at a time."""
        codes = np.asarray(codes, np.int64)
        load = max(self.n_in, self._init_busy() + 1) + 1
        outputs, cycles, steps, synops = [], [], [], []
        for lo in range(0, len(codes), chunk):
            part = codes[lo : lo + chunk]
            per_step: list[np.ndarray] = []
            adds = np.zeros(len(part), np.int64)

            def observe(t, inc, per_step=per_step, adds=adds, batch=len(part)):
                cost = np.ones(batch, np.int64)  # NEXT
                for d in self.drivers:
                    ins = [inc[i] for i in d.inputs]
                    cost += self._driver_cycles(d, ins, t)
                    adds += self._synops(d, ins)
                per_step.append(cost)

            run = self.run(part, observe=observe)
            live = np.arange(len(per_step))[:, None] < run.steps[None, :]
            cycles.append(load + (np.stack(per_step) * live).sum(axis=0) + self.n_out + 1)
            steps.append(run.steps)
            synops.append(adds)
            outputs.append(run.codes[self.sg.output_tensor].reshape(len(part), -1))
        return Settled(*(np.concatenate(a) for a in (outputs, cycles, steps, synops)))

    def costs(
        self, codes: np.ndarray, *, chunk: int = 64
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cycles, steps, synaptic additions)`` per input vector (``settle``)."""
        done = self.settle(codes, chunk=chunk)
        return done.cycles, done.steps, done.synops

    def cycles(self, codes: np.ndarray, *, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(cycles, steps)`` of ``GraphEngine`` per input vector (``costs``)."""
        cycles, steps, _ = self.costs(codes, chunk=chunk)
        return cycles, steps

    def create(self) -> GraphEngine:
        from .graph_engine import GraphEngine

        return GraphEngine(self)
