"""LayerNormalization (and the decomposed form exporters emit) as the IR's integer
``layernorm``: the parameters of its one per-row reciprocal square root and of the
per-channel requantization that folds gamma and beta (``frontends.ir`` states the op)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError
from ..fixedpoint import quantize_multipliers
from ..ir import IntType

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
