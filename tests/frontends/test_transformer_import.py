"""Hand-built ONNX graphs (onnx.helper) of the transformer ops the importer takes between a
DequantizeLinear and a QuantizeLinear -- LayerNorm decomposed as exporters write it, GELU's
tanh and Erf forms as float islands, Softmax over the last axis -- against onnxruntime
(graph optimizations off), and what it refuses: one line naming the node and the limit."""

import math

import numpy as np
import onnx
import pytest
from models import ort_unfused
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from frontends import reference
from frontends._onnx.base import MAX_TOKENS
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx

OPSET = 17
SX, SY = 0.04, 0.03


def _model(tmp_path, nodes, inits, shape, name="m", out_shape=None):
    """x (float) -> Q/DQ -> ``nodes`` (reading ``xd``, writing ``f``) -> Q/DQ -> y."""
    inits = dict(inits, sx=np.float32(SX), zx=np.int8(3), sy=np.float32(SY), zy=np.int8(-2))
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dq_in"),
        *nodes,
        helper.make_node("QuantizeLinear", ["f", "sy", "zy"], ["yq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dq_out"),
    ]
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    path = tmp_path / f"{name}.onnx"
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.save(model, path)
    return path


def _codes_vs_ort(path, x):
    graph = import_onnx(path)
    golden = reference.run(graph, reference.quantize_inputs(graph, x))[graph.outputs[0]]
    ort = np.rint(ort_unfused(path, x) / SY) - 2
    return graph, np.abs(golden - ort.reshape(golden.shape))


def _c(v):
    return np.float32(v)


def test_decomposed_layernorm(tmp_path):
    c = 32
    rng = np.random.default_rng(0)
    gamma = rng.normal(1, 0.3, c).astype(np.float32)
    beta = rng.normal(0, 0.2, c).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["xd"], ["mu"], axes=[-1], keepdims=1),
        helper.make_node("Sub", ["xd", "mu"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["g"]),
        helper.make_node("Add", ["g", "beta"], ["f"], name="beta_add"),
    ]
    inits = {"two": _c(2), "eps": _c(1e-5), "gamma": gamma, "beta": beta}
    path = _model(tmp_path, nodes, inits, [1, 16, c])
    x = rng.normal(0, 2.0, (64, 16, c)).astype(np.float32)
    x[0, 0] = 0.5  # a constant row: beta alone
    graph, d = _codes_vs_ort(path, x)
    assert [n.op for n in graph.nodes] == ["layernorm"]
    assert (d <= 1).mean() >= 0.99 and d.max() <= 1, d.max()


@pytest.mark.parametrize("form", ["tanh", "erf"])
def test_gelu_forms_are_one_table(tmp_path, form):
    if form == "tanh":  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        nodes = [
            helper.make_node("Pow", ["xd", "three"], ["x3"]),
            helper.make_node("Mul", ["x3", "k"], ["kx3"]),
            helper.make_node("Add", ["xd", "kx3"], ["inner"]),
            helper.make_node("Mul", ["inner", "s2pi"], ["arg"]),
            helper.make_node("Tanh", ["arg"], ["t"]),
            helper.make_node("Add", ["t", "one"], ["t1"]),
            helper.make_node("Mul", ["xd", "t1"], ["xt"]),
            helper.make_node("Mul", ["xt", "half"], ["f"]),
        ]
        inits = {"three": _c(3), "k": _c(0.044715), "s2pi": _c(math.sqrt(2 / math.pi))}
    else:  # x * 0.5 * (1 + erf(x / sqrt(2))), as torch's legacy exporter writes it
        nodes = [
            helper.make_node("Div", ["xd", "sqrt2"], ["a"]),
            helper.make_node("Erf", ["a"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["e1"]),
            helper.make_node("Mul", ["xd", "e1"], ["xe"]),
            helper.make_node("Mul", ["xe", "half"], ["f"]),
        ]
        inits = {"sqrt2": _c(math.sqrt(2))}
    inits.update(one=_c(1), half=_c(0.5))
    path = _model(tmp_path, nodes, inits, [1, 256])
    x = (SX * (np.arange(-128, 128) - 3)).astype(np.float32).reshape(1, 256)  # every code
    graph, d = _codes_vs_ort(path, x)
    (node,) = graph.nodes
    assert node.op == "nonlinear"
    assert node.attrs["function"] == ("gelu_tanh" if form == "tanh" else "gelu")
    assert d.max() <= 1 and (d > 0).sum() <= 2


def _softmax_model(tmp_path, shape, axis):
    nodes = [helper.make_node("Softmax", ["xd"], ["f"], axis=axis, name="attn_softmax")]
    return _model(tmp_path, nodes, {}, shape, name="softmax")


def test_softmax_rows_agree(tmp_path):
    path = _softmax_model(tmp_path, [1, 2, 16, 16], -1)
    x = np.random.default_rng(1).normal(0, 2, (32, 2, 16, 16)).astype(np.float32)
    graph, d = _codes_vs_ort(path, x)
    assert graph.nodes[0].attrs["recip_shift"] == 48 + 5
    assert (d <= 1).mean() >= 0.99 and d.max() <= 1


@pytest.mark.parametrize(
    "shape, axis, words",
    [
        ([1, 2, 16, 16], 2, ["'attn_softmax'", "axis 2", "only the last axis"]),
        ([1, 1, MAX_TOKENS + 1], -1, ["'attn_softmax'", f"at most {MAX_TOKENS}"]),
    ],
    ids=["other-axis", "too-long"],
)
def test_softmax_refusals_name_the_node_and_limit(tmp_path, shape, axis, words):
    path = _softmax_model(tmp_path, shape, axis)
    with pytest.raises(ModelError) as err:
        import_onnx(path)
    assert all(w in str(err.value) for w in words), str(err.value)
    # on the command line: one line, exit 1, nothing written
    from flows.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", str(path), "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "attn_softmax" in result.output and not out.exists()


def test_an_op_outside_the_list_is_refused_by_name(tmp_path):
    nodes = [helper.make_node("CumSum", ["xd", "ax"], ["f"], name="running_sum")]
    path = _model(tmp_path, nodes, {"ax": np.int64(2)}, [1, 16, 8])
    with pytest.raises(ModelError, match=r"node 'running_sum' \(CumSum, opset 17\)"):
        import_onnx(path)


def test_product_of_two_activations_is_refused(tmp_path):
    nodes = [
        helper.make_node("Transpose", ["xd"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["xt", "shape"], ["xr"]),
        helper.make_node("Mul", ["xd", "xr"], ["f"], name="gate"),
    ]
    path = _model(tmp_path, nodes, {"shape": np.array([1, 4, 4], np.int64)}, [1, 4, 4])
    with pytest.raises(ModelError, match="'gate'.*two different quantized tensors"):
        import_onnx(path)


@pytest.mark.parametrize("quantized", [True, False], ids=["qdq-constant", "float-constant"])
def test_class_token_concat(tmp_path, quantized):
    """``cat([cls, x], 1)``: a constant token before the patch tokens, quantized once at
    import into the output's codes (as QuantizeLinear does it)."""
    rng = np.random.default_rng(4)
    cls = rng.normal(0, 1, (1, 1, 8)).astype(np.float32)
    if quantized:
        s = np.float32(np.abs(cls).max() / 127)
        codes = np.clip(np.rint(cls / s), -127, 127).astype(np.int8)
        nodes = [helper.make_node("DequantizeLinear", ["cls_q", "cls_s"], ["cls"])]
        inits = {"cls_q": codes, "cls_s": s}
    else:
        nodes, inits = [], {"cls": cls}
    nodes.append(helper.make_node("Concat", ["cls", "xd"], ["f"], axis=1, name="cat_cls"))
    path = _model(tmp_path, nodes, inits, [1, 16, 8], out_shape=[1, 17, 8])
    x = rng.normal(0, 1.5, (16, 16, 8)).astype(np.float32)
    graph = import_onnx(path)
    golden = reference.run(graph, reference.quantize_inputs(graph, x))[graph.outputs[0]]
    ort = np.rint(ort_unfused(path, x).reshape(golden.shape) / SY) - 2
    assert golden.shape == (16, 17, 8)
    assert graph.nodes[0].attrs["parts"] == ("constant", "input")
    assert np.array_equal(golden[:, 0], ort[:, 0])  # the token itself: exact
    assert np.abs(golden - ort).max() <= 1


def test_split_heads_and_attention_scores(tmp_path):
    """q, k, v split from one projection (Split), K transposed, Q x K^T (a matmul of two
    activations) requantized: within one code of onnxruntime."""
    nodes = [
        helper.make_node("Split", ["xd", "sizes"], ["q", "k", "v"], axis=-1, name="qkv_split"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
        helper.make_node("Mul", ["s", "scale"], ["f"]),
    ]
    inits = {"sizes": np.array([8, 8, 8], np.int64), "scale": _c(8**-0.5)}
    path = _model(tmp_path, nodes, inits, [1, 16, 24], out_shape=[1, 16, 16])
    x = np.random.default_rng(5).normal(0, 1, (32, 16, 24)).astype(np.float32)
    graph, d = _codes_vs_ort(path, x)
    assert [n.op for n in graph.nodes] == ["slice"] * 3 + ["transpose", "matmul"]
    assert (d <= 1).mean() >= 0.99 and d.max() <= 1


def test_ops_that_read_the_batch_axis_refuse_a_moved_one(tmp_path):
    """After torch-style (T, 1, E) layouts a pool would see the tokens as its batch."""
    nodes = [
        helper.make_node("Transpose", ["xd"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("MaxPool", ["xt"], ["f"], kernel_shape=[2], name="pool"),
    ]
    path = _model(tmp_path, nodes, {}, [1, 4, 8], out_shape=[4, 1, 7])
    with pytest.raises(ModelError, match="'pool'.*batch axis the model moved"):
        import_onnx(path)
