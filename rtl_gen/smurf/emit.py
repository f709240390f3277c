"""Writes a SMURF unit as an artefact directory: Verilog, manifest and golden vectors.

The manifest holds the whole plan (bases, thresholds, LFSR taps and seeds), so the folder is
self-describing; ``vectors/golden.npz`` holds ``inputs`` (codes, ``(n, M)``) and ``outputs``
(counts of the cycle model, ``(n, K)``) for an input sweep. Same plan, same bytes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..artefact import MANIFEST_VERSION, atomic_directory, atomic_write
from ..emit import _ports, emit_verilog
from .design import FitReport, sweep_codes
from .plan import SmurfPlan

__all__ = ["write_smurf_artefact", "TOP", "BENCH"]

TOP = "nnloom_smurf"
BENCH = "sim.bench.smurf_bench"


def write_smurf_artefact(plan: SmurfPlan, out_dir: str | Path, *,
                         fit: FitReport | None = None, codes: np.ndarray | None = None,
                         top: str = TOP) -> Path:
    """Generate ``plan``'s Verilog and golden vectors into ``out_dir`` (atomically).

    ``codes`` defaults to the sweep of ``sweep_codes``: every code for one input, a 33-point
    grid per axis for two, 9 for three.
    """
    component = plan.create()
    verilog_text = emit_verilog(component, top)
    if codes is None:
        codes = sweep_codes(plan.m, plan.input_bits)
    codes = np.asarray(codes, dtype=np.int64)
    counts = plan.reference(codes)
    out_dir = Path(out_dir)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "design": out_dir.name,
        "engine": "smurf",
        "top": top,
        "rtl": [f"{top}.v"],
        "sim": {"bench": BENCH},
        "clock": {"name": "clk", "reset": "rst", "reset_active": "high"},
        "ports": _ports(component),
        "streams": {
            "input": {"port": "i", "elements": plan.m, "width": plan.input_bits,
                      "names": list(plan.inputs)},
            "output": {"port": "o", "elements": len(plan.outputs), "width": plan.count_bits,
                       "names": [o.name for o in plan.outputs]},
        },
        "latency_cycles": plan.latency_cycles,
        "parameters": {"inputs": plan.m, "outputs": len(plan.outputs),
                       "radix": [b.size for b in plan.bases],
                       "basis": [b.kind for b in plan.bases],
                       "input_bits": plan.input_bits, "coef_bits": plan.coef_bits,
                       "length": plan.length, "warmup": plan.warmup,
                       "encoding": plan.encoding, "rom_bits": (plan.coef_bits + 1)
                       * (1 << plan.address_bits) * len(plan.outputs),
                       "deterministic_gate": plan.deterministic_gate},
        "smurf": plan.to_dict(),
    }
    if fit is not None:
        manifest["fit"] = fit.to_dict()
    with atomic_directory(out_dir) as tmp:
        atomic_write(tmp / "rtl" / f"{top}.v", verilog_text)
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        buf = io.BytesIO()
        np.savez(buf, inputs=codes, outputs=counts)
        atomic_write(tmp / "vectors" / "golden.npz", buf.getvalue())
    return out_dir
