"""Small quantized ONNX models made inside the tests (nothing is checked in)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def qdq_mlp(
    path: Path, *, sizes=(16, 12, 5), per_channel=False, activation="int8", seed=0, calibration=64
) -> Path:
    """A random-weight MLP (Linear-ReLU-...-Linear) quantized by onnxruntime quantize_static."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return torch_qdq(
        nn.Sequential(*layers),
        (sizes[0],),
        path,
        per_channel=per_channel,
        activation=activation,
        calibration=calibration,
        seed=seed,
    )


def torch_qdq(
    module,
    input_shape,
    path: Path,
    *,
    dynamo=False,
    opset=None,
    per_channel=True,
    activation="int8",
    calibration=32,
    seed=0,
    low=-1.0,
    high=1.0,
) -> Path:
    """Export ``module`` (eval mode) with torch.onnx (legacy or dynamo exporter) and quantize
    it with onnxruntime ``quantize_static`` (QDQ, int8 weights) on uniform random inputs."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    module = module.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    float_path = path.with_name(path.stem + "_float.onnx")
    opset = opset or (18 if dynamo else 17)
    torch.onnx.export(
        module,
        (torch.zeros((1,) + tuple(input_shape)),),
        str(float_path),
        input_names=["x"],
        output_names=["y"],
        dynamo=dynamo,
        opset_version=opset,
    )
    rng = np.random.default_rng(seed)
    feeds = iter(
        [
            {"x": rng.uniform(low, high, (1,) + tuple(input_shape)).astype(np.float32)}
            for _ in range(calibration)
        ]
    )

    class Reader:
        def get_next(self):
            return next(feeds, None)

    act = QuantType.QInt8 if activation == "int8" else QuantType.QUInt8
    quantize_static(
        str(float_path),
        str(path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=act,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
    )
    return path


def qdq_conv(
    path: Path, *, channels: int, out_channels: int, hw: int, kernel: int, name: str
) -> Path:
    """x (1, ``channels``, hw, hw) -> Q -> DQ -> Conv ``name`` (seeded int8 weights, zero
    'same' padding) -> Q -> DQ, per tensor, built with ``onnx.helper``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = {
        "s": np.float32(0.05),
        "z": np.int8(0),
        "sw": np.float32(0.01),
        "sy": np.float32(0.2),
        "zy": np.int8(0),
        "w": rng.integers(-127, 128, (out_channels, channels, kernel, kernel)).astype(np.int8),
    }
    pad = kernel // 2
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "sw"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name=name, pads=[pad] * 4),
        helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "sy", "zy"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, hw, hw])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path)
    )
    return path


def qdq_then(path: Path, op: str, name: str) -> Path:
    """x (1, 4) -> Q -> DQ -> ``op`` (one input, node ``name``) -> y, opset 21: a model whose
    last node is whatever op a test needs refused."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="qin"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dq"),
        helper.make_node(op, ["d"], ["y"], name=name),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
            helper.make_tensor("z", TensorProto.INT8, [], [0]),
        ],
    )
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), path
    )
    return path


def ort_unfused(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime with graph optimizations off, one sample at a time (see
    tests/frontends/test_onnx_import.py for why the fused kernels are not a reference)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def ort_tensors(path, names, x: np.ndarray, tmp_dir: Path) -> dict:
    """Values of the ONNX tensors ``names`` (e.g. every QuantizeLinear output) computed by
    onnxruntime, unfused, for the batch ``x``: the model is re-saved with them as outputs."""
    import onnx

    model = onnx.load(str(path))
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    tmp = Path(tmp_dir) / (Path(path).stem + "_probe.onnx")
    onnx.save(model, str(tmp))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    s = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
    outs = [o.name for o in s.get_outputs()]
    inp = s.get_inputs()[0].name
    rows = [dict(zip(outs, s.run(None, {inp: x[i : i + 1]}))) for i in range(len(x))]
    return {n: np.concatenate([r[n] for r in rows]) for n in names}


def per_node_errors(graph, path, x: np.ndarray, tmp_dir: Path) -> dict:
    """Run every IR node of ``graph`` on onnxruntime's own input codes and compare with
    onnxruntime's output codes: {node name: (op, max |diff| in codes, fraction differing)}.
    Tensors that are float in ONNX (Slice/Transpose outputs) are requantized exactly."""
    from frontends import reference

    names = sorted({t for n in graph.nodes for t in (*n.inputs, *n.outputs)})
    theirs = ort_tensors(path, names, x, tmp_dir)

    def codes(name):
        v, t = theirs[name], graph.tensor(name)
        if v.dtype.kind == "f":
            v = np.rint(v / np.float32(t.quant.scale)) + int(t.quant.zero_point)
        return v.astype(np.int64).reshape((len(x),) + t.shape)

    out = {}
    for node in graph.nodes:
        y = reference.OPS[node.op](node, *(codes(i) for i in node.inputs))
        d = np.abs(y.reshape(len(x), -1) - codes(node.outputs[0]).reshape(len(x), -1))
        out[node.name] = (node.op, int(d.max()), float((d > 0).mean()))
    return out


# --- QONNX models built by hand (Brevitas/qonnx are not dependencies) --------------------------

QONNX_DOMAIN = "qonnx.custom_op.general"


def expand_qonnx(model):
    """A float twin of a QONNX model: every Quant/BipolarQuant/Trunc replaced by standard ONNX
    ops that compute qonnx's reference (quant.py, bipolar_quant.py, trunc.py v1) step by step
    in float32, so onnxruntime can execute the QONNX semantics."""
    from onnx import helper, numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    extra, nodes = [], []
    rounders = {"ROUND": "Round", "HALF_EVEN": "Round", "FLOOR": "Floor", "CEIL": "Ceil"}

    def const(name, v):
        extra.append(numpy_helper.from_array(np.asarray(v, dtype=np.float32), name))
        return name

    for i, n in enumerate(model.graph.node):
        if n.domain not in ("qonnx.custom_op.general", "onnx.brevitas"):
            nodes.append(n)
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        p = f"_x{i}_"
        if n.op_type == "BipolarQuant":
            x, s = n.input[:2]
            nodes += [
                helper.make_node("GreaterOrEqual", [x, const(p + "0", 0.0)], [p + "ge"]),
                helper.make_node(
                    "Where", [p + "ge", const(p + "1", 1.0), const(p + "m1", -1.0)], [p + "b"]
                ),
                helper.make_node("Mul", [p + "b", s], [n.output[0]]),
            ]
            continue
        if n.op_type == "Trunc":
            x, s, z, ibw, obw = n.input[:5]
            k = float(inits[ibw]) - float(inits[obw])
            mode = a.get("rounding_mode", b"FLOOR")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            nodes += [
                helper.make_node("Div", [x, s], [p + "d"]),
                helper.make_node("Add", [p + "d", z], [p + "a"]),
                helper.make_node("Round", [p + "a"], [p + "r"]),
                helper.make_node("Div", [p + "r", const(p + "k", 2.0**k)], [p + "t"]),
                helper.make_node(rounders[mode.upper()], [p + "t"], [p + "f"]),
                helper.make_node("Sub", [p + "f", z], [p + "u"]),
                helper.make_node("Mul", [p + "u", s], [n.output[0]]),
            ]
            continue
        x, s, z, bw = n.input[:4]
        bits = int(inits[bw])
        signed, narrow = a.get("signed", 1), a.get("narrow", 0)
        lo = -(2 ** (bits - 1)) + narrow if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
        mode = a.get("rounding_mode", b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        nodes += [
            helper.make_node("Div", [x, s], [p + "d"]),
            helper.make_node("Add", [p + "d", z], [p + "a"]),
            helper.make_node(
                "Clip", [p + "a", const(p + "lo", lo), const(p + "hi", hi)], [p + "c"]
            ),
            helper.make_node(rounders[mode.upper()], [p + "c"], [p + "r"]),
            helper.make_node("Sub", [p + "r", z], [p + "u"]),
            helper.make_node("Mul", [p + "u", s], [n.output[0]]),
        ]
    g = helper.make_graph(
        nodes,
        model.graph.name,
        model.graph.input,
        model.graph.output,
        list(model.graph.initializer) + extra,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class QonnxBuilder:
    """Builds a QONNX graph: ``quant(x, scale, bits, ...)`` etc. return tensor names."""

    def __init__(self, domain=QONNX_DOMAIN):
        self.domain, self.nodes, self.inits, self.n = domain, [], {}, 0

    def _name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def init(self, value, p="c"):
        name = self._name(p)
        self.inits[name] = np.asarray(value, dtype=np.float32)
        return name

    def node(self, op, inputs, domain="", **attrs):
        out = self._name(op.lower())
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def quant(self, x, scale, bits, *, zeropt=0.0, signed=1, narrow=0, mode="ROUND"):
        return self.node(
            "Quant",
            [x, self.init(scale), self.init(zeropt), self.init(bits)],
            domain=self.domain,
            signed=signed,
            narrow=narrow,
            rounding_mode=mode,
        )

    def bipolar(self, x, scale):
        return self.node("BipolarQuant", [x, self.init(scale)], domain=self.domain)

    def trunc(self, x, scale, in_bits, out_bits, mode="FLOOR"):
        return self.node(
            "Trunc",
            [x, self.init(scale), self.init(0.0), self.init(in_bits), self.init(out_bits)],
            domain=self.domain,
            rounding_mode=mode,
        )

    def save(self, path, out, in_shape, out_shape, *, external=False):
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        nodes = self.nodes + [helper.make_node("Identity", [out], ["y"])]
        g = helper.make_graph(
            nodes,
            "qonnx",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()],
        )
        model = helper.make_model(
            g,
            opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(self.domain, 1)],
            ir_version=8,
        )
        path = Path(path)
        if external:
            onnx.save(
                model,
                str(path),
                save_as_external_data=True,
                location=path.name + ".data",
                size_threshold=0,
            )
        else:
            onnx.save(model, str(path))
        return path, model
