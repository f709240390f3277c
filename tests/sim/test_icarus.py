"""A second simulator: every engine's smallest design runs its cocotb bench under Icarus
Verilog (``iverilog -g2012``) too, bit-exact against the golden and cycle-exact against the
latency model as under Verilator (``test_runner.py`` compares the two runs directly)."""

import shutil

import pytest

from rtl_gen.artefact import Artefact
from sim.runner import run_sim

from .designs import make_design

pytestmark = [
    pytest.mark.sim,
    pytest.mark.skipif(
        shutil.which("iverilog") is None,
        reason="Icarus Verilog is not installed: apt-get install iverilog",
    ),
]

LIMIT = {"snn": 3, "smurf": 32}


# one design per engine in the sim tier; the loadable GEMM and ICELUT variants are slow
@pytest.mark.parametrize(
    "engine",
    [
        "dense",
        "gemm",
        "snn",
        "smurf",
        "srlut",
        pytest.param("gemm-loadable", marks=pytest.mark.slow),
        pytest.param("icelut", marks=pytest.mark.slow),
    ],
)
def test_cocotb_bench_under_icarus(mlp_onnx, engine, tmp_path):
    art = Artefact(make_design(engine, mlp_onnx, tmp_path / engine))
    limit = LIMIT.get(engine, 0)
    result = run_sim(art, simulator="icarus", limit=limit)
    assert result.passed, result.mismatches
    assert result.mismatching_elements == 0
    assert result.vectors == (limit or len(art.vectors()["inputs"]))


@pytest.mark.slow  # trains the CNN twin; Icarus runs about 4,000 of its cycles a second
def test_digits_cnn_under_icarus_equals_verilator(tmp_path):
    """The digits CNN twin on the ULX3S gemm overlay (22,083 cycles an inference): its first
    vectors bit-exact under Icarus, with the same outputs and cycles as under Verilator."""
    import numpy as np

    from flows.engines import get_engine
    from frontends.examples.tiny import make_tiny_twin

    made = make_tiny_twin("ic", tmp_path / "models")
    art = tmp_path / "cnn"
    get_engine("gemm").generate(
        made.quantized, art, board="ulx3s-85f", data=made.test_data, options={}
    )
    runs = {}
    for simulator in ("icarus", "verilator"):
        result = run_sim(art, simulator=simulator, limit=6)
        assert result.passed and result.mismatching_elements == 0, result.mismatches
        assert result.vectors == 6
        with np.load(result.outputs) as f:
            runs[simulator] = (f["outputs"].copy(), f["cycles"].copy())
    np.testing.assert_array_equal(runs["icarus"][0], runs["verilator"][0])
    np.testing.assert_array_equal(runs["icarus"][1], runs["verilator"][1])
