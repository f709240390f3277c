"""The simulated RTL of each engine family's example against the user's framework directly
(``nnloom generate`` with the example's test data, then ``nnloom sim``): onnxruntime on the
QDQ digits MLP (dense, gemm) and digits CNN (gemm), qonnx's executor on the 4-bit Brevitas
MLP (dense), onnxruntime on the ANN the SNN example converts exactly, numpy on a SMURF
function. The quantized models are judged (every element but 1 % within one code: README,
"The RTL against your framework"); argmax agreement must be at least 98 %. Slow: each trains its
example and simulates a few hundred vectors."""

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = [pytest.mark.sim, pytest.mark.slow]
runner = CliRunner()
# Verilator: the SNN's 150 x 78,145 and the CNN's 579 x 22,083 cycles take an hour each under
# Icarus (about 4,000 cycles a second); test_icarus.py runs their engines there
SIMULATOR = "verilator"


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=250)


def _digits_mlp(out):
    from frontends.examples.digits_mlp import make_digits_mlp

    made = make_digits_mlp(out)
    return made.quantized, made.test_data


def _digits_cnn(out):
    from frontends.examples.tiny import make_tiny_twin

    made = make_tiny_twin("ic", out)
    return made.quantized, made.test_data


def _brevitas(out):
    pytest.importorskip("brevitas", reason="optional extra: pip install -e .[brevitas]")
    pytest.importorskip("qonnx", reason="optional extra: pip install -e .[brevitas]")
    from frontends.examples.digits_brevitas import make_digits_brevitas

    made = make_digits_brevitas(out)
    return made.model, made.test_data


CASES = {
    "digits MLP, dense": (_digits_mlp, "dense", "icebreaker"),
    "digits MLP, gemm": (_digits_mlp, "gemm", "icebreaker"),
    # the CNN twin's 38 KB of memories fit the ECP5's block RAM, not the UP5K's
    "digits CNN, gemm": (_digits_cnn, "gemm", "ulx3s-85f"),
    "Brevitas 4-bit MLP, dense": (_brevitas, "dense", "icebreaker"),
    "digits MLP as SNN": (_digits_mlp, "snn", "icebreaker"),
}


@pytest.mark.parametrize("case", CASES)
def test_rtl_agrees_with_the_framework(case, tmp_path):
    make, engine, board = CASES[case]
    model, data = make(tmp_path / "models")
    art = tmp_path / "art"
    result = _invoke(
        "generate", model, "--engine", engine, "--board", board, "--data", data, "-o", art
    )
    assert result.exit_code == 0, result.output
    result = _invoke("sim", art, "--simulator", SIMULATOR)
    print(case, "\n", result.output)
    assert result.exit_code == 0, result.output
    (judged,) = [a for a in json.loads((art / "sim" / "agreement.json").read_text()) if a["judged"]]
    assert judged["vectors"] > 300 and judged["worse"] <= 0.01 * judged["elements"]
    assert judged["argmax_agreement"] >= 0.98, judged


def test_smurf_unit_against_numpy(tmp_path):
    art = tmp_path / "tanh"
    assert _invoke("smurf", "tanh(2*x)", "--length", "1024", "-o", art).exit_code == 0
    result = _invoke("sim", art, "--simulator", SIMULATOR)
    print("SMURF tanh(2*x), L=1024\n", result.output)
    assert result.exit_code == 0, result.output
    (numpy,) = json.loads((art / "sim" / "agreement.json").read_text())
    assert numpy["framework"] == "numpy (tanh(2*x))" and not numpy["judged"]
    # a stochastic unit: most codes within a few of the function
    assert (numpy["equal"] + numpy["off_by_one"]) / numpy["elements"] >= 0.3, numpy


def test_srlut_engine_against_its_onnx_pattern_net(tmp_path):
    """An SR-LUT engine generated from a pattern net: the RTL equals the net sampled on the
    table grid (judged) and is reported against the float net ensemble."""
    import numpy as np

    from .test_lut_agreement import pattern_net

    net = pattern_net(tmp_path / "net.onnx")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 6, 7), dtype=np.uint8)
    frames[1], frames[2] = 0, 255
    np.savez(tmp_path / "frames.npz", x=frames)
    art = tmp_path / "srlut"
    result = _invoke(
        "lutnet",
        "generate",
        net,
        "--interval-bits",
        "6",
        "--data",
        tmp_path / "frames.npz",
        "-o",
        art,
    )
    assert result.exit_code == 0, result.output
    result = _invoke("sim", art, "--simulator", SIMULATOR)
    print("SR-LUT-S x4 net\n", result.output)
    assert result.exit_code == 0, result.output
    grid, ensemble = json.loads((art / "sim" / "agreement.json").read_text())
    assert grid["judged"] and grid["equal"] == grid["elements"] == 4 * 24 * 28
    assert not ensemble["judged"] and ensemble["max_diff_codes"] > 0
    assert grid["argmax_agreement"] is None  # an image, not class scores
