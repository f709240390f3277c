"""QuantizeLinear / DequantizeLinear, and ``quantize``: a value meets its quantizer and
becomes an IR node (dense, conv, add, concat, pools, nonlinear, requant) or an alias."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ModelError
from ..fixedpoint import quantize_linear, quantize_multipliers
from ..im2col import conv_im2col
from ..ir import IntType, Node, QuantParams, Tensor
from ..ranges import check_tensor_size
from .base import (
    EMITTERS,
    Accumulator,
    Codes,
    Constant,
    Dequantized,
    FloatInput,
    Padded,
    Pending,
    State,
    Value,
    attrs,
    const,
    handler,
    int_type,
    positive_scale,
    scalar,
    value,
)

# ONNX TensorProto element types of quantized tensors.
INT_TYPES = {
    2: IntType(8, False),
    3: IntType(8, True),
    4: IntType(16, False),
    5: IntType(16, True),
    6: IntType(32, True),
    21: IntType(4, False),
    22: IntType(4, True),
}

IDENTITY_MULTIPLIER = (1 << 14, 14)  # m * 2**-shift == 1 exactly

log = logging.getLogger("frontends.onnx_import")


def multipliers(
    real: ArrayLike,
    label: str,
    what: str = "requantization multiplier",
    *,
    bits: int | None = None,
) -> tuple[np.ndarray, int]:
    """``fixedpoint.quantize_multipliers`` (at ``bits``, default the width in force) with
    its error as a ``ModelError`` naming ``label``."""
    real = np.asarray(real, dtype=np.float64).reshape(-1)
    try:
        return quantize_multipliers(real, bits=bits)
    except ValueError as exc:
        text = str(exc)
        raise ModelError(
            f"{label}: {text}" if text.startswith(what) else f"{label}: {what}: {text}"
        ) from None


def code_bounds(
    dtype: IntType, scale: float, zp: int, lo_real: float, hi_real: float
) -> tuple[int, int]:
    """Code range of ``Q(clamp(v, lo_real, hi_real))``: Q is monotone, so clamping before or
    after quantizing is the same (ONNX QuantizeLinear rounding of the bounds)."""
    lo, hi = dtype.min, dtype.max
    if lo_real > -math.inf:
        lo = max(lo, int(quantize_linear(lo_real, scale, zp, dtype.min, dtype.max)))
    if hi_real < math.inf:
        hi = min(hi, int(quantize_linear(hi_real, scale, zp, dtype.min, dtype.max)))
    if lo > hi:
        raise ModelError(f"clip range [{lo_real}, {hi_real}] is empty in the quantized type")
    return lo, hi


def quantize(
    state: State,
    v: Value | None,
    out: str,
    dtype: IntType,
    scale: float,
    zp: int,
    label: str,
    *,
    rounding: str = "half_even",
    input_rounding: str = "onnx",
    sign: bool = False,
) -> Codes:
    """Give ``v`` the integer codes of IR tensor ``out`` (scale, zero point, type); returns
    the ``Codes`` of the result (which may be an existing tensor when nothing changes).

    ``rounding`` is the model's (ONNX: half_even). Pools, adds, concats, requants keep it;
    dense and conv layers round ``half_even`` as ``half_up`` -- one adder in the MAC engines'
    requantizers; their exact ties are rare because the multiplier is an arbitrary product of
    scales -- and keep ``floor``/``ceil``."""
    positive_scale(scale, label)
    if getattr(v, "pool", None) is not None:  # a ReduceMean quantized as a pool after all
        v = v.pool
    if not dtype.bipolar and not dtype.min <= zp <= dtype.max:
        raise ModelError(f"{label}: zero point {zp} lies outside {dtype}")
    if sign and not isinstance(v, Accumulator | FloatInput):
        raise ModelError(
            f"{label}: bipolar quantization is supported for graph inputs and "
            f"the outputs of Gemm/MatMul/Conv only"
        )
    quant = QuantParams(np.array(scale), np.array(zp), rounding=input_rounding)
    if isinstance(v, FloatInput):
        shape = tuple(v.shape[1:]) if len(v.shape) > 1 else tuple(v.shape)
        if not shape or any(d <= 0 for d in shape):
            raise ModelError(
                f"{label}: graph input '{v.name}' needs a known shape with a "
                f"batch dimension first; it has {v.shape}"
            )
        check_tensor_size(int(np.prod(shape)), label, f"graph input '{v.name}'")
        if state.inputs:
            raise ModelError(
                f"{label}: a second quantized graph input ('{v.name}'); nnloom "
                f"supports models with one input"
            )
        state.tensors[out] = Tensor(out, shape, dtype, quant)
        state.inputs.append(out)
        if v.layout:
            src = v.source_shape
            state.input_shape = tuple(src[1:]) if len(src) > 1 else tuple(src)
            state.input_layout = v.layout
        return Codes(out, shape)
    if isinstance(v, Accumulator):
        return _emit_linear(state, v, out, dtype, scale, zp, rounding, quant, label, sign)
    if isinstance(v, Pending):
        return _emit_pending(state, v, out, dtype, scale, zp, rounding, quant, label)
    if isinstance(v, Dequantized):
        src = state.tensors[v.tensor].dtype
        if (
            scale == v.scale
            and zp == v.zero_point
            and dtype.min <= src.min
            and src.max <= dtype.max
        ):
            return Codes(v.tensor, v.shape, v.batched)  # same codes: an alias, no node
        p = Pending(out, "QuantizeLinear", "requant", (v,), {}, v.shape, batched=v.batched)
        return _emit_pending(state, p, out, dtype, scale, zp, rounding, quant, label)
    if isinstance(v, Codes):
        raise ModelError(
            f"{label}: input is already quantized (integer codes); quantizing it "
            f"again needs a DequantizeLinear first"
        )
    raise ModelError(
        f"{label}: quantizing a constant or an unknown value is not supported; "
        f"only graph inputs and the outputs of supported ops can be quantized"
    )


def _emit_linear(state, acc: Accumulator, out, dtype, scale, zp, rounding, quant, label, sign):
    n = acc.weight.shape[0]
    if acc.bias_residual is not None:
        err = float(np.abs(acc.bias_residual / acc.acc_scale).max())
        log.warning(
            "%s: bias is not on the accumulator's scale; rounded to it (up to %.2f "
            "accumulator LSBs), so outputs can differ from the float-bias model near "
            "rounding boundaries. For bit-exactness quantize the bias on the scale "
            "input x weight (Brevitas Int32Bias)",
            acc.bias_label or label,
            err,
        )
    rounding = "half_up" if rounding == "half_even" else rounding
    if sign:
        multiplier, shift = np.ones(n, np.int64), 1
        lo, hi = -1, 1
    else:
        multiplier, shift = multipliers(acc.acc_scale / scale, label)
        try:
            lo, hi = code_bounds(dtype, scale, zp, acc.lo_real, acc.hi_real)
        except ModelError as exc:
            raise ModelError(f"{label}: {exc}") from None
    w = acc.weight.astype(np.int64)
    common = {
        "input_zero_point": acc.x.zero_point,
        "output_zero_point": zp,
        "shift": shift,
        "lo": lo,
        "hi": hi,
        "relu": acc.lo_real == 0.0,
        "rounding": rounding,
        "weight_range": (int(w.min()), int(w.max())),
        "weight_dtype": acc.weight_dtype,
    }
    if sign:
        common["sign"] = True
    weights = {
        "weight": w,
        "bias": acc.bias if acc.bias is not None else np.zeros(n, np.int64),
        "multiplier": multiplier,
    }
    return _linear_node(state, acc, out, dtype, quant, common, weights)


def _emit_pending(state, p: Pending, out, dtype, scale, zp, rounding, quant, label):
    try:
        lo, hi = code_bounds(dtype, scale, zp, p.lo_real, p.hi_real)
    except ModelError as exc:
        raise ModelError(f"{label}: {exc}") from None
    p = replace(p, attrs=dict(p.attrs, rounding=rounding))
    op, a, w = EMITTERS[p.kind](state, p, dtype, scale, zp, label)
    a = dict(a, output_zero_point=zp, lo=lo, hi=hi)
    a.setdefault("rounding", rounding)  # layernorm, matmul, softmax: half up
    if "table" in w:  # a nonlinear table holds its own clamp
        w = dict(w, table=np.clip(w["table"], lo, hi))
    a.setdefault("relu", p.lo_real == 0.0)
    name = state.unique(p.node)
    node = Node(
        name=name,
        op=op,
        source_op=p.op,
        inputs=tuple(x.tensor for x in p.inputs),
        outputs=(out,),
        attrs=a,
        weights=w,
    )
    state.add_node(node, Tensor(out, p.shape, dtype, quant))
    return Codes(out, p.shape, p.batched)


# --- handlers ----------------------------------------------------------------------------------


def _q_dtype(node, zp, label) -> IntType:
    a = attrs(node)
    if a.get("output_dtype"):
        if a["output_dtype"] not in INT_TYPES:
            raise ModelError(
                f"{label}: output_dtype {a['output_dtype']} is not an integer "
                f"type nnloom supports (int4/8/16, uint4/8/16)"
            )
        return INT_TYPES[a["output_dtype"]]
    return int_type(zp, label, "zero point")


_NP_TYPES = {
    (8, True): np.int8,
    (8, False): np.uint8,
    (16, True): np.int16,
    (16, False): np.uint16,
    (32, True): np.int32,
}


def _quantize_constant(state: State, node, x: np.ndarray, label: str):
    """QuantizeLinear of a float initializer (a weight or bias left in float by the
    quantizer): folded at import into integer codes, as ONNX QuantizeLinear computes them
    (per tensor or per axis), for the DequantizeLinear that follows."""
    if x.dtype.kind != "f":
        raise ModelError(f"{label}: quantizing a non-float constant is not supported")
    scale = const(state, node, 1, label, "scale").astype(np.float32)
    zp = const(state, node, 2, label, "zero point", optional=True)
    zp = np.zeros_like(scale, dtype=np.uint8) if zp is None else zp
    dtype = _q_dtype(node, zp, label)
    if (dtype.width, dtype.signed) not in _NP_TYPES:
        raise ModelError(f"{label}: quantizing a constant to {dtype} is not supported")
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelError(f"{label}: scales must be positive and finite")
    if not np.all(np.isfinite(x)):
        raise ModelError(f"{label}: the constant '{node.input[0]}' holds NaN or infinity")
    if scale.size > 1:
        axis = int(attrs(node).get("axis", 1)) % max(x.ndim, 1)
        if (
            x.ndim == 0
            or scale.shape != (x.shape[axis],)
            or np.asarray(zp).size not in (1, scale.size)
        ):
            raise ModelError(
                f"{label}: per-axis scale of shape {scale.shape} does not match "
                f"axis {axis} of the constant's shape {x.shape}"
            )
        bshape = [1] * x.ndim
        bshape[axis] = -1
        scale_b = scale.reshape(bshape)
        zp_b = (
            np.asarray(zp, np.int64).reshape(bshape)
            if np.asarray(zp).size > 1
            else np.asarray(zp, np.int64).reshape(())
        )
    else:
        scale_b, zp_b = scale.reshape(()), np.asarray(zp, np.int64).reshape(())
    codes = quantize_linear(x, scale_b, zp_b, dtype.min, dtype.max)
    # np.asarray: a scalar constant (a Pad's value) must stay an array, not a numpy scalar
    state.initializers[node.output[0]] = np.asarray(codes).astype(
        _NP_TYPES[dtype.width, dtype.signed]
    )


@handler("QuantizeLinear")
def _quantize_linear(state: State, node, label: str):
    x = value(state, node, 0, label)
    if isinstance(x, Constant):  # a dequantized constant quantized again (shared weights)
        from .base import real_constant

        x = real_constant(x).astype(np.float32)
    if isinstance(x, np.ndarray):
        _quantize_constant(state, node, x, label)
        return
    s = positive_scale(scalar(const(state, node, 1, label, "scale"), label, "scale"), label)
    zp = const(state, node, 2, label, "zero point", optional=True)
    zp = np.zeros((), np.uint8) if zp is None else zp
    dtype = _q_dtype(node, zp, label)
    if isinstance(x, Padded):  # quantize_static's Q/DQ after a Pad keeps its input's codes
        if s == x.x.scale and int(scalar(zp, label, "zero point")) == x.x.zero_point:
            state.values[node.output[0]] = x
            return
        raise ModelError(
            f"{label}: requantizing a zero-padded tensor (after Pad) is not "
            f"supported; keep the Pad's output on its input's scale"
        )
    z = int(scalar(zp, label, "zero point"))
    if a := attrs(node):
        if a.get("saturate", 1) != 1:
            raise ModelError(f"{label}: saturate=0 is not supported")
    state.values[node.output[0]] = quantize(state, x, node.output[0], dtype, s, z, label)


@handler("DequantizeLinear")
def _dequantize_linear(state: State, node, label: str):
    x = value(state, node, 0, label)
    scale = const(state, node, 1, label, "scale").astype(np.float64)
    zp = const(state, node, 2, label, "zero point", optional=True)
    out = node.output[0]
    if isinstance(x, np.ndarray):
        dtype = int_type(x, label, "input")
        zp = np.zeros_like(scale, dtype=np.int64) if zp is None else np.asarray(zp, np.int64)
        axis = attrs(node).get("axis", 1) if scale.size > 1 else None
        if axis is not None:
            axis = axis % x.ndim
            if scale.shape != (x.shape[axis],):
                raise ModelError(
                    f"{label}: per-axis scale of shape {scale.shape} does not "
                    f"match axis {axis} of the input's shape {x.shape}"
                )
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            raise ModelError(f"{label}: scales must be positive and finite")
        state.values[out] = Constant(x.astype(np.int64), scale, zp, axis, dtype)
    elif isinstance(x, Padded):
        s = positive_scale(scalar(scale, label, "scale"), label)
        z = 0 if zp is None else int(scalar(zp, label, "zero point"))
        if s != x.x.scale or z != x.x.zero_point:
            raise ModelError(
                f"{label}: dequantizing a zero-padded tensor with another scale is not supported"
            )
        state.values[out] = x
    elif isinstance(x, Codes):
        s = positive_scale(scalar(scale, label, "scale"), label)
        z = 0 if zp is None else int(scalar(zp, label, "zero point"))
        state.values[out] = Dequantized(x.tensor, s, z, x.shape, x.batched)
    else:
        raise ModelError(
            f"{label}: input '{node.input[0]}' is not quantized codes nor an integer initializer"
        )


def output_dequantized(state: State, v: Dequantized, output: str) -> str:
    """The IR tensor holding graph output ``output``, the codes of ``v``: its quantization
    becomes the output DequantizeLinear's own scale and zero point (which may differ from
    the quantizer's that made the codes). A graph input dequantized differently is copied
    by an identity ``requant`` node, so the input keeps its own quantization."""
    t = state.tensors[v.tensor]
    q = t.quant
    same = (
        q is not None
        and q.per_tensor
        and float(q.scale) == v.scale
        and int(q.zero_point) == v.zero_point
    )
    if same:
        return v.tensor
    quant = QuantParams(
        np.array(v.scale), np.array(v.zero_point), rounding=q.rounding if q is not None else "onnx"
    )
    if v.tensor not in state.inputs:
        state.tensors[v.tensor] = Tensor(t.name, t.shape, t.dtype, quant)
        return v.tensor
    name = state.unique(f"{output}_copy")
    m, shift = IDENTITY_MULTIPLIER
    zp = 0 if t.dtype.bipolar else v.zero_point
    node = Node(
        name=name,
        op="requant",
        source_op="DequantizeLinear",
        inputs=(v.tensor,),
        outputs=(name,),
        attrs={
            "input_zero_point": zp,
            "output_zero_point": zp,
            "shift": shift,
            "lo": t.dtype.min,
            "hi": t.dtype.max,
            "relu": False,
            "rounding": "half_up",
        },
        weights={"multiplier": np.array([m], np.int64)},
    )
    state.add_node(node, Tensor(name, t.shape, t.dtype, quant))
    return name


# --- float outputs -----------------------------------------------------------------------------


def _accumulator_range(acc: Accumulator, x_dtype: IntType) -> tuple[int, int]:
    """Exact bounds of a layer's accumulator (bias included) over every input code."""
    w = acc.weight.reshape(acc.weight.shape[0], -1).astype(np.int64)
    d_lo, d_hi = x_dtype.min - acc.x.zero_point, x_dtype.max - acc.x.zero_point
    top = np.maximum(w * d_hi, w * d_lo).sum(axis=1)
    bottom = np.minimum(w * d_hi, w * d_lo).sum(axis=1)
    if acc.bias is not None:
        top, bottom = top + acc.bias, bottom + acc.bias
    return int(bottom.min()), int(top.max())


def emit_float_output(state: State, acc: Accumulator, out: str, label: str) -> Codes:
    """A Gemm/MatMul/Conv whose float output (plus a float bias) leaves the graph: the
    hardware outputs the integer accumulator (identity requantization, a signed type as wide
    as its exact range), the output tensor carries the per-channel scale ``s_x * s_w`` and
    the part of the bias that is not on that scale as a float ``offset`` the host adds."""
    from ..fixedpoint import signed_bits

    n = acc.weight.shape[0]
    x_dtype = state.tensors[acc.x.tensor].dtype
    lo, hi = _accumulator_range(acc, x_dtype)
    if acc.hi_real < math.inf:
        raise ModelError(
            f"{label}: a Clip on the float output of {acc.op} '{acc.node}' is not "
            f"supported; quantize the output or drop the clip"
        )
    relu = acc.lo_real == 0.0
    if acc.lo_real > -math.inf and not relu:
        raise ModelError(
            f"{label}: a Clip on the float output of {acc.op} '{acc.node}' is not "
            f"supported; quantize the output or drop the clip"
        )
    if relu and acc.bias_residual is not None:
        raise ModelError(
            f"{label}: the float output of {acc.op} '{acc.node}' has a Relu after "
            f"a float bias that is not on the accumulator's scale (input scale x "
            f"weight scale); quantize the bias there (Brevitas Int32Bias) or the "
            f"output"
        )
    bits = signed_bits(min(lo, 0), max(hi, 0))
    if bits > 32:
        raise ModelError(
            f"{label}: the float output of {acc.op} '{acc.node}' needs a {bits}-bit "
            f"accumulator (range {lo}..{hi}); nnloom outputs at most 32 bits"
        )
    dtype = IntType(bits, True)
    scale = np.broadcast_to(np.asarray(acc.acc_scale, np.float64).reshape(-1), (n,)).copy()
    offset = (
        None
        if acc.bias_residual is None
        else np.broadcast_to(acc.bias_residual, (n,)).astype(np.float64)
    )
    quant = QuantParams(scale, np.zeros(n, np.int64), axis=0, offset=offset)
    m, shift = IDENTITY_MULTIPLIER
    w = acc.weight.astype(np.int64)
    a = {
        "input_zero_point": acc.x.zero_point,
        "output_zero_point": 0,
        "shift": shift,
        "lo": 0 if relu else dtype.min,
        "hi": dtype.max,
        "relu": relu,
        "rounding": "half_up",
        "weight_range": (int(w.min()), int(w.max())),
        "weight_dtype": acc.weight_dtype,
        "accumulator_output": True,
    }
    weights = {
        "weight": w,
        "bias": acc.bias if acc.bias is not None else np.zeros(n, np.int64),
        "multiplier": np.full(n, m, np.int64),
    }
    return _linear_node(state, acc, out, dtype, quant, a, weights)


def _linear_node(state, acc: Accumulator, out, dtype, quant, attrs: dict, weights: dict) -> Codes:
    """Add the ``dense`` or ``conv`` node of accumulator ``acc`` writing tensor ``out`` (a
    conv gets its geometry's attributes and im2col map); returns the output codes."""
    name = state.unique(acc.node)
    if acc.kind == "dense":
        shape = acc.shape
        op = "dense"
        if len(shape) > 1:  # a token sequence: the layer on every token
            attrs = dict(attrs, tokens=int(np.prod(shape[:-1])))
    else:
        g = acc.geometry
        shape = acc.shape
        weights["im2col"] = conv_im2col(g["window"], g["input_shape"][0], g["group"])
        attrs = dict(
            attrs,
            input_shape=g["input_shape"],
            output_shape=shape,
            kernel_shape=g["kernel_shape"],
            strides=g["strides"],
            pads=g["pads"],
            dilations=g["dilations"],
            group=g["group"],
        )
        op = "conv"
    node = Node(
        name=name,
        op=op,
        source_op=acc.op,
        inputs=(acc.x.tensor,),
        outputs=(out,),
        attrs=attrs,
        weights=weights,
    )
    state.add_node(node, Tensor(out, shape, dtype, quant))
    return Codes(out, shape, acc.batched)
