"""QONNX / Brevitas ops (domains onnx.brevitas, qonnx.custom_op.general): Quant (IntQuant),
BipolarQuant, Trunc. Semantics as in qonnx ``docs/qonnx-custom-ops`` and
``custom_op/general/{quant,bipolar_quant,trunc}.py``:

- ``Quant(x, scale, zeropt, bitwidth)``: ``(mode(clamp(x / scale + zeropt)) - zeropt) * scale``
  (signed/narrow attrs give the clamp range; rounding_mode defaults to ROUND = half to even).
  A 1-bit signed Quant is bipolar, as qonnx executes it.
- ``BipolarQuant(x, scale)``: ``(+1 if x >= 0 else -1) * scale``.
- ``Trunc`` v1 ``(x, scale, zeropt, in_bw, out_bw)``:
  ``mode(round(x / scale + zeropt) / 2**(in_bw - out_bw))`` rescaled by ``scale``;
  v2 ``(x, scale, zeropt, in_bw, out_scale, out_bw)`` divides by ``2**round(log2(out_scale /
  scale))``, clamps to out_bw (signed/narrow) and rescales by ``out_scale``.

A Quant of a constant quantizes weights (per tensor or per channel); of anything else it is a
quantizer that ends the preceding layer, like QuantizeLinear + DequantizeLinear.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..fixedpoint import QONNX_ROUNDING, quantize_qonnx
from ..ir import IntType, QuantParams
from .base import (
    QONNX_DOMAINS,
    Accumulator,
    Constant,
    Dequantized,
    FloatInput,
    Pending,
    State,
    attrs,
    const,
    describe_value,
    handler,
    positive_scale,
    value,
)
from .quant import quantize


def _mode(node, label: str, default: str) -> str:
    mode = attrs(node).get("rounding_mode", default)
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    if mode not in QONNX_ROUNDING:
        raise ModelError(
            f"{label}: rounding_mode '{mode}' is not one of {', '.join(QONNX_ROUNDING)}"
        )
    return mode


def _bit_width(array: np.ndarray, label: str, what: str = "bit width") -> int:
    bw = np.asarray(array, dtype=np.float64)
    if bw.size != 1 or not float(bw.reshape(())).is_integer():
        raise ModelError(f"{label}: {what} must be one integer, got {bw.reshape(-1)[:4]}")
    bw = int(bw.reshape(()))
    if not 1 <= bw <= 32:
        raise ModelError(f"{label}: {what} {bw} is outside 1..32")
    return bw


def _channel_axis(scale: np.ndarray, shape: tuple, label: str):
    """Axis along which a broadcastable QONNX scale varies (None: per tensor)."""
    if scale.size == 1:
        return None
    if scale.ndim != len(shape):
        raise ModelError(
            f"{label}: scale of shape {scale.shape} must have the rank of the "
            f"quantized tensor {shape}"
        )
    axes = [i for i, d in enumerate(scale.shape) if d != 1]
    if len(axes) != 1 or scale.shape[axes[0]] != shape[axes[0]]:
        raise ModelError(
            f"{label}: scale of shape {scale.shape} is neither per tensor nor per "
            f"channel of {shape}"
        )
    return axes[0]


def _int_type(bw: int, signed: bool, narrow: bool) -> IntType:
    if bw == 1 and signed:
        return IntType.of_bipolar()
    return IntType(bw, signed, narrow=narrow)


@handler("Quant", "IntQuant", domains=QONNX_DOMAINS)
def _quant(state: State, node, label: str):
    x = value(state, node, 0, label)
    scale = const(state, node, 1, label, "scale").astype(np.float32)
    zeropt = const(state, node, 2, label, "zero point").astype(np.float32)
    bw = _bit_width(const(state, node, 3, label, "bit width"), label)
    a = attrs(node)
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    mode = _mode(node, label, "ROUND")
    dtype = _int_type(bw, signed, narrow)
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{label}: scales must be positive and finite")
    if np.any(zeropt != np.round(zeropt)):
        raise ModelError(
            f"{label}: zero point {zeropt.reshape(-1)[:4]} is not an integer; "
            f"nnloom needs integer zero points"
        )
    out = node.output[0]
    if isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise ModelError(f"{label}: quantizing a non-float constant is not supported")
        axis = _channel_axis(scale, x.shape, label)
        if zeropt.size > 1 and _channel_axis(zeropt, x.shape, label) != axis:
            raise ModelError(f"{label}: zero point and scale vary along different axes")
        if dtype.bipolar:
            codes = np.where(x / scale + zeropt >= 0, 1, -1).astype(np.int64)
        else:
            codes = quantize_qonnx(x, scale, zeropt, dtype.min, dtype.max, mode)
        flat = lambda v: v.reshape(-1) if v.size > 1 else v.reshape(())
        state.values[out] = Constant(
            codes, flat(scale).astype(np.float64), flat(zeropt).astype(np.int64), axis, dtype
        )
        return
    if scale.size != 1 or zeropt.size != 1:
        raise ModelError(f"{label}: per-channel activation quantization is not supported")
    s, z = float(scale.reshape(())), int(zeropt.reshape(()))
    if dtype.bipolar:
        if z != 0:
            raise ModelError(f"{label}: a 1-bit signed (bipolar) Quant needs zero point 0")
        _bipolar_activation(state, x, out, s, label)
        return
    if QONNX_ROUNDING[mode] is None:
        raise ModelError(
            f"{label}: rounding_mode {mode} depends on the sign and is supported "
            f"for weights and graph inputs only"
        )
    codes = quantize(
        state, x, out, dtype, s, z, label, rounding=QONNX_ROUNDING[mode], input_rounding=mode
    )
    state.values[out] = Dequantized(codes.tensor, s, z, codes.shape)


def _bipolar_activation(state: State, x, out: str, s: float, label: str):
    if isinstance(x, FloatInput):
        codes = quantize(state, x, out, IntType.of_bipolar(), s, 0, label, input_rounding="BIPOLAR")
    elif isinstance(x, Accumulator):
        if x.lo_real > -math.inf or x.hi_real < math.inf:
            raise ModelError(f"{label}: bipolar quantization after Relu/Clip is not supported")
        codes = quantize(state, x, out, IntType.of_bipolar(), s, 0, label, sign=True)
    else:
        raise ModelError(
            f"{label}: bipolar quantization of {describe_value(x)} is not "
            f"supported (only graph inputs and Gemm/MatMul/Conv outputs)"
        )
    state.values[out] = Dequantized(codes.tensor, s, 0, codes.shape)


@handler("BipolarQuant", domains=QONNX_DOMAINS)
def _bipolar_quant(state: State, node, label: str):
    x = value(state, node, 0, label)
    scale = const(state, node, 1, label, "scale").astype(np.float32)
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{label}: scales must be positive and finite")
    out = node.output[0]
    if isinstance(x, np.ndarray):
        axis = _channel_axis(scale, x.shape, label)
        codes = np.where(x >= 0, 1, -1).astype(np.int64)
        state.values[out] = Constant(
            codes,
            scale.reshape(-1).astype(np.float64)
            if scale.size > 1
            else scale.reshape(()).astype(np.float64),
            np.zeros((), np.int64),
            axis,
            IntType.of_bipolar(),
        )
        return
    if scale.size != 1:
        raise ModelError(f"{label}: per-channel activation quantization is not supported")
    _bipolar_activation(state, x, out, float(scale.reshape(())), label)


@handler("Trunc", domains=QONNX_DOMAINS)
def _trunc(state: State, node, label: str):
    x = value(state, node, 0, label)
    if not isinstance(x, (Dequantized, Pending)):
        raise ModelError(
            f"{label}: Trunc of {describe_value(x)} is not supported; it must "
            f"follow a quantized tensor or an average pool"
        )
    scale = float(np.asarray(const(state, node, 1, label, "scale"), np.float64).reshape(-1)[0])
    zeropt = const(state, node, 2, label, "zero point")
    if np.any(np.asarray(zeropt) != 0):
        raise ModelError(f"{label}: Trunc with a non-zero zero point is not supported")
    in_bw = _bit_width(const(state, node, 3, label, "input bit width"), label)
    a = attrs(node)
    mode = _mode(node, label, "FLOOR")
    rounding = QONNX_ROUNDING[mode]
    if rounding is None:
        raise ModelError(f"{label}: rounding_mode {mode} is not supported for Trunc")
    positive_scale(scale, label)
    if len(node.input) >= 6:  # v2: out_scale and out_bitwidth
        out_scale = float(np.asarray(const(state, node, 4, label, "output scale")).reshape(-1)[0])
        positive_scale(out_scale, label)
        out_bw = _bit_width(const(state, node, 5, label, "output bit width"), label)
        k = int(np.round(np.log2(out_scale / scale)))
        dtype = _int_type(out_bw, bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
    else:
        out_bw = _bit_width(const(state, node, 4, label, "output bit width"), label)
        k, out_scale = in_bw - out_bw, scale
        src = x if isinstance(x, Dequantized) else x.inputs[0]
        signed = state.tensors[src.tensor].dtype.signed
        dtype = IntType(out_bw, signed)
    if k < 0:
        raise ModelError(f"{label}: output bit width {out_bw} exceeds input bit width {in_bw}")
    if isinstance(x, Dequantized):
        if x.scale != scale:
            raise ModelError(
                f"{label}: Trunc's input scale {scale} differs from the tensor's "
                f"{x.scale}; not supported"
            )
        x = Pending(
            node.name or node.output[0], "Trunc", "requant", (x,), {"trunc_shift": k}, x.shape
        )
    # else: a pool's sum (Brevitas: AveragePool, Mul by the window size, Trunc) rounded to
    # ``scale * 2**k`` in one requantization by in_scale * gain / (count * scale * 2**k).
    out = node.output[0]
    codes = quantize(state, x, out, dtype, scale * 2.0**k, 0, label, rounding=rounding)
    t = state.tensors[codes.tensor]
    state.tensors[codes.tensor] = replace(t, quant=QuantParams(np.array(out_scale), np.array(0)))
    state.values[out] = Dequantized(codes.tensor, out_scale, 0, codes.shape)
