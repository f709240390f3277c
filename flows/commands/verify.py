"""Verification beyond the cocotb bench, for ``nnloom generate/flow/sim``: every artefact
gets the self-checking SystemVerilog bench and VUnit script (``sim.bench_files``) and a copy
of the user's model (``source/``, for the framework-agreement check); ``nnloom sim --bench
sv`` runs the SystemVerilog bench under Verilator or Icarus without Python in the loop."""

from __future__ import annotations

from pathlib import Path

from rtl_gen.artefact import Artefact, atomic_write

__all__ = ["finish_artefact", "run_sv", "prepare_frameworks", "report_agreement"]


def finish_artefact(target: Path, model: Path | None = None) -> None:
    """Write the verification files into a freshly generated artefact, and copy an ONNX
    ``model`` into ``source/`` (what ``nnloom sim`` compares the RTL with)."""
    from sim.agreement import SOURCE_DIR
    from sim.bench_files import write_bench_files

    art = Artefact(target)
    if model is not None and Path(model).suffix == ".onnx" and Path(model).is_file():
        atomic_write(art.path / SOURCE_DIR / Path(model).name, Path(model).read_bytes())
    write_bench_files(art)


def run_sv(artefact: Path, simulator: str, *, bench: str, seed: int, limit: int,
           console) -> None:
    """``nnloom sim --bench sv``: write and run ``rtl/tb_<top>.sv``; a FAIL raises SimError."""
    from frontends.errors import UsageError
    from sim.runner import SimError
    from sim.svrun import run_sv_bench

    if bench != "sv":
        raise UsageError(f"unknown bench '{bench}'; choose cocotb or sv")
    if simulator not in ("verilator", "icarus"):
        raise UsageError(f"unknown simulator '{simulator}'; choose verilator or icarus")
    art = Artefact(artefact)
    with console.status(f"{art.name}: SystemVerilog bench under {simulator}"):
        result = run_sv_bench(art, simulator=simulator, seed=seed, limit=limit)
    if not result.passed:
        raise SimError(f"{result.summary}\n" + "\n".join(result.mismatches[:10])
                       + f"\nlog: {result.log}")
    console.print(f"[green]PASS[/] {result.summary.removeprefix('PASS ')}; log: {result.log}",
                  highlight=False)


def prepare_frameworks(artefact: Path, reference: Path | None, torch_spec: str | None):
    """The frameworks' outputs for the golden inputs (``sim.agreement``), computed before the
    simulation so a reference that does not fit fails with nothing written."""
    from sim.agreement import framework_outputs
    return framework_outputs(Artefact(artefact), reference=reference, torch_spec=torch_spec)


def report_agreement(artefact: Path, rtl_outputs: Path, prepared, console) -> list:
    """Print "RTL vs <framework>" lines, write ``sim/agreement.json``; raise SimError naming
    the first vector and output outside the tolerance of the user's quantized model."""
    import json

    import numpy as np

    from sim.agreement import TOLERANCE_CODES, agreements
    from sim.runner import SimError

    frameworks, note = prepared
    art = Artefact(artefact)
    if note:
        console.print(note, highlight=False, soft_wrap=True)
    if not frameworks:
        return []
    with np.load(rtl_outputs) as f:
        rtl = f["outputs"]
    output = (art.manifest.get("streams", {}).get("output", {}).get("tensor") or "output")
    found = agreements(rtl, frameworks, output)
    for a in found:
        console.print(a.line() + ("" if a.judged else " (float: reported, not judged)"),
                      highlight=False, soft_wrap=True)
    atomic_write(art.path / "sim" / "agreement.json",
                 json.dumps([a.as_dict() for a in found], indent=2) + "\n")
    bad = next((a for a in found if not a.passed), None)
    if bad is not None:
        raise SimError(f"the RTL of {art.name} equals its golden model but differs from "
                       f"{bad.framework} by more than {TOLERANCE_CODES} code: "
                       f"{bad.first_outside}; {bad.line()}")
    return found
