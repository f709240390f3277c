"""A Tanh node of an imported QDQ model becomes a SMURF unit fitted to the node's table."""

import numpy as np
import onnx
from onnx import TensorProto, helper

from frontends.onnx_import import import_onnx
from rtl_gen.smurf.from_ir import nonlinear_nodes, plan_for_node


def _qdq_tanh(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "si", "z"], ["q"], name="qin"),
        helper.make_node("DequantizeLinear", ["q", "si", "z"], ["d"], name="dqin"),
        helper.make_node("Tanh", ["d"], ["t"], name="act"),
        helper.make_node("QuantizeLinear", ["t", "so", "z"], ["q2"], name="qout"),
        helper.make_node("DequantizeLinear", ["q2", "so", "z"], ["y"], name="dqout"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [x],
        [y],
        [
            helper.make_tensor("si", TensorProto.FLOAT, [], [1 / 32]),
            helper.make_tensor("so", TensorProto.FLOAT, [], [1 / 127]),
            helper.make_tensor("z", TensorProto.INT8, [], [0]),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.save(model, path)
    return path


def test_tanh_node_becomes_a_smurf_unit(tmp_path):
    graph = import_onnx(_qdq_tanh(tmp_path / "tanh.onnx"))
    (node,) = nonlinear_nodes(graph)
    plan, fit = plan_for_node(graph, node, radix=8)
    assert plan.input_bits == 8 and plan.ranges[0] == (-4.0, 4.0)
    # tanh over [-4, 4] at N = 8 is tanh((N/2) artanh) territory: a close fit, independent
    # of the node's own 1/127 output step.
    assert fit.rmse[0] < 0.02
    codes = np.arange(256)[:, None]
    x = plan.decode_inputs(codes)[:, 0]
    y = plan.decode_outputs(plan.analytic(codes) * plan.length)[:, 0]
    assert np.sqrt(((y - np.tanh(x)) ** 2).mean()) < 0.02


def test_generate_engine_smurf(tmp_path):
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    model = _qdq_tanh(tmp_path / "tanh.onnx")
    result = CliRunner().invoke(
        app, ["generate", str(model), "--engine", "smurf", "-o", str(tmp_path / "art")]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["engine"] == "smurf" and manifest["streams"]["output"]["names"] == [
        "act (tanh)"
    ]
