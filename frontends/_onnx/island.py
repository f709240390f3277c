"""Element-wise float islands: the float ops a model runs on one quantized tensor between
its DequantizeLinear and the next QuantizeLinear (GELU's Erf and tanh forms, x * sigmoid(x),
scalar Mul/Div/Add/Sub/Pow, Sqrt, ...), composed into one function of the input's codes
that becomes a ``nonlinear`` table node at the quantizer (``ops._emit_nonlinear``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from .base import (
    Dequantized,
    Pending,
    State,
    Value,
    describe_value,
    handler,
    scalar_constant,
    value,
)
from .functions import FUNCTIONS

if TYPE_CHECKING:
    from onnx import NodeProto


def as_island(v: Value | None) -> tuple[Dequantized, Callable, tuple] | None:
    """``(source, fn, steps)`` when ``v`` is an element-wise function of one quantized
    tensor (``fn`` maps its real values, float64, to ``v``'s), else None."""
    if isinstance(v, Dequantized):
        return v, (lambda t: t), ()
    if not isinstance(v, Pending) or len(v.inputs) != 1:
        return None
    if v.kind == "nonlinear" and v.attrs.get("function") != "softmax":
        fn = v.attrs.get("expr")
        if fn is None:
            name, params = v.attrs["function"], v.attrs.get("params", {})
            fn = (lambda f: lambda t: f(t, params))(FUNCTIONS[name])
        steps = v.attrs.get("steps", (v.op,))
    elif v.kind == "requant" and "trunc_shift" not in v.attrs:
        fn, steps = (lambda t: t), (v.op,)
    else:
        return None
    lo, hi, gain = v.lo_real, v.hi_real, v.gain

    def composed(t, fn=fn):
        y = fn(t)
        if lo > -math.inf or hi < math.inf:
            y = np.clip(y, lo, hi)
        return y * gain

    return v.inputs[0], composed, steps


def make_island(node: NodeProto, src: Dequantized, fn: Callable, steps: tuple) -> Pending:
    return Pending(
        node.name or node.output[0],
        node.op_type,
        "nonlinear",
        (src,),
        {"function": "island", "params": {}, "expr": fn, "steps": steps},
        src.shape,
        batched=src.batched,
    )


_BINARY = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Pow": lambda a, b: np.power(a, b),
}


def binary_island(state: State, node: NodeProto, label: str) -> bool:
    """Add/Sub/Mul/Div/Pow of an island and a scalar constant, or of two islands of the same
    quantized tensor (GELU's ``x * (1 + erf(x / sqrt(2)))``): True if it applied."""
    a, b = value(state, node, 0, label), value(state, node, 1, label)
    op = _BINARY[node.op_type]
    ia, ib = as_island(a), as_island(b)
    ca, cb = scalar_constant(a), scalar_constant(b)
    if ia is not None and cb is not None:
        src, f, steps = ia
        fn = (lambda f, c: lambda t: op(f(t), c))(f, cb)
    elif ib is not None and ca is not None:
        src, f, steps = ib
        fn = (lambda f, c: lambda t: op(c, f(t)))(f, ca)
    elif ia is not None and ib is not None:
        src, fa, steps = ia
        src_b, fb, steps_b = ib
        if (src.tensor, src.scale, src.zero_point) != (
            src_b.tensor,
            src_b.scale,
            src_b.zero_point,
        ) or src.shape != src_b.shape:
            if node.op_type == "Add" and isinstance(a, Dequantized) and isinstance(b, Dequantized):
                return False  # a residual Add: the caller's
            raise ModelError(
                f"{label}: {node.op_type} of two different quantized tensors element by "
                f"element is not supported (only of one tensor with a function of itself, "
                f"as GELU's x * (1 + erf(x / sqrt(2))), or by a scalar constant)"
            )
        steps = steps + steps_b
        fn = (lambda fa, fb: lambda t: op(fa(t), fb(t)))(fa, fb)
    else:
        return False
    state.values[node.output[0]] = make_island(node, src, fn, steps + (node.op_type,))
    return True


def unary_island(state: State, node: NodeProto, label: str, f: Callable) -> None:
    v = value(state, node, 0, label)
    island = as_island(v)
    if island is None:
        raise ModelError(
            f"{label}: {node.op_type} of {describe_value(v)} is not supported; it runs "
            f"element-wise on a quantized tensor (between DequantizeLinear and "
            f"QuantizeLinear)"
        )
    src, g, steps = island
    fn = (lambda g: lambda t: f(g(t)))(g)
    state.values[node.output[0]] = make_island(node, src, fn, steps + (node.op_type,))


def _erf(t):
    from scipy.special import erf

    return erf(t)


_UNARY = {
    "Erf": _erf,
    "Sqrt": np.sqrt,
    "Neg": np.negative,
    "Reciprocal": lambda t: 1.0 / t,
    "Abs": np.abs,
}


@handler(*_UNARY)
def _unary(state: State, node, label: str):
    from .norm import norm_unary

    if norm_unary(state, node, label):
        return
    unary_island(state, node, label, _UNARY[node.op_type])


@handler("Sub", "Pow")
def _sub_pow(state: State, node, label: str):
    from .norm import norm_binary

    if norm_binary(state, node, label) or binary_island(state, node, label):
        return
    a, b = value(state, node, 0, label), value(state, node, 1, label)
    raise ModelError(
        f"{label}: {node.op_type} of {describe_value(a)} and {describe_value(b)} is not "
        f"supported (only element-wise on one quantized tensor with scalar constants, "
        f"or inside a LayerNorm)"
    )


def island_name(fn: Callable, t: np.ndarray, steps: tuple) -> str:
    """The known function (``ops.FUNCTIONS``) an island equals on the real inputs ``t``, or
    ``island:`` and its ops."""
    with np.errstate(all="ignore"):
        y = fn(t)
        for name in ("gelu", "gelu_tanh", "sigmoid", "tanh", "exp"):
            ref = FUNCTIONS[name](t, {})
            if np.allclose(y, ref, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(ref).max()))):
                return name
    return "island:" + ",".join(steps)


def replace_expr(p: Pending, **attrs: object) -> Pending:
    return replace(p, attrs=dict(p.attrs, **attrs))
