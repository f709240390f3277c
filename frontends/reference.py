"""The golden model: an exact integer interpreter of the IR.

``run(graph, codes)`` takes a batch of integer input codes and returns every tensor's codes.
Helpers quantize float inputs and dequantize outputs the way ONNX (or QONNX) does. The
semantics of each op are stated in ``frontends.ir``; this module is their executable form.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError
from .fixedpoint import quantize_linear, quantize_qonnx, requantize, rounded_div
from .ir import Graph, Node

__all__ = ["run", "quantize_inputs", "dequantize", "predict", "OPS"]


def _requant(node: Node, acc, multiplier=None):
    a = node.attrs
    m = node.weights["multiplier"] if multiplier is None else multiplier
    return requantize(acc, m, a["shift"], a["output_zero_point"], a["lo"], a["hi"],
                      a.get("rounding", "half_up"))


def _activate(node: Node, acc, multiplier):
    if node.attrs.get("sign"):
        return np.where(acc >= 0, 1, -1).astype(np.int64)
    return _requant(node, acc, multiplier)


def _dense(node: Node, x: np.ndarray) -> np.ndarray:
    w = node.weights["weight"]
    x = x.reshape(len(x), -1)
    acc = (x - node.attrs["input_zero_point"]) @ w.T + node.weights["bias"]
    return _activate(node, acc, node.weights["multiplier"])


def _gather(x: np.ndarray, index: np.ndarray, pad: int) -> np.ndarray:
    """x (B, ...) flattened, gathered at ``index``; -1 reads ``pad``."""
    flat = x.reshape(len(x), -1)
    flat = np.concatenate([flat, np.full((len(x), 1), pad, np.int64)], axis=1)
    return flat[:, np.where(index < 0, flat.shape[1] - 1, index)]


def _conv(node: Node, x: np.ndarray) -> np.ndarray:
    a, w = node.attrs, node.weights
    cols = _gather(x - a["input_zero_point"], w["im2col"], 0)        # (B, G, M, Kg)
    g = a["group"]
    cout = w["weight"].shape[0]
    wg = w["weight"].reshape(g, cout // g, -1)                        # (G, Ng, Kg)
    acc = np.einsum("bgmk,gnk->bgnm", cols, wg, optimize=False)
    acc = acc.reshape(len(x), cout, -1) + w["bias"][:, None]
    y = _activate(node, acc, w["multiplier"][:, None])
    return y.reshape((len(x),) + tuple(a["output_shape"]))


def _maxpool(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    win = _gather(x, node.weights["im2col"], np.iinfo(np.int64).min)  # (B, C, M, k)
    y = _requant(node, win.max(axis=-1) - a["input_zero_point"])
    return y.reshape((len(x),) + tuple(a["output_shape"]))


def _avgpool(node: Node, x: np.ndarray) -> np.ndarray:
    a, w = node.attrs, node.weights
    acc = _gather(x - a["input_zero_point"], w["im2col"], 0).sum(axis=-1)
    den = w["count"][None, None, :] << a["shift"]
    y = rounded_div(acc * int(w["multiplier"][0]), den, a.get("rounding", "half_up"))
    return np.clip(y + a["output_zero_point"], a["lo"], a["hi"]).reshape(
        (len(x),) + tuple(a["output_shape"]))


def _view(node: Node, x: np.ndarray, shape=None) -> np.ndarray:
    shape = node.attrs["input_shape"] if shape is None else shape
    return x.reshape((len(x),) + tuple(shape))


def _add(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _view(node, a), _view(node, b)
    za, zb = node.attrs["input_zero_points"]
    m = node.weights["multiplier"]
    acc = (a - za) * m[0] + (b - zb) * m[1]
    return _requant(node, acc, 1)


def _concat(node: Node, *xs: np.ndarray) -> np.ndarray:
    zs, m = node.attrs["input_zero_points"], node.weights["multiplier"]
    shapes = node.attrs["input_shapes"]
    parts = [_requant(node, _view(node, x, s) - z, mi) for x, z, mi, s in zip(xs, zs, m, shapes)]
    return np.concatenate(parts, axis=node.attrs["axis"] + 1)


def _requant_op(node: Node, x: np.ndarray) -> np.ndarray:
    return _requant(node, x - node.attrs["input_zero_point"])


def _transpose(node: Node, x: np.ndarray) -> np.ndarray:
    return np.transpose(_view(node, x), (0,) + tuple(p + 1 for p in node.attrs["perm"]))


def _slice(node: Node, x: np.ndarray) -> np.ndarray:
    x = _view(node, x)
    index = [slice(None)] * x.ndim
    a = node.attrs
    for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        index[axis + 1] = slice(start, end, step)
    return x[tuple(index)]


def _nonlinear(node: Node, x: np.ndarray) -> np.ndarray:
    a, w = node.attrs, node.weights
    if a["function"] != "softmax":
        return w["table"][x - a["input_min"]]
    x = _view(node, x)
    axis = a["axis"] + 1
    d = x - x.max(axis=axis, keepdims=True)
    e = w["exp_table"][d + (len(w["exp_table"]) - 1)].astype(object)
    total = e.sum(axis=axis, keepdims=True)
    m, two_s = int(w["multiplier"][0]), 1 << a["shift"]
    y = (e * m * 2 + total * two_s) // (2 * total * two_s)
    y = np.asarray(y, dtype=np.int64) + a["output_zero_point"]
    return np.clip(y, a["lo"], a["hi"])


OPS = {"dense": _dense, "conv": _conv, "maxpool": _maxpool, "avgpool": _avgpool, "add": _add,
       "concat": _concat, "requant": _requant_op, "transpose": _transpose, "slice": _slice,
       "nonlinear": _nonlinear}


def run(graph: Graph, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Codes of every tensor for a batch ``codes`` of shape (B, *input shape)."""
    (name,) = graph.inputs
    t = graph.tensor(name)
    codes = np.asarray(codes)
    if codes.ndim < 1 or codes.shape[1:] != t.shape:
        raise ModelError(f"input '{name}' expects shape (batch, {', '.join(map(str, t.shape))}),"
                         f" got {codes.shape}")
    if not t.dtype.contains(codes):
        raise ModelError(f"input '{name}' codes lie outside {t.dtype}")
    env = {name: codes.astype(np.int64)}
    for node in graph.nodes:
        fn = OPS.get(node.op)
        if fn is None:
            raise ModelError(f"{node.describe()}: the golden model has no op '{node.op}'")
        y = fn(node, *(env[i] for i in node.inputs))
        env[node.outputs[0]] = y.reshape((len(codes),) + graph.tensor(node.outputs[0]).shape)
    return env


def quantize_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float inputs (B, *shape) to the input's integer codes, as the model's own quantizer
    (ONNX QuantizeLinear, QONNX Quant or BipolarQuant) does."""
    t = graph.tensor(graph.inputs[0])
    q = t.quant
    with np.errstate(over="ignore"):  # beyond float32: inf, which saturates as in ONNX
        x = np.asarray(x, dtype=np.float32).reshape((len(x),) + t.shape)
    if q.rounding == "onnx":
        return quantize_linear(x, q.scale, q.zero_point, t.dtype.min, t.dtype.max)
    if q.rounding == "BIPOLAR":
        return np.where(x >= 0, 1, -1).astype(np.int64)
    return quantize_qonnx(x, q.scale, q.zero_point, t.dtype.min, t.dtype.max, q.rounding)


def dequantize(graph: Graph, tensor: str, codes: np.ndarray) -> np.ndarray:
    q = graph.tensor(tensor).quant
    return (codes.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)


def predict(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the golden model for float inputs ``x``."""
    env = run(graph, quantize_inputs(graph, x))
    out = graph.outputs[0]
    return dequantize(graph, out, env[out])
