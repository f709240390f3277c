"""Gemm, MatMul, Conv and what folds into them before the quantizer: bias Add, Mul by a
constant scale, BatchNormalization, Relu/Clip (see ``ops.py`` for the latter two)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..im2col import Window
from ..ir import IntType
from ..ranges import check_window_size
from .base import (
    Accumulator,
    Constant,
    Dequantized,
    Padded,
    State,
    Value,
    as_dequantized,
    attrs,
    bias_codes,
    check_tokens,
    const,
    describe_value,
    handler,
    ints,
    require_batched,
    value,
)

log = logging.getLogger("frontends.onnx_import")


def weight_matrix(w: Constant, transposed: bool, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) zero-point-free weights and per-output-channel scales of a 2-D weight."""
    if w.values.ndim != 2:
        raise ModelError(f"{label}: weight must be 2-D, got shape {w.values.shape}")
    out_axis = 0 if transposed else 1
    if w.axis is not None and w.axis % 2 != out_axis:
        raise ModelError(
            f"{label}: weights quantized per input channel are not supported; "
            f"quantize them per output channel or per tensor"
        )
    n = w.values.shape[out_axis]
    zp_n = (
        np.broadcast_to(w.zero_point.reshape(-1), (n,))
        if w.zero_point.size > 1
        else np.full(n, int(w.zero_point.reshape(-1)[0]) if w.zero_point.size else 0)
    )
    scale_n = (
        np.broadcast_to(w.scale.reshape(-1), (n,)).astype(np.float64)
        if w.scale.size > 1
        else np.full(n, float(w.scale.reshape(-1)[0]))
    )
    mat = w.values if transposed else w.values.T
    return mat - zp_n[:, None], scale_n


def dense_accumulator(
    name: str, op: str, x: Dequantized, w: Value | None, transposed: bool, label: str
) -> Accumulator:
    if not isinstance(w, Constant):
        raise ModelError(
            f"{label}: weight must be a quantized initializer (DequantizeLinear "
            f"or QONNX Quant of a constant); here it is {describe_value(w)}"
        )
    shape = x.shape
    tokens = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    weight, w_scale = weight_matrix(w, transposed, label)
    k = int(np.prod(shape)) // tokens
    if weight.shape[1] != k:
        raise ModelError(f"{label}: weight has {weight.shape[1]} inputs but the input has {k}")
    check_tokens(tokens, label, f"input of shape {shape}")
    out = (weight.shape[0],) if tokens == 1 else tuple(shape[:-1]) + (weight.shape[0],)
    return Accumulator(
        name,
        op,
        "dense",
        x,
        weight,
        w.dtype,
        x.scale * w_scale,
        None,
        out,
        batched=x.batched if tokens > 1 else True,
    )


def split_bias(
    real: np.ndarray, acc_scale: np.ndarray, label: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """``real`` bias as integer codes at ``acc_scale`` and the float residual (None when the
    codes are exact: ORT's and Brevitas' int32 biases at scale_x * scale_w)."""
    codes = bias_codes(real, acc_scale, label)
    residual = real - codes * acc_scale
    exact = np.abs(residual) <= 1e-6 * np.maximum(np.abs(real), acc_scale)
    return codes, (None if exact.all() else residual)


def add_bias(acc: Accumulator, bias: Value | None, label: str) -> Accumulator:
    """Fold a bias into the accumulator: integer codes at the accumulator's scale, and what
    is not on that scale kept as a float residual (a float offset the host adds when the
    layer's output leaves the graph unquantized; rounded into the codes, with a warning,
    when the layer is requantized)."""
    if acc.lo_real > -np.inf or acc.hi_real < np.inf:
        raise ModelError(f"{label}: a bias after Relu/Clip is not supported")
    n = acc.weight.shape[0]
    if isinstance(bias, Constant):
        vals = np.squeeze(bias.values).reshape(-1).astype(np.float64)
        real = (vals - bias.zero_point.reshape(-1)) * bias.scale.reshape(-1)
    elif isinstance(bias, np.ndarray) and bias.dtype.kind == "f":
        real = np.squeeze(bias).reshape(-1).astype(np.float64)
    else:
        raise ModelError(f"{label}: bias must be a constant; here it is {describe_value(bias)}")
    if real.size not in (1, n):
        raise ModelError(f"{label}: bias has {real.size} values for {n} outputs")
    real = np.broadcast_to(real, (n,))
    codes, residual = split_bias(real, acc.acc_scale, label)
    if residual is not None and acc.bias_residual is not None:
        residual = residual + acc.bias_residual
    elif residual is None:
        residual = acc.bias_residual
    return replace(
        acc,
        bias=codes if acc.bias is None else acc.bias + codes,
        bias_residual=residual,
        bias_label=acc.bias_label or (label if residual is not None else ""),
    )


def _bn_param(state: State, node, index: int, label: str, what: str) -> np.ndarray:
    """A BatchNormalization parameter: a float initializer, or one the quantizer wrapped in
    QuantizeLinear/DequantizeLinear (its dequantized value)."""
    v = value(state, node, index, label)
    if isinstance(v, Constant):
        zp = v.zero_point if v.axis is None else v.zero_point.reshape(-1)
        return (v.values - zp) * v.scale
    if isinstance(v, np.ndarray):
        return v
    raise ModelError(
        f"{label}: {what} '{node.input[index]}' must be a constant; here it is {describe_value(v)}"
    )


def _channel_vector(v: np.ndarray, acc: Accumulator, label: str) -> np.ndarray:
    """A per-channel constant of shape (1, N), (N, 1, 1) or (1, N, 1, 1) as (N,)."""
    squeezed = np.squeeze(v)
    if squeezed.ndim <= 1:
        return squeezed.reshape(-1)
    raise ModelError(
        f"{label}: constant of shape {v.shape} is not per-channel for "
        f"{acc.weight.shape[0]} channels"
    )


def scale_accumulator(acc: Accumulator, factor: np.ndarray, label: str) -> Accumulator:
    """Multiply by a constant: a per-tensor or per-channel change of ``acc_scale``."""
    n = acc.weight.shape[0]
    f = _channel_vector(np.asarray(factor, dtype=np.float64), acc, label)
    if f.size not in (1, n):
        raise ModelError(f"{label}: scale of {f.size} values for {n} channels")
    f = np.broadcast_to(f, (n,)).astype(np.float64)
    if np.any(~np.isfinite(f)) or np.any(f <= 0):
        raise ModelError(f"{label}: only positive finite constant scales fold into the layer")
    if acc.lo_real > -np.inf or acc.hi_real < np.inf:
        raise ModelError(f"{label}: a Mul after Relu/Clip is not supported")
    residual = None if acc.bias_residual is None else acc.bias_residual * f
    return replace(acc, acc_scale=acc.acc_scale * f, bias_residual=residual)


@handler("Gemm", "MatMul")
def _matmul(state: State, node, label: str):
    x = as_dequantized(value(state, node, 0, label), label, "input A")
    w = value(state, node, 1, label)
    a = attrs(node)
    if node.op_type == "MatMul" and isinstance(w, Dequantized):  # Q x K^T, A x V
        from .sequence import matmul_activations

        state.values[node.output[0]] = matmul_activations(state, node, x, w, label)
        return
    if node.op_type == "Gemm":
        if a.get("transA", 0):
            raise ModelError(f"{label}: transA=1 is not supported")
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise ModelError(f"{label}: alpha/beta other than 1 are not supported")
    transposed = bool(a.get("transB", 0)) if node.op_type == "Gemm" else False
    acc = dense_accumulator(node.name or node.output[0], node.op_type, x, w, transposed, label)
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        acc = add_bias(acc, value(state, node, 2, label), label)
    state.values[node.output[0]] = acc


def conv_geometry(
    a: dict, in_shape: tuple, kernel: tuple, label: str, *, pool: bool = False
) -> tuple[Window, dict, tuple[int, ...]]:
    """Window and ONNX attrs of a Conv/pool over a (C, H, W) or (C, L) input."""
    rank = len(in_shape) - 1
    if rank not in (1, 2):
        raise ModelError(
            f"{label}: only 1-D and 2-D windows are supported; the input has "
            f"shape {in_shape} per sample"
        )
    if len(kernel) != rank:
        raise ModelError(f"{label}: kernel {kernel} does not match the {rank}-D input")
    strides = ints(a.get("strides"), rank, 1, label, "strides")
    dilations = ints(a.get("dilations"), rank, 1, label, "dilations")
    pads = ints(a.get("pads"), 2 * rank, 0, label, "pads")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads_b, pads_e = [], []
        for i in range(rank):
            n = in_shape[1 + i]
            total = max(
                0, (-(-n // strides[i]) - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - n
            )
            small = total // 2
            pads_b.append(small if auto_pad == "SAME_UPPER" else total - small)
            pads_e.append(total - pads_b[-1])
        pads = tuple(pads_b + pads_e)
    elif auto_pad == "VALID":
        pads = (0,) * (2 * rank)
    elif auto_pad != "NOTSET":
        raise ModelError(f"{label}: auto_pad={auto_pad} is not supported")
    ceil_mode = bool(a.get("ceil_mode", 0)) if pool else False
    if rank == 1:
        win_args = dict(
            in_hw=(1, in_shape[1]),
            kernel=(1, kernel[0]),
            strides=(1, strides[0]),
            pads=(0, pads[0], 0, pads[1]),
            dilations=(1, dilations[0]),
        )
    else:
        win_args = dict(
            in_hw=tuple(in_shape[1:]),
            kernel=tuple(kernel),
            strides=strides,
            pads=pads,
            dilations=dilations,
        )
    try:
        window = Window(ceil_mode=ceil_mode, **win_args)
        out_hw = window.out_hw
    except ValueError as exc:
        raise ModelError(f"{label}: {exc}") from None
    if min(out_hw) < 1:
        raise ModelError(f"{label}: the output would be empty")
    check_window_size(in_shape[0] * int(np.prod(out_hw)) * int(np.prod(kernel)), label)
    out_spatial = out_hw[1:] if rank == 1 else out_hw
    return (
        window,
        dict(kernel_shape=tuple(kernel), strides=strides, pads=pads, dilations=dilations),
        tuple(out_spatial),
    )


def conv_accumulator(
    name: str, op: str, x: Dequantized, w: Value | None, a: dict, label: str
) -> Accumulator:
    if not isinstance(w, Constant):
        raise ModelError(
            f"{label}: weight must be a quantized initializer (DequantizeLinear "
            f"or QONNX Quant of a constant); here it is {describe_value(w)}"
        )
    values = w.values
    if values.ndim not in (3, 4) or values.ndim != len(x.shape) + 1:
        raise ModelError(
            f"{label}: weight of shape {values.shape} does not fit an input of "
            f"shape {x.shape} per sample"
        )
    if w.axis is not None and w.axis != 0:
        raise ModelError(
            f"{label}: conv weights quantized along axis {w.axis} are not "
            f"supported; quantize them per output channel (axis 0) or per tensor"
        )
    group = int(a.get("group", 1))
    cout, cg = values.shape[:2]
    if group < 1 or cout % group or cg * group != x.shape[0]:
        raise ModelError(
            f"{label}: group={group} does not fit {x.shape[0]} input and {cout} "
            f"output channels with weight shape {values.shape}"
        )
    kernel = tuple(values.shape[2:])
    if a.get("kernel_shape") is not None and tuple(a["kernel_shape"]) != kernel:
        raise ModelError(
            f"{label}: kernel_shape {tuple(a['kernel_shape'])} does not match the weight's {kernel}"
        )
    window, geo, out_spatial = conv_geometry(a, x.shape, kernel, label)
    zp = w.zero_point.reshape(-1)
    zp = (
        np.broadcast_to(zp, (cout,)) if zp.size > 1 else np.full(cout, int(zp[0]) if zp.size else 0)
    )
    scale = w.scale.reshape(-1)
    scale = np.broadcast_to(scale, (cout,)) if scale.size > 1 else np.full(cout, float(scale[0]))
    weight = values - zp.reshape((cout,) + (1,) * (values.ndim - 1))
    geometry = dict(geo, window=window, input_shape=tuple(x.shape), group=group)
    return Accumulator(
        name,
        op,
        "conv",
        x,
        weight,
        w.dtype,
        x.scale * scale.astype(np.float64),
        None,
        (cout,) + out_spatial,
        geometry=geometry,
    )


def take_pads(v: Padded, a: dict, label: str) -> tuple[Dequantized, dict]:
    """The tensor under a Pad and ``a`` (a Conv's or pool's attributes) with the Pad's
    amounts added to its own ``pads``."""
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad != "NOTSET":
        raise ModelError(f"{label}: a Pad before an op with auto_pad={auto_pad} is not supported")
    own = ints(a.get("pads"), len(v.pads), 0, label, "pads")
    return v.x, dict(a, pads=tuple(p + q for p, q in zip(own, v.pads)))


@handler("Pad")
def _pad(state: State, node, label: str):
    """Pad (constant mode, value 0) of a quantized tensor, spatial axes only: taken by the
    next Conv or average pool as its own zero padding."""
    x = as_dequantized(value(state, node, 0, label), label, "input")
    a = attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise ModelError(f"{label}: Pad mode '{mode}' is not supported (only constant)")
    rank = len(x.shape) + 1
    if len(node.input) > 1 and node.input[1]:
        pads = [int(p) for p in const(state, node, 1, label, "pads").reshape(-1)]
    else:
        pads = [int(p) for p in a.get("pads", [])]
    cval = value(state, node, 2, label) if len(node.input) > 2 and node.input[2] else None
    if isinstance(cval, Constant):  # onnxruntime quantizes the pad value too (Q/DQ of 0)
        cval = cval.scale * (cval.values - cval.zero_point)
    elif cval is not None and not isinstance(cval, np.ndarray):
        raise ModelError(
            f"{label}: constant_value '{node.input[2]}' must be a constant initializer"
        )
    if cval is not None and np.any(np.asarray(cval, np.float64) != 0):
        raise ModelError(
            f"{label}: Pad with value {np.asarray(cval).reshape(-1)[0]} is not "
            f"supported; only zero padding folds into the next Conv/pool"
        )
    axes = (
        const(state, node, 3, label, "axes", optional=True)
        if len(node.input) > 3 and node.input[3]
        else None
    )
    axes = (
        list(range(rank))
        if axes is None
        else [int(i) + rank if int(i) < 0 else int(i) for i in np.reshape(axes, -1)]
    )
    if len(pads) != 2 * len(axes):
        raise ModelError(f"{label}: {len(pads)} pads for {len(axes)} axes")
    full = [0] * (2 * rank)
    for i, ax in enumerate(axes):
        full[ax], full[rank + ax] = pads[i], pads[len(axes) + i]
    if any(p < 0 for p in full):
        raise ModelError(f"{label}: negative pads (cropping) are not supported")
    if full[0] or full[1] or full[rank] or full[rank + 1]:
        raise ModelError(f"{label}: padding the batch or channel axis is not supported")
    spatial = tuple(full[2:rank]) + tuple(full[rank + 2 :])
    shape = (x.shape[0],) + tuple(
        d + full[2 + i] + full[rank + 2 + i] for i, d in enumerate(x.shape[1:])
    )
    state.values[node.output[0]] = Padded(x, spatial, shape)


@handler("Conv")
def _conv(state: State, node, label: str):
    v, a = value(state, node, 0, label), attrs(node)
    if isinstance(v, Padded):
        x, a = take_pads(v, a, label)
    else:
        x = as_dequantized(v, label, "input X")
    require_batched(x, label, "Conv")
    acc = conv_accumulator(
        node.name or node.output[0], "Conv", x, value(state, node, 1, label), a, label
    )
    if len(node.input) > 2 and node.input[2]:
        acc = add_bias(acc, value(state, node, 2, label), label)
    state.values[node.output[0]] = acc


#: Weight magnitude of a BatchNormalization on quantized codes (``_affine_layer``).
AFFINE_WEIGHT = 127


def _affine_layer(
    name: str, x: Dequantized, f: np.ndarray, offset: np.ndarray, label: str
) -> Accumulator:
    """``f[c] * x + offset[c]`` on a quantized tensor (a BatchNormalization the quantizer
    left after a quantized layer, as onnxruntime's quantize_static does) as a layer of its own:
    a diagonal dense layer (vectors) or a depthwise 1x1 convolution (images) with int8 weights
    ``sign(f) * 127``, so the accumulator's scale is ``|f| * s_x / 127`` and the offset,
    rounded to it, is within 1/254 of an input step of exact."""
    n = x.shape[0]
    sign = np.where(f < 0, -1, 1).astype(np.int64)
    acc_scale = np.abs(f) * x.scale / AFFINE_WEIGHT
    if len(x.shape) == 1:
        weight = np.diag(sign * AFFINE_WEIGHT)
        acc = Accumulator(
            name, "BatchNormalization", "dense", x, weight, IntType(8, True), acc_scale, None, (n,)
        )
    else:
        kernel = (1,) * (len(x.shape) - 1)
        window, geo, out_spatial = conv_geometry({}, x.shape, kernel, label)
        weight = (sign * AFFINE_WEIGHT).reshape((n, 1) + kernel)
        acc = Accumulator(
            name,
            "BatchNormalization",
            "conv",
            x,
            weight,
            IntType(8, True),
            acc_scale,
            None,
            (n,) + out_spatial,
            geometry=dict(geo, window=window, input_shape=tuple(x.shape), group=n),
        )
    codes, _ = split_bias(offset, acc_scale, label)
    return replace(acc, bias=codes)


@handler("BatchNormalization")
def _batch_norm(state: State, node, label: str):
    acc = value(state, node, 0, label)
    require_batched(acc, label, "BatchNormalization")
    if isinstance(acc, Dequantized):
        if len(node.output) > 1 and any(node.output[1:]):
            raise ModelError(f"{label}: training-mode BatchNormalization is not supported")
        gamma, beta, mean, var = (
            np.asarray(_bn_param(state, node, i, label, what), np.float64).reshape(-1)
            for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var"))
        )
        n = acc.shape[0] if acc.shape else 0
        if not all(v.size == n for v in (gamma, beta, mean, var)):
            raise ModelError(
                f"{label}: parameters must have {n} values, one per channel of "
                f"the input of shape {acc.shape}"
            )
        f = gamma / np.sqrt(var + float(attrs(node).get("epsilon", 1e-5)))
        if np.any(f == 0) or np.any(~np.isfinite(f)):
            raise ModelError(f"{label}: a channel's scale is zero or not finite")
        state.values[node.output[0]] = _affine_layer(
            node.name or node.output[0], acc, f, beta - f * mean, label
        )
        return
    if not isinstance(acc, Accumulator):
        raise ModelError(
            f"{label}: BatchNormalization is supported only right after a "
            f"Conv/Gemm/MatMul, where it folds into the layer; here its input is "
            f"{describe_value(acc)}. Fold it before quantizing (export in eval "
            f"mode, or onnxruntime.quantization.quant_pre_process)"
        )
    if acc.lo_real > -np.inf or acc.hi_real < np.inf:
        raise ModelError(f"{label}: BatchNormalization after Relu/Clip cannot fold")
    if len(node.output) > 1 and any(node.output[1:]):
        raise ModelError(f"{label}: training-mode BatchNormalization is not supported")
    gamma, beta, mean, var = (
        np.asarray(_bn_param(state, node, i, label, what), np.float64).reshape(-1)
        for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var"))
    )
    eps = float(attrs(node).get("epsilon", 1e-5))
    n = acc.weight.shape[0]
    if not all(v.size == n for v in (gamma, beta, mean, var)):
        raise ModelError(f"{label}: parameters must have {n} values, one per channel")
    f = gamma / np.sqrt(var + eps)
    if np.any(f == 0) or np.any(~np.isfinite(f)):
        raise ModelError(f"{label}: a channel's scale is zero or not finite")
    flip = np.where(f < 0, -1, 1)
    weight = acc.weight * flip.reshape((n,) + (1,) * (acc.weight.ndim - 1))
    bias_real = acc.bias * acc.acc_scale if acc.bias is not None else np.zeros(n)
    if acc.bias_residual is not None:
        bias_real = bias_real + acc.bias_residual
    new_scale = acc.acc_scale * np.abs(f)
    real = f * (bias_real - mean) + beta
    bias, residual = split_bias(real, new_scale, label)
    dtype = acc.weight_dtype
    if weight.min() < dtype.min or weight.max() > dtype.max:
        dtype = IntType(min(32, dtype.width + 1), True)
        log.info("%s: negative BatchNormalization scale widened the weights to %s", label, dtype)
    state.values[node.output[0]] = replace(
        acc,
        weight=weight,
        weight_dtype=dtype,
        acc_scale=new_scale,
        bias=bias,
        bias_residual=residual,
    )
