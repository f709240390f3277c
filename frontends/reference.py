"""The golden model: an exact integer interpreter of the IR.

``run(graph, codes)`` takes a batch of integer input codes and returns every tensor's codes.
Helpers quantize float inputs and dequantize outputs the way ONNX does.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError
from .fixedpoint import quantize_linear, requantize
from .ir import Graph, Node

__all__ = ["run", "quantize_inputs", "dequantize", "predict"]


def _dense(node: Node, x: np.ndarray) -> np.ndarray:
    w = node.weights["weight"]
    acc = (x.astype(np.int64) - node.attrs["input_zero_point"]) @ w.T + node.weights["bias"]
    return requantize(acc, node.weights["multiplier"], node.attrs["shift"],
                      node.attrs["output_zero_point"], node.attrs["lo"], node.attrs["hi"])


_OPS = {"dense": _dense}


def run(graph: Graph, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Codes of every tensor for a batch ``codes`` of shape (B, *input shape)."""
    (name,) = graph.inputs
    t = graph.tensor(name)
    codes = np.asarray(codes)
    if codes.shape[1:] != t.shape:
        raise ModelError(f"input '{name}' expects shape (batch, {', '.join(map(str, t.shape))}),"
                         f" got {codes.shape}")
    if codes.min(initial=t.dtype.min) < t.dtype.min or codes.max(initial=t.dtype.max) > t.dtype.max:
        raise ModelError(f"input '{name}' codes lie outside {t.dtype}")
    env = {name: codes.astype(np.int64)}
    for node in graph.nodes:
        env[node.outputs[0]] = _OPS[node.op](node, env[node.inputs[0]])
    return env


def quantize_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float inputs (B, *shape) to the input's integer codes, as ONNX QuantizeLinear does."""
    t = graph.tensor(graph.inputs[0])
    x = np.asarray(x, dtype=np.float32).reshape((len(x),) + t.shape)
    return quantize_linear(x, t.quant.scale, t.quant.zero_point, t.dtype.min, t.dtype.max)


def dequantize(graph: Graph, tensor: str, codes: np.ndarray) -> np.ndarray:
    q = graph.tensor(tensor).quant
    return (codes.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)


def predict(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the golden model for float inputs ``x``."""
    env = run(graph, quantize_inputs(graph, x))
    out = graph.outputs[0]
    return dequantize(graph, out, env[out])
