"""The verification files every artefact carries beside its Verilog, for users without
Python: the self-checking SystemVerilog bench with its vectors (``sim.svbench``) and the
VUnit run script (``sim.vunit_script``). Written from the artefact folder alone."""

from __future__ import annotations

from pathlib import Path

from rtl_gen.artefact import Artefact, atomic_write

from .svbench import write_sv_bench
from .vunit_script import write_vunit_script

__all__ = ["write_bench_files", "finish_artefact"]


def write_bench_files(artefact: Artefact | str | Path) -> list[Path]:
    """Write ``rtl/tb_<top>.sv``, ``vectors/*.hex`` and ``rtl/run.py``; returns their paths.
    An artefact without element streams in its manifest gets none (an empty list)."""
    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    streams = artefact.manifest.get("streams") or {}
    if "input" not in streams or "output" not in streams:
        return []
    return [*write_sv_bench(artefact), write_vunit_script(artefact)]


def finish_artefact(target: Path, model: Path | None = None) -> None:
    """Write the verification files into a freshly generated artefact, and copy an ONNX
    ``model`` (or a LUT engine's tables: SR-LUT .npy, ICELUT .npz, an HKLUT or ICELUT net
    folder) into ``source/`` (what ``nnloom sim`` compares the RTL with, and draws new
    vectors from)."""
    from .agreement import SOURCE_DIR

    art = Artefact(target)
    model = Path(model) if model is not None else None
    if model is not None and model.suffix in (".onnx", ".npy", ".npz") and model.is_file():
        atomic_write(art.path / SOURCE_DIR / model.name, model.read_bytes())
    elif model is not None and model.is_dir():  # an HKLUT table folder, an ICELUT net folder
        for f in sorted(model.rglob("*")):
            if f.is_file():
                atomic_write(
                    art.path / SOURCE_DIR / model.name / f.relative_to(model), f.read_bytes()
                )
    write_bench_files(art)
