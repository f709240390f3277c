"""Integer arithmetic shared by the golden model and every generator.

The rounding rules here *are* the contract: the reference interpreter uses them and the
RTL implements them bit for bit.

- Quantization of float inputs (host side) follows ONNX QuantizeLinear: ``x / scale`` in
  float32, round half to even, add the zero point, saturate.
- Requantization of an integer accumulator ``acc`` with the real multiplier ``M`` uses a
  fixed-point multiplier ``m`` (at most ``MULTIPLIER_BITS`` unsigned bits; a transformer's
  ``WIDE_MULTIPLIER_BITS``, a network deeper than ``DEEP_LAYERS`` ``DEEP_MULTIPLIER_BITS``)
  and a right shift
  ``s`` with ``M ~= m * 2**-s``, and rounds half up (toward +inf)::

      y = clamp(((acc * m + 2**(s-1)) >> s) + zero_point, lo, hi)

  Round-half-up is one adder in hardware; it differs from ONNX's half-to-even only on exact
  ties, and ``m``'s b bits keep ``|m * 2**-s - M| / M < 2**-b``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MULTIPLIER_BITS",
    "WIDE_MULTIPLIER_BITS",
    "DEEP_MULTIPLIER_BITS",
    "DEEP_LAYERS",
    "multiplier_width",
    "ROUNDINGS",
    "rounded_div",
    "division_multiplier",
    "QONNX_ROUNDING",
    "quantize_multipliers",
    "requantize",
    "quantize_linear",
    "quantize_qonnx",
    "round_qonnx",
    "signed_bits",
    "EXP_FRAC",
    "RECIP_BITS",
    "softmax_params",
]

MULTIPLIER_BITS = 15
#: The width a transformer's requantizations get (``frontends.onnx_import``): a one-code
#: difference of any requantization grows through the attention blocks. Measured on the
#: digits ViT (540 test digits, golden against onnxruntime without graph optimizations):
#: 15 bits left 96.0 % of the logit codes within one code, 20 bits 99.2 %, 22 bits 99.96 %.
WIDE_MULTIPLIER_BITS = 22
#: The width a deep network's requantizations get: more than ``DEEP_LAYERS`` nodes on its
#: longest path (``ir.layer_depth``; ``frontends.onnx_import``), where one-code differences
#: of 15-bit multipliers travel and grow into the logits. Measured on the MLPerf Tiny
#: examples (golden against onnxruntime end to end, 7 edge, 20 random and 40 test vectors),
#: logits more than one code apart at 15 / 24 bits: DS-CNN (11 nodes deep) 0 / 0 of 804,
#: ResNet-8 (12) 0 / 0 of 670, the autoencoder (19) 404 / 389 of 42,880 (0.94 %, within the
#: 1 % the agreement check allows, and not the multipliers' doing), MobileNetV1 (29) 52 / 0
#: of 134 (up to 6 codes apart at 15 bits).
DEEP_MULTIPLIER_BITS = 24
DEEP_LAYERS = 20

_WIDTH: ContextVar[int] = ContextVar("multiplier_bits", default=MULTIPLIER_BITS)


@contextmanager
def multiplier_width(bits: int) -> Iterator[None]:
    """Within the block, ``quantize_multipliers`` makes ``bits``-bit multipliers."""
    token = _WIDTH.set(bits)
    try:
        yield
    finally:
        _WIDTH.reset(token)


def quantize_multipliers(real: ArrayLike, *, bits: int | None = None) -> tuple[np.ndarray, int]:
    """Fixed-point form of one or more positive real multipliers sharing one shift.

    Returns ``(m, s)``: an int64 array of multipliers below ``2**bits`` (default: the width
    in force, ``multiplier_width``) and the shift ``s`` (>= 1), chosen so the largest
    multiplier uses all ``bits`` bits.
    """
    bits = _WIDTH.get() if bits is None else bits
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


#: Rounding of requantize's right shift: the constant added before ``>> shift``.
ROUNDINGS = ("half_up", "half_even", "floor", "ceil")


def _round_constant(rounding: str, shift: int) -> int:
    if rounding == "half_up":
        return 1 << (shift - 1)
    if rounding in ("floor", "half_even"):
        return 0
    if rounding == "ceil":
        return (1 << shift) - 1
    raise ValueError(f"unknown rounding '{rounding}'; expected one of {', '.join(ROUNDINGS)}")


def rounded_div(num: ArrayLike, den: ArrayLike, rounding: str = "half_up") -> np.ndarray:
    """``num / den`` for integers, ``den > 0``, rounded exactly as ``rounding`` says."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    q = num // den
    r = num - q * den  # 0 <= r < den
    if rounding == "floor":
        return q
    if rounding == "ceil":
        return q + (r > 0)
    if rounding == "half_up":
        return q + (2 * r >= den)
    if rounding == "half_even":
        return q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1)))
    raise ValueError(f"unknown rounding '{rounding}'; expected one of {', '.join(ROUNDINGS)}")


def requantize(
    acc: ArrayLike,
    m: ArrayLike,
    shift: int,
    zero_point: int,
    lo: int,
    hi: int,
    rounding: str = "half_up",
) -> np.ndarray:
    """``clamp(((acc * m + r) >> shift) + zero_point, lo, hi)`` in exact integers, with
    ``r = 2**(shift-1)`` (half up), ``0`` (floor) or ``2**shift - 1`` (ceil); ``half_even``
    rounds ``acc * m / 2**shift`` to the nearest integer and exact ties to the even one (floor,
    then +1 when the remainder is above half, or exactly half with an odd floor)."""
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    r = _round_constant(rounding, shift) if shift > 0 else 0
    if (
        shift < 61
        and np.abs(acc).max(initial=0) < (1 << 31)
        and np.abs(m).max(initial=0) < (1 << 31)
    ):
        prod = acc * m  # fits int64: the fast path
    else:
        prod = acc.astype(object) * m.astype(object)  # exact even past 63 bits
    y = (prod + r) >> shift
    if rounding == "half_even" and shift > 0:
        rem = prod - (y << shift)
        half = 1 << (shift - 1)
        y = y + ((rem > half) | ((rem == half) & (y % 2 == 1)))
    y = np.asarray(y, dtype=np.int64) + int(zero_point)
    return np.clip(y, lo, hi)


def quantize_linear(
    x: ArrayLike, scale: ArrayLike, zero_point: ArrayLike, lo: int, hi: int
) -> np.ndarray:
    """ONNX QuantizeLinear: ``saturate(round_half_even(x / scale) + zero_point)`` in float32.

    Saturation happens before the cast to integers, as onnxruntime's kernel does it: ``±inf``
    and values beyond the type (1e30) become the extreme codes. NaN has no code: refused."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        q = np.rint(np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32))
    if np.any(np.isnan(q)):
        raise ValueError("QuantizeLinear of NaN")
    q = q.astype(np.float64) + np.asarray(zero_point, dtype=np.float64)
    return np.clip(q, lo, hi).astype(np.int64)


#: QONNX rounding modes (docs/qonnx-custom-ops/quant_op.md) and the requantize rounding that
#: matches each (``None``: it depends on the sign: ties or all values away from/toward zero).
QONNX_ROUNDING = {
    "ROUND": "half_even",
    "HALF_EVEN": "half_even",
    "FLOOR": "floor",
    "CEIL": "ceil",
    "HALF_UP": None,
    "HALF_DOWN": None,
    "UP": None,
    "DOWN": None,
}


def round_qonnx(v: np.ndarray, mode: str) -> np.ndarray:
    """QONNX rounding (qonnx ``resolve_rounding_mode``): ROUND = half to even."""
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(v)
    if mode == "CEIL":
        return np.ceil(v)
    if mode == "FLOOR":
        return np.floor(v)
    if mode == "UP":
        return np.sign(v) * np.ceil(np.abs(v))
    if mode == "DOWN":
        return np.fix(v)
    if mode == "HALF_UP":
        return np.sign(v) * np.floor(np.abs(v) + 0.5)
    if mode == "HALF_DOWN":
        return np.sign(v) * np.ceil(np.abs(v) - 0.5)
    raise ValueError(f"unknown QONNX rounding mode '{mode}'")


def quantize_qonnx(
    x: ArrayLike, scale: ArrayLike, zero_point: ArrayLike, lo: int, hi: int, mode: str
) -> np.ndarray:
    """QONNX ``Quant``'s integer codes: ``mode(clamp(x / scale + zero_point, lo, hi))`` in
    float32, exactly as qonnx ``int_quant`` computes them (clamp first, then round)."""
    v = np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32)
    v = v + np.asarray(zero_point, dtype=np.float32)
    if np.any(np.isnan(v)):
        raise ValueError("Quant of NaN")
    v = np.clip(v, np.float32(lo), np.float32(hi))
    return round_qonnx(v, mode).astype(np.int64)


def signed_bits(lo: int, hi: int) -> int:
    """Width of the smallest two's-complement signal holding every value in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


#: Sums checked one by one when the sufficient condition does not hold (2**22: every sum of
#: 4096 8-bit codes).
_BRUTE_FORCE_SUMS = 1 << 22


def _agrees(acc: np.ndarray, m: int, sh: int, num: int, den: int, rounding: str) -> bool:
    """``requantize(acc, m, sh)`` equals ``rounded_div(acc * num, den)`` for every ``acc``;
    at an exact tie (nearest modes) either neighbour is accepted."""
    ours = requantize(acc, m, sh, 0, -(1 << 62), 1 << 62, rounding)
    exact = rounded_div(acc * num, den, rounding)
    if rounding in ("floor", "ceil"):
        return bool(np.array_equal(ours, exact))
    tie = (2 * acc * num) % (2 * den) == den
    return bool(np.all((ours == exact) | (tie & (np.abs(ours - exact) == 1))))


def division_multiplier(
    num: int,
    den: int,
    acc_lo: int,
    acc_hi: int,
    rounding: str = "half_even",
    *,
    max_bits: int = 31,
    search_bits: int = MULTIPLIER_BITS,
) -> tuple[int, int]:
    """An integer multiplier ``m`` (fewest bits, below ``2**max_bits``) and shift ``sh`` with
    ``requantize(acc, m, sh, rounding=rounding) == rounded_div(acc * num, den, rounding)`` for
    every integer ``acc`` in ``[acc_lo, acc_hi]``, except that an exact tie of a nearest mode
    (``acc * num / den = k + 1/2``, possible only for even ``den / gcd``) may go to either
    neighbour when ``m / 2**sh`` cannot equal ``num / den`` exactly. This is how an average
    pool divides by its window: ``num / den = M / (count * 2**s)``.

    Proof used first (nearest modes): a non-tie ``v = acc * num / den`` lies at least
    ``g / (2 * den)`` from a rounding boundary, ``g = gcd(2 * num, den)``, so ``m / 2**sh``
    rounds every ``acc`` alike when ``2 * A * |m * den - num * 2**sh| < g * 2**sh``,
    ``A = max |acc|``. Otherwise the candidate is checked on every ``acc`` (at most
    ``2**22`` of them), for multipliers of at least ``search_bits`` bits (the GEMM post
    unit's width; 0: none). Raises ``ValueError`` when nothing fits ``max_bits``."""
    if num <= 0 or den <= 0:
        raise ValueError(f"the division {num}/{den} must be of positive integers")
    a = max(abs(acc_lo), abs(acc_hi), 1)
    g = math.gcd(2 * num, den)
    small = acc_hi - acc_lo < _BRUTE_FORCE_SUMS
    acc = None
    nearest = rounding in ("half_up", "half_even")
    sh = max(1, (den // num).bit_length())
    while True:
        base = (num << sh) // den
        if base >= 1 << max_bits:
            break
        for m in (base, base + 1):
            if not 1 <= m < 1 << max_bits:
                continue
            err = abs(m * den - (num << sh))
            if err == 0 or (nearest and 2 * a * err < g << sh):
                return m, sh
            # candidates of search_bits bits or more, checked on every sum
            if (
                small
                and search_bits
                and m.bit_length() >= search_bits
                and acc_hi * m < 1 << 62
                and -acc_lo * m < 1 << 62
            ):
                if acc is None:
                    acc = np.arange(acc_lo, acc_hi + 1, dtype=np.int64)
                if _agrees(acc, m, sh, num, den, rounding):
                    return m, sh
        sh += 1
    raise ValueError(
        f"no multiplier below 2**{max_bits} divides sums in [{acc_lo}, {acc_hi}] "
        f"by {den}/{num} exactly"
    )


# The integer softmax (``frontends.ir``): e = round(2**EXP_FRAC * exp(s * (x - max))), one
# reciprocal floor(2**recip_shift / sum e) per row, inv >= 2**RECIP_BITS. Measured on the
# digits ViT against float64 softmax of the same codes: with 16 and 16 bits (the first
# definition) 0.05 % of the output codes were one off the correctly rounded code, which
# the two attention blocks grew into end-to-end differences; with 24 and 24 bits the table's
# and the reciprocal's errors are below 2**-15 of a code for 8-bit outputs.
EXP_FRAC = 24
RECIP_BITS = 24


def softmax_params(in_scale: float, span: int, row: int) -> tuple[np.ndarray, int]:
    """(``exp_table``, ``recip_shift``) of the IR's integer softmax (``frontends.ir``) over
    rows of ``row`` codes spanning ``span = in.max - in.min`` at scale ``in_scale``: the
    table of ``span + 1`` entries ``round_half_even(2**EXP_FRAC * exp(in_scale * d))`` for
    ``d = -span..0``
    (entry ``-1`` is ``2**EXP_FRAC``), and ``recip_shift = EXP_FRAC + RECIP_BITS +
    bit_length(row)`` so that ``floor(2**recip_shift / S) >= 2**RECIP_BITS`` for every row
    sum ``S <= row * 2**EXP_FRAC``."""
    d = np.arange(-span, 1, dtype=np.float64)
    exp_table = np.rint(np.exp(in_scale * d) * 2.0**EXP_FRAC).astype(np.int64)
    return exp_table, EXP_FRAC + RECIP_BITS + int(row).bit_length()
