"""Defects of the command line a new user met (issue 16, item 9): each refusal is one line
naming the user's thing, exit 1, nothing written; no traceback."""

import numpy as np
import onnx
import pytest
from models import qdq_conv
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _one_error_line(result) -> str:
    text = (result.stderr or result.output).strip()
    lines = [l for l in text.splitlines() if l.strip()]
    assert result.exit_code == 1, result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    ), result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0]


def _mlp(path, *, outputs=("y",)):
    rng = np.random.default_rng(0)
    inits = {
        "s": np.float32(0.05),
        "z": np.int8(0),
        "sw": np.float32(0.01),
        "sy": np.float32(0.2),
        "zy": np.int8(0),
        "w": rng.integers(-127, 128, (4, 6)).astype(np.int8),
        "w2": rng.integers(-127, 128, (3, 4)).astype(np.int8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"]),
        helper.make_node("Gemm", ["xd", "wd"], ["g"], name="fc1", transB=1),
        helper.make_node("QuantizeLinear", ["g", "sy", "zy"], ["gq"]),
        helper.make_node("DequantizeLinear", ["gq", "sy", "zy"], ["hidden"]),
        helper.make_node("DequantizeLinear", ["w2", "sw"], ["w2d"]),
        helper.make_node("Gemm", ["hidden", "w2d"], ["g2"], name="fc2", transB=1),
        helper.make_node("QuantizeLinear", ["g2", "sy", "zy"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"]),
    ]
    shapes = {"y": [1, 3], "hidden": [1, 4]}
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path)
    )
    return path


@pytest.mark.parametrize("engine", ["dense", "gemm"])
def test_two_graph_outputs_are_refused_by_name(tmp_path, engine):
    model = _mlp(tmp_path / "m.onnx", outputs=("y", "hidden"))
    result = runner.invoke(
        app, ["generate", str(model), "-o", str(tmp_path / "out"), "--engine", engine]
    )
    line = _one_error_line(result)
    assert "2 outputs ('y', 'hidden')" in line, line
    assert not (tmp_path / "out").exists()


def test_inspect_and_generate_on_a_graph_without_outputs(tmp_path):
    model = _mlp(tmp_path / "m.onnx", outputs=())
    for args in (["inspect", str(model)], ["generate", str(model), "-o", str(tmp_path / "o")]):
        line = _one_error_line(runner.invoke(app, args))
        assert "no outputs" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "x, y, needle",
    [
        (np.array([[0.0, np.nan, 1, 2, 3, 4]]), None, "NaN"),
        (np.ones((2, 6)) * (1 + 1j), None, "complex"),
        (np.array([["a"] * 6, ["b"] * 6]), None, "element type"),
        (np.ones((2, 6)), np.array(["cat", "dog"]), "labels"),
    ],
)
@pytest.mark.parametrize("engine", ["dense", "gemm"])
def test_bad_data_files_are_refused_by_name(tmp_path, x, y, needle, engine):
    model = _mlp(tmp_path / "m.onnx")
    data = tmp_path / "calib.npz"
    np.savez(data, x=x, **({} if y is None else {"y": y}))
    result = runner.invoke(
        app,
        [
            "generate",
            str(model),
            "-o",
            str(tmp_path / "out"),
            "--data",
            str(data),
            "--engine",
            engine,
        ],
    )
    line = _one_error_line(result)
    assert "calib.npz" in line and needle in line, line
    assert not (tmp_path / "out").exists()


def test_inf_and_huge_data_are_accepted_and_saturate(tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    data = tmp_path / "d.npz"
    np.savez(data, x=np.array([[np.inf, -np.inf, 1e30, -1e30, 0, 1]]), y=np.array([1]))
    result = runner.invoke(
        app, ["generate", str(model), "-o", str(tmp_path / "out"), "--data", str(data)]
    )
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out" / "vectors" / "golden.npz") as f:
        np.testing.assert_array_equal(f["inputs"][-1], [127, -128, 127, -128, 0, 20])


def test_dense_engine_refuses_a_conv_model_before_computing_vectors(tmp_path, monkeypatch):
    from frontends import vectors

    def boom(*a, **k):
        raise AssertionError("golden vectors computed before the engine check")

    monkeypatch.setattr(vectors, "golden_vectors", boom)
    model = qdq_conv(
        tmp_path / "big.onnx", channels=3, out_channels=8, hw=256, kernel=3, name="conv"
    )
    result = runner.invoke(
        app, ["generate", str(model), "-o", str(tmp_path / "out"), "--engine", "dense"]
    )
    line = _one_error_line(result)
    assert "node 'conv'" in line and "dense engine" in line, line


def test_scales_too_small_for_the_gemm_shift_field_are_refused(tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    m = onnx.load(str(model))
    for t in m.graph.initializer:
        if t.name in ("s", "sw"):
            t.CopyFrom(numpy_helper.from_array(np.float32(1e-12), t.name))
    onnx.save(m, str(model))
    result = runner.invoke(
        app, ["generate", str(model), "-o", str(tmp_path / "out"), "--engine", "gemm"]
    )
    line = _one_error_line(result)
    assert "node 'fc1'" in line and "shift" in line, line


def test_manifest_records_the_output_dequantizes_own_quantization(tmp_path):
    model = _mlp(tmp_path / "m.onnx")
    m = onnx.load(str(model))
    m.graph.initializer.extend(
        [
            numpy_helper.from_array(np.float32(0.375), "so"),
            numpy_helper.from_array(np.int8(-7), "zo"),
        ]
    )
    last = m.graph.node[-1]
    last.input[1], last.input[2] = "so", "zo"
    onnx.save(m, str(model))
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", str(model), "-o", str(out), "--engine", "dense"])
    assert result.exit_code == 0, result.output
    import json

    quant = json.loads((out / "manifest.json").read_text())["quant"]["output"]
    assert {k: quant[k] for k in ("scale", "zero_point")} == {"scale": 0.375, "zero_point": -7}
