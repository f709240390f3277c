"""The verification files every artefact carries beside its Verilog, for users without
Python: the self-checking SystemVerilog bench with its vectors (``sim.svbench``) and the
VUnit run script (``sim.vunit_script``). Written from the artefact folder alone."""

from __future__ import annotations

from pathlib import Path

from rtl_gen.artefact import Artefact

from .svbench import write_sv_bench
from .vunit_script import write_vunit_script

__all__ = ["write_bench_files"]


def write_bench_files(artefact: Artefact | str | Path) -> list[Path]:
    """Write ``rtl/tb_<top>.sv``, ``vectors/*.hex`` and ``rtl/run.py``; returns their paths.
    An artefact without element streams in its manifest gets none (an empty list)."""
    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    streams = artefact.manifest.get("streams") or {}
    if "input" not in streams or "output" not in streams:
        return []
    return [*write_sv_bench(artefact), write_vunit_script(artefact)]
