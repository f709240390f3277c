"""Writes a generated design as an artefact directory: Verilog, manifest and golden vectors.

Same graph, same options, same bytes: Verilog is emitted without source locations and every
file is written in a fixed order with sorted keys.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np

from frontends.ir import Graph

from .artefact import MANIFEST_VERSION, atomic_directory, atomic_write
from .dense import DensePlan

__all__ = ["emit_verilog", "write_artefact", "ENGINES"]

ENGINES = ("dense",)


def emit_verilog(component, name: str) -> str:
    from amaranth.back import verilog
    return kick_comb_blocks(verilog.convert(component, name=name, emit_src=False))


# Yosys' write_verilog gives each module a ``reg <trigger> = 0;`` that every ``always @*``
# block reads, so simulators evaluate those blocks at time 0. Under SystemVerilog rules
# (``iverilog -g2012``) a declaration's initial value makes no event, and blocks that depend
# only on constant registers (a state machine resting in state 0) stay ``x`` forever. One
# change of the trigger at time 0 (after every block waits) starts them. Synthesis never sees
# it, nor Verilator (which evaluates every block first and wants no delays without --timing).
_TRIGGER = re.compile(r"^([ \t]*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
                      re.MULTILINE)


def kick_comb_blocks(text: str) -> str:
    """``text`` with an ``initial #0`` toggle of each Yosys time-0 trigger (for event-driven
    simulators: not for synthesis or Verilator)."""
    return _TRIGGER.sub(lambda m: f"{m[0]}\n`ifndef SYNTHESIS\n`ifndef VERILATOR\n{m[1]}initial #0 "
                                  f"{m[2]} = 1'h1;\n`endif\n`endif", text)


def _ports(component) -> list[dict]:
    from amaranth import Value

    """The Verilog ports Amaranth emits: members flattened with ``__``, plus clk and rst."""
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member, value in component.signature.flatten(component):
        ports.append({"name": "__".join(map(str, path)), "dir": member.flow.value.lower(),
                      "width": len(Value.cast(value))})
    return ports


def _dtype(t) -> dict:
    return {"width": t.width, "signed": t.signed}


def write_artefact(graph: Graph, out_dir: str | Path, *, vectors: dict[str, np.ndarray],
                   lanes: int = 4, engine: str = "dense") -> Path:
    """Generate the engine for ``graph`` and write ``out_dir`` atomically; returns its path."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine '{engine}'; available: {', '.join(ENGINES)}")
    plan = DensePlan.from_graph(graph, lanes=lanes)
    component = plan.create()
    top = "nnloom_dense"
    verilog_text = emit_verilog(component, top)
    out_dir = Path(out_dir)
    design = out_dir.name
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "design": design,
        "engine": engine,
        "top": top,
        "rtl": [f"{top}.v"],
        "source": {"model": graph.name, "sha256": graph.source_sha256},
        "clock": {"name": "clk", "reset": "rst", "reset_active": "high"},
        "ports": _ports(component),
        "streams": {
            "payload": {"data": [0, 8], "last": 8},
            "input": {"port": "i", "elements": plan.n_in, "dtype": _dtype(plan.in_dtype),
                      "tensor": graph.inputs[0]},
            "output": {"port": "o", "elements": plan.n_out, "dtype": _dtype(plan.out_dtype),
                       "tensor": graph.outputs[0]},
        },
        "parameters": {"lanes": plan.lanes, "acc_bits": plan.acc_bits,
                       "sum_bits": plan.sum_bits, "buffer_depth": plan.buffer_depth,
                       "weight_words": len(plan.weight_image()),
                       "param_words": len(plan.param_image())},
        "layers": [{"name": l.name, "op": l.source_op, "inputs": l.n_in, "outputs": l.n_out,
                    "cycles": plan.layer_cycles(l), "macs": l.n_in * l.n_out,
                    "shift": l.shift, "zero_point": l.zero_point, "clamp": [l.lo, l.hi]}
                   for l in plan.layers],
        "latency_cycles": plan.cycles(),
        "macs": plan.macs(),
        "quant": {
            "input": {"scale": float(graph.tensor(graph.inputs[0]).quant.scale),
                      "zero_point": int(graph.tensor(graph.inputs[0]).quant.zero_point)},
            "output": {"scale": float(graph.tensor(graph.outputs[0]).quant.scale),
                       "zero_point": int(graph.tensor(graph.outputs[0]).quant.zero_point)},
        },
    }
    with atomic_directory(out_dir) as tmp:
        atomic_write(tmp / "rtl" / f"{top}.v", verilog_text)
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        buf = io.BytesIO()
        np.savez(buf, **{k: vectors[k] for k in sorted(vectors)})
        atomic_write(tmp / "vectors" / "golden.npz", buf.getvalue())
    return out_dir
