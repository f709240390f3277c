"""Writes the graph spiking engine's artefact (``GraphEngine``: whole spiking graphs,
transformers included): Verilog, manifest and golden vectors, in the shape of the layer-chain
engine's (``rtl_gen.snn.emit``) so that ``nnloom sim`` runs it with ``sim.bench.snn_bench``
(``snn_cycles`` and ``snn_steps`` per vector: the exact cycle and time-step model)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frontends.errors import ModelError
from rtl_gen.artefact import element_streams, engine_manifest, graph_quant, write_artefact_dir
from rtl_gen.emit import emit_verilog

from .graph_plan import GraphPlan

if TYPE_CHECKING:
    from frontends.ir import Graph

__all__ = ["write_graph_artefact", "graph_vectors"]

TOP = "nnloom_snn"
BENCH = "sim.bench.snn_bench"


def spread(values: np.ndarray, *, p99: bool = False) -> dict:
    """``{min, mean, [p99,] max}`` of per-vector integer counts (cycles, steps), as the
    manifests record them."""
    out = {"min": int(values.min()), "mean": float(values.mean())}
    if p99:
        out["p99"] = float(np.percentile(values, 99))
    return {**out, "max": int(values.max())}


def graph_vectors(plan: GraphPlan, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``vectors`` plus the engine's per-vector cycles and time steps; checks that the
    spiking run settles at the IR golden's output codes for every vector."""
    done = plan.settle(vectors["inputs"])
    got = done.outputs
    want = np.asarray(vectors["outputs"]).reshape(got.shape)
    bad = np.flatnonzero((got != want).any(axis=1))
    if len(bad):
        raise ModelError(
            f"model '{plan.graph.name}': the spiking graph settles off the golden for vector "
            f"{int(bad[0])} (t_max {plan.t_max} below the bound {plan.sg.t_max}?)"
        )
    out = dict(vectors)
    out["snn_cycles"], out["snn_steps"] = done.cycles, done.steps
    return out


def _layer(d) -> dict:
    node = d.unit.node
    out = {
        "name": node.name,
        "op": node.source_op,
        "unit": d.unit_kind,
        "inputs": list(d.inputs),
        "output": d.output,
        "elements": d.n_elements,
    }
    u = d.unit
    if hasattr(u, "theta"):
        out.update(neuron="st-bif", theta=int(u.theta), tracer=[int(u.smin), int(u.smax)])
    else:
        out["neuron"] = "differential"
    return out


def write_graph_artefact(
    graph: Graph,
    out_dir: str | Path,
    *,
    vectors: dict[str, np.ndarray],
    t_max: int | None = None,
) -> Path:
    """Generate the graph engine for ``graph`` and write ``out_dir`` atomically."""
    plan = GraphPlan.from_graph(graph, t_max=t_max)
    vectors = graph_vectors(plan, vectors)
    component = plan.create()
    verilog_text = emit_verilog(component, TOP)
    cycles, steps = vectors["snn_cycles"], vectors["snn_steps"]
    step_cycles = cycles / np.maximum(steps, 1)
    manifest = engine_manifest(
        design=Path(out_dir).name,
        engine="snn",
        top=TOP,
        component=component,
        sim_bench=BENCH,
        source={"model": graph.name, "sha256": graph.source_sha256},
        streams=element_streams(
            n_in=plan.n_in,
            in_dtype=plan.in_dtype,
            in_tensor=plan.input_tensor,
            n_out=plan.n_out,
            out_dtype=plan.out_dtype,
            out_tensor=plan.sg.output_tensor,
            data_bits=plan.in_dtype.width,
        ),
        parameters={
            "t_max": plan.t_max,
            "t_bound": plan.sg.t_max,
            "exact": plan.exact,
            "schedule": "unit-sequential (topological order), increment buffers",
            "input_encoding": "analog at t=0, bit-plane events",
            "buffers": {k: list(v) for k, v in plan.buffers.items()},
        },
        layers=[_layer(d) for d in plan.drivers],
        latency_cycles=int(cycles.max()),
        snn={
            "cycles": spread(cycles),
            "cycles_per_step": {
                "mean": float(step_cycles.mean()),
                "max": float(step_cycles.max()),
            },
            "steps": spread(steps, p99=True),
        },
        quant=graph_quant(graph),
    )
    return write_artefact_dir(out_dir, manifest, rtl={f"{TOP}.v": verilog_text}, vectors=vectors)
