"""Float ops on dequantized tensors that become one IR node at the next quantizer: Relu/Clip,
Add (residual or bias), Mul/Div by constants, Concat, pools and nonlinear functions.

Each op family's emitter (``base.EMITTERS``) turns a ``Pending`` value into the IR node once
its output quantization is known.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..fixedpoint import MULTIPLIER_BITS, division_multiplier, softmax_params
from ..im2col import pool_windows
from ..ir import IntType
from .base import (
    Accumulator,
    Constant,
    Dequantized,
    HostTail,
    Padded,
    Pending,
    State,
    Value,
    as_dequantized,
    attrs,
    check_tokens,
    const,
    describe_value,
    emitter,
    handler,
    require_batched,
    value,
)
from .functions import FUNCTIONS
from .linear import add_bias, conv_geometry, scale_accumulator, take_pads
from .quant import multipliers

if TYPE_CHECKING:
    from onnx import NodeProto


def _name(node) -> str:
    return node.name or node.output[0]


# --- Relu, Clip ------------------------------------------------------------------------------


def clamp_value(
    v: Value | None, lo: float, hi: float, node: NodeProto, label: str
) -> Accumulator | Pending:
    if isinstance(v, (Accumulator, Pending)):
        return replace(v, lo_real=max(v.lo_real, lo), hi_real=min(v.hi_real, hi))
    if isinstance(v, Dequantized):
        return Pending(
            _name(node), node.op_type, "requant", (v,), {}, v.shape, lo, hi, batched=v.batched
        )
    raise ModelError(f"{label}: {node.op_type} on {describe_value(v)} is not supported")


@handler("Relu")
def _relu(state: State, node, label: str):
    state.values[node.output[0]] = clamp_value(
        value(state, node, 0, label), 0.0, math.inf, node, label
    )


@handler("Clip")
def _clip(state: State, node, label: str):
    a = attrs(node)
    lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
    if len(node.input) > 1 and node.input[1]:
        lo = float(const(state, node, 1, label, "min").reshape(()))
    if len(node.input) > 2 and node.input[2]:
        hi = float(const(state, node, 2, label, "max").reshape(()))
    state.values[node.output[0]] = clamp_value(
        value(state, node, 0, label), float(lo), float(hi), node, label
    )


# --- Add, Mul, Div ---------------------------------------------------------------------------


@handler("Add")
def _add(state: State, node, label: str):
    a, b = value(state, node, 0, label), value(state, node, 1, label)
    if isinstance(b, Accumulator) and not isinstance(a, Accumulator):
        a, b = b, a
    if isinstance(a, Accumulator):
        if isinstance(b, (Constant, np.ndarray)):
            state.values[node.output[0]] = add_bias(a, b, label)
            return
        raise ModelError(
            f"{label}: adding {describe_value(b)} to the unquantized output of "
            f"{a.op} '{a.node}' is not supported; quantize both inputs of a "
            f"residual Add"
        )
    from .island import binary_island
    from .norm import norm_binary

    if norm_binary(state, node, label):
        return
    if isinstance(b, Dequantized) and isinstance(a, (Constant, np.ndarray)):
        a, b = b, a
    if isinstance(a, Dequantized) and isinstance(b, (Constant, np.ndarray)):
        if scalar_or_none(b) is not None and binary_island(state, node, label):
            return
        state.values[node.output[0]] = _constant_add(state, node, a, b, label)
        return
    if binary_island(state, node, label):
        return
    if isinstance(a, Dequantized) and isinstance(b, Dequantized):
        if a.shape != b.shape:
            raise ModelError(
                f"{label}: inputs of shapes {a.shape} and {b.shape}; only "
                f"same-shape (residual) adds are supported"
            )
        state.values[node.output[0]] = Pending(
            _name(node), "Add", "add", (a, b), {}, a.shape, batched=a.batched
        )
        return
    raise ModelError(
        f"{label}: Add of {describe_value(a)} and {describe_value(b)} is not "
        f"supported; supported: bias after MatMul/Gemm/Conv, or two quantized "
        f"tensors of the same shape"
    )


def scalar_or_none(v: Value | None) -> float | None:
    from .base import scalar_constant

    return scalar_constant(v)


def _constant_add(state: State, node, x: Dequantized, c, label: str) -> Pending:
    """A quantized activation plus a constant (a bias after a requantized MatMul, a
    position embedding): an ``add`` whose second operand is the constant itself at the
    accumulator's scale (``_emit_add``)."""
    from .base import full_shape, real_constant

    full = full_shape(x)
    real = real_constant(c)
    if not np.all(np.isfinite(real)):
        raise ModelError(
            f"{label}: adding a constant with infinite or NaN values (an attention mask?) "
            f"is not supported; nnloom takes unmasked attention"
        )
    if node.op_type == "Sub":
        real = -real
    try:
        if np.broadcast_shapes(full, real.shape) != full:
            raise ValueError
        real = np.broadcast_to(real, full).reshape(x.shape).astype(np.float64)
    except ValueError:
        raise ModelError(
            f"{label}: a constant of shape {real.shape} does not broadcast to the "
            f"activation's shape {full}"
        ) from None
    return Pending(
        _name(node),
        node.op_type,
        "add",
        (x,),
        {"constant_real": real},
        x.shape,
        batched=x.batched,
    )


def _scale_by(state: State, node, label: str, invert: bool):
    from .base import real_constant
    from .island import binary_island
    from .norm import norm_binary

    a, b = value(state, node, 0, label), value(state, node, 1, label)
    if norm_binary(state, node, label):
        return
    if isinstance(b, (Accumulator, Pending, Dequantized)) and not invert:
        a, b = b, a
    if isinstance(b, Constant) and not isinstance(a, Accumulator):
        b = real_constant(b)
    if isinstance(a, Dequantized) and isinstance(b, np.ndarray) and b.size == 1:
        factor = float(b.reshape(())) if not invert else 1.0 / float(b.reshape(()))
        if factor > 0:  # a change of scale (the attention's 1/sqrt(d)): a requant
            state.values[node.output[0]] = Pending(
                _name(node),
                node.op_type,
                "requant",
                (a,),
                {},
                a.shape,
                gain=factor,
                batched=a.batched,
            )
            return
    if not isinstance(a, Accumulator) and binary_island(state, node, label):
        return
    if not isinstance(b, np.ndarray) or b.dtype.kind != "f":
        raise ModelError(
            f"{label}: {node.op_type} is supported only by a float constant "
            f"after MatMul/Gemm/Conv or a pool; here the operands are "
            f"{describe_value(a)} and {describe_value(b)}"
        )
    factor = 1.0 / b.astype(np.float64) if invert else b.astype(np.float64)
    if isinstance(a, Accumulator):
        state.values[node.output[0]] = scale_accumulator(a, factor, label)
    elif (
        isinstance(a, Pending)
        and factor.size == 1
        and float(factor.reshape(())) > 0
        and a.kind in ("avgpool", "maxpool", "add", "requant", "matmul", "tokenmean")
        and a.lo_real == -math.inf
        and a.hi_real == math.inf
    ):
        state.values[node.output[0]] = replace(a, gain=a.gain * float(factor.reshape(())))
    else:
        raise ModelError(
            f"{label}: {node.op_type} of {describe_value(a)} by a constant of "
            f"shape {b.shape} is not supported (only a positive scalar after a "
            f"pool/Add, or a per-channel scale after MatMul/Gemm/Conv)"
        )


@handler("Mul")
def _mul(state: State, node, label: str):
    _scale_by(state, node, label, invert=False)


@handler("Div")
def _div(state: State, node, label: str):
    _scale_by(state, node, label, invert=True)


@emitter("add")
def _emit_add(state, p: Pending, dtype, scale, zp, label):
    if len(p.inputs) == 1:  # an activation plus a constant, the constant at acc's scale
        (a,) = p.inputs
        m, shift = multipliers(np.array([a.scale * p.gain / scale]), label)
        k = np.rint(p.attrs["constant_real"] * p.gain / scale * 2.0**shift)
        if np.abs(k).max(initial=0) >= 2.0**62:
            raise ModelError(f"{label}: the constant is too large against the output scale")
        return (
            "add",
            {"input_zero_points": (a.zero_point, 0), "shift": shift, "input_shape": p.shape},
            {"multiplier": np.array([int(m[0]), 1], np.int64), "constant": k.astype(np.int64)},
        )
    a, b = p.inputs
    m, shift = multipliers(np.array([a.scale, b.scale]) * p.gain / scale, label)
    return (
        "add",
        {"input_zero_points": (a.zero_point, b.zero_point), "shift": shift, "input_shape": p.shape},
        {"multiplier": m},
    )


@emitter("requant")
def _emit_requant(state, p: Pending, dtype, scale, zp, label):
    (x,) = p.inputs
    m, shift = multipliers(np.array([x.scale * p.gain / scale]), label)
    a = {"input_zero_point": x.zero_point, "shift": shift}
    if "trunc_shift" in p.attrs:  # QONNX Trunc: an exact power-of-two multiplier
        m, shift = np.array([1 << 14]), 14 + p.attrs["trunc_shift"]
        a["shift"] = shift
    return "requant", a, {"multiplier": m}


# --- Concat ----------------------------------------------------------------------------------


@handler("Concat")
def _concat(state: State, node, label: str):
    from .base import full_shape, real_constant

    values = [value(state, node, i, label) for i in range(len(node.input))]
    consts = {i: real_constant(v) for i, v in enumerate(values)}
    consts = {i: c for i, c in consts.items() if c is not None}
    xs = [as_dequantized(v, label, f"input {i}") for i, v in enumerate(values) if i not in consts]
    if not xs:
        raise ModelError(f"{label}: a Concat of constants only should have been folded")
    if consts:  # a class token: constant parts, placed beside the activations
        return _concat_constants(state, node, values, consts, xs[0], label)
    if any(x.batched != xs[0].batched for x in xs):
        raise ModelError(f"{label}: inputs of ONNX shapes {[full_shape(x) for x in xs]} differ")
    rank = len(xs[0].shape)
    lead = 1 if xs[0].batched else 0
    axis = int(attrs(node).get("axis", 1))
    axis = axis + rank + lead if axis < 0 else axis
    if not lead <= axis < rank + lead:
        raise ModelError(f"{label}: concatenating along the batch axis is not supported")
    axis -= lead
    for x in xs:
        if len(x.shape) != rank or any(
            d != e for i, (d, e) in enumerate(zip(x.shape, xs[0].shape)) if i != axis
        ):
            raise ModelError(
                f"{label}: input shapes {[x.shape for x in xs]} do not "
                f"concatenate along axis {axis + 1}"
            )
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    state.values[node.output[0]] = Pending(
        _name(node),
        "Concat",
        "concat",
        tuple(xs),
        {"axis": axis},
        tuple(shape),
        batched=xs[0].batched,
    )


def _concat_constants(state: State, node, values, consts: dict, x0, label: str):
    """Concat of quantized activations and constants (torch's ``cat([cls, x], 1)`` with the
    class token expanded to the batch): each constant part is quantized once at import."""
    from .base import full_shape

    full = full_shape(x0)
    axis = int(attrs(node).get("axis", 1))
    axis = axis + len(full) if axis < 0 else axis
    lead = 1 if x0.batched else 0
    if not lead <= axis < len(full):
        raise ModelError(f"{label}: concatenating along the batch axis is not supported")
    parts, xs, shapes = [], [], []
    for i, v in enumerate(values):
        if i in consts:
            c = consts[i]
            want = full[:axis] + (c.shape[axis] if c.ndim == len(full) else -1,) + full[axis + 1 :]
            if c.ndim != len(full) or want[axis] < 1:
                raise ModelError(
                    f"{label}: constant input {i} of shape {c.shape} does not concatenate "
                    f"with an activation of shape {full}"
                )
            try:
                c = np.broadcast_to(c, want)
            except ValueError:
                raise ModelError(
                    f"{label}: constant input {i} of shape {c.shape} does not concatenate "
                    f"with an activation of shape {full}"
                ) from None
            parts.append(("constant", c.reshape(want[lead:])))
            shapes.append(want)
        else:
            x = as_dequantized(v, label, f"input {i}")
            fx = full_shape(x)
            if len(fx) != len(full) or x.batched != x0.batched:
                raise ModelError(f"{label}: input shapes do not concatenate along axis {axis}")
            parts.append(("input", len(xs)))
            xs.append(x)
            shapes.append(fx)
    if any(s[:axis] + s[axis + 1 :] != full[:axis] + full[axis + 1 :] for s in shapes):
        raise ModelError(f"{label}: input shapes {shapes} do not concatenate along axis {axis}")
    out = list(full)
    out[axis] = sum(s[axis] for s in shapes)
    state.values[node.output[0]] = Pending(
        _name(node),
        "Concat",
        "concat",
        tuple(xs),
        {"axis": axis - lead, "parts": tuple(parts)},
        tuple(out[lead:]),
        batched=x0.batched,
    )


@emitter("concat")
def _emit_concat(state, p: Pending, dtype, scale, zp, label):
    from ..fixedpoint import quantize_linear

    m, shift = multipliers(np.array([x.scale for x in p.inputs]) * p.gain / scale, label)
    a = {
        "axis": p.attrs["axis"],
        "shift": shift,
        "input_zero_points": tuple(x.zero_point for x in p.inputs),
        "input_shapes": tuple(x.shape for x in p.inputs),
    }
    w = {"multiplier": m}
    if "parts" in p.attrs:  # constants in the output's quantization, as QuantizeLinear does
        a["parts"] = tuple(kind for kind, _ in p.attrs["parts"])
        for i, (kind, c) in enumerate(p.attrs["parts"]):
            if kind == "constant":
                real = (c * p.gain).astype(np.float32)
                w[f"constant_{i}"] = quantize_linear(real, scale, zp, dtype.min, dtype.max)
    return "concat", a, w


# --- pools -----------------------------------------------------------------------------------


def _check_max_over_zero_pads(state: State, v: Padded, a: dict, label: str, op: str):
    """A zero Pad before a max pool is exact as the pool's own padding (which never wins)
    when no code of the input is below the zero point (a fused ReLU: ``lo`` >= zero point)
    and every window holds a real element (each side's padding, the Pad's plus the pool's
    own, smaller than the kernel): a padded zero then never exceeds the window's maximum."""
    producer = next((n for n in state.nodes if v.x.tensor in n.outputs), None)
    lo = None if producer is None else producer.attrs.get("lo")
    if lo is None or lo < v.x.zero_point:
        raise ModelError(
            f"{label}: a zero Pad before {op} is supported on a non-negative input (after a "
            f"ReLU) only; here the padded zeros could be the maximum"
        )
    kernel = tuple(a.get("kernel_shape", ()))
    own = tuple(a.get("pads", (0,) * len(v.pads)))
    n = len(kernel)
    for i, k in enumerate(kernel):
        if v.pads[i] + own[i] >= k or v.pads[n + i] + own[n + i] >= k:
            raise ModelError(
                f"{label}: a zero Pad of {v.pads[i] + own[i]}/{v.pads[n + i] + own[n + i]} "
                f"before {op} with a kernel of {k} on axis {i + 2}: a window would hold "
                f"padding only; pad less than the kernel"
            )


def _pool(state: State, node, label: str, kind: str, global_: bool, *, keepdims: bool = True):
    v = value(state, node, 0, label)
    a = {} if global_ else attrs(node)
    if isinstance(v, Padded):
        # explicit zeros are real elements: they count in the divisor
        if kind != "avgpool":
            _check_max_over_zero_pads(state, v, a, label, node.op_type)
        if any(a.get("pads", ())) and not a.get("count_include_pad", 0):
            raise ModelError(
                f"{label}: a Pad before an AveragePool with pads of its own and "
                f"count_include_pad=0 is not supported"
            )
        kernel = tuple(v.shape[1:]) if global_ else tuple(a.get("kernel_shape", ()))
        x, a = take_pads(v, a, label)
        a["count_include_pad"] = 1
    else:
        x = as_dequantized(v, label, "input X")
        kernel = tuple(x.shape[1:]) if global_ else tuple(a.get("kernel_shape", ()))
    require_batched(x, label, node.op_type)
    if len(node.output) > 1 and any(node.output[1:]):
        raise ModelError(f"{label}: the Indices output of MaxPool is not supported")
    if len(x.shape) not in (2, 3):
        raise ModelError(
            f"{label}: input of shape {x.shape} per sample; pools need (C, H, W) or (C, L)"
        )
    if kind == "avgpool" and a.get("ceil_mode", 0) and a.get("count_include_pad", 0):
        raise ModelError(f"{label}: ceil_mode=1 with count_include_pad=1 is not supported")
    window, geo, out_spatial = conv_geometry(a, x.shape, kernel, label, pool=True)
    shape = (x.shape[0],) + out_spatial
    attrs_ = dict(
        geo,
        window=window,
        input_shape=x.shape,
        output_shape=shape,
        ceil_mode=int(a.get("ceil_mode", 0)),
    )
    if kind == "avgpool":
        attrs_["count_include_pad"] = int(a.get("count_include_pad", 0))
    if not keepdims:
        shape = (x.shape[0],)
    state.values[node.output[0]] = Pending(_name(node), node.op_type, kind, (x,), attrs_, shape)


@handler("ReduceMean")
def _reduce_mean(state: State, node, label: str):
    """ReduceMean over every spatial axis (what torch exports for ``x.mean((2, 3))``): a
    global average pool (keepdims 0 drops the spatial axes)."""
    from .norm import NormStage, norm_reduce_mean
    from .sequence import token_mean

    v = value(state, node, 0, label)
    a = attrs(node)
    if len(node.input) > 1 and node.input[1]:
        axes = [int(i) for i in const(state, node, 1, label, "axes").reshape(-1)]
    else:
        axes = [int(i) for i in a.get("axes", [])]
    keep = bool(a.get("keepdims", 1))
    if isinstance(v, NormStage) and norm_reduce_mean(state, node, label, v, axes, keep):
        return
    if isinstance(v, Dequantized) and (p := token_mean(state, node, v, axes, keep, label)):
        state.values[node.output[0]] = p
        return
    shape = v.shape if isinstance(v, (Dequantized, Padded)) else None
    if shape is None:
        raise ModelError(f"{label}: ReduceMean of {describe_value(v)} is not supported")
    if isinstance(v, Dequantized) and not v.batched:
        raise ModelError(
            f"{label}: ReduceMean over axes {axes} of a tensor of shape {v.shape} is not "
            f"supported (the mean over the tokens or the features of a sequence is)"
        )
    rank = len(shape) + 1
    axes = sorted(i + rank if i < 0 else i for i in axes)
    if axes != list(range(2, rank)) or rank not in (3, 4):
        if isinstance(v, Dequantized) and norm_reduce_mean(state, node, label, v, axes, keep):
            return
        raise ModelError(
            f"{label}: ReduceMean over axes {axes} of a rank-{rank} tensor is not "
            f"supported; only over every spatial axis (a global average pool), the tokens "
            f"of a sequence, or the features inside a LayerNorm"
        )
    _pool(state, node, label, "avgpool", True, keepdims=keep)
    if isinstance(v, Dequantized) and keep and rank == 3:  # a LayerNorm's mean, or a pool
        pool = state.values[node.output[0]]
        if norm_reduce_mean(state, node, label, v, axes, keep):
            state.values[node.output[0]] = replace(state.values[node.output[0]], pool=pool)


@handler("MaxPool")
def _maxpool(state, node, label):
    _pool(state, node, label, "maxpool", False)


@handler("GlobalMaxPool")
def _global_maxpool(state, node, label):
    _pool(state, node, label, "maxpool", True)


@handler("AveragePool")
def _avgpool(state, node, label):
    _pool(state, node, label, "avgpool", False)


@handler("GlobalAveragePool")
def _global_avgpool(state, node, label):
    _pool(state, node, label, "avgpool", True)


def _pool_attrs(p: Pending) -> dict:
    keep = (
        "kernel_shape",
        "strides",
        "pads",
        "dilations",
        "ceil_mode",
        "input_shape",
        "output_shape",
        "count_include_pad",
    )
    return {k: p.attrs[k] for k in keep if k in p.attrs}


def _window_counts(p: Pending, index: np.ndarray) -> np.ndarray:
    """Divisor of each output pixel: valid elements, or (count_include_pad) the window clipped
    to the padded input as ONNX AveragePool defines it."""
    if not p.attrs.get("count_include_pad"):
        return (index[0] >= 0).sum(axis=1)
    w = p.attrs["window"]
    counts = np.ones(index.shape[1], dtype=np.int64)
    ho, wo = w.out_hw
    for axis, n_out in ((0, ho), (1, wo)):
        start = np.arange(n_out) * w.strides[axis] - w.pads[axis]
        taps = start[:, None] + np.arange(w.kernel[axis])[None, :] * w.dilations[axis]
        inside = ((taps >= -w.pads[axis]) & (taps < w.in_hw[axis] + w.pads[axis + 2])).sum(1)
        counts = counts * (np.repeat(inside, wo) if axis == 0 else np.tile(inside, ho))
    return counts


@emitter("maxpool")
def _emit_maxpool(state, p: Pending, dtype, scale, zp, label):
    (x,) = p.inputs
    index = pool_windows(p.attrs["window"], x.shape[0])
    m, shift = multipliers(np.array([x.scale * p.gain / scale]), label)
    return (
        "maxpool",
        dict(_pool_attrs(p), input_zero_point=x.zero_point, shift=shift),
        {"im2col": index, "multiplier": m},
    )


@emitter("avgpool")
def _emit_avgpool(state, p: Pending, dtype, scale, zp, label):
    """Sum of the window, then one requantization per output pixel whose multiplier and
    shift divide by that pixel's window count and rescale (``division_multiplier``): exact
    against ``round(sum * M / (count * 2**s))`` with ``M / 2**s`` the real ratio
    ``s_x * gain / s_y`` to 15 bits, as every requantization."""
    (x,) = p.inputs
    index = pool_windows(p.attrs["window"], x.shape[0])
    counts = _window_counts(p, index)
    if np.any(counts < 1):
        raise ModelError(f"{label}: a pooling window lies entirely on padding")
    num, s = multipliers(np.array([x.scale * p.gain / scale]), label)
    num, s = int(num[0]), int(s)
    rounding = p.attrs.get("rounding", "half_even")
    t = state.tensors[x.tensor].dtype
    d_lo, d_hi = t.min - x.zero_point, t.max - x.zero_point
    found = {}
    for c in sorted(set(counts.tolist())):
        try:
            found[c] = division_multiplier(num, c << s, c * d_lo, c * d_hi, rounding)
        except ValueError as exc:
            raise ModelError(f"{label}: window of {c}: {exc}") from None
    shift = max(sh for _, sh in found.values())
    per_count = {c: m << (shift - sh) for c, (m, sh) in found.items()}
    if max(per_count.values()) >= 1 << 31:
        raise ModelError(
            f"{label}: windows of {sorted(found)} need multipliers wider than 31 "
            f"bits under one shift"
        )
    mult = np.array([per_count[int(c)] for c in counts], np.int64)
    if np.all(mult == mult[0]):
        mult = mult[:1]
    return (
        "avgpool",
        dict(_pool_attrs(p), input_zero_point=x.zero_point, shift=shift),
        {"im2col": index, "multiplier": mult, "count": counts.astype(np.int64)},
    )


# --- nonlinear functions -----------------------------------------------------------------------


_OP_FUNCTION = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Gelu": "gelu",
    "LeakyRelu": "leaky_relu",
    "HardSigmoid": "hard_sigmoid",
    "HardSwish": "hard_swish",
}


@handler(*_OP_FUNCTION)
def _elementwise(state: State, node, label: str):
    from .island import as_island, unary_island

    v = value(state, node, 0, label)
    a = {k: float(v) for k, v in attrs(node).items() if k in ("alpha", "beta")}
    if not isinstance(v, Dequantized) and as_island(v) is not None:  # after other float ops
        f = FUNCTIONS[_OP_FUNCTION[node.op_type]]
        if node.op_type == "Gelu" and attrs(node).get("approximate", b"none") in (b"tanh", "tanh"):
            f = FUNCTIONS["gelu_tanh"]
        unary_island(state, node, label, lambda t: f(t, a))
        return
    x = as_dequantized(v, label, "input")
    function = _OP_FUNCTION[node.op_type]
    if node.op_type == "Gelu":
        approx = attrs(node).get("approximate", b"none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        if approx not in ("none", "tanh"):
            raise ModelError(f"{label}: approximate='{approx}' is not supported")
        function = "gelu" if approx == "none" else "gelu_tanh"
    state.values[node.output[0]] = Pending(
        _name(node),
        node.op_type,
        "nonlinear",
        (x,),
        {"function": function, "params": a},
        x.shape,
        batched=x.batched,
    )


def _host_axis(
    state: State, node, label: str, shape: tuple, default_13: int, default_old: int
) -> int:
    require_batched(value(state, node, 0, label), label, node.op_type)
    """The sample axis of a Softmax/LogSoftmax/ArgMax over a value of per-sample ``shape``."""
    opset = state.opsets.get("", 0)
    rank = len(shape) + 1
    axis = int(attrs(node).get("axis", default_13 if opset >= 13 else default_old))
    axis = axis + rank if axis < 0 else axis
    if node.op_type != "ArgMax" and opset < 13 and axis != rank - 1:
        raise ModelError(
            f"{label}: {node.op_type} before opset 13 over axes {axis}.. "
            f"flattens; only the last axis is supported"
        )
    if not 1 <= axis < rank:
        raise ModelError(f"{label}: {node.op_type} over the batch axis is not supported")
    return axis - 1


def _host_tail(v, op: tuple, shape: tuple) -> HostTail:
    if isinstance(v, HostTail):
        return HostTail(v.base, v.ops + (op,), shape)
    if isinstance(v, Pending) and v.kind == "nonlinear" and v.attrs["function"] == "softmax":
        return HostTail(v.inputs[0], (("softmax", v.attrs["axis"]),) + (op,), shape)
    return HostTail(v, (op,), shape)


@handler("Softmax")
def _softmax(state: State, node, label: str):
    """On a quantized tensor: a ``nonlinear`` softmax node if a quantizer follows, else (at
    the graph output) a host op; on a layer's float output: a host op."""
    v = value(state, node, 0, label)
    if isinstance(v, (Accumulator, HostTail)):
        axis = _host_axis(state, node, label, v.shape, -1, 1)
        state.values[node.output[0]] = _host_tail(v, ("softmax", axis), v.shape)
        return
    x = as_dequantized(v, label, "input")
    if not x.batched:  # a sequence whose batch axis moved: ONNX's axes are the IR's
        rank = len(x.shape)
        axis = int(attrs(node).get("axis", -1))
        axis = axis + rank if axis < 0 else axis
    else:
        axis = _host_axis(state, node, label, x.shape, -1, 1)
    if len(x.shape) > 1 and axis != len(x.shape) - 1:
        raise ModelError(
            f"{label}: Softmax over axis {axis + (1 if x.batched else 0)} of a tensor of "
            f"shape {((1,) if x.batched else ()) + tuple(x.shape)}; inside the network only "
            f"the last axis (each row of attention weights) is supported"
        )
    state.values[node.output[0]] = Pending(
        _name(node),
        "Softmax",
        "nonlinear",
        (x,),
        {"function": "softmax", "axis": axis},
        x.shape,
        batched=x.batched,
    )


def _host_input(state: State, node, label: str):
    v = value(state, node, 0, label)
    if not isinstance(v, (Accumulator, HostTail, Dequantized, Pending)) or (
        isinstance(v, Pending) and not (v.kind == "nonlinear" and v.attrs["function"] == "softmax")
    ):
        raise ModelError(
            f"{label}: {node.op_type} of {describe_value(v)} is not supported; "
            f"it runs on the host at the graph output, after a layer or a "
            f"quantized tensor"
        )
    return v


@handler("LogSoftmax")
def _log_softmax(state: State, node, label: str):
    v = _host_input(state, node, label)
    axis = _host_axis(state, node, label, v.shape, -1, 1)
    state.values[node.output[0]] = _host_tail(v, ("log_softmax", axis), v.shape)


@handler("ArgMax")
def _argmax(state: State, node, label: str):
    v = _host_input(state, node, label)
    a = attrs(node)
    if a.get("select_last_index", 0):
        raise ModelError(f"{label}: select_last_index=1 is not supported")
    axis = _host_axis(state, node, label, v.shape, 0, 0)
    keep = bool(a.get("keepdims", 1))
    shape = tuple(d for i, d in enumerate(v.shape) if i != axis or keep)
    shape = tuple(1 if i == axis and keep else d for i, d in enumerate(shape)) if keep else shape
    state.values[node.output[0]] = _host_tail(v, ("argmax", axis, keep), shape)


def _in_type(state, x: Dequantized) -> IntType:
    return state.tensors[x.tensor].dtype


@emitter("nonlinear")
def _emit_nonlinear(state, p: Pending, dtype, scale, zp, label):
    (x,) = p.inputs
    t = _in_type(state, x)
    if t.width > 16:
        raise ModelError(
            f"{label}: a nonlinear function of a {t} input is not supported "
            f"(at most 16 bits, so that it is a table)"
        )
    codes = np.arange(t.min, t.max + 1, dtype=np.int64)
    common = {
        "function": p.attrs["function"],
        "input_scale": x.scale,
        "input_zero_point": x.zero_point,
        "input_min": t.min,
        "output_scale": scale,
        "input_shape": x.shape,
    }
    if p.attrs["function"] == "softmax":
        row = int(x.shape[p.attrs["axis"]])
        check_tokens(row, f"node '{p.node}' (Softmax)", "its row")  # in the network
        exp_table, recip = softmax_params(x.scale, t.max - t.min, row)
        m, shift = multipliers(
            np.array([2.0**-recip / scale]), label, "softmax output scale", bits=MULTIPLIER_BITS
        )
        return (
            "nonlinear",
            dict(common, axis=p.attrs["axis"], shift=shift, recip_shift=recip, rounding="half_up"),
            {"exp_table": exp_table, "multiplier": m},
        )
    real = x.scale * (codes - x.zero_point).astype(np.float64)
    expr = p.attrs.get("expr")
    with np.errstate(all="ignore"):
        if expr is not None:  # an island of float ops: named if it is a known function
            from .island import island_name

            common["function"] = island_name(expr, real, p.attrs["steps"])
            f = expr(real) * p.gain
        else:
            f = FUNCTIONS[p.attrs["function"]](real, p.attrs["params"]) * p.gain
        q = np.rint(f / scale)
    lo, hi = dtype.min, dtype.max
    q = np.clip(np.nan_to_num(q, nan=0.0, posinf=hi - zp, neginf=lo - zp), lo - zp, hi - zp)
    table = q.astype(np.int64) + zp
    common.update(p.attrs["params"])
    return "nonlinear", common, {"table": table}
