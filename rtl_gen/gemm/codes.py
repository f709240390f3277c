"""Integer facts the overlay's model, compiler and units share: requantization as the
post unit computes it, stored bytes as codes, address widths, weight bit-planes.

Pure numbers, below everything else in the package (no hardware, no program).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .config import GemmConfig

__all__ = ["round_constant", "requant", "as_code", "abits", "planes_of"]


def round_constant(mode: int, shift: int) -> int:
    """What ``requant`` adds before shifting right by ``shift``, per rounding mode."""
    if shift == 0:
        return 0
    return (1 << (shift - 1), 0, (1 << shift) - 1, 0)[mode]


def requant(
    acc: ArrayLike, mult: ArrayLike, shift: int, zp: ArrayLike, lo: int, hi: int, mode: int
) -> np.ndarray:
    """``clamp(round(acc * mult / 2**shift) + zp, lo, hi)``; mode 0 half up, 1 floor,
    2 ceil, 3 half to even."""
    prod = np.asarray(acc, dtype=object) * np.asarray(mult, dtype=object)
    y = (prod + round_constant(mode, shift)) >> shift
    if mode == 3 and shift:
        rem = prod - (y << shift)
        half = 1 << (shift - 1)
        y = y + ((rem > half) | ((rem == half) & (y % 2 == 1)))
    return np.clip(np.asarray(y, dtype=np.int64) + zp, lo, hi)


def as_code(raw: np.ndarray, signed: bool) -> np.ndarray:
    """Stored bytes as codes: ``raw``'s low byte, two's complement when ``signed``."""
    raw = np.asarray(raw, np.int64) & 0xFF
    return np.where(raw >= 128, raw - 256, raw) if signed else raw


def abits(depth: int) -> int:
    """Address bits of a memory of ``depth`` words (at least one)."""
    return max(1, (depth - 1).bit_length())


def planes_of(config: GemmConfig, core: str, cfg_fields: Mapping[str, int]) -> int:
    """Weight bit-planes a GEMM on ``core`` runs (bit-serial LUT core: CFG's ``wbits``)."""
    return cfg_fields["wbits"] if core == "lut" and config.lut_mode == "bitserial" else 1
