"""Defects a new user met (issue 16, item 9), each with the model that showed it: an output
DequantizeLinear with its own scale, integers that overflow, inputs that have no code,
graphs without outputs, opsets from the future, external data with a NUL byte."""

import numpy as np
import onnx
import pytest
from models import ort_unfused, qdq_conv, qdq_mlp
from onnx import TensorProto, helper, numpy_helper

from frontends import reference
from frontends.errors import ModelError
from frontends.fixedpoint import quantize_linear
from frontends.onnx_import import import_onnx
from frontends.vectors import check_data, golden_vectors


def _gemm_model(
    path, *, sx=0.05, sw=0.01, bias=None, out_dq=None, outputs=("y",), opset=21, extra=()
):
    """x -> Q -> DQ -> Gemm(int8 weights) -> Q(0.2, 3) -> DQ (its own scale/zp if out_dq)."""
    rng = np.random.default_rng(0)
    inits = {
        "s": np.float32(sx),
        "z": np.int8(0),
        "sw": np.float32(sw),
        "sy": np.float32(0.2),
        "zy": np.int8(3),
        "w": rng.integers(-127, 128, (4, 6)).astype(np.int8),
    }
    so, zo = out_dq or (0.2, 3)
    inits["so"], inits["zo"] = np.float32(so), np.int8(zo)
    if bias is not None:
        inits["b"] = np.asarray(bias, np.float32)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"], name="dqw"),
        helper.make_node(
            "Gemm", ["xd", "wd"] + (["b"] if bias is not None else []), ["g"], name="fc", transB=1
        ),
        helper.make_node("QuantizeLinear", ["g", "sy", "zy"], ["gq"], name="q2"),
        helper.make_node("DequantizeLinear", ["gq", "so", "zo"], ["y"], name="dq_out"),
        *extra,
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 4]) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10),
        str(path),
    )
    return path


def test_output_dequantize_uses_its_own_scale_and_zero_point(tmp_path):
    """A digits-size MLP whose last DequantizeLinear has its own scale and zero point: the
    golden's dequantized outputs equal onnxruntime's, and the output tensor records them."""
    path = qdq_mlp(tmp_path / "mlp.onnx", sizes=(64, 32, 10))
    model = onnx.load(str(path))
    last = model.graph.node[-1]
    assert last.op_type == "DequantizeLinear" and last.output[0] == model.graph.output[0].name
    zp_type = numpy_helper.to_array(
        next(t for t in model.graph.initializer if t.name == last.input[2])
    ).dtype
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.float32(0.37), "own_scale"),
            numpy_helper.from_array(np.asarray(-31, zp_type), "own_zp"),
        ]
    )
    last.input[1], last.input[2] = "own_scale", "own_zp"
    onnx.save(model, str(path))
    graph = import_onnx(path)
    q = graph.tensor(graph.outputs[0]).quant
    assert float(q.scale) == pytest.approx(0.37) and int(q.zero_point) == -31
    x = np.random.default_rng(1).uniform(-1, 1, (200, 64)).astype(np.float32)
    ours, theirs = reference.predict(graph, x), ort_unfused(path, x)
    codes = np.abs(ours - theirs) / np.float32(0.37)
    assert codes.max() <= 1.001 and (codes > 0.5).mean() < 0.01


def test_output_dequantize_of_the_input_keeps_the_input_quantization(tmp_path):
    """Q -> DQ with another scale, nothing between: the input keeps its quantization and the
    output its own (an identity node copies the codes)."""
    inits = [
        numpy_helper.from_array(np.float32(0.5), "s"),
        numpy_helper.from_array(np.int8(2), "z"),
        numpy_helper.from_array(np.float32(0.25), "s2"),
        numpy_helper.from_array(np.int8(-5), "z2"),
    ]
    g = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s2", "z2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        inits,
    )
    path = tmp_path / "qdq.onnx"
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path)
    )
    graph = import_onnx(path)
    x = np.linspace(-80, 80, 25, dtype=np.float32).reshape(5, 5)
    np.testing.assert_array_equal(reference.predict(graph, x), ort_unfused(path, x))
    assert float(graph.tensor(graph.inputs[0]).quant.scale) == 0.5


@pytest.mark.parametrize(
    "sx, sw, bias, needle",
    [
        (1e-30, 1e-30, [1, 2, 3, 4], "beyond int32"),
        (1e-45, 0.01, [0.5, 0, 0, 0], "beyond int32"),  # a float32 denormal input scale
        (1e-12, 1e-12, None, "right shift of"),
        (1e-30, 1e-30, None, "right shift of"),
    ],
)
def test_tiny_scales_are_refused_by_name(tmp_path, sx, sw, bias, needle):
    path = _gemm_model(tmp_path / "tiny.onnx", sx=sx, sw=sw, bias=bias)
    with _no_numpy_warning():  # numpy would only warn on an int64 overflow
        with pytest.raises(ModelError, match=needle) as info:
            import_onnx(path)
    assert "node 'fc'" in str(info.value)


class _no_numpy_warning:
    def __enter__(self):
        self._old = np.seterr(all="raise")

    def __exit__(self, *exc):
        np.seterr(**self._old)
        return False


def test_accumulator_beyond_int64_is_refused(tmp_path):
    """int32 activations times int32 weights over 6 inputs can pass 2**62."""
    rng = np.random.default_rng(0)
    inits = {
        "s": np.float32(1.0),
        "z": np.int32(0),
        "sw": np.float32(1.0),
        "sy": np.float32(2.0**40),
        "zy": np.int32(0),
        "w": rng.integers(2**30, 2**31 - 1, (4, 6)).astype(np.int32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"]),
        helper.make_node("Gemm", ["xd", "wd"], ["g"], name="wide", transB=1),
        helper.make_node("QuantizeLinear", ["g", "sy", "zy"], ["gq"]),
        helper.make_node("DequantizeLinear", ["gq", "sy", "zy"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    path = tmp_path / "wide.onnx"
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path)
    )
    with pytest.raises(ModelError, match=r"node 'wide'.*accumulator can reach"):
        import_onnx(path)


def test_quantize_saturates_inf_and_huge_values_as_onnxruntime():
    x = np.array([np.inf, -np.inf, 1e30, -1e30, 3.3e38, 1.0], np.float32)
    np.testing.assert_array_equal(
        quantize_linear(x, 0.1, 3, -128, 127), [127, -128, 127, -128, 127, 13]
    )
    np.testing.assert_array_equal(quantize_linear(x, 0.1, 128, 0, 255), [255, 0, 255, 0, 255, 138])


def test_inf_and_huge_data_saturate_in_the_golden(tmp_path):
    graph = import_onnx(_gemm_model(tmp_path / "m.onnx"))
    x = np.array([[np.inf, -np.inf, 1e30, -1e30, 0, 1e300]])
    v = golden_vectors(graph, data_x=x, random=0)
    np.testing.assert_array_equal(v["inputs"][-1], [127, -128, 127, -128, 0, 127])


@pytest.mark.parametrize(
    "x, y, needle",
    [
        (np.array([[0.0, np.nan, 1, 2, 3, 4]]), None, "NaN"),
        (np.ones((2, 6)) * (1 + 1j), None, "complex"),
        (np.array([["a"] * 6]), None, "element type"),
        (np.ones((2, 6)), np.array(["cat", "dog"]), "labels"),
        (np.ones((2, 6)), np.array([0.5, 1]), "labels"),
        (np.ones((2, 6)), np.array([0, 1, 2]), "3 labels"),
    ],
)
def test_bad_data_is_refused_by_name(x, y, needle):
    with pytest.raises(ModelError, match=needle):
        check_data(x, y, "calib.npz")


def test_graph_without_outputs_is_refused(tmp_path):
    path = _gemm_model(tmp_path / "m.onnx", outputs=())
    with pytest.raises(ModelError, match="no outputs"):
        import_onnx(path)


def test_opset_newer_than_onnx_is_refused(tmp_path):
    path = _gemm_model(tmp_path / "m.onnx", opset=onnx.defs.onnx_opset_version() + 1)
    with pytest.raises(ModelError, match="opset"):
        import_onnx(path)


def test_external_data_location_with_a_nul_byte_is_refused(tmp_path):
    path = _gemm_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "m\x00.data"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="NUL"):
        import_onnx(path)


def test_two_graph_outputs_are_refused_by_name(tmp_path):
    path = _gemm_model(
        tmp_path / "m.onnx",
        outputs=("y", "y2"),
        extra=[
            helper.make_node("QuantizeLinear", ["g", "so", "zo"], ["g2"]),
            helper.make_node("DequantizeLinear", ["g2", "so", "zo"], ["y2"]),
        ],
    )
    with pytest.raises(ModelError, match="2 outputs \\('y', 'y2'\\)"):
        import_onnx(path)


def test_golden_vectors_are_the_same_in_batches(tmp_path, monkeypatch):
    from frontends import vectors

    graph = import_onnx(_gemm_model(tmp_path / "m.onnx"))
    whole = golden_vectors(graph, random=40)
    monkeypatch.setattr(vectors, "GOLDEN_BATCH_BYTES", 1)
    parts = golden_vectors(graph, random=40)
    assert whole.keys() == parts.keys()
    for k in whole:
        np.testing.assert_array_equal(whole[k], parts[k])


def test_huge_inputs_are_refused_before_anything_is_allocated(tmp_path):
    """A graph input of 2**25 values, a convolution whose windows read 2**27 inputs."""
    path = _gemm_model(tmp_path / "wide.onnx")
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1 << 25
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="graph input 'x' holds 33,554,432 values"):
        import_onnx(path)
    path = qdq_conv(
        tmp_path / "big.onnx", channels=1, out_channels=4, hw=2048, kernel=5, name="big"
    )
    with pytest.raises(ModelError, match="node 'big'.*104,857,600 input reads"):
        import_onnx(path)
