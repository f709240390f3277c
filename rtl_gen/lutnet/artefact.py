"""Writes a generated LUT engine as an artefact directory (engine ``lutnet``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frontends.ir import IntType
from frontends.lutnet.hklut import HklutPlan
from frontends.lutnet.srlut import SrlutPlan, TableError

from ..artefact import Manifest, element_streams, engine_manifest, write_artefact_dir
from ..emit import emit_verilog
from .hklut.engine import HklutEngine
from .hklut.stage import STEPS, lsb_lane_bits, msb_words
from .images import enhanced_png, example_png
from .memories import strip_spram_init
from .srlut.engine import SrlutEngine

if TYPE_CHECKING:
    from frontends.lutnet.icelut import IcelutPlan

__all__ = [
    "write_srlut_artefact",
    "write_hklut_artefact",
    "write_icelut_artefact",
    "hklut_memory_plan",
    "icelut_memory_plan",
    "MSB_MEMORY_BY_FAMILY",
    "emit_hklut_verilog",
    "BENCH",
    "TOP",
]

BENCH = "sim.bench.lutnet_bench"
TOP = "nnloom_lutnet"


def _manifest(out_dir: Path, variant: str, component, source: dict, **fields) -> Manifest:
    """A lutnet variant's manifest: the common header, ``variant`` and the variant's
    ``fields`` (streams, parameters, memories, throughput)."""
    return engine_manifest(
        design=out_dir.name,
        engine="lutnet",
        top=TOP,
        component=component,
        sim_bench=BENCH,
        source=source,
        variant=variant,
        **fields,
    )


def _pixel_streams(pixels: int, scale: int) -> dict:
    """A super-resolution engine's streams: ``pixels`` low-resolution bytes in, ``scale``²
    times as many out."""
    u8 = IntType(8, False)
    return element_streams(
        n_in=pixels,
        in_dtype=u8,
        in_tensor="lr",
        n_out=pixels * scale * scale,
        out_dtype=u8,
        out_tensor="hr",
    )


def memory_plan(plan: SrlutPlan, *, width: int, ports: int) -> dict:
    """Bytes of each memory the engine holds (the generator's memory choice is reported)."""
    side = 2 * plan.radius + 1
    rows = 1 << side.bit_length()
    return {
        "table_bytes": plan.table_bytes,
        "table_words": plan.levels**plan.n,
        "table_word_bits": 8 * plan.scale**2,
        "table_read_ports": ports,
        "line_buffer_bytes": rows * width,
        "reorder_buffer_bytes": 2 * width * plan.scale**2,
    }


def write_srlut_artefact(
    plan: SrlutPlan,
    out_dir: str | Path,
    *,
    width: int,
    height: int,
    frames: np.ndarray,
    ports: int = 1,
    source: dict | None = None,
) -> Path:
    """Generate the SR-LUT engine for ``width``×``height`` frames and write ``out_dir``
    atomically: ``rtl/nnloom_lutnet.v``, ``manifest.json`` and ``vectors/golden.npz``
    (``inputs`` (N, H, W) uint8 frames and the golden ``outputs`` (N, rH, rW))."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (height, width) or frames.dtype != np.uint8:
        raise TableError(
            f"golden frames have shape {frames.shape} ({frames.dtype}); the "
            f"engine takes uint8 frames of {height}×{width}"
        )
    if min(width, height) < plan.min_size():
        raise TableError(
            f"a {width}×{height} frame is too small for pattern {plan.pattern}; "
            f"each side needs at least {plan.min_size()} pixels"
        )
    component = SrlutEngine(plan, width=width, height=height, ports=ports)
    verilog_text = emit_verilog(component, TOP)
    outputs = np.stack([plan.reference(f) for f in frames])
    r, steps = plan.scale, component.steps
    out_dir = Path(out_dir)
    manifest = _manifest(
        out_dir,
        "srlut",
        component,
        source or {"table": plan.name, "sha256": hashlib.sha256(plan.table.tobytes()).hexdigest()},
        streams=_pixel_streams(width * height, r),
        parameters={
            "pattern": plan.pattern,
            "offsets": [list(o) for o in plan.offsets],
            "interval_bits": plan.interval_bits,
            "scale": r,
            "width": width,
            "height": height,
            "ports": ports,
            "rounding": "round half to even, then clamp to 0..255",
            "border": "reflect (numpy)",
        },
        memories=memory_plan(plan, width=width, ports=ports),
        throughput={
            "cycles_per_lr_pixel": max(steps, r * r),
            "hr_pixels_per_cycle": r * r / max(steps, r * r),
        },
    )
    return write_artefact_dir(
        out_dir,
        manifest,
        rtl={f"{TOP}.v": verilog_text},
        vectors={"inputs": frames, "outputs": outputs},
        files={"images/frame0.png": example_png(frames[0], outputs[0], f"SR-LUT-{plan.pattern}")},
    )


# Where the HKLUT MSB tables live: the UP5K's 128 KiB of SPRAM (loaded after reset; its 30
# EBR hold 15 KiB) or ECP5 block RAM with initial contents.
MSB_MEMORY_BY_FAMILY = {"ice40": "spram", "ecp5": "rom"}


def emit_hklut_verilog(component: HklutEngine) -> str:
    """The HKLUT engine's Verilog; SPRAM tables without initial contents."""
    text = emit_verilog(component, TOP)
    return strip_spram_init(text) if component.msb_memory == "spram" else text


def hklut_memory_plan(plan: HklutPlan, *, width: int, msb_memory: str) -> dict:
    """Bytes and kind of every memory of the HKLUT engine (the generator's choice)."""
    lbits = [lsb_lane_bits(s.lsb) for s in plan.stages]
    msb_bytes = sum(sum(int(np.size(t)) for t in s.msb) for s in plan.stages)
    return {
        "table_bytes": plan.table_bytes,
        "msb_tables": {
            "kind": "SPRAM (SB_SPRAM256KA, loaded through 'load')"
            if msb_memory == "spram"
            else "block RAM ROM (EBR)",
            "bytes": msb_bytes,
            "words_per_stage": 3 * 4096,
            "word_bits": 32,
            "spram_blocks": 4 if msb_memory == "spram" else 0,
        },
        "lsb_tables": {
            "kind": "block RAM ROM (EBR)",
            "lane_bits": lbits,
            "bits": sum(2 * 256 * 4 * b for b in lbits),
        },
        "line_buffer_bytes": 8 * width + 8 * 2 * width,
        "reorder_buffer_bytes": 2 * 2 * width * 4,
    }


def write_hklut_artefact(
    plan: HklutPlan,
    out_dir: str | Path,
    *,
    width: int,
    height: int,
    frames: np.ndarray,
    family: str = "ecp5",
    source: dict | None = None,
) -> Path:
    """Generate the HKLUT ×4 engine for ``width``×``height`` frames and write ``out_dir``
    atomically, like ``write_srlut_artefact``. ``family`` chooses the MSB tables' memory
    (``MSB_MEMORY_BY_FAMILY``); with SPRAM the golden vectors also hold ``tables``, the
    32-bit words the bench streams into ``load`` before the first frame."""
    if family not in MSB_MEMORY_BY_FAMILY:
        raise TableError(
            f"unknown FPGA family '{family}'; choose one of {', '.join(MSB_MEMORY_BY_FAMILY)}"
        )
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (height, width) or frames.dtype != np.uint8:
        raise TableError(
            f"golden frames have shape {frames.shape} ({frames.dtype}); the "
            f"engine takes uint8 frames of {height}×{width}"
        )
    if min(width, height) < plan.min_size():
        raise TableError(
            f"a {width}×{height} frame is too small for HKLUT; each side needs "
            f"at least {plan.min_size()} pixels"
        )
    msb_memory = MSB_MEMORY_BY_FAMILY[family]
    component = HklutEngine(plan, width=width, height=height, msb_memory=msb_memory)
    verilog_text = emit_hklut_verilog(component)
    outputs = np.stack([plan.reference(f) for f in frames])
    r = plan.scale
    out_dir = Path(out_dir)
    digest = hashlib.sha256(
        b"".join(t.tobytes() for s in plan.stages for t in (*s.msb, *s.lsb))
    ).hexdigest()
    streams = _pixel_streams(width * height, r)
    vectors = {"inputs": frames, "outputs": outputs}
    if msb_memory == "spram":
        words = [w for s in plan.stages for w in msb_words(s.msb)]
        streams["load"] = {
            "port": "load",
            "elements": len(words),
            "vector": "tables",
            "done": "loaded",
        }
        vectors["tables"] = np.array(words, dtype=np.uint32)
    manifest = _manifest(
        out_dir,
        "hklut",
        component,
        source or {"table": plan.name, "sha256": digest},
        streams=streams,
        parameters={
            "stages": len(plan.stages),
            "scale": r,
            "width": width,
            "height": height,
            "family": family,
            "msb_memory": msb_memory,
            "rounding": "stage 0: clamp(floor(V/6)); stage 1: clamp(floor((V+3)/6))",
            "border": "MSB reflect (numpy), LSB edge (numpy)",
        },
        memories=hklut_memory_plan(plan, width=width, msb_memory=msb_memory),
        throughput={"cycles_per_lr_pixel": 4 * STEPS, "hr_pixels_per_cycle": r * r / (4 * STEPS)},
    )
    return write_artefact_dir(
        out_dir,
        manifest,
        rtl={f"{TOP}.v": verilog_text},
        vectors=vectors,
        files={"images/frame0.png": example_png(frames[0], outputs[0], "HKLUT")},
    )


def icelut_memory_plan(interpolation: str, memory: str = "ebr") -> dict:
    """The ICELUT apply engine's memory (the generator's choice) and where R3 comes from."""
    from .icelut.engine import BANK_DEPTH, BANKS, LOAD_WORDS, WORD_BITS

    if memory == "spram":
        r3 = {
            "kind": "SPRAM: two copies of R3, each two SB_SPRAM256KA (32-bit words), one "
            "vertex read per copy per cycle",
            "copies": 2,
            "spram_blocks": 4,
            "words_per_copy": LOAD_WORDS,
            "word_bits": 32,
            "bits": 2 * LOAD_WORDS * WORD_BITS,
        }
    else:
        r3 = {
            "kind": f"block RAM: {BANKS} parity banks (b&1, g&1, r&1), one LUT cell's 8 "
            f"corners read in one cycle",
            "banks": BANKS,
            "words_per_bank": BANK_DEPTH,
            "word_bits": WORD_BITS,
            "bits": BANKS * BANK_DEPTH * WORD_BITS,
        }
    r3.update(load_words=LOAD_WORDS, interpolation=interpolation)
    return {
        "r3": r3,
        "statistics_path": "host: the golden (IcelutPlan.lut) computes each frame's R3, "
        "streamed into 'load' before the frame",
    }


def write_icelut_artefact(
    plan: IcelutPlan,
    out_dir: str | Path,
    *,
    frames: np.ndarray,
    luts: np.ndarray | None = None,
    family: str = "ecp5",
    source: dict | None = None,
) -> Path:
    """Generate the ICELUT apply engine and write ``out_dir`` atomically, like
    ``write_srlut_artefact``: ``vectors/golden.npz`` holds ``inputs`` (N, H, W, 3) uint8
    frames, ``tables`` (N, 4913) the ``load`` words of each frame's residual LUT and the
    golden ``outputs`` (N, H, W, 3). ``luts`` (N, 3, 17, 17, 17) gives the LUTs; by default
    each is the frame's own ``plan.lut(frame)`` (the statistics path, run on the host).
    ``family`` chooses R3's memory (``MEMORY_BY_FAMILY``): ECP5 parity banks in EBR (1 px a
    cycle) or UP5K SPRAM (2 cycles a pixel tetrahedral, 4 trilinear)."""
    from .icelut.engine import (
        LOAD_WORDS,
        MEMORY_BY_FAMILY,
        IcelutEngine,
        emit_icelut_verilog,
        lut_words,
    )

    if family not in MEMORY_BY_FAMILY:
        raise TableError(
            f"unknown FPGA family '{family}'; choose one of {', '.join(MEMORY_BY_FAMILY)}"
        )
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise TableError(
            f"golden frames have shape {frames.shape} ({frames.dtype}); the "
            f"ICELUT engine takes uint8 RGB frames (N, H, W, 3)"
        )
    if luts is None:
        luts = np.stack([plan.lut(f) for f in frames])
    luts = np.asarray(luts)
    if luts.shape != (len(frames), 3, 17, 17, 17):
        raise TableError(
            f"residual LUTs have shape {luts.shape}; expected "
            f"({len(frames)}, 3, 17, 17, 17), one per frame"
        )
    try:
        tables = np.stack([lut_words(t) for t in luts])
    except ValueError as exc:
        raise TableError(f"ICELUT '{plan.name}': {exc}") from None
    component = IcelutEngine(interpolation=plan.interpolation, memory=MEMORY_BY_FAMILY[family])
    verilog_text = emit_icelut_verilog(component, TOP)
    outputs = np.stack([plan.apply(f, t) for f, t in zip(frames, luts)])
    n, height, width = frames.shape[:3]
    out_dir = Path(out_dir)
    digest = hashlib.sha256(
        b"".join(a.tobytes() for a in (plan.fm, plan.fl, plan.split, plan.bases))
    ).hexdigest()
    manifest = _manifest(
        out_dir,
        "icelut",
        component,
        source or {"table": plan.name, "sha256": digest},
        streams={
            "payload": {"data": [0, 24], "last": 24, "channels": 3},
            "input": {
                "port": "i",
                "elements": width * height * 3,
                "dtype": {"width": 8, "signed": False},
                "tensor": "rgb",
            },
            "output": {
                "port": "o",
                "elements": width * height * 3,
                "dtype": {"width": 8, "signed": False},
                "tensor": "enhanced",
            },
            "load": {
                "port": "load",
                "elements": LOAD_WORDS,
                "vector": "tables",
                "done": "loaded",
                "per_frame": True,
            },
        },
        parameters={
            "interpolation": plan.interpolation,
            "width": width,
            "height": height,
            "family": family,
            "memory": component.memory,
            "lut_dim": 17,
            "basis_shift": plan.basis_shift,
            "rounding": "tetrahedral (S+8)>>4, trilinear (S+2048)>>12 (round half "
            "up), then clamp(p + res, 0, 255)",
        },
        memories=icelut_memory_plan(plan.interpolation, component.memory),
        throughput={
            "pixels_per_cycle": component.pixels_per_cycle,
            "cycles_per_pixel": component.steps,
            "load_cycles_per_frame": LOAD_WORDS,
            "latency_cycles": component.latency,
        },
    )
    return write_artefact_dir(
        out_dir,
        manifest,
        rtl={f"{TOP}.v": verilog_text},
        vectors={"inputs": frames, "outputs": outputs, "tables": tables},
        files={
            "images/frame0.png": enhanced_png(
                frames[0], outputs[0], f"ICELUT ({plan.interpolation})"
            )
        },
    )
