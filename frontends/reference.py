"""The golden model: an exact integer interpreter of the IR.

``run(graph, codes)`` takes a batch of integer input codes and returns every tensor's codes.
Helpers quantize float inputs and dequantize outputs the way ONNX (or QONNX) does. The
semantics of each op are stated in ``frontends.ir``; this module is their executable form.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ModelError
from .fixedpoint import quantize_linear, quantize_qonnx, requantize
from .ir import Graph, Node

__all__ = [
    "run",
    "layout_inputs",
    "quantize_inputs",
    "dequantize",
    "host_ops",
    "host_outputs",
    "scores",
    "predict",
    "OPS",
]


def _requant(node: Node, acc, multiplier=None):
    a = node.attrs
    m = node.weights["multiplier"] if multiplier is None else multiplier
    return requantize(
        acc, m, a["shift"], a["output_zero_point"], a["lo"], a["hi"], a.get("rounding", "half_up")
    )


def _activate(node: Node, acc, multiplier):
    if node.attrs.get("sign"):
        return np.where(acc >= 0, 1, -1).astype(np.int64)
    return _requant(node, acc, multiplier)


def _dense(node: Node, x: np.ndarray) -> np.ndarray:
    w = node.weights["weight"]
    tokens = node.attrs.get("tokens", 1)
    x = x.reshape(len(x), -1) if tokens == 1 else x.reshape(len(x), tokens, -1)
    acc = (x - node.attrs["input_zero_point"]) @ w.T + node.weights["bias"]
    return _activate(node, acc, node.weights["multiplier"])


def _gather(x: np.ndarray, index: np.ndarray, pad: int) -> np.ndarray:
    """x (B, ...) flattened, gathered at ``index``; -1 reads ``pad``."""
    flat = x.reshape(len(x), -1)
    flat = np.concatenate([flat, np.full((len(x), 1), pad, np.int64)], axis=1)
    return flat[:, np.where(index < 0, flat.shape[1] - 1, index)]


def _conv(node: Node, x: np.ndarray) -> np.ndarray:
    a, w = node.attrs, node.weights
    cols = _gather(x - a["input_zero_point"], w["im2col"], 0)  # (B, G, M, Kg)
    g = a["group"]
    cout = w["weight"].shape[0]
    wg = w["weight"].reshape(g, cout // g, -1)  # (G, Ng, Kg)
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
    acc = _gather(x - a["input_zero_point"], w["im2col"], 0).sum(axis=-1)  # (B, C, M)
    m = w["multiplier"].reshape(-1)
    y = _requant(node, acc, m[None, None, :] if m.size > 1 else m[0])
    return y.reshape((len(x),) + tuple(a["output_shape"]))


def _view(node: Node, x: np.ndarray, shape=None) -> np.ndarray:
    shape = node.attrs["input_shape"] if shape is None else shape
    return x.reshape((len(x),) + tuple(shape))


def _add(node: Node, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    a = _view(node, a)
    b = node.weights["constant"][None] if b is None else _view(node, b)
    za, zb = node.attrs["input_zero_points"]
    m = node.weights["multiplier"]
    acc = (a - za) * m[0] + (b - zb) * m[1]
    return _requant(node, acc, 1)


def _concat(node: Node, *xs: np.ndarray) -> np.ndarray:
    zs, m = node.attrs["input_zero_points"], node.weights["multiplier"]
    shapes = node.attrs["input_shapes"]
    parts = [_requant(node, _view(node, x, s) - z, mi) for x, z, mi, s in zip(xs, zs, m, shapes)]
    kinds = node.attrs.get("parts")
    if kinds:  # constant parts (a class token) between the inputs, codes as they are
        it = iter(parts)
        parts = [
            np.broadcast_to(
                node.weights[f"constant_{i}"][None],
                (len(xs[0]),) + node.weights[f"constant_{i}"].shape,
            )
            if kind == "constant"
            else next(it)
            for i, kind in enumerate(kinds)
        ]
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


def _matmul(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    at = node.attrs
    za, zb = at["input_zero_points"]
    a = _view(node, a, at["a_shape"]) - za
    b = _view(node, b, at["b_shape"]) - zb
    if len(at["a_shape"]) < len(at["b_shape"]):  # numpy broadcasting of the sample axes
        a = a.reshape((len(a),) + (1,) * (len(at["b_shape"]) - len(at["a_shape"])) + a.shape[1:])
    elif len(at["b_shape"]) < len(at["a_shape"]):
        b = b.reshape((len(b),) + (1,) * (len(at["a_shape"]) - len(at["b_shape"])) + b.shape[1:])
    return _requant(node, np.matmul(a, b))


def _layernorm(node: Node, x: np.ndarray) -> np.ndarray:
    a, w = node.attrs, node.weights
    x = _view(node, x)
    c = x.shape[-1]
    d = c * x - x.sum(axis=-1, keepdims=True)
    v = (d.astype(object) ** 2).sum(axis=-1) + a["epsilon_codes"]
    p, q = a["sqrt_shift"], a["norm_bits"]
    inv = np.vectorize(lambda t: (1 << (p + q)) // math.isqrt(int(t) << (2 * p)), otypes=[object])
    inv = inv(v)
    acc = w["sign"] * d * np.asarray(inv, np.int64)[..., None] + w["bias"]
    return _requant(node, acc)


def _nonlinear(node: Node, x: np.ndarray) -> np.ndarray:
    a, w = node.attrs, node.weights
    if a["function"] != "softmax":
        return w["table"][x - a["input_min"]]
    x = _view(node, x)
    axis = a["axis"] + 1
    d = x - x.max(axis=axis, keepdims=True)
    e = w["exp_table"][d + (len(w["exp_table"]) - 1)]
    if "recip_shift" in a:  # one division per row
        inv = (1 << a["recip_shift"]) // e.sum(axis=axis, keepdims=True)
        return _requant(node, e * inv)
    e = e.astype(object)
    total = e.sum(axis=axis, keepdims=True)
    m, two_s = int(w["multiplier"][0]), 1 << a["shift"]
    y = (e * m * 2 + total * two_s) // (2 * total * two_s)
    y = np.asarray(y, dtype=np.int64) + a["output_zero_point"]
    return np.clip(y, a["lo"], a["hi"])


OPS = {
    "dense": _dense,
    "conv": _conv,
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "add": _add,
    "matmul": _matmul,
    "layernorm": _layernorm,
    "concat": _concat,
    "requant": _requant_op,
    "transpose": _transpose,
    "slice": _slice,
    "nonlinear": _nonlinear,
}


def run(graph: Graph, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Codes of every tensor for a batch ``codes`` of shape (B, *input shape)."""
    (name,) = graph.inputs
    t = graph.tensor(name)
    codes = np.asarray(codes)
    if codes.ndim < 1 or codes.shape[1:] != t.shape:
        raise ModelError(
            f"input '{name}' expects shape (batch, {', '.join(map(str, t.shape))}),"
            f" got {codes.shape}"
        )
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


def layout_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float inputs as the model takes them ((B, *input_shape) or one flat row per sample)
    laid out as the hardware takes them ((B, *input tensor shape)): the model's layout ops on
    its float input before the first quantizer (``Graph.input_layout``), done on the host."""
    t = graph.tensor(graph.inputs[0])
    shape = tuple(graph.input_shape) if graph.input_shape is not None else t.shape
    x = np.asarray(x)
    if int(np.prod(x.shape[1:], dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
        raise ModelError(
            f"input '{t.name}' takes {int(np.prod(shape))} values per sample "
            f"(shape {shape}), got shape {x.shape}"
        )
    x = x.reshape((len(x),) + shape)
    for step in graph.input_layout:
        if step[0] == "reshape":
            x = x.reshape((len(x),) + tuple(step[1]))
        else:
            x = np.transpose(x, (0,) + tuple(p + 1 for p in step[1]))
    return np.ascontiguousarray(x).reshape((len(x),) + t.shape)


def quantize_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float inputs (B, *shape) to the input's integer codes, as the model's own quantizer
    (ONNX QuantizeLinear, QONNX Quant or BipolarQuant) does, after its layout ops."""
    t = graph.tensor(graph.inputs[0])
    q = t.quant
    with np.errstate(over="ignore"):  # beyond float32: inf, which saturates as in ONNX
        x = layout_inputs(graph, np.asarray(x, dtype=np.float32))
    if q.rounding == "onnx":
        return quantize_linear(x, q.scale, q.zero_point, t.dtype.min, t.dtype.max)
    if q.rounding == "BIPOLAR":
        return np.where(x >= 0, 1, -1).astype(np.int64)
    return quantize_qonnx(x, q.scale, q.zero_point, t.dtype.min, t.dtype.max, q.rounding)


def _channel(values, shape: tuple, axis: int | None) -> np.ndarray:
    """A per-tensor or per-channel (along sample axis ``axis``) constant broadcast against
    a batch of shape (B, *shape)."""
    v = np.asarray(values, dtype=np.float32)
    if axis is None or v.size == 1:
        return v.reshape(())
    return v.reshape((1,) * (axis + 1) + (-1,) + (1,) * (len(shape) - axis - 1))


def dequantize(graph: Graph, tensor: str, codes: np.ndarray) -> np.ndarray:
    """``scale * (codes - zero_point) (+ offset)`` in float32, per tensor or per channel."""
    t = graph.tensor(tensor)
    q = t.quant
    codes = np.asarray(codes).reshape((len(codes),) + t.shape)
    y = (codes.astype(np.float32) - _channel(q.zero_point, t.shape, q.axis)) * _channel(
        q.scale, t.shape, q.axis
    )
    if q.offset is not None:
        y = y + _channel(q.offset, t.shape, q.axis)
    return y


def _softmax(y: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(y - y.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def host_ops(graph: Graph, y: np.ndarray) -> np.ndarray:
    """The float ops the host runs after the hardware (``Graph.host_ops``) on dequantized
    outputs ``y`` (B, *shape)."""
    for op in graph.host_ops:
        axis = op[1] + 1
        if op[0] == "softmax":
            y = _softmax(y.astype(np.float32), axis)
        elif op[0] == "log_softmax":
            z = y.astype(np.float32) - y.max(axis=axis, keepdims=True)
            y = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        elif op[0] == "argmax":
            y = np.argmax(y, axis=axis)
            if op[2]:
                y = np.expand_dims(y, axis)
        else:
            raise ModelError(f"model '{graph.name}': unknown host op '{op[0]}'")
    return y


def host_outputs(graph: Graph, codes: np.ndarray) -> np.ndarray:
    """What the model outputs, from the hardware's output codes: dequantized (per channel,
    with any float offset), then the host ops."""
    return host_ops(graph, dequantize(graph, graph.outputs[0], codes))


def scores(graph: Graph, codes: np.ndarray) -> np.ndarray:
    """Per-class scores for accuracy (argmax): the dequantized outputs (B, N), before any
    host op (softmax and log-softmax keep the argmax; an ArgMax would lose the scores)."""
    y = dequantize(graph, graph.outputs[0], codes)
    return y.reshape(len(y), -1)


def predict(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the golden model for float inputs ``x``, host ops applied."""
    env = run(graph, quantize_inputs(graph, x))
    out = graph.outputs[0]
    return host_outputs(graph, env[out])
