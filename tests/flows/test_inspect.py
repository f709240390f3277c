"""`nnloom inspect`: the layer table, JSON facts, and unsupported ops named with the way out."""

import json

import numpy as np
import onnx
from models import QonnxBuilder
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _qonnx_mlp(tmp_path):
    rng = np.random.default_rng(0)
    b = QonnxBuilder()
    x = b.quant("x", 1 / 64, 8)
    w1 = rng.normal(0, 0.4, (16, 12))
    w1[:, 3] = 0  # a pruned output channel
    w1[5, :] = 0  # an input row nobody reads
    h = b.quant(
        b.node("Relu", [b.node("MatMul", [x, b.quant(b.init(w1), 0.1, 4, narrow=1)])]),
        0.25,
        4,
        signed=0,
    )
    w2 = b.quant(b.init(rng.normal(0, 0.5, (12, 6))), 0.4, 2, narrow=1)
    y = b.quant(b.node("Sigmoid", [b.quant(b.node("MatMul", [h, w2]), 0.1, 8)]), 1 / 128, 8)
    path, _ = b.save(tmp_path / "mlp.onnx", y, [1, 16], [1, 6])
    return path


def test_inspect_json_facts(tmp_path):
    result = runner.invoke(app, ["inspect", str(_qonnx_mlp(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    first, second, third = data["layers"]
    assert first["weight_dtype"] == "int4n" and first["weight_bits"] <= 4
    assert first["pruned_outputs"] == [3] and first["pruned_inputs"] == [5]
    assert first["macs"] == 16 * 12 and first["output_dtype"] == "uint4"
    assert first["param_bytes"] == 16 * 12 * 4 // 8 + 4 * 12
    assert 0.15 < first["sparsity"] < 0.4  # the pruned row and column, and small weights
    assert "dense" in first["engines"] and "gemm" in first["engines"]
    assert second["ternary"] and second["weight_dtype"] == "ternary"
    assert third["op"] == "nonlinear" and third["engines"] == ["snn", "smurf"]
    assert data["unsupported"] == [] and data["error"] is None


def test_inspect_table(tmp_path):
    result = runner.invoke(app, ["inspect", str(_qonnx_mlp(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "3 layers, 270 MACs, 186 parameter bytes" in result.output


def test_inspect_names_unsupported_ops(tmp_path):
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dq"),
        helper.make_node("Softsign", ["d"], ["e"], name="odd"),
        helper.make_node("QuantizeLinear", ["e", "s", "z"], ["y"], name="q2"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4])],
        [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), path
    )
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 1
    assert "unsupported: node 'odd' (Softsign, opset 21): no handler for this op" in result.output
    assert "op Softsign is not supported; supported ops:" in result.output


def test_inspect_csv_is_one_parseable_row_a_layer(tmp_path):
    import csv
    import io

    result = runner.invoke(app, ["inspect", str(_qonnx_mlp(tmp_path)), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["op"] for r in rows] == ["dense", "dense", "nonlinear"]
    first = rows[0]
    assert first["input_shape"] == "16" and first["output_shape"] == "12"
    assert int(first["macs"]) == 16 * 12 and first["pruned_outputs"] == "1"
    assert first["engines"].split() == ["dense", "gemm", "snn"]
    assert rows[1]["weights"] == "ternary (ternary)" and rows[1]["input_dtype"] == "uint4"
    assert rows[2]["engines"] == "snn smurf" and rows[2]["sparsity"] == ""


def test_inspect_format_json_equals_the_json_alias(tmp_path):
    path = str(_qonnx_mlp(tmp_path))
    one = runner.invoke(app, ["inspect", path, "--format", "json"])
    two = runner.invoke(app, ["inspect", path, "--json"])
    assert one.exit_code == two.exit_code == 0
    assert json.loads(one.output) == json.loads(two.output)


def test_inspect_table_is_not_wrapped_into_a_pipe(tmp_path):
    """Not on a terminal, a row of the table stays on one line (however wide)."""
    result = runner.invoke(app, ["inspect", str(_qonnx_mlp(tmp_path))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(l for l in lines if "layer" in l and "engines" in l)
    assert "pruned out/in" in header and "act in → out" in header
    rows = [l for l in lines if "MatMul→dense" in l]
    assert len(rows) == 2
    assert "16 → 12" in rows[0] and "int4n (4 b used)" in rows[0] and "dense, gemm, snn" in rows[0]


def test_inspect_refuses_an_unknown_format_by_name(tmp_path):
    result = runner.invoke(app, ["inspect", str(_qonnx_mlp(tmp_path)), "--format", "xml"])
    assert result.exit_code == 1
    assert "--format xml: choose table, json, csv" in result.output
