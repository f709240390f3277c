"""Small quantized ONNX models made inside the tests (nothing is checked in)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def qdq_mlp(path: Path, *, sizes=(16, 12, 5), per_channel=False, activation="int8",
            seed=0, calibration=64) -> Path:
    """A random-weight MLP (Linear-ReLU-...-Linear) quantized by onnxruntime quantize_static."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    model = nn.Sequential(*layers).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    float_path = path.with_name(path.stem + "_float.onnx")
    torch.onnx.export(model, (torch.zeros(1, sizes[0]),), str(float_path), input_names=["x"],
                      output_names=["y"], dynamo=False, opset_version=17)
    rng = np.random.default_rng(seed)
    feeds = iter([{"x": rng.uniform(-1, 1, (1, sizes[0])).astype(np.float32)}
                  for _ in range(calibration)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    act = QuantType.QInt8 if activation == "int8" else QuantType.QUInt8
    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=per_channel)
    return path


def torch_qdq(module, input_shape, path: Path, *, dynamo=False, opset=None, per_channel=True,
              activation="int8", calibration=32, seed=0, low=-1.0, high=1.0) -> Path:
    """Export ``module`` (eval mode) with torch.onnx (legacy or dynamo exporter) and quantize
    it with onnxruntime ``quantize_static`` (QDQ, int8 weights) on uniform random inputs."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    module = module.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    float_path = path.with_name(path.stem + "_float.onnx")
    opset = opset or (18 if dynamo else 17)
    torch.onnx.export(module, (torch.zeros((1,) + tuple(input_shape)),), str(float_path),
                      input_names=["x"], output_names=["y"], dynamo=dynamo,
                      opset_version=opset)
    rng = np.random.default_rng(seed)
    feeds = iter([{"x": rng.uniform(low, high, (1,) + tuple(input_shape)).astype(np.float32)}
                  for _ in range(calibration)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    act = QuantType.QInt8 if activation == "int8" else QuantType.QUInt8
    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=per_channel)
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
    return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


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
    rows = [dict(zip(outs, s.run(None, {inp: x[i:i + 1]}))) for i in range(len(x))]
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
