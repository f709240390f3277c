"""GEMM-shaped IR nodes as ``GemmLayer``s, the compiler's first phase.

``LOWERINGS`` maps an op to ``function(node, graph) -> GemmLayer``: ``dense`` (per sample,
per token, or diagonal: a per-channel scale as a grouped layer), ``conv`` (incl. depthwise
and pointwise; its ``window`` is walked by the cores' address counters) and ``avgpool``
(global or uniform windows; the divisor becomes a multiplier, ``scaled_divisor``).
Pure numbers: no instruction, no memory address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import MULTIPLIER_BITS
from frontends.ir import Graph, Node

from .window import Window, window_of

ROUNDING = {"half_up": 0, "floor": 1, "ceil": 2, "half_even": 3}


@dataclass(frozen=True, eq=False)
class GemmLayer:
    """One node as ``G`` grouped GEMMs: ``acc[c, p] = sum_k x(g(c), p, k) * w[c, k] + b[c]``
    with ``x`` read through ``window`` (padding reads the zero point)."""

    node: Node
    groups: int
    m: int
    k: int
    ng: int  # channels per group
    weight: np.ndarray  # (G*ng, K)
    bias: np.ndarray  # (G*ng,) before zero-point folding
    multiplier: np.ndarray  # (G*ng,)
    shift: int
    zp_in: int
    zp_out: int
    lo: int
    hi: int
    rounding: str
    window: Window
    dsp_only: bool = False  # its weights and multiplier hold only on the DSP core

    @property
    def n(self) -> int:
        return self.groups * self.ng

    @property
    def items(self) -> int:
        """Split items: channels (G == 1) or whole groups."""
        return self.ng if self.groups == 1 else self.groups

    @property
    def macs(self) -> int:
        return self.n * self.m * self.k


def _common(node: Node) -> dict:
    a = node.attrs
    if a.get("sign"):
        raise ModelError(
            f"{node.describe()}: bipolar (sign) outputs cannot run on the gemm "
            f"engine; its post-processing requantizes"
        )
    rounding = a.get("rounding", "half_up")
    if rounding not in ROUNDING:
        raise ModelError(
            f"{node.describe()}: rounding '{rounding}' is not one of {', '.join(ROUNDING)}"
        )
    return dict(
        shift=int(a["shift"]),
        zp_in=int(a["input_zero_point"]),
        zp_out=int(a["output_zero_point"]),
        lo=int(a["lo"]),
        hi=int(a["hi"]),
        rounding=rounding,
    )


def _dense(node: Node, graph: Graph) -> GemmLayer:
    """A dense layer; a diagonal one (a per-channel affine layer, e.g. a BatchNormalization
    on quantized codes) as ``n`` groups of one channel over one input each (``k = 1``), so
    it takes ``n`` weight words and steps, not ``n * n / lanes``; on a token sequence (attr
    ``tokens`` T) a GEMM of M = T pixels: a 1x1 convolution over a 1 x T plane per input
    feature (``token_layout``)."""
    w = np.asarray(node.weights["weight"], dtype=np.int64)
    n, k = w.shape
    tokens = int(node.attrs.get("tokens", 1))
    if tokens == 1 and n == k and n > 1 and not np.any(w[~np.eye(n, dtype=bool)]):
        return GemmLayer(
            node,
            n,
            1,
            1,
            1,
            np.diag(w).reshape(n, 1).copy(),
            np.asarray(node.weights["bias"], np.int64),
            np.asarray(node.weights["multiplier"], np.int64) * np.ones(n, np.int64),
            window=Window(n, 1, 1, 1, 1, groups=n),
            **_common(node),
        )
    window = Window(k, 1, tokens, 1, tokens) if tokens > 1 else window_of(node, graph, None)
    return GemmLayer(
        node,
        1,
        tokens,
        k,
        n,
        w,
        np.asarray(node.weights["bias"], np.int64),
        np.asarray(node.weights["multiplier"], np.int64) * np.ones(n, np.int64),
        window=window,
        **_common(node),
    )


def _token_shape(node: Node) -> tuple[int, int] | None:
    """(T, F) of a layer that reads a token sequence: a token dense, or the mean over the
    tokens (an avgpool whose ``im2col`` (F, 1, T) reads ``x.flat[t*F + f]``)."""
    if node.op == "dense" and int(node.attrs.get("tokens", 1)) > 1:
        return int(node.attrs["tokens"]), int(np.asarray(node.weights["weight"]).shape[1])
    if node.op == "avgpool" and len(node.attrs.get("input_shape") or ()) == 2:
        t, f = (int(v) for v in node.attrs["input_shape"])
        im2col = np.asarray(node.weights["im2col"])
        want = (np.arange(t)[None, :] * f + np.arange(f)[:, None])[:, None, :]
        if im2col.shape == want.shape and np.array_equal(im2col, want):
            return t, f
    return None


def token_layout(node: Node, layout: np.ndarray, features: int) -> np.ndarray:
    """A token sequence's tensor (T, F) seen as the GEMM's planes: the physical offset of
    element (feature f, token t) at index f*T + t (the identity for other layers)."""
    seq = _token_shape(node)
    if seq is None:
        return layout
    return layout.reshape(seq).T.reshape(-1)


def _conv(node: Node, graph: Graph) -> GemmLayer:
    w = np.asarray(node.weights["weight"], dtype=np.int64)
    cout = w.shape[0]
    im2col = np.asarray(node.weights["im2col"], dtype=np.int64)
    g, m, k = im2col.shape
    return GemmLayer(
        node,
        g,
        m,
        k,
        cout // g,
        w.reshape(cout, -1),
        np.asarray(node.weights["bias"], np.int64),
        np.asarray(node.weights["multiplier"], np.int64) * np.ones(cout, np.int64),
        window=window_of(node, graph, im2col),
        **_common(node),
    )


def _avgpool(node: Node, graph: Graph) -> GemmLayer:
    """An average pool as a depthwise GEMM with unit weights; the post unit's requantizer
    divides by the window with the IR's multiplier and shift (``frontends.ir``), so every
    output pixel must share one multiplier (windows of one size) that fits the post unit's
    parameter memory."""
    mult = np.asarray(node.weights["multiplier"], np.int64).reshape(-1)
    if np.any(mult != mult[0]):
        count = np.asarray(node.weights.get("count", [0]), np.int64).reshape(-1)
        raise ModelError(
            f"{node.describe()}: window sizes {sorted(set(count.tolist()))} "
            f"differ at the borders; the gemm engine takes one divisor per pool"
        )
    im2col = np.asarray(node.weights["im2col"], dtype=np.int64)  # (C, M, k)
    c, m, k = im2col.shape
    common = _common(node)
    weight, multiplier = 1, int(mult[0])
    if multiplier >= 1 << MULTIPLIER_BITS:
        found = _scaled_divisor(node, graph, k, multiplier, common)
        if found is None:
            raise ModelError(
                f"{node.describe()}: dividing by its window needs a "
                f"{multiplier.bit_length()}-bit multiplier; the gemm engine's post "
                f"unit holds {MULTIPLIER_BITS} bits"
            )
        weight, multiplier, common["shift"] = found
    seq = _token_shape(node)
    if seq is not None:  # the mean over a sequence's tokens: a 1 x T window per feature
        window = Window(c, 1, k, 1, 1, 1, k, groups=c)
    else:
        window = window_of(node, graph, im2col)
    return GemmLayer(
        node,
        c,
        m,
        k,
        1,
        np.full((c, k), weight, np.int64),
        np.zeros(c, np.int64),
        np.full(c, multiplier, np.int64),
        window=window,
        dsp_only=weight != 1,
        **common,
    )


def _scaled_divisor(node: Node, graph: Graph, k: int, mult: int, common: dict):
    """``(weight, multiplier, shift)``: a pool whose divisor needs a multiplier wider than
    the post unit's as a sum of ``weight * x`` (int8) requantized by a multiplier that
    fits, equal to the IR's ``requantize(sum, mult, shift)`` on every sum the window's
    ``k`` inputs can make (checked on all of them), or None. The weight's factor buys the
    multiplier's missing precision where some ``weight * multiplier`` lands close enough
    to the exact ratio."""
    from frontends.fixedpoint import requantize

    x_t = graph.tensor(node.inputs[0])
    zp, shift = common["zp_in"], common["shift"]
    sums = np.arange(k * (x_t.dtype.min - zp), k * (x_t.dtype.max - zp) + 1, dtype=np.int64)
    out = dict(zero_point=common["zp_out"], lo=common["lo"], hi=common["hi"])
    want = requantize(sums, mult, shift, rounding=common["rounding"], **out)
    for weight in range(2, 128):
        # weight * m_new / 2**new_shift ~ mult / 2**shift, m_new as wide as fits
        extra = 0
        while (mult << (extra + 1)) // weight < 1 << MULTIPLIER_BITS:
            extra += 1
        while extra > -shift and (mult << max(extra, 0) >> max(-extra, 0)) // weight >= (
            1 << MULTIPLIER_BITS
        ):
            extra -= 1
        new_shift = shift + extra
        if new_shift < 1:
            continue
        num = mult << extra if extra >= 0 else mult
        den = weight if extra >= 0 else weight << -extra
        base = (2 * num + den) // (2 * den)
        for m_new in (base, base - 1, base + 1):
            if not 0 < m_new < 1 << MULTIPLIER_BITS:
                continue
            got = requantize(sums * weight, m_new, new_shift, rounding=common["rounding"], **out)
            if np.array_equal(got, want):
                return weight, m_new, new_shift
    return None


def requant_gemm(node: Node, graph: Graph) -> GemmLayer:
    """A standalone ``requant`` of a (C, H, W) tensor as a GEMM: ``C`` groups of one channel
    over a 1x1 window, every weight 1 (``GEMM ones``), the post unit's requantizer doing
    the rest (``y = requantize(x - zp, multiplier, shift)``, the IR's definition). For the
    SPRAM overlay, whose single-ported activation buffer has no ``MAX`` copy."""
    shape = graph.tensor(node.inputs[0]).shape
    mult = np.asarray(node.weights["multiplier"], np.int64).reshape(-1)
    if len(shape) != 3 or mult.size != 1:
        raise ModelError(
            f"{node.describe()}: a requantization of a {len(shape)}-D tensor cannot run on "
            f"the SPRAM overlay (it runs one of a (C, H, W) image as a GEMM)"
        )
    c, h, w = (int(v) for v in shape)
    return GemmLayer(
        node,
        c,
        h * w,
        1,
        1,
        np.ones((c, 1), np.int64),
        np.zeros(c, np.int64),
        np.full(c, int(mult[0]), np.int64),
        window=Window(c, h, w, h, w, groups=c),
        **_common(node),
    )


LOWERINGS: dict[str, Callable[[Node, Graph], GemmLayer]] = {
    "dense": _dense,
    "conv": _conv,
    "avgpool": _avgpool,
}
