"""Writes the spiking engine's artefact directory: Verilog, manifest and golden vectors.

The manifest has the dense engine's shape (ports, streams, layers, ``latency_cycles``) with
``"engine": "snn"`` and an ``snn`` section (time steps, thresholds, activity). The golden
vectors add ``snn_cycles`` and ``snn_steps`` per vector (the exact cycle and time-step model),
which ``sim.bench.snn_bench`` checks the RTL against.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtl_gen.artefact import element_streams, engine_manifest, graph_quant, write_artefact_dir
from rtl_gen.emit import emit_verilog

from .graph_emit import spread
from .plan import SnnPlan

if TYPE_CHECKING:
    import nir

    from frontends.ir import Graph
    from frontends.snn.nir_import import NirOptions

    from .if_plan import IfPlan

__all__ = [
    "write_snn_artefact",
    "write_from_graph",
    "write_nir_artefact",
    "snn_vectors",
    "nir_memory_bits",
    "TOP",
    "is_chain",
]

TOP = "nnloom_snn"
BENCH = "sim.bench.snn_bench"


def snn_vectors(plan: SnnPlan, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``vectors`` plus the engine's per-vector cycles and time steps; checks that the
    spiking run settles at the IR golden's codes for every layer."""
    from frontends.errors import ModelError

    run = plan.run(vectors["inputs"])
    for i, layer in enumerate(plan.network.layers):
        want = vectors.get(f"layer{i}")
        if want is not None and not np.array_equal(run.codes[i], want):
            bad = int(np.flatnonzero((run.codes[i] != want).any(axis=1))[0])
            raise ModelError(
                f"node '{layer.name}' ({layer.source_op}): the ST-BIF layer "
                f"settles off the golden for vector {bad} (t_max {plan.t_max} "
                f"below the bound {plan.network.t_max()}?)"
            )
    out = dict(vectors)
    out["snn_cycles"] = plan.cycles(vectors["inputs"], run)
    out["snn_steps"] = run.steps
    out["snn_spikes"] = np.stack(run.spikes, axis=1)
    out["snn_synops"] = run.synops
    return out


def write_snn_artefact(
    plan: SnnPlan,
    out_dir: str | Path,
    *,
    vectors: dict[str, np.ndarray],
    source: dict | None = None,
    quant: dict | None = None,
) -> Path:
    """Generate the engine for ``plan`` and write ``out_dir`` atomically; returns its path."""
    net = plan.network
    vectors = snn_vectors(plan, vectors)
    component = plan.create()
    verilog_text = emit_verilog(component, TOP)
    cycles = vectors["snn_cycles"]
    steps = vectors["snn_steps"]
    spikes = vectors["snn_spikes"]
    manifest = engine_manifest(
        design=Path(out_dir).name,
        engine="snn",
        top=TOP,
        component=component,
        sim_bench=BENCH,
        source=source or {"model": net.name, "sha256": None},
        streams=element_streams(
            n_in=net.n_in,
            in_dtype=net.in_dtype,
            in_tensor=net.input_tensor,
            n_out=net.n_out,
            out_dtype=net.out_dtype,
            out_tensor=net.output_tensor,
            data_bits=net.in_dtype.width,
        ),
        parameters={
            "t_max": plan.t_max,
            "t_bound": net.t_max(),
            "exact": plan.exact,
            "v_bits": list(plan.v_bits),
            "weight_bits": plan.weight_bits(),
            "memory_bits": plan.memory_bits(),
            "schedule": "layer-sequential",
            "input_encoding": "analog at t=0, bit-plane events",
        },
        layers=[
            {
                "name": l.name,
                "op": l.source_op,
                "inputs": l.n_in,
                "outputs": l.n_out,
                "neuron": "st-bif",
                "theta": l.theta,
                "tracer": [l.smin, l.smax],
                "zero_point": l.zero_point,
                "macs": l.n_in * l.n_out,
            }
            for l in net.layers
        ],
        latency_cycles=int(cycles.max()),
        macs=int(sum(l.n_in * l.n_out for l in net.layers)),
        snn={
            "cycles": spread(cycles),
            "steps": spread(steps, p99=True),
            "spikes_per_neuron": [
                float(spikes[:, i].mean() / l.n_out) for i, l in enumerate(net.layers)
            ],
            "synops_mean": float(vectors["snn_synops"].mean()),
        },
        quant=quant or {},
    )
    return write_artefact_dir(out_dir, manifest, rtl={f"{TOP}.v": verilog_text}, vectors=vectors)


def is_chain(graph: Graph) -> bool:
    """Whether ``graph`` is a chain of dense/conv layers on one vector per sample (the
    layer-chain engine's); anything else is the graph engine's."""
    return all(n.op in ("dense", "conv") and n.attrs.get("tokens", 1) == 1 for n in graph.nodes)


def write_from_graph(
    graph: Graph,
    out_dir: str | Path,
    *,
    vectors: dict[str, np.ndarray],
    t_max: int | None = None,
) -> Path:
    """``write_snn_artefact`` for an IR graph (its source hash and quantization recorded); a
    graph that is not a chain of dense/conv layers (transformers) goes to the graph engine
    (``graph_emit.write_graph_artefact``)."""
    if not is_chain(graph):
        from .graph_emit import write_graph_artefact

        return write_graph_artefact(graph, out_dir, vectors=vectors, t_max=t_max)
    plan = SnnPlan.from_graph(graph, t_max=t_max)
    return write_snn_artefact(
        plan,
        out_dir,
        vectors=vectors,
        quant=graph_quant(graph),
        source={"model": graph.name, "sha256": graph.source_sha256},
    )


# ECP5-85F block RAM (208 DP16KD x 18 kbit): the largest device nnloom targets.
MAX_MEMORY_BITS = 208 * 18 * 1024


def nir_memory_bits(plan: IfPlan) -> int:
    """Bits of synapse (shared kernels for convolutions, plus their tap tables), membrane,
    current (CubaLIF), bias, spike-counter and event memory ``plan`` needs."""
    from frontends.fixedpoint import signed_bits

    from .conv_taps import table_bits

    layers = plan.network.layers
    total = 0
    for index, (layer, v_bits) in enumerate(zip(layers, plan.v_bits)):
        weights = layer.conv.kernel if layer.conv is not None else layer.weight
        total += weights.size * signed_bits(int(weights.min()), int(weights.max()))
        if layer.conv is not None:
            total += table_bits(layer.conv)
        biased = bool(np.any(layer.bias != 0))  # V, the bias if any, the counter
        total += layer.n_out * ((1 + biased) * v_bits + plan.t_max.bit_length() + 1)
        if plan.i_bits:
            total += layer.n_out * plan.i_bits[index]
        if index + 1 < len(layers):
            nxt = layers[index + 1]
            span = layer.n_out * (1 if nxt.conv is not None else nxt.n_out)
            total += layer.n_out * (max(1, (span - 1).bit_length()) + 1)
    return total


def _nir_layer(l) -> dict:
    out = {
        "name": l.name,
        "op": l.source_op,
        "inputs": l.n_in,
        "outputs": l.n_out,
        "neuron": l.kind,
        "theta": l.theta,
        "v_reset": l.v_reset,
        "macs": int(np.count_nonzero(l.weight)),
    }
    if l.kind in ("lif", "cubalif", "li"):
        out["leak"] = (
            {"shift": l.leak_shift}
            if l.leak_shift is not None
            else {"beta": l.beta, "beta_bits": l.beta_bits}
        )
    if l.kind == "cubalif":
        out["current_leak"] = (
            {"shift": l.syn_shift}
            if l.syn_shift is not None
            else {"alpha": l.alpha, "beta_bits": l.beta_bits}
        )
    if l.conv is not None:
        c = l.conv
        out["synapse"] = {
            "kind": "conv",
            "kernel": list(c.kernel.shape),
            "stride": list(c.stride),
            "padding": list(c.padding),
            "pool": list(c.pool),
            "in": list(c.src_shape),
            "out": list(c.out_shape),
        }
    else:
        out["synapse"] = {"kind": "dense", "weights": int(l.weight.size)}
    return out


def write_nir_artefact(
    model: str | Path | nir.NIRGraph,
    out_dir: str | Path,
    *,
    steps: int = 16,
    samples: int = 16,
    rate: float = 0.2,
    seed: int = 0,
    options: NirOptions | None = None,
    spikes: np.ndarray | None = None,
) -> Path:
    """The engine for a NIR graph (path or ``nir.NIRGraph``) on ``samples`` synthetic
    Bernoulli spike inputs (``rate`` per input per step, ``steps`` steps), or on ``spikes``
    (B, steps, inputs) of 0/1 when given; refuses a network whose memories exceed the largest
    FPGA's block RAM."""
    from frontends.errors import ModelError
    from frontends.snn.nir_import import import_nir

    from .if_plan import IfPlan

    net = import_nir(model, options)
    if spikes is not None:
        spikes = np.asarray(spikes)
        if (
            spikes.ndim < 3
            or int(np.prod(spikes.shape[2:])) != net.n_in
            or not np.isin(spikes, (0, 1)).all()
        ):
            raise ModelError(
                f"NIR graph '{net.name}': input spikes of shape {spikes.shape}; "
                f"expected 0/1 values of shape (samples, steps, {net.n_in})"
            )
        samples, steps = spikes.shape[:2]
    plan = IfPlan.from_network(net, steps=steps)
    bits = nir_memory_bits(plan)
    if bits > MAX_MEMORY_BITS:
        dense = [l.name for l in net.layers if l.conv is None and len(l.out_shape) == 3]
        raise ModelError(
            f"NIR graph '{net.name}': needs {bits:,} bits of memory ({net.shared_weight_words():,}"
            f" synapse weights, convolutions as shared kernels); the LFE5U-85F holds "
            f"{MAX_MEMORY_BITS:,}"
            + (
                f". Layers {', '.join(dense)} are convolutions kept as "
                f"dense matrices (an overlapping pool before them, "
                f"groups or dilation)"
                if dense
                else ""
            )
        )
    if spikes is None:
        rng = np.random.default_rng(seed)
        inputs = (rng.random((samples, steps * net.n_in)) < rate).astype(np.int64)
    else:
        inputs = spikes.reshape(samples, steps * net.n_in).astype(np.int64)
    counts = plan.reference(inputs)
    vectors = {
        "inputs": inputs,
        "outputs": counts,
        "labels": np.full(samples, -1, np.int64),
        "source": np.ones(samples, np.int8),
        "snn_cycles": np.full(samples, -1, np.int64),
        "snn_steps": np.full(samples, steps, np.int64),
    }
    component = plan.create()
    verilog_text = emit_verilog(component, TOP)
    inner = plan.network
    manifest = engine_manifest(
        design=Path(out_dir).name,
        engine="snn",
        top=TOP,
        component=component,
        sim_bench=BENCH,
        source={
            "model": str(model) if isinstance(model, (str, Path)) else net.name,
            "format": "nir",
            "sha256": None,
        },
        streams=element_streams(
            n_in=steps * inner.n_in,
            in_dtype=inner.in_dtype,
            in_tensor="spikes (steps x inputs)",
            n_out=inner.n_out,
            out_dtype=inner.out_dtype,
            out_tensor="membranes" if inner.output_tensor == "membranes" else "spike counts",
        ),
        parameters={
            "t_max": steps,
            "steps": steps,
            "exact": True,
            "mode": "if",
            "v_bits": list(plan.v_bits),
            "i_bits": list(plan.i_bits),
            "memory_bits": nir_memory_bits(plan),
            "options": vars(net.options),
            "schedule": "layer-sequential",
            "input_encoding": f"synthetic Bernoulli spikes, rate {rate}"
            if spikes is None
            else "given spikes",
        },
        layers=[_nir_layer(l) for l in inner.layers],
        latency_cycles=0,
        cycle_model=False,
        macs=int(sum(np.count_nonzero(l.weight) for l in inner.layers)),
        quant={},
    )
    return write_artefact_dir(out_dir, manifest, rtl={f"{TOP}.v": verilog_text}, vectors=vectors)
