"""``nnloom sim`` compares the simulated RTL with the user's framework: onnxruntime on the
source ONNX file (judged: within one code), a float ONNX (``--reference``) and a PyTorch
module (``--torch``), reported. An RTL that equals a wrong golden fails; a reference that
does not fit is one line with nothing written."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
SIMULATOR = "icarus" if shutil.which("iverilog") else "verilator"

TORCH_FACTORY = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)   # the weights tests/models.py qdq_mlp exported
    return nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))
"""


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=250)


@pytest.fixture(scope="module")
def generated(mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("agree") / "mlp"
    result = _invoke("generate", mlp_onnx, "--engine", "dense", "-o", out)
    assert result.exit_code == 0, result.output
    return out


def _fresh(generated, tmp_path):
    target = tmp_path / "mlp"
    shutil.copytree(generated, target, ignore=shutil.ignore_patterns("sim"))
    return target


@pytest.mark.sim
def test_sim_reports_onnxruntime_float_and_torch_agreement(generated, mlp_onnx, tmp_path):
    art = _fresh(generated, tmp_path)
    (tmp_path / "net.py").write_text(TORCH_FACTORY)
    float_onnx = mlp_onnx.with_name("mlp_float.onnx")
    result = _invoke(
        "sim",
        art,
        "--simulator",
        SIMULATOR,
        "--reference",
        float_onnx,
        "--torch",
        f"{tmp_path / 'net.py'}:make",
    )
    assert result.exit_code == 0, result.output
    assert "RTL = golden: 39 vectors bit-exact" in result.output
    assert (
        "RTL vs onnxruntime (mlp.onnx): 195/195 elements equal (100.00 %), 0 off by one "
        "code, 0 worse; max difference 0 codes; argmax agrees on 100.00 %"
    ) in result.output
    figures = json.loads((art / "sim" / "agreement.json").read_text())
    assert [f["judged"] for f in figures] == [True, False, False]
    # the float ONNX and the PyTorch module are one model: the same figures
    for key in ("equal", "off_by_one", "worse", "argmax_agreement"):
        assert figures[1][key] == figures[2][key], key
    assert abs(figures[1]["max_diff_codes"] - figures[2]["max_diff_codes"]) < 1e-3
    assert figures[1]["equal"] < 195 and figures[1]["argmax_agreement"] >= 0.9


def _nothing_written(art):
    assert not (art / "sim").exists()


def test_a_reference_of_another_shape_is_one_line(generated, tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
    from models import qdq_mlp

    other = qdq_mlp(tmp_path / "other.onnx", sizes=(12, 5))
    art = _fresh(generated, tmp_path)
    result = _invoke("sim", art, "--reference", other.with_name("other_float.onnx"))
    assert result.exit_code == 1
    assert (
        "other_float.onnx: input 'x' takes 12 values [1, 12] per sample; the artefact's "
        "input has 16" in result.output
    )
    _nothing_written(art)
    result = _invoke("sim", art, "--reference", tmp_path / "missing.onnx")
    assert result.exit_code == 1 and "missing.onnx: no such file" in result.output
    _nothing_written(art)


def test_a_torch_module_that_does_not_import_is_one_line(generated, tmp_path):
    art = _fresh(generated, tmp_path)
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    result = _invoke("sim", art, "--torch", f"{tmp_path / 'broken.py'}:make")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "broken.py does not import (ModuleNotFoundError" in result.output
    result = _invoke("sim", art, "--torch", f"{tmp_path / 'nope.py'}:make")
    assert result.exit_code == 1 and "no such file" in result.output
    (tmp_path / "net.py").write_text(TORCH_FACTORY)
    result = _invoke("sim", art, "--torch", f"{tmp_path / 'net.py'}:missing")
    assert result.exit_code == 1 and "has no callable 'missing'" in result.output
    _nothing_written(art)


@pytest.mark.sim
def test_rtl_equal_to_a_wrong_golden_fails(mlp_onnx, tmp_path, monkeypatch):
    """An importer that gets a bias wrong: RTL and golden both come from its IR and agree,
    onnxruntime does not; ``nnloom sim`` must exit 1 naming the vector and the output."""
    import frontends.onnx_import as onnx_import

    real = onnx_import.import_onnx

    def wrong_bias(path, *args, **kwargs):
        graph = real(path, *args, **kwargs)
        last = graph.nodes[-1]
        bias = (
            np.array(last.weights["bias"])
            + (1 << last.attrs["shift"]) // int(np.max(last.weights["multiplier"])) * 3
        )
        nodes = (
            *graph.nodes[:-1],
            dataclasses.replace(last, weights={**last.weights, "bias": bias}),
        )
        return dataclasses.replace(graph, nodes=nodes)

    monkeypatch.setattr(onnx_import, "import_onnx", wrong_bias)
    art = tmp_path / "wrong"
    assert _invoke("generate", mlp_onnx, "--engine", "dense", "-o", art).exit_code == 0
    monkeypatch.undo()
    result = _invoke("sim", art, "--simulator", SIMULATOR)
    assert result.exit_code == 1, result.output
    assert "RTL = golden: 39 vectors bit-exact" in result.output
    assert (
        "equals its golden model but differs from onnxruntime (mlp.onnx) beyond the "
        "tolerance in " in result.output
    )
    assert "(at most 1% may): first vector 0, output 'y_QuantizeLinear_Output'[" in result.output


@pytest.mark.sim
def test_flow_prints_the_agreement_before_building(mlp_onnx, tmp_path, monkeypatch):
    import flows.cli as cli
    from frontends.errors import UsageError

    def stop(*args, **kwargs):
        raise UsageError("stop before the build")

    monkeypatch.setattr(cli, "_build", stop)
    float_onnx = mlp_onnx.with_name("mlp_float.onnx")
    result = _invoke(
        "flow",
        mlp_onnx,
        "--engine",
        "dense",
        "-o",
        tmp_path / "f",
        "--simulator",
        SIMULATOR,
        "--reference",
        float_onnx,
    )
    assert result.exit_code == 1 and "stop before the build" in result.output
    assert "2/3 sim RTL = golden: 39 vectors bit-exact" in result.output
    assert "RTL vs onnxruntime (mlp.onnx): 195/195 elements equal" in result.output
    assert "RTL vs float onnxruntime (mlp_float.onnx):" in result.output


def test_flow_refuses_a_reference_of_another_shape_before_generating(mlp_onnx, tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
    from models import qdq_mlp

    other = qdq_mlp(tmp_path / "m" / "other.onnx", sizes=(16, 7))
    result = _invoke(
        "flow",
        mlp_onnx,
        "--engine",
        "dense",
        "-o",
        tmp_path / "f",
        "--reference",
        other.with_name("other_float.onnx"),
    )
    assert result.exit_code == 1
    assert (
        "does not match mlp.onnx: it gives 7 output values per sample, the model 5" in result.output
    )
    assert not (tmp_path / "f").exists()


def test_an_accumulator_output_is_judged_per_input_code():
    """A last layer's float output leaves as its accumulator: one code more or less in its
    input moves it by up to a weight, so the tolerance scales with ``step``."""
    from sim.agreement import compare_codes

    rtl = np.array([[1000, -500]])
    ref = np.array([[1090.0, -500.0]])
    assert not compare_codes(rtl, ref, framework="f", output="y").passed
    assert compare_codes(rtl, ref, framework="f", output="y", step=127).passed
    assert not compare_codes(rtl, ref, framework="f", output="y", step=64).passed


def test_one_percent_of_the_elements_may_be_further_than_one_code():
    from sim.agreement import compare_codes

    rtl = np.zeros((100, 10), dtype=np.int64)
    ref = rtl.astype(float)
    ref[3, :] = 2
    ref[5, 1] = 1
    a = compare_codes(rtl, ref, framework="ort", output="y")
    assert (a.equal, a.off_by_one, a.worse, a.max_diff) == (989, 1, 10, 2)
    assert a.passed and a.first_outside.startswith("vector 3, output 'y'[0]: RTL 0, ort 2")
    ref[7, 0] = -3
    a = compare_codes(rtl, ref, framework="ort", output="y")
    assert a.worse == 11 and not a.passed and a.max_diff == 3
    assert not compare_codes(rtl, ref, framework="f", output="y", judged=True).passed
    assert compare_codes(rtl, ref, framework="f", output="y", judged=False).passed
