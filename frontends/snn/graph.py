"""Exact conversion of a quantized ANN graph (any DAG of the ops in ``SNN_OPS``, transformers
included) into a spiking graph of ``units``, and its time-stepped integer run.

``convert_graph(graph)`` maps each IR node to one unit (``frontends.snn.units``):

- ``dense`` (also on token sequences), ``conv``, ``avgpool``, ``add``, ``requant``, ``concat``
  and ``matmul`` of two activations (SESA) to ST-BIF neurons -- every activation quantizer
  an ST-BIF layer;
- ``maxpool`` (differential max), ``layernorm``, ``nonlinear`` (row ``softmax`` and
  element-wise code tables such as GELU) to differential units on the IR's integer ``f``;
  so too any of the first group that rounds half to even (onnxruntime QDQ adds, requants
  and pools), which no ST-BIF neuron computes exactly;
- ``transpose`` and ``slice`` to data movement.

``run_graph(sgraph, codes)`` runs it layer-sequentially, as ``simulate.run_network`` does:
the input ``codes - zero_point`` enters in full at t = 0 ("analog" encoding); at step ``t``
every unit in topological order takes the increments its inputs produced at ``t``. The run
stops after the first step in which no unit produced a nonzero increment (a silent step is
followed only by silent ones), or after ``t_max`` steps; every tensor's settled code then
equals ``frontends.reference.run``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from frontends.errors import ModelError
from frontends.ir import Graph, Node

from .convert import ROUND_CONSTANT, _toeplitz
from .units import DifferentialUnit, MoveUnit, StbifUnit, Synapse

__all__ = ["SNN_OPS", "SpikingGraph", "GraphRun", "convert_graph", "run_graph"]

STBIF_OPS = ("dense", "conv", "avgpool", "add", "requant", "concat", "matmul")
DIFFERENTIAL_OPS = ("maxpool", "layernorm", "nonlinear")
MOVE_OPS = ("transpose", "slice")
SNN_OPS = frozenset(STBIF_OPS + DIFFERENTIAL_OPS + MOVE_OPS)
"""The IR ops the exact ST-BIF conversion takes (what ``nnloom inspect`` lists as snn)."""

Unit = StbifUnit | DifferentialUnit | MoveUnit


@dataclass(frozen=True, eq=False)
class SpikingGraph:
    """Units in topological order; ``zero_points[tensor]`` relates increments to codes."""

    name: str
    units: tuple[Unit, ...]
    input_tensor: str
    output_tensor: str
    shapes: dict
    zero_points: dict
    t_max: int


@dataclass(frozen=True, eq=False)
class GraphRun:
    """What a batch of inferences did: ``codes[tensor]`` (B, *shape) settled codes;
    ``steps`` (B,) time steps up to and including the first silent one; ``silent`` (B,)
    whether that step came before ``t_max``; ``spikes[node]`` (B,) spikes (+1 and -1 alike)
    of an ST-BIF unit, ``changes[node]`` (B,) nonzero increments of a differential unit;
    ``trace[tensor]`` (T, B, *shape) the increments of each step of the tensors asked for
    (what a hardware unit's test drives and expects)."""

    codes: dict
    steps: np.ndarray
    silent: np.ndarray
    spikes: dict
    changes: dict
    trace: dict


def _trailing_zeros(values, shift: int) -> int:
    e = shift
    for v in np.asarray(values, np.int64).reshape(-1).tolist():
        if v:
            e = min(e, (abs(v) & -abs(v)).bit_length() - 1)
    return e


def _quantizer(node: Node, multipliers) -> tuple[int, int, int, int, int]:
    """``(e, theta, v0, smin, smax)`` of the ST-BIF neurons of ``node``'s requantization,
    ``multipliers`` all the constants its accumulator is scaled by."""
    where = node.describe()
    if node.attrs.get("sign"):
        raise ModelError(
            f"{where}: a bipolar (sign) output has no ST-BIF form; quantize the "
            f"activation to 2 or more bits instead"
        )
    rounding = node.attrs.get("rounding", "half_up")
    if rounding not in ("half_up", "floor", "ceil"):
        raise ModelError(
            f"{where}: requantization rounds '{rounding}'; an ST-BIF neuron rounds half "
            f"up, floor or ceil (quantize with round-half-up, the nnloom default, to "
            f"convert this layer)"
        )
    zp = int(node.attrs["output_zero_point"])
    lo, hi = int(node.attrs["lo"]), int(node.attrs["hi"])
    if not lo <= zp <= hi:
        raise ModelError(
            f"{where}: output range [{lo}, {hi}] does not contain the zero point {zp}; an "
            f"ST-BIF tracer starts at 0, so the zero point must be a valid code"
        )
    shift = int(node.attrs["shift"])
    e = _trailing_zeros(multipliers, shift)
    return e, 1 << (shift - e), ROUND_CONSTANT(rounding, shift) >> e, lo - zp, hi - zp


def _stbif(node: Node, graph: Graph, zps: dict) -> StbifUnit:
    a, w = node.attrs, node.weights
    out_shape = graph.tensor(node.outputs[0]).shape
    bias = 0
    attrs: dict = {}
    if node.op in ("dense", "conv"):
        m = np.asarray(w["multiplier"], np.int64).reshape(-1)
        e, theta, v0, smin, smax = _quantizer(node, m)
        if node.op == "conv":
            weight = _toeplitz(node)
            rows = np.repeat(np.broadcast_to(m, (out_shape[0],)), weight.shape[0] // out_shape[0])
            b = np.repeat(np.asarray(w["bias"], np.int64), weight.shape[0] // out_shape[0])
            bias = (b * (rows >> e)).reshape(out_shape)
        else:
            tokens = int(a.get("tokens", 1))
            weight = np.asarray(w["weight"], np.int64)
            weight = weight.reshape(weight.shape[0], -1)
            rows = np.broadcast_to(m, (weight.shape[0],))
            bias = np.asarray(w["bias"], np.int64) * (rows >> e)
            if tokens > 1:
                bias = np.broadcast_to(bias, (tokens, weight.shape[0]))
            bias = bias.reshape(out_shape)
            attrs["tokens"] = tokens
        weights = {"weight": weight * (rows >> e)[:, None]}
    elif node.op == "avgpool":
        m = np.asarray(w["multiplier"], np.int64).reshape(-1)
        e, theta, v0, smin, smax = _quantizer(node, m)
        weights = {"im2col": w["im2col"], "multiplier": m >> e if m.size > 1 else int(m[0] >> e)}
    elif node.op == "add":
        m = np.asarray(w["multiplier"], np.int64).reshape(-1)
        e, theta, v0, smin, smax = _quantizer(node, m)
        attrs["input_shape"] = tuple(a["input_shape"])
        weights = {"multiplier": m >> e}
        if len(node.inputs) == 1:  # a constant operand enters at t = 0
            bias = (np.asarray(w["constant"], np.int64) - a["input_zero_points"][1]) * (m[1] >> e)
            bias = np.broadcast_to(bias, attrs["input_shape"]).reshape(out_shape)
    elif node.op in ("requant", "concat", "matmul"):
        m = np.asarray(w["multiplier"], np.int64).reshape(-1)
        e, theta, v0, smin, smax = _quantizer(node, m)
        weights = {"multiplier": m >> e if node.op == "concat" else int(m[0] >> e)}
        if node.op == "concat":
            attrs.update(input_shapes=tuple(map(tuple, a["input_shapes"])), axis=int(a["axis"]))
        if node.op == "matmul":
            attrs.update(a_shape=tuple(a["a_shape"]), b_shape=tuple(a["b_shape"]))
    else:  # pragma: no cover - the caller dispatches on STBIF_OPS
        raise AssertionError(node.op)
    return StbifUnit(
        node=node,
        synapse=Synapse(node.op, tuple(out_shape), weights, attrs),
        v_init=np.asarray(v0 + bias, np.int64),
        theta=theta,
        smin=smin,
        smax=smax,
    )


def _input_zero_points(node: Node) -> tuple[int, ...]:
    a = node.attrs
    if "input_zero_points" in a:
        return tuple(int(z) for z in a["input_zero_points"])[: len(node.inputs)]
    if "input_zero_point" in a:
        return (int(a["input_zero_point"]),) * len(node.inputs)
    return ()


def _output_zero_point(node: Node, graph: Graph, zps: dict) -> int:
    if "output_zero_point" in node.attrs:
        return int(node.attrs["output_zero_point"])
    if node.op in MOVE_OPS:
        return zps[node.inputs[0]]
    q = graph.tensor(node.outputs[0]).quant
    if q is None or np.asarray(q.zero_point).size != 1:
        raise ModelError(f"{node.describe()}: its output has no per-tensor zero point")
    return int(np.asarray(q.zero_point).reshape(-1)[0])


def _graph_input_zero_point(graph: Graph) -> int:
    name = graph.inputs[0]
    for node in graph.nodes:
        if name in node.inputs:
            zs = _input_zero_points(node)
            if zs:
                return zs[node.inputs.index(name)]
    q = graph.tensor(name).quant
    return int(np.asarray(q.zero_point).reshape(-1)[0]) if q is not None else 0


def convert_graph(graph: Graph) -> SpikingGraph:
    """The spiking graph whose settled increments plus zero points equal every tensor's
    codes in ``graph``; a node it cannot make exact is refused by name."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(f"model '{graph.name}': the snn engine takes one input and one output")
    zps = {graph.inputs[0]: _graph_input_zero_point(graph)}
    shapes = {name: t.shape for name, t in graph.tensors.items()}
    units: list[Unit] = []
    bound = {graph.inputs[0]: 0}  # steps by which a tensor's last increment is produced
    for node in graph.nodes:
        where = node.describe()
        if node.op not in SNN_OPS:
            raise ModelError(
                f"{where}: op '{node.op}' has no exact ST-BIF form; the snn engine converts "
                f"{', '.join(sorted(SNN_OPS))}"
            )
        for name, z in zip(node.inputs, _input_zero_points(node)):
            if name in zps and zps[name] != z:
                raise ModelError(
                    f"{where}: input zero point {z} differs from the zero point {zps[name]} "
                    f"of its producer's output '{name}'"
                )
        missing = [name for name in node.inputs if name not in zps]
        if missing:
            raise ModelError(f"{where}: input '{missing[0]}' is produced by no earlier node")
        out = node.outputs[0]
        zps[out] = _output_zero_point(node, graph, zps)
        settle = 0
        half_even = node.attrs.get("rounding") == "half_even" and not node.attrs.get("sign")
        if node.op in STBIF_OPS and not half_even:
            unit = _stbif(node, graph, zps)
            settle = unit.levels - 1
        elif node.op in DIFFERENTIAL_OPS or node.op in STBIF_OPS:
            unit = DifferentialUnit(
                node,
                tuple(shapes[i] for i in node.inputs),
                shapes[out],
                tuple(zps[i] for i in node.inputs),
                zps[out],
            )
        else:
            unit = MoveUnit(node, shapes[out])
        bound[out] = max(bound[i] for i in node.inputs) + settle
        units.append(unit)
    if not units:
        raise ModelError(f"model '{graph.name}' has no layers to convert")
    if graph.outputs[0] not in zps:
        raise ModelError(f"model '{graph.name}': no node produces the output")
    return SpikingGraph(
        name=graph.name,
        units=tuple(units),
        input_tensor=graph.inputs[0],
        output_tensor=graph.outputs[0],
        shapes=shapes,
        zero_points=zps,
        t_max=max(bound.values()) + 1,
    )


def run_graph(
    sg: SpikingGraph,
    codes: np.ndarray,
    *,
    t_max: int | None = None,
    trace: tuple = (),
    observe: Callable[[int, dict], None] | None = None,
) -> GraphRun:
    """Run a batch of input codes (B, *input shape) until every sample is silent (or for
    ``t_max`` steps, default ``sg.t_max``, a proven bound), recording the increments of the
    tensors in ``trace``; ``observe(t, increments)`` sees every step's increments of every
    tensor (a hardware model's per-step costs without storing the traces)."""
    codes = np.asarray(codes, np.int64)
    batch = len(codes)
    t_max = sg.t_max if t_max is None else t_max
    states = [u.init(batch) for u in sg.units]
    totals = {u.node.outputs[0]: 0 for u in sg.units}
    spikes = {u.node.name: np.zeros(batch, np.int64) for u in sg.units}
    steps = np.full(batch, t_max, np.int64)
    silent = np.zeros(batch, bool)
    first = codes.reshape(batch, *sg.shapes[sg.input_tensor]) - sg.zero_points[sg.input_tensor]
    idle = np.zeros_like(first)
    traced: dict = {name: [] for name in trace}
    for t in range(t_max):
        inc = {sg.input_tensor: first if t == 0 else idle}
        busy = np.zeros(batch, bool)
        for unit, state in zip(sg.units, states):
            out = unit.step(state, [inc[i] for i in unit.node.inputs])
            inc[unit.node.outputs[0]] = out
            totals[unit.node.outputs[0]] = totals[unit.node.outputs[0]] + out
            nz = np.abs(out).reshape(batch, -1)
            moved = nz.any(axis=1)
            busy |= moved
            if not isinstance(unit, MoveUnit):
                count = nz.sum(axis=1) if isinstance(unit, StbifUnit) else (nz > 0).sum(axis=1)
                spikes[unit.node.name] += count
        for name in trace:
            traced[name].append(np.array(inc[name]))
        if observe is not None:
            observe(t, inc)
        now = ~busy & ~silent
        steps[now] = t + 1
        silent |= now
        if silent.all():
            break
    out_codes = {
        name: np.broadcast_to(total, (batch, *sg.shapes[name])) + sg.zero_points[name]
        for name, total in totals.items()
    }
    stbif = {u.node.name for u in sg.units if isinstance(u, StbifUnit)}
    return GraphRun(
        codes=out_codes,
        steps=steps,
        silent=silent,
        spikes={k: v for k, v in spikes.items() if k in stbif},
        changes={k: v for k, v in spikes.items() if k not in stbif},
        trace={name: np.stack(steps_) for name, steps_ in traced.items()},
    )
