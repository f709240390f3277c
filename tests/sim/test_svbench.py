"""The self-checking SystemVerilog bench (``rtl/tb_<top>.sv``) of every engine's smallest
design under Icarus and Verilator with no Python in the loop, mutants of the Verilog caught
by it and by the cocotb bench, and the VUnit script listing the bench's test."""

import re
import shutil
import subprocess
import sys

import pytest

from rtl_gen.artefact import Artefact
from sim.bench_files import write_bench_files
from sim.runner import run_sim
from sim.svrun import run_sv_bench

from .designs import ENGINES, make_design

ICARUS = shutil.which("iverilog") is not None
needs_icarus = pytest.mark.skipif(
    not ICARUS, reason="Icarus Verilog is not installed: apt-get install iverilog"
)
# The SNN's inferences take thousands of cycles each: four vectors keep it short.
LIMIT = {"snn": 4}


@pytest.fixture(scope="module")
def designs(mlp_onnx, tmp_path_factory):
    root = tmp_path_factory.mktemp("designs")
    made = {}

    def get(engine):
        if engine not in made:
            art = Artefact(make_design(engine, mlp_onnx, root / engine))
            write_bench_files(art)
            made[engine] = art
        return made[engine]

    return get


def _fresh(art, tmp_path):
    target = tmp_path / art.path.name
    shutil.copytree(art.path, target, ignore=shutil.ignore_patterns("sim"))
    return Artefact(target)


def _pass_line(result, art, limit):
    n = limit or len(art.vectors()["inputs"])
    assert result.passed, (result.summary, result.mismatches)
    match = re.match(
        r"PASS tb_\w+: (\d+) vectors, (\d+) output words equal the golden "
        r"\(seed 1, (\d+) cycles\)",
        result.summary,
    )
    assert match and int(match[1]) == n, result.summary
    return int(match[3])


@pytest.mark.sim
@needs_icarus
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(e, marks=pytest.mark.slow) if e in ("gemm-loadable", "icelut") else e
        for e in ENGINES
    ],
)
def test_sv_bench_passes_under_icarus(designs, engine, tmp_path):
    art = _fresh(designs(engine), tmp_path)
    _pass_line(
        run_sv_bench(art, simulator="icarus", limit=LIMIT.get(engine, 0)), art, LIMIT.get(engine, 0)
    )


def _both(art, engine):
    limit = LIMIT.get(engine, 0)
    cycles = [
        _pass_line(run_sv_bench(art, simulator=sim, limit=limit), art, limit)
        for sim in ("verilator", "icarus")
    ]
    # the bench's stall pattern is its own xorshift: same seed, same cycles in both
    assert cycles[0] == cycles[1], f"Verilator took {cycles[0]} cycles, Icarus {cycles[1]}"


@pytest.mark.sim
@needs_icarus
def test_sv_bench_same_under_verilator_and_icarus(designs, tmp_path):
    _both(_fresh(designs("dense"), tmp_path), "dense")


@pytest.mark.sim
@pytest.mark.slow
@needs_icarus
@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "dense"])
def test_sv_bench_same_under_verilator_and_icarus_every_engine(designs, engine, tmp_path):
    _both(_fresh(designs(engine), tmp_path), engine)


MUTANTS = {
    # the bias add of the requantizer turned into a subtraction
    "flipped operator": (
        "$signed(r1_acc) + $signed(rd_p__data",
        "$signed(r1_acc) - $signed(rd_p__data",
    ),
    # the MAC loop ends one step early
    "off-by-one counter": (" = k == k_last;", " = k + 1'h1 == k_last;"),
}


@pytest.mark.sim
@needs_icarus
@pytest.mark.parametrize("mutant", MUTANTS)
def test_a_mutant_fails_the_sv_and_the_cocotb_bench(designs, mutant, tmp_path):
    art = _fresh(designs("dense"), tmp_path)
    verilog = art.rtl_sources[0]
    old, new = MUTANTS[mutant]
    text = verilog.read_text()
    assert text.count(old) >= 1
    verilog.write_text(text.replace(old, new, 1))
    sv = run_sv_bench(art, simulator="icarus")
    assert not sv.passed and sv.summary.startswith("FAIL"), sv.summary
    assert sv.mismatches and sv.mismatches[0].startswith("MISMATCH vector ")
    cocotb = run_sim(art, simulator="icarus")
    assert not cocotb.passed and cocotb.mismatching_elements > 0


@needs_icarus
def test_vunit_lists_the_bench_test(designs, tmp_path):
    pytest.importorskip("vunit", reason="VUnit is missing: pip install vunit-hdl")
    art = designs("dense")
    script = art.path / "rtl" / "run.py"
    assert "from vunit import VUnit" in script.read_text()
    done = subprocess.run(
        [sys.executable, str(script), "--list", "-o", str(tmp_path / "vu")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nnloom.tb_nnloom_dense.outputs_match_golden" in done.stdout
    assert "Listed 1 tests" in done.stdout


@pytest.mark.sim
@pytest.mark.slow  # the HKLUT engine's Verilator build and the Icarus run: minutes
@needs_icarus
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_hklut_sv_bench_and_vunit_script(designs, family, tmp_path):
    """The HKLUT artefact's bench (on the UP5K its MSB tables go through the load port
    first) passes under Icarus and Verilator with the same cycles, and its VUnit script
    lists its test."""
    art = _fresh(designs(f"hklut-{family}"), tmp_path)
    # the UP5K's SPRAM tables go in through the load stream first: its words and its driver
    loads = (art.path / "vectors" / "load.hex").is_file()
    bench = (art.path / "rtl" / "tb_nnloom_lutnet.sv").read_text()
    assert loads == ("load__valid = 1'b1" in bench) == (family == "ice40")
    _both(art, "hklut")
    pytest.importorskip("vunit", reason="VUnit is missing: pip install vunit-hdl")
    done = subprocess.run(
        [sys.executable, str(art.path / "rtl" / "run.py"), "--list", "-o", str(tmp_path / "vu")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nnloom.tb_nnloom_lutnet.outputs_match_golden" in done.stdout
