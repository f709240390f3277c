"""The range of every integer the IR computes, checked once at import.

The golden model computes in int64 (exactly past it only where it must) and every engine
sizes its fields from these figures, so a model whose integers do not fit is refused here,
naming the node, instead of overflowing silently or failing later in an assembler:

- a bias fits int32 (the accumulator type ONNX's QLinear ops and QONNX/Brevitas Int32Bias
  define), so ``|bias| < 2**31``;
- a dense/conv accumulator ``sum_k |w| * max|x - zp| + |bias|`` stays below ``2**62``;
- a requantizer's right shift is at most ``MAX_SHIFT`` (a smaller real multiplier,
  ``scale_in * scale_w / scale_out < 2**-(MAX_SHIFT - 15)``, would make the layer's output
  independent of its input; such scales come from a broken export, e.g. denormal scales).
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError
from .fixedpoint import MULTIPLIER_BITS
from .ir import Graph, Node

__all__ = [
    "check_ranges",
    "check_tensor_size",
    "check_window_size",
    "MAX_SHIFT",
    "BIAS_BITS",
    "ACC_LIMIT",
    "MAX_TENSOR",
    "MAX_WINDOW_INDEX",
]

MAX_SHIFT = 62
BIAS_BITS = 32
ACC_LIMIT = 2.0**62
# Sizes the golden model and the engines' planners hold in memory: a tensor of one sample
# (16 Mi codes), a convolution's or pool's window index map (64 Mi int64 entries, 512 MiB).
MAX_TENSOR = 1 << 24
MAX_WINDOW_INDEX = 1 << 26


def check_tensor_size(n: int, label: str, what: str) -> None:
    if n > MAX_TENSOR:
        raise ModelError(
            f"{label}: {what} holds {n:,} values per sample; nnloom handles at most {MAX_TENSOR:,}"
        )


def check_window_size(n: int, label: str) -> None:
    if n > MAX_WINDOW_INDEX:
        raise ModelError(
            f"{label}: its windows would take {n:,} input reads per sample "
            f"(channels x output pixels x kernel taps); nnloom handles at most "
            f"{MAX_WINDOW_INDEX:,}"
        )


def _input_span(graph: Graph, node: Node) -> float:
    """The largest ``|x - input_zero_point|`` over the input's integer type."""
    t = graph.tensor(node.inputs[0]).dtype
    zp = int(node.attrs.get("input_zero_point", 0))
    return float(max(abs(t.max - zp), abs(t.min - zp)))


def check_ranges(graph: Graph) -> None:
    """Raise ``ModelError`` naming the first node whose integers do not fit (see above)."""
    for node in graph.nodes:
        what = node.describe()
        shift = node.attrs.get("shift")
        if shift is not None and not 0 <= int(shift) <= MAX_SHIFT:
            raise ModelError(
                f"{what}: its requantization needs a right shift of {shift} bits "
                f"(at most {MAX_SHIFT}): the multiplier scale_in*scale_w/scale_out "
                f"is below 2**-{MAX_SHIFT - MULTIPLIER_BITS}; check the model's "
                f"scales (tiny or denormal scales)"
            )
        if node.op not in ("dense", "conv"):
            continue
        bias = np.asarray(node.weights["bias"])
        if bias.size and np.abs(bias.astype(np.float64)).max() >= 2.0 ** (BIAS_BITS - 1):
            raise ModelError(
                f"{what}: the bias at the accumulator's scale (scale_in*scale_w) "
                f"reaches {np.abs(bias.astype(np.float64)).max():.3g}, beyond "
                f"int{BIAS_BITS}; check the model's scales (tiny or denormal "
                f"input/weight scales)"
            )
        w = np.abs(node.weights["weight"].astype(np.float64)).reshape(
            node.weights["weight"].shape[0], -1
        )
        bound = w.sum(axis=1) * _input_span(graph, node) + np.abs(bias.astype(np.float64))
        if bound.size and bound.max() >= ACC_LIMIT:
            raise ModelError(
                f"{what}: its accumulator can reach {bound.max():.3g}, beyond "
                f"2**62; the input and weight types are too wide for exact "
                f"integer arithmetic"
            )
