"""A VUnit run script for an artefact's SystemVerilog bench: ``rtl/run.py``.

VUnit drives SystemVerilog testbenches on Questa/ModelSim, Riviera-PRO/Active-HDL and
Incisive/Xcelium; its open simulators (GHDL, NVC) take VHDL only. The script compiles the
artefact's Verilog and ``rtl/tb_<top>.sv`` with ``VUNIT`` defined (the bench's test suite,
one test ``outputs_match_golden``) and points the bench at ``vectors/``. ``python run.py
--list`` lists the test without a simulator; ``python run.py`` runs it on the simulator VUnit
finds (``VUNIT_SIMULATOR`` picks one).
"""

from __future__ import annotations

from pathlib import Path

from rtl_gen.artefact import Artefact, atomic_write

from .svbench import bench_name

__all__ = ["write_vunit_script"]

_SCRIPT = '''\
#!/usr/bin/env python3
"""VUnit run script for {bench}, the self-checking bench of {top} (written by nnloom).

VUnit runs SystemVerilog testbenches on Questa/ModelSim, Riviera-PRO/Active-HDL and
Incisive/Xcelium (pick one with VUNIT_SIMULATOR); GHDL and NVC take VHDL only.
  python run.py --list     lists the bench's tests (no simulator needed)
  python run.py            runs them; needs `pip install vunit-hdl`
Without VUnit, Icarus or Verilator run the bench directly (see the head of {bench}.sv).
"""

from pathlib import Path

from vunit import VUnit

HERE = Path(__file__).resolve().parent
SOURCES = {sources!r}

vu = VUnit.from_argv(compile_builtins=False)
vu.add_verilog_builtins()
lib = vu.add_library("nnloom")
for name in SOURCES:
    lib.add_source_file(HERE / name)
lib.add_source_file(HERE / "{bench}.sv", defines={{"VUNIT": "1"}})
lib.test_bench("{bench}").set_parameter("VECTORS", str(HERE.parent / "vectors"))
vu.main()
'''


def write_vunit_script(artefact: Artefact | str | Path) -> Path:
    """Write ``rtl/run.py`` for the artefact's bench; returns its path."""
    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    path = artefact.path / "rtl" / "run.py"
    atomic_write(
        path,
        _SCRIPT.format(
            bench=bench_name(artefact), top=artefact.top, sources=list(artefact.manifest["rtl"])
        ),
    )
    path.chmod(0o755)
    return path
