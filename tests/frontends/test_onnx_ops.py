"""Hand-built ONNX graphs (onnx.helper) for single ops: nonlinear tables over every input code,
integer ops (QLinearMatMul, QLinearConv, MatMulInteger, ConvInteger), residual Add, standalone
Clip, scale changes. Each is compared with onnxruntime (graph optimizations off).

Tolerances: the nonlinear tables and the elementwise requantizers are computed exactly (float64
function, then round half to even); onnxruntime evaluates in float32, so a code may differ by
one only where the exact value is within float32 noise of a rounding tie -- we require <= 1 code
and at most 2 of the 256 codes. Integer layers: <= 1 code (15-bit multiplier vs float32, see
test_qdq_models.py).

Surprise worth knowing: onnxruntime's u8 x s8 integer kernels (QLinearMatMul, MatMulInteger on
x86 AVX2) add pairs of products in saturating int16, so with int8 weights beyond +-64 they
differ from the ONNX definition by several codes (the golden matches the exact definition;
checked below). The integer-op tests keep weights within 7 bits, where onnxruntime is exact.
"""

import numpy as np
import onnx
import pytest
from models import ort_unfused
from onnx import TensorProto, helper, numpy_helper

from frontends import reference
from frontends._onnx.ops import FUNCTIONS
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx

OPSET = 21


def _save(
    tmp_path,
    nodes,
    inits,
    in_shape,
    out_shape,
    *,
    name="m",
    opset=OPSET,
    out_type=TensorProto.FLOAT,
):
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    path = tmp_path / f"{name}.onnx"
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10), path
    )
    return path


def _qdq_in(scale=0.05, zp=0, dtype=np.int8):
    return (
        [
            helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
            helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dq_in"),
        ],
        {"sx": np.float32(scale), "zx": dtype(zp)},
    )


def _q_out(src, scale, zp, dtype=np.int8):
    return (
        [
            helper.make_node("QuantizeLinear", [src, "sy", "zy"], ["yq"], name="q_out"),
            helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dq_out"),
        ],
        {"sy": np.float32(scale), "zy": dtype(zp)},
    )


ALL_CODES = (np.arange(-128, 128, dtype=np.float32) * 0.05).reshape(1, 256)


@pytest.mark.parametrize(
    "op,attrs,out_scale,out_zp,out_dtype",
    [
        ("Sigmoid", {}, 1 / 256, 0, np.uint8),
        ("Tanh", {}, 1 / 128, 0, np.int8),
        ("Exp", {}, 0.5, 0, np.uint8),
        ("Gelu", {}, 0.03, -20, np.int8),
        ("Gelu", {"approximate": "tanh"}, 0.03, -20, np.int8),
        ("LeakyRelu", {"alpha": 0.1}, 0.04, 10, np.int8),
        ("HardSigmoid", {"alpha": 0.25, "beta": 0.4}, 1 / 250, 0, np.uint8),
        ("HardSwish", {}, 0.03, -30, np.int8),
    ],
)
def test_nonlinear_table_over_every_code(tmp_path, op, attrs, out_scale, out_zp, out_dtype):
    qin, init = _qdq_in()
    qout, init2 = _q_out("f", out_scale, out_zp, out_dtype)
    nodes = qin + [helper.make_node(op, ["xd"], ["f"], name="fn", **attrs)] + qout
    path = _save(tmp_path, nodes, {**init, **init2}, [1, 256], [1, 256])
    graph = import_onnx(path)
    (node,) = graph.nodes
    assert node.op == "nonlinear" and node.weights["table"].shape == (256,)
    golden = reference.run(graph, np.arange(-128, 128).reshape(1, 256))[graph.outputs[0]]
    theirs = np.rint(ort_unfused(path, ALL_CODES) / np.float32(out_scale)) + out_zp
    diff = np.abs(golden - theirs)
    assert diff.max() <= 1, op
    # exact value in output codes (float64): differences only within 1e-4 of a tie
    fn = FUNCTIONS[node.attrs["function"]]
    v = fn(0.05 * np.arange(-128, 128, dtype=np.float64), node.attrs) / out_scale
    near_tie = np.abs(np.abs(v - np.floor(v)) - 0.5) < 1e-4
    assert near_tie[diff[0] > 0].all(), (op, np.flatnonzero(diff))
    assert (diff > 0).sum() <= max(2, near_tie.sum()), op


def test_softmax_integer_golden(tmp_path):
    qin, init = _qdq_in(scale=0.1)
    qout, init2 = _q_out("f", 1 / 256, 0, np.uint8)
    nodes = qin + [helper.make_node("Softmax", ["xd"], ["f"], name="sm", axis=-1)] + qout
    path = _save(tmp_path, nodes, {**init, **init2}, [1, 10], [1, 10])
    graph = import_onnx(path)
    rng = np.random.default_rng(0)
    x = rng.uniform(-6, 6, (300, 10)).astype(np.float32)
    x[0] = 0  # all equal: 1/10 each
    x[1] = -12.8  # min codes
    golden = reference.run(graph, reference.quantize_inputs(graph, x))[graph.outputs[0]]
    theirs = np.rint(ort_unfused(path, x) * 256)
    assert np.abs(golden - theirs).max() <= 1
    assert (golden != theirs).mean() < 0.01
    assert golden[0].tolist() == [26] * 10  # 25.6 -> 26


def test_residual_add_with_relu_rescales_both_inputs(tmp_path):
    """Two differently quantized branches (x and 0.5*x requantized) added, ReLU, quantized."""
    qin, init = _qdq_in(scale=0.05, zp=3)
    nodes = qin + [
        helper.make_node("QuantizeLinear", ["xd", "sb", "zb"], ["bq"], name="q_b"),
        helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bd"], name="dq_b"),
        helper.make_node("Add", ["xd", "bd"], ["s"], name="res"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
    ]
    qout, init2 = _q_out("r", 0.07, -100)
    path = _save(
        tmp_path,
        nodes + qout,
        {**init, **init2, "sb": np.float32(0.031), "zb": np.int8(-7)},
        [1, 256],
        [1, 256],
    )
    graph = import_onnx(path)
    assert [n.op for n in graph.nodes] == ["requant", "add"]
    add = graph.nodes[1]
    assert add.attrs["lo"] == -100 and add.attrs["input_zero_points"] == (3, -7)
    golden = reference.run(graph, np.arange(-128, 128).reshape(1, 256))[graph.outputs[0]]
    theirs = (
        np.rint(ort_unfused(path, (ALL_CODES / 0.05 - 3) * np.float32(0.05)) / np.float32(0.07))
        - 100
    )
    assert np.abs(golden - theirs).max() <= 1 and (golden != theirs).sum() <= 2
    assert golden.min() == -100  # ReLU: clamped at the output zero point


def test_standalone_clip_is_an_integer_clamp(tmp_path):
    qin, init = _qdq_in(scale=0.05)
    nodes = qin + [helper.make_node("Clip", ["xd", "lo", "hi"], ["c"], name="relu6")]
    qout, init2 = _q_out("c", 0.05, 0)
    path = _save(
        tmp_path,
        nodes + qout,
        {**init, **init2, "lo": np.float32(-1.0), "hi": np.float32(2.5)},
        [1, 256],
        [1, 256],
    )
    graph = import_onnx(path)
    (node,) = graph.nodes
    assert node.op == "requant" and (node.attrs["lo"], node.attrs["hi"]) == (-20, 50)
    golden = reference.run(graph, np.arange(-128, 128).reshape(1, 256))[graph.outputs[0]]
    assert golden.tolist()[0] == np.clip(np.arange(-128, 128), -20, 50).tolist()


def test_quantize_with_equal_parameters_is_an_alias(tmp_path):
    qin, init = _qdq_in(scale=0.05)
    nodes = qin + [
        helper.make_node("Reshape", ["xd", "shape"], ["r"], name="view"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
    ]
    qout, init2 = _q_out("f", 0.05, 0)
    path = _save(
        tmp_path, nodes + qout, {**init, **init2, "shape": np.array([1, 4, 4, 2])}, [1, 32], [1, 32]
    )
    graph = import_onnx(path)
    assert graph.nodes == () and graph.outputs == graph.inputs


# --- integer ops -------------------------------------------------------------------------------


def _int_model(tmp_path, core_nodes, inits, in_shape, out_shape, name):
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in")]
    nodes += core_nodes
    nodes += [helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dq_out")]
    return _save(tmp_path, nodes, inits, in_shape, out_shape, name=name)


def test_qlinear_matmul_and_conv(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.integers(-63, 64, (12, 5)).astype(np.int8)
    inits = {
        "sx": np.float32(0.02),
        "zx": np.uint8(128),
        "w": w,
        "sw": np.float32(0.01),
        "zw": np.int8(0),
        "sy": np.float32(0.15),
        "zy": np.uint8(100),
    }
    core = [
        helper.make_node(
            "QLinearMatMul", ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["yq"], name="qmm"
        )
    ]
    path = _int_model(tmp_path, core, inits, [1, 12], [1, 5], "qmm")
    graph = import_onnx(path)
    assert graph.nodes[0].op == "dense" and graph.nodes[0].source_op == "QLinearMatMul"
    x = rng.uniform(-2.5, 2.5, (300, 12)).astype(np.float32)
    lsb = 0.15
    assert np.abs(reference.predict(graph, x) - ort_unfused(path, x)).max() <= lsb * 1.0001
    assert graph.nodes[0].weights["weight"].shape == (5, 12)

    wc = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = {
        "sx": np.float32(0.02),
        "zx": np.int8(0),
        "w": wc,
        "sw": np.linspace(0.005, 0.02, 4).astype(np.float32),
        "zw": np.zeros(4, np.int8),
        "sy": np.float32(0.2),
        "zy": np.int8(-5),
        "b": rng.integers(-2000, 2000, 4).astype(np.int32),
    }
    core = [
        helper.make_node(
            "QLinearConv",
            ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"],
            ["yq"],
            name="qconv",
            pads=[1, 0, 1, 2],
            strides=[1, 2],
        )
    ]
    path = _int_model(tmp_path, core, inits, [1, 3, 6, 7], [1, 4, 6, 4], "qconv")
    graph = import_onnx(path)
    node = graph.nodes[0]
    assert node.op == "conv" and node.attrs["pads"] == (1, 0, 1, 2)
    x = rng.uniform(-2.5, 2.5, (100, 3, 6, 7)).astype(np.float32)
    diff = np.abs(reference.predict(graph, x) - ort_unfused(path, x)) / 0.2
    assert diff.max() <= 1.0001 and (diff > 0.5).mean() < 0.01


def test_matmul_integer_then_scale_bias_and_quantize(tmp_path):
    """MatMulInteger -> Cast -> Mul(scale) -> Add(bias) -> QuantizeLinear: a dense layer."""
    rng = np.random.default_rng(1)
    w = rng.integers(-63, 64, (10, 6)).astype(np.int8)
    col_scale = rng.uniform(0.003, 0.01, 6).astype(np.float32)
    inits = {
        "sx": np.float32(0.03),
        "zx": np.uint8(120),
        "w": w,
        "zw": np.int8(0),
        "s": (np.float32(0.03) * col_scale).astype(np.float32),
        "bias": rng.uniform(-1, 1, 6).astype(np.float32),
        "sy": np.float32(0.1),
        "zy": np.int8(0),
    }
    core = [
        helper.make_node("MatMulInteger", ["xq", "w", "zx", "zw"], ["acc"], name="mmi"),
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["accf", "s"], ["m"]),
        helper.make_node("Add", ["m", "bias"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["yq"], name="q_out"),
    ]
    path = _int_model(tmp_path, core, inits, [1, 10], [1, 6], "mmi")
    graph = import_onnx(path)
    (node,) = graph.nodes
    assert node.op == "dense" and node.attrs["relu"] and node.attrs["lo"] == 0
    x = rng.uniform(-3, 3.5, (300, 10)).astype(np.float32)
    assert np.abs(reference.predict(graph, x) - ort_unfused(path, x)).max() <= 0.1 * 1.0001


def test_conv_integer(tmp_path):
    rng = np.random.default_rng(2)
    w = rng.integers(-127, 128, (6, 1, 3, 3)).astype(np.int8)  # depthwise, 6 channels
    inits = {
        "sx": np.float32(0.05),
        "zx": np.int8(0),
        "w": w,
        "s": np.float32(0.05 * 0.004),
        "sy": np.float32(0.08),
        "zy": np.int8(0),
    }
    core = [
        helper.make_node(
            "ConvInteger",
            ["xq", "w", "zx"],
            ["acc"],
            name="convi",
            group=6,
            pads=[1, 1, 1, 1],
            dilations=[2, 2],
        ),
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["accf", "s"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "sy", "zy"], ["yq"], name="q_out"),
    ]
    path = _int_model(tmp_path, core, inits, [1, 6, 5, 5], [1, 6, 3, 3], "convi")
    graph = import_onnx(path)
    assert graph.nodes[0].attrs["group"] == 6
    x = rng.uniform(-6, 6, (100, 6, 5, 5)).astype(np.float32)
    assert np.abs(reference.predict(graph, x) - ort_unfused(path, x)).max() <= 0.08 * 1.0001


def test_dynamic_quantization_is_refused(tmp_path):
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "s", "z"], name="dq"),
        helper.make_node("Identity", ["xq"], ["y"]),
    ]
    path = _save(tmp_path, nodes, {}, [1, 4], [1, 4], out_type=TensorProto.UINT8)
    with pytest.raises(
        ModelError,
        match=r"^node 'dq' \(DynamicQuantizeLinear, opset 21\): op "
        r"DynamicQuantizeLinear is not supported; supported "
        r"ops: .*QLinearConv",
    ):
        import_onnx(path)


def test_float_op_between_float_ops_names_the_node(tmp_path):
    qin, init = _qdq_in()
    nodes = qin + [
        helper.make_node("Tanh", ["xd"], ["t"], name="th"),
        helper.make_node("MaxPool", ["t"], ["p"], name="pool", kernel_shape=[2]),
    ]
    qout, init2 = _q_out("p", 0.01, 0)
    path = _save(tmp_path, nodes + qout, {**init, **init2}, [1, 2, 8], [1, 2, 7])
    with pytest.raises(
        ModelError,
        match=r"^node 'pool' \(MaxPool, opset 21\): input X must be "
        r"a dequantized tensor .* the unquantized output of "
        r"Tanh 'th'$",
    ):
        import_onnx(path)


def test_golden_is_exact_where_onnxruntime_u8s8_saturates(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (12, 5)).astype(np.int8)
    inits = {
        "sx": np.float32(0.02),
        "zx": np.uint8(128),
        "w": w,
        "sw": np.float32(0.01),
        "zw": np.int8(0),
        "sy": np.float32(0.15),
        "zy": np.uint8(100),
    }
    core = [
        helper.make_node(
            "QLinearMatMul", ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["yq"], name="qmm"
        )
    ]
    graph = import_onnx(_int_model(tmp_path, core, inits, [1, 12], [1, 5], "qmm8"))
    x = rng.uniform(-2.5, 2.5, (300, 12)).astype(np.float32)
    xq = reference.quantize_inputs(graph, x)
    exact = np.clip(np.rint((xq - 128) @ w.astype(np.int64) * (0.02 * 0.01 / 0.15)) + 100, 0, 255)
    golden = reference.run(graph, xq)[graph.outputs[0]]
    assert np.abs(golden - exact).max() <= 1 and (golden != exact).mean() < 0.01


def test_facts_of_integer_op_layers(tmp_path):
    """QLinearConv and MatMulInteger layers as `nnloom inspect` reports them."""
    from frontends.facts import layer_facts

    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8)
    w[1] = 0  # a pruned output channel
    inits = {
        "sx": np.float32(0.02),
        "zx": np.int8(0),
        "w": w,
        "sw": np.float32(0.01),
        "zw": np.int8(0),
        "sc": np.float32(0.1),
        "zc": np.int8(0),
        "shape": np.array([1, -1]),
        "wm": rng.integers(-7, 8, (64, 3)).astype(np.int8),
        "s": np.float32(0.1 * 0.01),
        "sy": np.float32(0.2),
        "zy": np.int8(0),
    }
    core = [
        helper.make_node(
            "QLinearConv",
            ["xq", "sx", "zx", "w", "sw", "zw", "sc", "zc"],
            ["cq"],
            name="qconv",
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        helper.make_node("Reshape", ["cq", "shape"], ["fq"], name="flat"),
        helper.make_node("MatMulInteger", ["fq", "wm", "zc", "zw"], ["acc"], name="mmi"),
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["accf", "s"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "sy", "zy"], ["yq"], name="q_out"),
    ]
    path = _int_model(tmp_path, core, inits, [1, 2, 8, 8], [1, 3], "intfacts")
    conv, dense = layer_facts(import_onnx(path))
    assert (conv.op, conv.source_op, conv.macs) == ("conv", "QLinearConv", 4 * 4 * 4 * 2 * 9)
    assert conv.pruned_outputs == (1,) and conv.weight_dtype == "int8"
    assert (dense.source_op, dense.macs, dense.weight_bits) == ("MatMulInteger", 64 * 3, 4)
    assert dense.input_shape == conv.output_shape == (4, 4, 4)  # Reshape adds no node
    assert dense.output_dtype == "int8"
