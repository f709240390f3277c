"""Writes a generated LUT engine as an artefact directory (engine ``lutnet``)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ..artefact import MANIFEST_VERSION, atomic_directory, atomic_write
from .images import example_png
from ..emit import _ports, emit_verilog
from .hklut import HklutPlan
from .hkstage import STEPS, lsb_lane_bits, msb_words, strip_spram_init
from .srlut import SrlutPlan, TableError

__all__ = ["write_srlut_artefact", "write_hklut_artefact", "hklut_memory_plan",
           "MSB_MEMORY_BY_FAMILY", "emit_hklut_verilog", "BENCH", "TOP"]

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
        atomic_write(tmp / "images" / "frame0.png",
                     example_png(frames[0], outputs[0], f"SR-LUT-{plan.pattern}"))
    return out_dir


# Where the HKLUT MSB tables live: the UP5K's 128 KiB of SPRAM (loaded after reset; its 30
# EBR hold 15 KiB) or ECP5 block RAM with initial contents.
MSB_MEMORY_BY_FAMILY = {"ice40": "spram", "ecp5": "rom"}


def emit_hklut_verilog(component) -> str:
    """The HKLUT engine's Verilog; SPRAM tables without initial contents."""
    text = emit_verilog(component, TOP)
    return strip_spram_init(text) if component.msb_memory == "spram" else text


def hklut_memory_plan(plan: HklutPlan, *, width: int, msb_memory: str) -> dict:
    """Bytes and kind of every memory of the HKLUT engine (the generator's choice)."""
    lbits = [lsb_lane_bits(s.lsb) for s in plan.stages]
    msb_bytes = sum(sum(int(np.size(t)) for t in s.msb) for s in plan.stages)
    return {
        "table_bytes": plan.table_bytes,
        "msb_tables": {"kind": "SPRAM (SB_SPRAM256KA, loaded through 'load')"
                       if msb_memory == "spram" else "block RAM ROM (EBR)",
                       "bytes": msb_bytes, "words_per_stage": 3 * 4096, "word_bits": 32,
                       "spram_blocks": 4 if msb_memory == "spram" else 0},
        "lsb_tables": {"kind": "block RAM ROM (EBR)", "lane_bits": lbits,
                       "bits": sum(2 * 256 * 4 * b for b in lbits)},
        "line_buffer_bytes": 8 * width + 8 * 2 * width,
        "reorder_buffer_bytes": 2 * 2 * width * 4,
    }


def write_hklut_artefact(plan: HklutPlan, out_dir: str | Path, *, width: int, height: int,
                         frames: np.ndarray, family: str = "ecp5",
                         source: dict | None = None) -> Path:
    """Generate the HKLUT ×4 engine for ``width``×``height`` frames and write ``out_dir``
    atomically, like ``write_srlut_artefact``. ``family`` chooses the MSB tables' memory
    (``MSB_MEMORY_BY_FAMILY``); with SPRAM the golden vectors also hold ``tables``, the
    32-bit words the bench streams into ``load`` before the first frame."""
    if family not in MSB_MEMORY_BY_FAMILY:
        raise TableError(f"unknown FPGA family '{family}'; choose one of "
                         f"{', '.join(MSB_MEMORY_BY_FAMILY)}")
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (height, width) or frames.dtype != np.uint8:
        raise TableError(f"golden frames have shape {frames.shape} ({frames.dtype}); the "
                         f"engine takes uint8 frames of {height}×{width}")
    if min(width, height) < plan.min_size():
        raise TableError(f"a {width}×{height} frame is too small for HKLUT; each side needs "
                         f"at least {plan.min_size()} pixels")
    msb_memory = MSB_MEMORY_BY_FAMILY[family]
    component = plan.create(width=width, height=height, msb_memory=msb_memory)
    verilog_text = emit_hklut_verilog(component)
    outputs = np.stack([plan.reference(f) for f in frames])
    r = plan.scale
    out_dir = Path(out_dir)
    digest = hashlib.sha256(b"".join(t.tobytes() for s in plan.stages
                                     for t in (*s.msb, *s.lsb))).hexdigest()
    streams = {
        "payload": {"data": [0, 8], "last": 8},
        "input": {"port": "i", "elements": width * height,
                  "dtype": {"width": 8, "signed": False}, "tensor": "lr"},
        "output": {"port": "o", "elements": width * height * r * r,
                   "dtype": {"width": 8, "signed": False}, "tensor": "hr"},
    }
    vectors = {"inputs": frames, "outputs": outputs}
    if msb_memory == "spram":
        words = [w for s in plan.stages for w in msb_words(s.msb)]
        streams["load"] = {"port": "load", "elements": len(words), "vector": "tables",
                           "done": "loaded"}
        vectors["tables"] = np.array(words, dtype=np.uint32)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "design": out_dir.name,
        "engine": "lutnet",
        "variant": "hklut",
        "top": TOP,
        "rtl": [f"{TOP}.v"],
        "sim": {"bench": BENCH},
        "source": source or {"table": plan.name, "sha256": digest},
        "clock": {"name": "clk", "reset": "rst", "reset_active": "high"},
        "ports": _ports(component),
        "streams": streams,
        "parameters": {"stages": len(plan.stages), "scale": r, "width": width,
                       "height": height, "family": family, "msb_memory": msb_memory,
                       "rounding": "stage 0: clamp(floor(V/6)); stage 1: clamp(floor((V+3)/6))",
                       "border": "MSB reflect (numpy), LSB edge (numpy)"},
        "memories": hklut_memory_plan(plan, width=width, msb_memory=msb_memory),
        "throughput": {"cycles_per_lr_pixel": 4 * STEPS,
                       "hr_pixels_per_cycle": r * r / (4 * STEPS)},
    }
    with atomic_directory(out_dir) as tmp:
        atomic_write(tmp / "rtl" / f"{TOP}.v", verilog_text)
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        buf = io.BytesIO()
        np.savez(buf, **vectors)
        atomic_write(tmp / "vectors" / "golden.npz", buf.getvalue())
        atomic_write(tmp / "images" / "frame0.png", example_png(frames[0], outputs[0], "HKLUT"))
    return out_dir
