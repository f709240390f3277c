"""Writes a generated LUT engine as an artefact directory (engine ``lutnet``)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ..artefact import MANIFEST_VERSION, atomic_directory, atomic_write
from ..emit import _ports, emit_verilog
from .srlut import SrlutPlan, TableError

__all__ = ["write_srlut_artefact", "BENCH", "TOP"]

BENCH = "sim.bench.lutnet_bench"
TOP = "nnloom_lutnet"


def memory_plan(plan: SrlutPlan, *, width: int, ports: int) -> dict:
    """Bytes of each memory the engine holds (the generator's memory choice is reported)."""
    side = 2 * plan.radius + 1
    rows = 1 << side.bit_length()
    return {"table_bytes": plan.table_bytes, "table_words": plan.levels ** plan.n,
            "table_word_bits": 8 * plan.scale ** 2, "table_read_ports": ports,
            "line_buffer_bytes": rows * width,
            "reorder_buffer_bytes": 2 * width * plan.scale ** 2}


def write_srlut_artefact(plan: SrlutPlan, out_dir: str | Path, *, width: int, height: int,
                         frames: np.ndarray, ports: int = 1,
                         source: dict | None = None) -> Path:
    """Generate the SR-LUT engine for ``width``×``height`` frames and write ``out_dir``
    atomically: ``rtl/nnloom_lutnet.v``, ``manifest.json`` and ``vectors/golden.npz``
    (``inputs`` (N, H, W) uint8 frames and the golden ``outputs`` (N, rH, rW))."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (height, width) or frames.dtype != np.uint8:
        raise TableError(f"golden frames have shape {frames.shape} ({frames.dtype}); the "
                         f"engine takes uint8 frames of {height}×{width}")
    if min(width, height) < plan.min_size():
        raise TableError(f"a {width}×{height} frame is too small for pattern {plan.pattern}; "
                         f"each side needs at least {plan.min_size()} pixels")
    component = plan.create(width=width, height=height, ports=ports)
    verilog_text = emit_verilog(component, TOP)
    outputs = np.stack([plan.reference(f) for f in frames])
    r, steps = plan.scale, component.steps
    out_dir = Path(out_dir)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "design": out_dir.name,
        "engine": "lutnet",
        "variant": "srlut",
        "top": TOP,
        "rtl": [f"{TOP}.v"],
        "sim": {"bench": BENCH},
        "source": source or {"table": plan.name,
                             "sha256": hashlib.sha256(plan.table.tobytes()).hexdigest()},
        "clock": {"name": "clk", "reset": "rst", "reset_active": "high"},
        "ports": _ports(component),
        "streams": {
            "payload": {"data": [0, 8], "last": 8},
            "input": {"port": "i", "elements": width * height,
                      "dtype": {"width": 8, "signed": False}, "tensor": "lr"},
            "output": {"port": "o", "elements": width * height * r * r,
                       "dtype": {"width": 8, "signed": False}, "tensor": "hr"},
        },
        "parameters": {"pattern": plan.pattern, "offsets": [list(o) for o in plan.offsets],
                       "interval_bits": plan.interval_bits, "scale": r,
                       "width": width, "height": height, "ports": ports,
                       "rounding": "round half to even, then clamp to 0..255",
                       "border": "reflect (numpy)"},
        "memories": memory_plan(plan, width=width, ports=ports),
        "throughput": {"cycles_per_lr_pixel": max(steps, r * r),
                       "hr_pixels_per_cycle": r * r / max(steps, r * r)},
    }
    with atomic_directory(out_dir) as tmp:
        atomic_write(tmp / "rtl" / f"{TOP}.v", verilog_text)
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        buf = io.BytesIO()
        np.savez(buf, inputs=frames, outputs=outputs)
        atomic_write(tmp / "vectors" / "golden.npz", buf.getvalue())
    return out_dir
