"""Integer arithmetic shared by the golden model and every generator.

The rounding rules here *are* the contract: the reference interpreter uses them and the
RTL implements them bit for bit.

- Quantization of float inputs (host side) follows ONNX QuantizeLinear: ``x / scale`` in
  float32, round half to even, add the zero point, saturate.
- Requantization of an integer accumulator ``acc`` with the real multiplier ``M`` uses a
  fixed-point multiplier ``m`` (at most ``MULTIPLIER_BITS`` unsigned bits) and a right shift
  ``s`` with ``M ~= m * 2**-s``, and rounds half up (toward +inf)::

      y = clamp(((acc * m + 2**(s-1)) >> s) + zero_point, lo, hi)

  Round-half-up is one adder in hardware; it differs from ONNX's half-to-even only on exact
  ties, and ``m``'s 15 bits keep ``|m * 2**-s - M| / M < 2**-15``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MULTIPLIER_BITS", "quantize_multipliers", "requantize", "quantize_linear",
           "signed_bits"]

MULTIPLIER_BITS = 15


def quantize_multipliers(real: np.ndarray, *, bits: int = MULTIPLIER_BITS):
    """Fixed-point form of one or more positive real multipliers sharing one shift.

    Returns ``(m, s)``: an int64 array of multipliers below ``2**bits`` and the shift ``s``
    (>= 1), chosen so the largest multiplier uses all ``bits`` bits.
    """
    real = np.asarray(real, dtype=np.float64)
    if np.any(~np.isfinite(real)) or np.any(real <= 0):
        raise ValueError(f"requantization multipliers must be positive and finite, got {real}")
    top = float(real.max())
    # frexp: top = f * 2**e, 0.5 <= f < 1, so top * 2**(bits - e) lies in [2**(bits-1), 2**bits).
    _, e = math.frexp(top)
    shift = bits - e
    m = np.round(real * 2.0**shift).astype(np.int64)
    if np.any(m >= 2**bits):  # rounding up to 2**bits: drop one bit of precision
        shift -= 1
        m = np.round(real * 2.0**shift).astype(np.int64)
    if shift < 1:
        raise ValueError(f"requantization multiplier {top} is too large (>= 2**{bits - 1})")
    return m, int(shift)


def requantize(acc, m, shift: int, zero_point: int, lo: int, hi: int) -> np.ndarray:
    """``clamp(((acc * m + 2**(shift-1)) >> shift) + zero_point, lo, hi)`` in exact integers."""
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    prod = acc.astype(object) * m.astype(object)  # exact even past 63 bits
    y = (prod + (1 << (shift - 1))) >> shift
    y = np.asarray(y, dtype=np.int64) + int(zero_point)
    return np.clip(y, lo, hi)


def quantize_linear(x, scale, zero_point, lo: int, hi: int) -> np.ndarray:
    """ONNX QuantizeLinear: ``saturate(round_half_even(x / scale) + zero_point)`` in float32."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32))
    q = q.astype(np.int64) + np.asarray(zero_point, dtype=np.int64)
    return np.clip(q, lo, hi)


def signed_bits(lo: int, hi: int) -> int:
    """Width of the smallest two's-complement signal holding every value in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits
