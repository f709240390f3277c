"""1200 broken or mutated models: truncated and bit-flipped protobufs, missing initializers,
wrong shapes, bad attributes, swapped ops, dangling inputs, bad external-data references.
Every one must either import (and run in the golden) or raise ModelError: no other exception
may escape. The bases are a QDQ conv net, a QONNX MLP, an integer-op net (QLinearConv,
MatMulInteger) and the QONNX MLP with its weights in an external data file."""

import re

import numpy as np
import onnx
import pytest
from models import QonnxBuilder
from onnx import numpy_helper

from frontends import reference
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx

OPS = [
    "Relu",
    "Conv",
    "MaxPool",
    "Softmax",
    "Add",
    "Gemm",
    "Reshape",
    "Transpose",
    "Clip",
    "Concat",
    "QuantizeLinear",
    "DequantizeLinear",
    "Flatten",
    "Sigmoid",
    "Quant",
    "Foo",
    "QLinearConv",
    "MatMulInteger",
    "ConvInteger",
    "QLinearMatMul",
]
KINDS = (
    "missing initializer",
    "wrong initializer shape",
    "bad attribute",
    "swapped op",
    "dangling input",
    "wrong input shape",
    "bad initializer values",
    "reordered nodes",
    "bad external data",
    "truncated or bit-flipped bytes",
)


def _bases(tmp_path):
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    inits = {
        "s": np.float32(0.05),
        "z": np.int8(0),
        "w": rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8),
        "sw": np.float32(0.01),
        "sy": np.float32(0.2),
        "zy": np.int8(0),
        "w2": rng.integers(-127, 128, (3, 16)).astype(np.int8),
        "shape": np.array([1, -1]),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"], name="dqw"),
        helper.make_node(
            "Conv", ["xd", "wd"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["rq"], name="q2"),
        helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["rd"], name="dq2"),
        helper.make_node(
            "MaxPool", ["rd"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("QuantizeLinear", ["p", "sy", "zy"], ["pq"], name="qp"),
        helper.make_node("DequantizeLinear", ["pq", "sy", "zy"], ["pd"], name="dqp"),
        helper.make_node("Reshape", ["pd", "shape"], ["f"], name="flat"),
        helper.make_node("QuantizeLinear", ["f", "sy", "zy"], ["fq"], name="q3"),
        helper.make_node("DequantizeLinear", ["fq", "sy", "zy"], ["fd"], name="dq3"),
        helper.make_node("DequantizeLinear", ["w2", "sw"], ["w2d"], name="dqw2"),
        helper.make_node("Gemm", ["fd", "w2d"], ["g"], name="fc", transB=1),
        helper.make_node("QuantizeLinear", ["g", "sy", "zy"], ["gq"], name="q4"),
        helper.make_node("DequantizeLinear", ["gq", "sy", "zy"], ["y"], name="dq4"),
    ]
    g = helper.make_graph(
        nodes,
        "base",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    qdq = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    b = QonnxBuilder()
    x = b.quant("x", 1 / 64, 8)
    w = b.quant(b.init(rng.normal(0, 0.4, (6, 4))), 0.1, 4, narrow=1)
    h = b.quant(b.node("Relu", [b.node("MatMul", [x, w])]), 0.25, 4, signed=0)
    _, qonnx_model = b.save(tmp_path / "b.onnx", h, [1, 6], [1, 4])

    inits = {
        "sx": np.float32(0.02),
        "zx": np.int8(0),
        "sw": np.float32(0.01),
        "zw": np.int8(0),
        "wc": rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8),
        "sc": np.float32(0.1),
        "zc": np.int8(0),
        "b": np.arange(3, dtype=np.int32),
        "shape": np.array([1, -1]),
        "wm": rng.integers(-63, 64, (48, 4)).astype(np.int8),
        "s": np.float32(0.1 * 0.01),
        "sy": np.float32(0.2),
        "zy": np.int8(0),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q"),
        helper.make_node(
            "QLinearConv",
            ["xq", "sx", "zx", "wc", "sw", "zw", "sc", "zc", "b"],
            ["cq"],
            name="qconv",
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        helper.make_node("Reshape", ["cq", "shape"], ["fq"], name="flat"),
        helper.make_node("MatMulInteger", ["fq", "wm", "zc", "zw"], ["acc"], name="mmi"),
        helper.make_node("Cast", ["acc"], ["accf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["accf", "s"], ["m"], name="scale"),
        helper.make_node("Relu", ["m"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["yq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dq_out"),
    ]
    g = helper.make_graph(
        nodes,
        "integer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    integer = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)

    # external data next to where every fuzzed model is written (tmp_path/fuzz.onnx)
    path, _ = b.save(tmp_path / "ext.onnx", h, [1, 6], [1, 4], external=True)
    external = onnx.load(str(path), load_external_data=False)
    return [qdq, qonnx_model, integer, external]


def _external(g, rng):
    """Point an external initializer elsewhere: outside the folder, absolute, missing, a
    symlink, or at bytes the file does not have."""
    ext = [t for t in g.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    t = ext[int(rng.integers(len(ext)))]
    entries = {e.key: e for e in t.external_data}
    choice = int(rng.integers(6))
    if choice == 0:
        entries["location"].value = [
            "../ext.onnx.data",
            "/etc/hostname",
            "missing.data",
            "",
            "link.data",
            "sub/../ext.onnx.data",
            "C:\\x.data",
        ][int(rng.integers(7))]
    elif choice in (1, 2):
        key = "offset" if choice == 1 else "length"
        value = str(int(rng.choice([-8, 0, 3, 10**9, 2**63 - 1])))
        if key in entries:
            entries[key].value = value
        else:
            t.external_data.add(key=key, value=value)
    elif choice == 3:
        t.external_data.add(key="offset", value="not a number")
    elif choice == 4:
        del t.external_data[:]
    else:
        t.data_location = onnx.TensorProto.DEFAULT


def _mutate(model, rng):
    """Serialized mutant and the index of its kind in ``KINDS``."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    has_external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in g.initializer)
    kind = 8 if has_external and rng.random() < 0.6 else int(rng.integers(0, 8))
    inline = [t for t in g.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    if kind == 8:
        _external(g, rng)
    elif kind == 0 and len(g.initializer):
        del g.initializer[int(rng.integers(len(g.initializer)))]
    elif kind == 1 and inline:
        t = inline[int(rng.integers(len(inline)))]
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
                int(rng.integers(3))
            ]
    elif kind == 5:
        dims = g.input[0].type.tensor_type.shape.dim
        if len(dims):
            dims[int(rng.integers(len(dims)))].dim_value = int(rng.integers(0, 12))
    elif kind == 6 and inline:
        t = inline[int(rng.integers(len(inline)))]
        arr = numpy_helper.to_array(t).astype(np.float64)
        arr = arr * rng.choice([0.0, -1.0, np.inf, np.nan, 1e30])
        t.CopyFrom(
            numpy_helper.from_array(
                arr.astype(numpy_helper.to_array(t).dtype)
                if np.isfinite(arr).all()
                else arr.astype(np.float32),
                t.name,
            )
        )
    else:
        kind = 7
        i = int(rng.integers(len(g.node)))
        node = g.node[i]
        del g.node[i]
        g.node.insert(int(rng.integers(len(g.node) + 1)), node)
    return m.SerializeToString(), kind


@pytest.mark.filterwarnings("ignore")
def test_every_base_model_imports(tmp_path):
    path = tmp_path / "fuzz.onnx"
    for base in _bases(tmp_path):
        path.write_bytes(base.SerializeToString())
        graph = import_onnx(path)
        assert graph.nodes, base.graph.name


@pytest.mark.filterwarnings("ignore")
def test_no_traceback_escapes_on_1200_broken_models(tmp_path):
    rng = np.random.default_rng(7)
    bases = _bases(tmp_path)
    (tmp_path / "link.data").symlink_to(tmp_path / "ext.onnx.data")
    outcomes = {"imported": 0, "refused": 0}
    kinds = dict.fromkeys(KINDS, 0)
    path = tmp_path / "fuzz.onnx"
    for i in range(1200):
        data, kind = _mutate(bases[i % len(bases)], rng)
        if i % 5 == 4:  # truncated or bit-flipped bytes
            kind = len(KINDS) - 1
            cut = bytearray(data[: int(rng.integers(0, len(data)))])
            for _ in range(int(rng.integers(0, 4))):
                if cut:
                    cut[int(rng.integers(len(cut)))] ^= 1 << int(rng.integers(8))
            data = bytes(cut)
        kinds[KINDS[kind]] += 1
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
            # one line that names the user's thing: the file, a node, a tensor, an input
            message = str(exc)
            assert message and "\n" not in message, message
            assert re.search(r"fuzz\.onnx|node '|tensor '|input '|output '", message), message
            outcomes["refused"] += 1
    assert outcomes["refused"] > 600 and outcomes["imported"] > 20, outcomes
    assert min(kinds.values()) >= 30, kinds
