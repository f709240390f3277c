"""Integer ops: QLinearMatMul, QLinearConv (requantizing), MatMulInteger, ConvInteger (int32
accumulators that a later Cast/Mul/Add/QuantizeLinear turn into a layer)."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .base import (
    Codes,
    Constant,
    Dequantized,
    State,
    attrs,
    const,
    describe_value,
    handler,
    int_type,
    positive_scale,
    scalar,
    value,
)
from .linear import add_bias, conv_accumulator, dense_accumulator
from .quant import quantize


def _codes(state: State, node, index: int, label: str, what: str) -> Codes:
    v = value(state, node, index, label)
    if not isinstance(v, Codes):
        raise ModelError(
            f"{label}: {what} must be quantized integer codes (the output of "
            f"QuantizeLinear or another QLinear op); here it is {describe_value(v)}"
        )
    return v


def _weight(
    state: State,
    node,
    label: str,
    index: int,
    scale_i: int | None,
    zp_i: int,
    what: str,
    *,
    axis: int,
) -> Constant:
    """The integer weight at input ``index``, with its scale (input ``scale_i``; None: no
    scale, 1) and zero point (input ``zp_i``: required with a scale, else optional)."""
    scale = None if scale_i is None else const(state, node, scale_i, label, f"{what} scale")
    zp = const(state, node, zp_i, label, f"{what} zero point", optional=scale_i is None)
    w = const(state, node, index, label, "weight")
    dtype = int_type(w, label, "weight")
    scale = np.ones(1) if scale is None else np.asarray(scale, np.float64).reshape(-1)
    zp = np.zeros(1, np.int64) if zp is None else np.asarray(zp, np.int64).reshape(-1)
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{label}: weight scales must be positive and finite")
    per_axis = scale.size > 1 or zp.size > 1
    if per_axis and max(scale.size, zp.size) != w.shape[axis]:
        raise ModelError(
            f"{label}: {max(scale.size, zp.size)} weight scales/zero points for "
            f"{w.shape[axis]} channels"
        )
    return Constant(w.astype(np.int64), scale, zp, axis if per_axis else None, dtype)


def _x(state, node, label, index, scale_i, zp_i) -> Dequantized:
    c = _codes(state, node, index, label, "input")
    s = (
        1.0
        if scale_i is None
        else positive_scale(
            scalar(const(state, node, scale_i, label, "input scale"), label, "input scale"), label
        )
    )
    zp = const(state, node, zp_i, label, "input zero point", optional=True)
    z = 0 if zp is None else int(scalar(zp, label, "input zero point"))
    return Dequantized(c.tensor, s, z, c.shape, c.batched)


def _requantized(state: State, node, acc, label: str, y_scale_i: int, y_zp_i: int):
    s = positive_scale(
        scalar(const(state, node, y_scale_i, label, "output scale"), label, "output scale"), label
    )
    zp = const(state, node, y_zp_i, label, "output zero point")
    dtype = int_type(zp, label, "output zero point")
    state.values[node.output[0]] = quantize(
        state, acc, node.output[0], dtype, s, int(scalar(zp, label, "zero point")), label
    )


@handler("QLinearMatMul")
def _qlinear_matmul(state: State, node, label: str):
    x = _x(state, node, label, 0, 1, 2)
    w = _weight(state, node, label, 3, 4, 5, "B", axis=1)
    acc = dense_accumulator(node.name or node.output[0], "QLinearMatMul", x, w, False, label)
    _requantized(state, node, acc, label, 6, 7)


@handler("QLinearConv")
def _qlinear_conv(state: State, node, label: str):
    x = _x(state, node, label, 0, 1, 2)
    w = _weight(state, node, label, 3, 4, 5, "w", axis=0)
    acc = conv_accumulator(node.name or node.output[0], "QLinearConv", x, w, attrs(node), label)
    b = const(state, node, 8, label, "bias", optional=True)
    if b is not None:  # int32 at scale x_scale * w_scale (ONNX QLinearConv)
        acc = add_bias(
            acc,
            Constant(
                b.astype(np.int64),
                acc.acc_scale,
                np.zeros(1, np.int64),
                0,
                int_type(b, label, "bias"),
            ),
            label,
        )
    _requantized(state, node, acc, label, 6, 7)


@handler("MatMulInteger")
def _matmul_integer(state: State, node, label: str):
    x = _x(state, node, label, 0, None, 2)
    w = _weight(state, node, label, 1, None, 3, "B", axis=1)
    state.values[node.output[0]] = dense_accumulator(
        node.name or node.output[0], "MatMulInteger", x, w, False, label
    )


@handler("ConvInteger")
def _conv_integer(state: State, node, label: str):
    x = _x(state, node, label, 0, None, 2)
    w = _weight(state, node, label, 1, None, 3, "w", axis=0)
    state.values[node.output[0]] = conv_accumulator(
        node.name or node.output[0], "ConvInteger", x, w, attrs(node), label
    )
