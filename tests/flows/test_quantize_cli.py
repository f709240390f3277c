"""``nnloom quantize`` and ``--calibrate``: a float model in, a QDQ model nnloom imports out,
its golden within a code of onnxruntime; ``inspect`` of a float model says how to quantize."""

import json

import numpy as np
import onnx
import pytest
from models import ort_unfused
from typer.testing import CliRunner

from flows.cli import app
from frontends import reference
from frontends.onnx_import import import_onnx

runner = CliRunner()


@pytest.fixture(scope="module")
def float_mlp(tmp_path_factory):
    import torch
    from torch import nn

    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("float")
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5)).eval()
    path = tmp / "mlp.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 16),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamo=False,
        opset_version=17,
    )
    rng = np.random.default_rng(0)
    data = tmp / "calib.npz"
    np.savez(data, x=rng.uniform(-1, 1, (64, 16)).astype(np.float32), y=rng.integers(0, 5, 64))
    return path, data


@pytest.mark.parametrize(
    "options, said",
    [
        ([], ["int8 activations", "per channel", "minmax"]),
        (
            ["--activations", "uint8", "--per-tensor", "--calibration", "percentile"],
            ["uint8 activations", "per tensor", "percentile (99.999 %)"],
        ),
        (["--calibration", "entropy", "--samples", "32"], ["entropy", "on 32 samples"]),
    ],
)
def test_quantize_writes_a_model_nnloom_imports(tmp_path, float_mlp, options, said):
    model, data = float_mlp
    out = tmp_path / "q.onnx"
    result = runner.invoke(
        app, ["quantize", str(model), "--data", str(data), "-o", str(out), *options]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert all(s in text for s in said), text
    graph = import_onnx(out)
    assert [n.op for n in graph.nodes] == ["dense", "dense"]
    assert str(graph.tensor(graph.inputs[0]).dtype) == ("uint8" if "uint8" in options else "int8")
    distinct = len(set(graph.nodes[0].weights["multiplier"].tolist()))
    assert (distinct == 1) == ("--per-tensor" in options)
    x = np.random.default_rng(5).uniform(-1, 1, (100, 16)).astype(np.float32)
    ours, theirs = reference.predict(graph, x), ort_unfused(out, x)
    step = float(graph.tensor(graph.outputs[0]).quant.scale)
    codes = np.abs(ours - theirs) / step
    assert codes.max() <= 1.001 and (codes > 0.5).mean() <= 0.02


def test_quantize_refuses_a_quantized_model_and_bad_data(tmp_path, float_mlp):
    model, data = float_mlp
    out = tmp_path / "q.onnx"
    assert (
        runner.invoke(app, ["quantize", str(model), "--data", str(data), "-o", str(out)]).exit_code
        == 0
    )
    result = runner.invoke(app, ["quantize", str(out), "--data", str(data)])
    assert result.exit_code == 1 and "already quantized" in result.output
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.full((4, 16), np.nan))
    result = runner.invoke(
        app, ["quantize", str(model), "--data", str(bad), "-o", str(tmp_path / "r.onnx")]
    )
    assert result.exit_code == 1 and "NaN" in result.output
    assert not (tmp_path / "r.onnx").exists()
    result = runner.invoke(
        app, ["quantize", str(model), "--data", str(data), "--calibration", "magic"]
    )
    assert result.exit_code == 1 and "minmax, percentile, entropy" in result.output


def test_inspect_lists_a_float_models_layers_and_says_how_to_quantize(float_mlp):
    model, _ = float_mlp
    result = runner.invoke(app, ["inspect", str(model)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Gemm" in text and "nnloom quantize" in text and "--calibrate" in text
    result = runner.invoke(app, ["inspect", str(model), "--json"])
    data = json.loads(result.output)
    assert data["float"] is True and [l["op"] for l in data["layers"]] == ["Gemm", "Relu", "Gemm"]


def test_generate_calibrate_quantizes_on_the_way_in(tmp_path, float_mlp):
    model, data = float_mlp
    out = tmp_path / "art"
    result = runner.invoke(
        app, ["generate", str(model), "--calibrate", str(data), "--data", str(data), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "minmax calibration" in " ".join(result.output.split())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["model"] == "mlp"
    kept = out / "model_qdq.onnx"
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(kept)).graph.node)
    with np.load(out / "vectors" / "golden.npz") as f:
        graph = import_onnx(kept)
        x = np.load(data)["x"]
        codes = reference.run(graph, reference.quantize_inputs(graph, x))[graph.outputs[0]]
        np.testing.assert_array_equal(f["outputs"][-len(x) :], codes)
