"""Token sequences: MatMul of two quantized activations (attention's Q x K^T and A x V, per
head) as the IR's ``matmul``, and the mean over the tokens (ReduceMean over the token axis)
as an ``avgpool`` of one window per feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..fixedpoint import division_multiplier
from .base import (
    Dequantized,
    Pending,
    State,
    View,
    check_tokens,
    emitter,
    from_full,
    full_shape,
)
from .quant import multipliers

if TYPE_CHECKING:
    from onnx import NodeProto


def matmul_activations(
    state: State, node: NodeProto, a: Dequantized, b: Dequantized, label: str
) -> View:
    """``MatMul(a, b)`` of two quantized activations (numpy broadcasting of the leading
    axes, each at least 2-D as ONNX sees it)."""
    fa, fb = full_shape(a), full_shape(b)
    if len(fa) < 2 or len(fb) < 2:
        raise ModelError(f"{label}: MatMul of shapes {fa} and {fb}; both must be at least 2-D")
    if fa[-1] != fb[-2]:
        raise ModelError(f"{label}: MatMul of shapes {fa} and {fb}: inner sizes differ")
    try:
        lead = np.broadcast_shapes(fa[:-2], fb[:-2])
    except ValueError:
        raise ModelError(f"{label}: MatMul of shapes {fa} and {fb} does not broadcast") from None
    for n, what in ((fa[-2], "rows of A"), (fb[-1], "columns of B"), (fa[-1], "inner size")):
        check_tokens(n, label, f"the MatMul's {what}")
    out_full = tuple(lead) + (fa[-2], fb[-1])
    if a.batched and b.batched:  # the IR's views: the sample's own axes
        a_shape, b_shape = tuple(a.shape), tuple(b.shape)
        if len(a_shape) < 2 or len(b_shape) < 2:
            a_shape, b_shape = fa, fb
    else:
        a_shape, b_shape = fa, fb
    pending = Pending(
        node.name or node.output[0],
        "MatMul",
        "matmul",
        (a, b),
        {"a_shape": a_shape, "b_shape": b_shape},
        out_full,
    )
    return from_full(state, pending, out_full, label, "MatMul")


@emitter("matmul")
def _emit_matmul(state, p: Pending, dtype, scale, zp, label):
    a, b = p.inputs
    m, shift = multipliers(np.array([a.scale * b.scale * p.gain / scale]), label)
    return (
        "matmul",
        {
            "a_shape": p.attrs["a_shape"],
            "b_shape": p.attrs["b_shape"],
            "input_zero_points": (a.zero_point, b.zero_point),
            "shift": shift,
            "rounding": "half_up",
        },
        {"multiplier": m},
    )


def token_mean(
    state: State, node: NodeProto, x: Dequantized, axes: list, keepdims: bool, label: str
) -> Pending | None:
    """ReduceMean over the token axis of a (T, E) sequence (``x.mean(1)`` in torch) as a
    Pending ``tokenmean``; None when ``axes`` are not that axis."""
    full = full_shape(x)
    axes = sorted(a + len(full) if a < 0 else a for a in axes)
    if len(full) != 3 or axes != [1] or not x.batched:
        return None
    t, e = full[1], full[2]
    check_tokens(t, label, "the ReduceMean's input")
    shape = (1, e) if keepdims else (e,)
    return Pending(
        node.name or node.output[0],
        "ReduceMean",
        "tokenmean",
        (x,),
        {"tokens": t, "features": e, "output_shape": shape},
        shape,
    )


@emitter("tokenmean")
def _emit_token_mean(state, p: Pending, dtype, scale, zp, label):
    """An ``avgpool`` whose window for feature e is the T tokens ``x.flat[t * E + e]``; the
    division by T and the rescale are one multiplier and shift proven exact
    (``division_multiplier``, as every average pool)."""
    (x,) = p.inputs
    t, e = p.attrs["tokens"], p.attrs["features"]
    index = (np.arange(t)[None, None, :] * e + np.arange(e)[:, None, None]).astype(np.int64)
    num, s = multipliers(np.array([x.scale * p.gain / scale]), label)
    rounding = p.attrs.get("rounding", "half_even")
    dt = state.tensors[x.tensor].dtype
    d_lo, d_hi = dt.min - x.zero_point, dt.max - x.zero_point
    try:
        m, shift = division_multiplier(int(num[0]), t << int(s), t * d_lo, t * d_hi, rounding)
    except ValueError as exc:
        raise ModelError(f"{label}: the mean over {t} tokens: {exc}") from None
    return (
        "avgpool",
        {
            "input_zero_point": x.zero_point,
            "shift": shift,
            "input_shape": tuple(x.shape),
            "output_shape": p.attrs["output_shape"],
            "reduce": "tokens",
        },
        {
            "im2col": index,
            "multiplier": np.array([m], np.int64),
            "count": np.full(e, t, np.int64),
        },
    )
