"""1200 broken or mutated models: truncated and bit-flipped protobufs, missing initializers,
wrong shapes, bad attributes, swapped ops, dangling inputs. Every one must either import (and
run in the golden) or raise ModelError: no other exception may escape."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from frontends import reference
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx
from models import QonnxBuilder

OPS = ["Relu", "Conv", "MaxPool", "Softmax", "Add", "Gemm", "Reshape", "Transpose", "Clip",
       "Concat", "QuantizeLinear", "DequantizeLinear", "Flatten", "Sigmoid", "Quant", "Foo"]


def _bases(tmp_path):
    from onnx import TensorProto, helper
    rng = np.random.default_rng(0)
    inits = {"s": np.float32(0.05), "z": np.int8(0), "w": rng.integers(-127, 128, (4, 2, 3, 3))
             .astype(np.int8), "sw": np.float32(0.01), "sy": np.float32(0.2), "zy": np.int8(0),
             "w2": rng.integers(-127, 128, (3, 16)).astype(np.int8), "shape": np.array([1, -1])}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"], name="dqw"),
             helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv", pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["rq"], name="q2"),
             helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["rd"], name="dq2"),
             helper.make_node("MaxPool", ["rd"], ["p"], name="pool", kernel_shape=[2, 2]),
             helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"),
             helper.make_node("QuantizeLinear", ["f", "sy", "zy"], ["fq"], name="q3"),
             helper.make_node("DequantizeLinear", ["fq", "sy", "zy"], ["fd"], name="dq3"),
             helper.make_node("DequantizeLinear", ["w2", "sw"], ["w2d"], name="dqw2"),
             helper.make_node("Gemm", ["fd", "w2d"], ["g"], name="fc", transB=1),
             helper.make_node("QuantizeLinear", ["g", "sy", "zy"], ["gq"], name="q4"),
             helper.make_node("DequantizeLinear", ["gq", "sy", "zy"], ["y"], name="dq4")]
    g = helper.make_graph(nodes, "base",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    qdq = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    b = QonnxBuilder()
    x = b.quant("x", 1 / 64, 8)
    w = b.quant(b.init(rng.normal(0, 0.4, (6, 4))), 0.1, 4, narrow=1)
    h = b.quant(b.node("Relu", [b.node("MatMul", [x, w])]), 0.25, 4, signed=0)
    _, qonnx_model = b.save(tmp_path / "b.onnx", h, [1, 6], [1, 4])
    return [qdq, qonnx_model]


def _mutate(model, rng):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    kind = rng.integers(0, 8)
    if kind == 0 and len(g.initializer):
        del g.initializer[int(rng.integers(len(g.initializer)))]
    elif kind == 1 and len(g.initializer):
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        arr = numpy_helper.to_array(t)
        arr = arr.reshape(-1)[: max(1, arr.size // int(rng.integers(1, 4)))]
        if rng.random() < 0.5:
            arr = np.concatenate([arr, arr])
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
    elif kind == 2:
        node = g.node[int(rng.integers(len(g.node)))]
        for a in node.attribute:
            if a.ints:
                a.ints[int(rng.integers(len(a.ints)))] = int(rng.integers(-3, 9))
            elif a.type == onnx.AttributeProto.INT:
                a.i = int(rng.integers(-3, 9))
        if not node.attribute:
            node.attribute.append(onnx.helper.make_attribute("axis", int(rng.integers(-3, 4))))
    elif kind == 3:
        g.node[int(rng.integers(len(g.node)))].op_type = OPS[int(rng.integers(len(OPS)))]
    elif kind == 4:
        node = g.node[int(rng.integers(len(g.node)))]
        if node.input:
            node.input[int(rng.integers(len(node.input)))] = ["", "nowhere", "x"][
                int(rng.integers(3))]
    elif kind == 5:
        dims = g.input[0].type.tensor_type.shape.dim
        if len(dims):
            dims[int(rng.integers(len(dims)))].dim_value = int(rng.integers(0, 12))
    elif kind == 6 and len(g.initializer):
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        arr = numpy_helper.to_array(t).astype(np.float64)
        arr = arr * rng.choice([0.0, -1.0, np.inf, np.nan, 1e30])
        t.CopyFrom(numpy_helper.from_array(arr.astype(numpy_helper.to_array(t).dtype)
                                           if np.isfinite(arr).all() else arr.astype(np.float32),
                                           t.name))
    else:
        i = int(rng.integers(len(g.node)))
        node = g.node[i]
        del g.node[i]
        g.node.insert(int(rng.integers(len(g.node) + 1)), node)
    return m.SerializeToString()


@pytest.mark.filterwarnings("ignore")
def test_no_traceback_escapes_on_1200_broken_models(tmp_path):
    rng = np.random.default_rng(7)
    bases = _bases(tmp_path)
    outcomes = {"imported": 0, "refused": 0}
    path = tmp_path / "fuzz.onnx"
    for i in range(1200):
        data = _mutate(bases[i % len(bases)], rng)
        if i % 4 == 3:  # truncated or bit-flipped bytes
            cut = bytearray(data[: int(rng.integers(0, len(data)))])
            for _ in range(int(rng.integers(0, 4))):
                if cut:
                    cut[int(rng.integers(len(cut)))] ^= 1 << int(rng.integers(8))
            data = bytes(cut)
        path.write_bytes(data)
        try:
            graph = import_onnx(path)
            t = graph.tensor(graph.inputs[0])
            codes = np.clip(rng.integers(-128, 128, (2,) + t.shape), t.dtype.min, t.dtype.max)
            if t.dtype.bipolar:
                codes = np.where(codes >= 0, 1, -1)
            reference.run(graph, codes)
            outcomes["imported"] += 1
        except ModelError as exc:
            assert str(exc) and "\n" not in str(exc)[:1]
            outcomes["refused"] += 1
    assert outcomes["refused"] > 600 and outcomes["imported"] > 20, outcomes
