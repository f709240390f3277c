"""Verification beyond the cocotb bench, for ``nnloom generate/flow/sim``: every artefact
gets the self-checking SystemVerilog bench and VUnit script (``sim.bench_files``) and a copy
of the user's model (``source/``, for the framework-agreement check); ``nnloom sim --bench
sv`` runs the SystemVerilog bench under Verilator or Icarus without Python in the loop."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rtl_gen.artefact import Artefact, atomic_write

__all__ = ["finish_artefact", "run_sv", "source_model"]

SOURCE_DIR = "source"


def finish_artefact(target: Path, model: Path | None = None) -> None:
    """Write the verification files into a freshly generated artefact, and copy an ONNX
    ``model`` into ``source/`` (what ``nnloom sim`` compares the RTL with)."""
    from sim.bench_files import write_bench_files

    art = Artefact(target)
    if model is not None and Path(model).suffix == ".onnx" and Path(model).is_file():
        atomic_write(art.path / SOURCE_DIR / Path(model).name, Path(model).read_bytes())
    write_bench_files(art)


def source_model(art: Artefact) -> Path | None:
    """The ONNX model the artefact was generated from (``source/*.onnx``) when its hash is
    the manifest's ``source.sha256`` (or the manifest has none)."""
    folder = art.path / SOURCE_DIR
    models = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    if not models:
        return None
    want = (art.manifest.get("source") or {}).get("sha256")
    for path in models:
        if want is None or hashlib.sha256(path.read_bytes()).hexdigest() == want:
            return path
    return None


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
