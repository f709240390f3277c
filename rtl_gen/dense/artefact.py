"""The dense engine's artefact: its Verilog, manifest (lanes, accumulator widths, per-layer
cycles and requantization) and golden vectors, written by ``rtl_gen.artefact``.

Same graph, same options, same bytes: Verilog is emitted without source locations and every
file is written in a fixed order with sorted keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from frontends.ir import Graph

from ..artefact import element_streams, engine_manifest, graph_quant, write_artefact_dir
from ..emit import emit_verilog
from .engine import DenseEngine
from .plan import DensePlan

__all__ = ["write_dense_artefact", "TOP"]

TOP = "nnloom_dense"


def write_dense_artefact(
    graph: Graph,
    out_dir: str | Path,
    *,
    vectors: dict[str, np.ndarray],
    lanes: int = 4,
    protect: str = "none",
) -> Path:
    """Generate the engine for ``graph`` on ``lanes`` MAC lanes, its memories coded by
    ``protect`` (``rtl_gen.ecc``), and write ``out_dir`` atomically; returns its path."""
    plan = DensePlan.from_graph(graph, lanes=lanes, protect=protect)
    component = DenseEngine(plan)
    verilog_text = emit_verilog(component, TOP)
    manifest = engine_manifest(
        design=Path(out_dir).name,
        engine="dense",
        top=TOP,
        component=component,
        source={"model": graph.name, "sha256": graph.source_sha256},
        streams=element_streams(
            n_in=plan.n_in,
            in_dtype=plan.in_dtype,
            in_tensor=graph.inputs[0],
            n_out=plan.n_out,
            out_dtype=plan.out_dtype,
            out_tensor=graph.outputs[0],
        ),
        parameters={
            "lanes": plan.lanes,
            "acc_bits": plan.acc_bits,
            "sum_bits": plan.sum_bits,
            "buffer_depth": plan.buffer_depth,
            "weight_words": len(plan.weight_image()),
            "param_words": len(plan.param_image()),
            "protect": plan.protect,
            "weight_word_bits": plan.weight_code.word_bits,
            "param_word_bits": plan.param_code.word_bits,
        },
        layers=[
            {
                "name": l.name,
                "op": l.source_op,
                "inputs": l.n_in,
                "outputs": l.n_out,
                "cycles": plan.layer_cycles(l),
                "macs": l.n_in * l.n_out,
                "shift": l.shift,
                "zero_point": l.zero_point,
                "clamp": [l.lo, l.hi],
            }
            for l in plan.layers
        ],
        latency_cycles=plan.cycles(),
        macs=plan.macs(),
        quant=graph_quant(graph),
    )
    return write_artefact_dir(out_dir, manifest, rtl={f"{TOP}.v": verilog_text}, vectors=vectors)
