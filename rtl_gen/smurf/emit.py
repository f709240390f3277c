"""Writes a SMURF unit as an artefact directory: Verilog, manifest and golden vectors.

The top is the ``SmurfEngine`` (the unit behind ``i``/``o`` element streams, ``cycles`` and
``busy``, the contract a board top drives), so the artefact simulates, builds and runs on a
board like any engine's. The manifest holds the whole plan (bases, thresholds, LFSR taps and
seeds), so the folder is self-describing; ``vectors/golden.npz`` holds, from the cycle model,
``inputs`` (codes, ``(n, M)``), ``outputs`` (the engine's 8-bit output codes, ``(n, K)``),
``counts`` (the unit's ones-counts, ``(n, K)``) and ``labels`` (-1: none) for an input sweep
whose all-min/max-code vectors come first. Same plan, same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artefact import engine_manifest, write_artefact_dir
from ..emit import emit_verilog
from .design import FitReport, sweep_codes
from .engine import SmurfEngine, input_element_bits
from .plan import CODE_BITS, SmurfPlan

__all__ = ["write_smurf_artefact", "TOP", "BENCH"]

TOP = "nnloom_smurf"
BENCH = "sim.bench.smurf_bench"


def edges_first(codes: np.ndarray, bits: int) -> np.ndarray:
    """``codes`` with the vectors made only of the min and max code first (stable order), so
    the first few vectors of a short run (e.g. a board-level simulation) hit both ends."""
    codes = np.asarray(codes, dtype=np.int64)
    edge = ((codes == 0) | (codes == (1 << bits) - 1)).all(axis=1)
    return np.concatenate([codes[edge], codes[~edge]])


def write_smurf_artefact(
    plan: SmurfPlan,
    out_dir: str | Path,
    *,
    fit: FitReport | None = None,
    codes: np.ndarray | None = None,
    top: str = TOP,
) -> Path:
    """Generate ``plan``'s Verilog and golden vectors into ``out_dir`` (atomically).

    ``codes`` defaults to the sweep of ``sweep_codes`` (every code for one input, a 33-point
    grid per axis for two, 9 for three), min/max-code vectors first.
    """
    component = SmurfEngine(plan)
    verilog_text = emit_verilog(component, top)
    if codes is None:
        codes = edges_first(sweep_codes(plan.m, plan.input_bits), plan.input_bits)
    codes = np.asarray(codes, dtype=np.int64)
    counts = plan.reference(codes)
    outputs = plan.output_codes(counts)
    manifest = engine_manifest(
        design=Path(out_dir).name,
        engine="smurf",
        top=top,
        component=component,
        sim_bench=BENCH,
        streams={
            "payload": {"data": [0, input_element_bits(plan)], "last": input_element_bits(plan)},
            "input": {
                "port": "i",
                "elements": plan.m,
                "dtype": {"width": input_element_bits(plan), "signed": False},
                "code_bits": plan.input_bits,
                "names": list(plan.inputs),
                "decode": "x = lo + (hi - lo) * code / 2^code_bits",
                "ranges": [list(r) for r in plan.ranges],
            },
            "output": {
                "port": "o",
                "elements": len(plan.outputs),
                "dtype": {"width": CODE_BITS, "signed": False},
                "names": [o.name for o in plan.outputs],
                "code": f"q = min(round(count * 2^{CODE_BITS} / L), "
                f"{(1 << CODE_BITS) - 1}), halves up",
                "decode": f"y = lo + (hi - lo) * q / 2^{CODE_BITS}",
                "ranges": [[o.lo, o.hi] for o in plan.outputs],
                "counts": {
                    "port": "counts",
                    "width": plan.count_bits,
                    "decode": "y = lo + (hi - lo) * count / L",
                },
            },
        },
        latency_cycles=plan.engine_latency_cycles,
        macs=0,
        parameters={
            "inputs": plan.m,
            "outputs": len(plan.outputs),
            "unit_latency_cycles": plan.latency_cycles,
            "count_bits": plan.count_bits,
            "radix": [b.size for b in plan.bases],
            "basis": [b.kind for b in plan.bases],
            "input_bits": plan.input_bits,
            "coef_bits": plan.coef_bits,
            "length": plan.length,
            "warmup": plan.warmup,
            "encoding": plan.encoding,
            "rom_bits": (plan.coef_bits + 1) * (1 << plan.address_bits) * len(plan.outputs),
            "deterministic_gate": plan.deterministic_gate,
        },
        smurf=plan.to_dict(),
        **({"fit": fit.to_dict()} if fit is not None else {}),
    )
    # labels -1: no class labels (what ``nnloom flow`` reads for an accuracy)
    return write_artefact_dir(
        out_dir,
        manifest,
        rtl={f"{top}.v": verilog_text},
        vectors={
            "inputs": codes,
            "outputs": outputs,
            "counts": counts,
            "labels": np.full(len(codes), -1, dtype=np.int64),
        },
    )
