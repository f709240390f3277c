"""The simulated RTL of each engine family's example against the user's framework directly
(``nnloom generate`` with the example's test data, then ``nnloom sim``): onnxruntime on the
QDQ digits MLP (dense, gemm) and digits CNN (gemm), qonnx's executor on the 4-bit Brevitas
MLP (dense), onnxruntime on the ANN the SNN example converts exactly, numpy on a SMURF
function. The quantized models are judged (every element but 1 % within one code: README,
"The RTL against your framework"); argmax agreement must be at least 98 %. Slow: each trains its
example and simulates a few hundred vectors."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = [pytest.mark.sim, pytest.mark.slow]
runner = CliRunner()
SIMULATOR = "icarus" if shutil.which("iverilog") else "verilator"


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
