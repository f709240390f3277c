"""QDQ import and the golden model against onnxruntime.

The reference is onnxruntime with graph optimizations off: it runs QuantizeLinear,
DequantizeLinear and the float Gemm one by one, which is what the ONNX standard defines.
onnxruntime's default optimizations fuse DQ-Gemm-Q into com.microsoft QGemm; in onnxruntime
1.32 that fused kernel differs from the unfused graph by up to ~30 output codes on these
models (and is further from the float model than the unfused graph), so it is not a reference.

Tolerance: onnxruntime requantizes with a float32 multiplier and rounds half to even; the
golden uses a 15-bit fixed-point multiplier and rounds half up. Both differ from the exact
result by at most half an LSB, so outputs may differ by one code (never more) and only where
the exact value is within 2**-15 relative of a rounding tie; we require at most 1 LSB
everywhere and >= 99% of argmax decisions equal.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models import qdq_mlp, qdq_then
from onnx import TensorProto, helper

from frontends import reference
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx


def _ort(path, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])


def _compare(path, x):
    graph = import_onnx(path)
    golden = reference.predict(graph, x)
    ours = _ort(path, x)
    lsb = float(graph.tensor(graph.outputs[0]).quant.scale)
    err = np.abs(golden - ours).max() / lsb
    agree = (golden.argmax(1) == ours.argmax(1)).mean()
    return graph, err, agree


def test_ir_keeps_onnx_names_and_types(mlp_graph):
    assert [n.name for n in mlp_graph.nodes] == ["/0/Gemm", "/2/Gemm"]
    assert [n.source_op for n in mlp_graph.nodes] == ["Gemm", "Gemm"]
    # onnxruntime drops the Relu into the output quantizer: codes clamp at the real zero.
    first = mlp_graph.nodes[0]
    assert first.attrs["lo"] == first.attrs["output_zero_point"]
    t = mlp_graph.tensor(mlp_graph.inputs[0])
    assert t.shape == (16,) and str(t.dtype) == "int8"
    assert mlp_graph.tensor(mlp_graph.outputs[0]).shape == (5,)


def test_golden_matches_onnxruntime(mlp_onnx):
    x = np.random.default_rng(1).uniform(-1, 1, (500, 16)).astype(np.float32)
    _, err, agree = _compare(mlp_onnx, x)
    assert err <= 1.0 + 1e-4
    assert agree >= 0.99


@pytest.mark.parametrize("per_channel,activation", [(True, "int8"), (False, "uint8")])
def test_golden_matches_onnxruntime_variants(tmp_path, per_channel, activation):
    path = qdq_mlp(
        tmp_path / "m.onnx",
        sizes=(10, 7, 4),
        per_channel=per_channel,
        activation=activation,
        seed=5,
    )
    x = np.random.default_rng(2).uniform(-1, 1, (300, 10)).astype(np.float32)
    graph, err, agree = _compare(path, x)
    assert err <= 1.0 + 1e-4 and agree >= 0.99
    if activation == "uint8":
        assert str(graph.tensor(graph.inputs[0]).dtype) == "uint8"


def test_input_quantization_equals_onnxruntime(mlp_onnx, tmp_path):
    graph = import_onnx(mlp_onnx)
    q = graph.tensor(graph.inputs[0]).quant
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    g = helper.make_graph(
        [node],
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [None, 16])],
        [
            helper.make_tensor("s", TensorProto.FLOAT, [], [float(q.scale)]),
            helper.make_tensor("z", TensorProto.INT8, [], [int(q.zero_point)]),
        ],
    )
    path = tmp_path / "q.onnx"
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), path
    )
    x = np.random.default_rng(0).uniform(-3, 3, (200, 16)).astype(np.float32)
    x[0, :4] = [0.5 * float(q.scale), 1.5 * float(q.scale), -2.5 * float(q.scale), 0]  # ties
    ours = reference.quantize_inputs(graph, x)
    theirs = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    assert (ours == theirs).all()


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"nope\.onnx: no such file$"):
        import_onnx(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\x00\xffthis is not a protobuf" * 10)
    with pytest.raises(ModelError, match=r"junk\.onnx: not (a readable )?(an )?ONNX model"):
        import_onnx(p)


def test_unsupported_op_names_node_and_op(tmp_path):
    p = qdq_then(tmp_path / "m.onnx", "Softsign", "odd_one")
    with pytest.raises(
        ModelError,
        match=r"^node 'odd_one' \(Softsign, opset 21\): op Softsign "
        r"is not supported; supported ops: .*Gemm",
    ):
        import_onnx(p)


@pytest.mark.parametrize("layers", [20, 21])
def test_a_network_deeper_than_deep_layers_gets_wide_multipliers(tmp_path, layers):
    # fixedpoint.DEEP_LAYERS: one-code differences of 15-bit multipliers grow over a deep
    # network's layers, so the importer gives it DEEP_MULTIPLIER_BITS
    from frontends.fixedpoint import DEEP_LAYERS, DEEP_MULTIPLIER_BITS, MULTIPLIER_BITS
    from frontends.ir import layer_depth

    path = qdq_mlp(tmp_path / "deep.onnx", sizes=(6,) * layers + (3,), calibration=8)
    graph = import_onnx(path)
    assert layer_depth(graph) == layers
    widths = {int(n.weights["multiplier"].max()).bit_length() for n in graph.nodes}
    want = DEEP_MULTIPLIER_BITS if layers > DEEP_LAYERS else MULTIPLIER_BITS
    assert widths == {want}, widths
