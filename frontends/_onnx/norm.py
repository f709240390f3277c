"""LayerNormalization (and the decomposed form exporters emit) as the IR's integer
``layernorm``: the parameters of its one per-row reciprocal square root and of the
per-channel requantization that folds gamma and beta (``frontends.ir`` states the op)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..fixedpoint import quantize_multipliers
from ..ir import IntType
from .base import (
    Dequantized,
    Pending,
    State,
    Value,
    as_dequantized,
    attrs,
    check_tokens,
    describe_value,
    emitter,
    full_shape,
    handler,
    real_constant,
    scalar_constant,
    value,
)

if TYPE_CHECKING:
    from onnx import NodeProto

INV_BITS = 16  # inv = 2**(p + norm_bits) // R keeps at least 16 bits on every row
SQRT_BITS = 48  # the largest V << 2p is at least this wide: R >= 2**p keeps its precision


def layernorm_params(
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    in_scale: float,
    in_type: IntType,
    out_scale: float,
    label: str,
) -> tuple[dict, dict]:
    """Attrs (``epsilon_codes``, ``sqrt_shift``, ``norm_bits``, ``shift``) and weights
    (``sign``, ``bias``, ``multiplier``) of a ``layernorm`` over C = len(gamma) channels."""
    gamma = np.asarray(gamma, np.float64).reshape(-1)
    beta = np.broadcast_to(np.asarray(beta, np.float64).reshape(-1), gamma.shape)
    c = gamma.size
    if not (np.all(np.isfinite(gamma)) and np.all(np.isfinite(beta)) and math.isfinite(eps)):
        raise ModelError(f"{label}: scale, bias and epsilon must be finite")
    e = max(1, int(math.floor(c**3 * eps / in_scale**2 + 0.5)))
    span = c * (in_type.max - in_type.min)
    v_max = c * span * span + e
    p = max(0, -(-(SQRT_BITS - v_max.bit_length()) // 2))
    q = INV_BITS + -(-v_max.bit_length() // 2)
    g = np.abs(gamma)
    g = np.where(g == 0, np.finfo(np.float64).tiny, g)  # a zero gamma: output beta alone
    real = g * math.sqrt(c) / (2.0**q * out_scale)
    try:
        m, shift = quantize_multipliers(real)
    except ValueError as exc:
        raise ModelError(f"{label}: {exc}") from None
    m = np.maximum(m, 1)
    bias = np.floor(beta / out_scale / (m / 2.0**shift) + 0.5)
    if np.abs(bias).max(initial=0) >= 2.0**40:
        raise ModelError(
            f"{label}: beta/gamma reaches {np.abs(bias).max():.3g} accumulator steps; "
            f"a channel's gamma is too small against its beta for an integer LayerNorm"
        )
    attrs = {"epsilon_codes": e, "sqrt_shift": p, "norm_bits": q, "shift": shift}
    weights = {
        "sign": np.where(gamma < 0, -1, 1).astype(np.int64),
        "bias": bias.astype(np.int64),
        "multiplier": m.astype(np.int64),
    }
    return attrs, weights


# --- import ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NormStage:
    """A step of a decomposed LayerNorm over the last axis of quantized ``x``: ``mean``,
    ``centered`` (x - mean), ``square``, ``var`` (mean of the squares), ``var_eps`` (+ eps),
    ``std`` (its square root)."""

    x: Dequantized
    stage: str
    shape: tuple
    eps: float = 0.0
    batched: bool = True
    pool: object = None  # a ``mean`` that may also be a global average pool (C, L)


def _last_axis(full: tuple, axis: int, label: str, what: str) -> None:
    if (axis + len(full) if axis < 0 else axis) != len(full) - 1:
        raise ModelError(
            f"{label}: {what} over axis {axis} of a tensor of shape {full}; only over the "
            f"last axis (the features of each token)"
        )


def _pending(name: str, op: str, x: Dequantized, gamma, beta, eps: float) -> Pending:
    c = x.shape[-1] if x.shape else 1
    gamma = np.broadcast_to(np.asarray(gamma, np.float64).reshape(-1), (c,)).copy()
    beta = np.broadcast_to(np.asarray(beta, np.float64).reshape(-1), (c,)).copy()
    return Pending(
        name,
        op,
        "layernorm",
        (x,),
        {"gamma": gamma, "beta": beta, "eps": float(eps)},
        x.shape,
        batched=x.batched,
    )


def _channel_constant(v, c: int, label: str, what: str) -> np.ndarray:
    real = real_constant(v)
    if real is None:
        raise ModelError(f"{label}: {what} must be a constant; here it is {describe_value(v)}")
    flat = np.squeeze(real)
    if flat.size not in (1, c) or flat.ndim > 1:
        raise ModelError(
            f"{label}: {what} of shape {real.shape} is not one value per channel ({c})"
        )
    return np.broadcast_to(flat.reshape(-1), (c,)).astype(np.float64)


@handler("LayerNormalization")
def _layer_norm(state: State, node, label: str):
    x = as_dequantized(value(state, node, 0, label), label, "input X")
    a = attrs(node)
    _last_axis(full_shape(x), int(a.get("axis", -1)), label, "LayerNormalization")
    if any(node.output[1:]):
        raise ModelError(f"{label}: the Mean/InvStdDev outputs are not supported")
    c = x.shape[-1]
    gamma = _channel_constant(value(state, node, 1, label), c, label, "Scale")
    beta = (
        _channel_constant(value(state, node, 2, label), c, label, "B")
        if len(node.input) > 2 and node.input[2]
        else np.zeros(c)
    )
    state.values[node.output[0]] = _pending(
        node.name or node.output[0],
        "LayerNormalization",
        x,
        gamma,
        beta,
        float(a.get("epsilon", 1e-5)),
    )


def norm_reduce_mean(
    state: State, node: NodeProto, label: str, v: Value, axes: list, keepdims: bool
) -> bool:
    """ReduceMean over the last axis in a decomposed LayerNorm: True if it applied."""
    if not isinstance(v, (Dequantized, NormStage)) or not keepdims:
        return False
    full = full_shape(v)
    if [a + len(full) if a < 0 else a for a in axes] != [len(full) - 1]:
        return False
    if isinstance(v, Dequantized):
        stage = NormStage(v, "mean", v.shape, batched=v.batched)
    elif v.stage == "square":
        stage = replace(v, stage="var")
    else:
        return False
    state.values[node.output[0]] = stage
    return True


def norm_unary(state: State, node: NodeProto, label: str) -> bool:
    v = value(state, node, 0, label)
    if isinstance(v, NormStage) and node.op_type == "Sqrt" and v.stage == "var_eps":
        state.values[node.output[0]] = replace(v, stage="std")
        return True
    if isinstance(v, NormStage):
        raise ModelError(f"{label}: {node.op_type} inside a LayerNorm is not supported")
    return False


def _same(v: NormStage, x) -> bool:
    return isinstance(x, Dequantized) and (x.tensor, x.scale, x.zero_point, x.shape) == (
        v.x.tensor,
        v.x.scale,
        v.x.zero_point,
        v.x.shape,
    )


def norm_binary(state: State, node: NodeProto, label: str) -> bool:
    """Sub/Pow/Mul/Div/Add steps of a decomposed LayerNorm, and Mul/Add of its gamma/beta
    after a LayerNorm: True if it applied."""
    a, b = value(state, node, 0, label), value(state, node, 1, label)
    op, out = node.op_type, node.output[0]
    if isinstance(a, Pending) and a.kind == "layernorm" and op in ("Mul", "Add", "Div", "Sub"):
        if a.lo_real > -math.inf or a.hi_real < math.inf or a.gain != 1.0:
            return False
        c = _channel_constant(b, a.shape[-1], label, f"the {op} constant after a LayerNorm")
        g, bt = a.attrs["gamma"], a.attrs["beta"]
        g, bt = {
            "Mul": (g * c, bt * c),
            "Div": (g / c, bt / c),
            "Add": (g, bt + c),
            "Sub": (g, bt - c),
        }[op]
        state.values[out] = replace(a, attrs=dict(a.attrs, gamma=g, beta=bt))
        return True
    if isinstance(b, Pending) and b.kind == "layernorm" and op in ("Mul", "Add"):
        return norm_binary_swapped(state, node, label, b, a)
    if isinstance(b, NormStage) and op == "Sub" and b.stage == "mean" and _same(b, a):
        state.values[out] = replace(b, stage="centered")
        return True
    if not isinstance(a, NormStage):
        return False
    if a.stage == "centered" and (
        (op == "Pow" and scalar_constant(b) == 2.0)
        or (op == "Mul" and isinstance(b, NormStage) and b is a)
    ):
        state.values[out] = replace(a, stage="square")
        return True
    if a.stage == "var" and op == "Add" and (eps := scalar_constant(b)) is not None:
        state.values[out] = replace(a, stage="var_eps", eps=eps)
        return True
    if a.stage == "centered" and op == "Div" and isinstance(b, NormStage) and b.stage == "std":
        if not _same(a, b.x):
            return False
        state.values[out] = _pending(
            node.name or out, "LayerNorm (decomposed)", a.x, 1.0, 0.0, b.eps
        )
        return True
    raise ModelError(
        f"{label}: {op} at step '{a.stage}' of a decomposed LayerNorm is not supported "
        f"(expected ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul, Add)"
    )


def norm_binary_swapped(state: State, node: NodeProto, label: str, ln: Pending, c: Value) -> bool:
    cc = _channel_constant(c, ln.shape[-1], label, f"the {node.op_type} constant")
    g, bt = ln.attrs["gamma"], ln.attrs["beta"]
    g, bt = (g * cc, bt * cc) if node.op_type == "Mul" else (g, bt + cc)
    state.values[node.output[0]] = replace(ln, attrs=dict(ln.attrs, gamma=g, beta=bt))
    return True


@emitter("layernorm")
def _emit_layernorm(state, p: Pending, dtype, scale, zp, label):
    (x,) = p.inputs
    check_tokens(x.shape[-1], label, "the LayerNorm row")
    t = state.tensors[x.tensor].dtype
    a, w = layernorm_params(
        p.attrs["gamma"], p.attrs["beta"], p.attrs["eps"], x.scale, t, scale, label
    )
    return (
        "layernorm",
        dict(a, input_shape=tuple(x.shape), input_zero_point=x.zero_point, rounding="half_up"),
        w,
    )
