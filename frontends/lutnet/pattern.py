"""The sampling patterns of the LUT engines and their 4-rotation ensemble as fixed windows.

A pattern is the list of LR pixel offsets ``(dy, dx)`` one table entry is indexed by. The
rotation ensemble (SR-LUT §3.3) runs the same table on the image rotated by k·90°; instead of
rotating the image, rotation ``k`` reads the offsets ``R^k(o)`` with ``R(i, j) = (j, -i)`` and
rotates the table's r×r output block back by ``BLOCK_ROT[k]`` quarter turns (numpy ``rot90``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PATTERNS", "BLOCK_ROT", "rotate_offset", "rotated_pattern", "pattern_radius"]

PATTERNS: dict[str, tuple[tuple[int, int], ...]] = {
    "S": ((0, 0), (0, 1), (1, 0), (1, 1)),  # SR-LUT-S: 2×2, index a·L³+b·L²+c·L+d
    "F": ((0, 0), (0, 1), (0, 2)),  # SR-LUT-F: 1×3 (measured: 29.79 dB on Set5)
    "V": ((0, 0), (0, 1)),  # SR-LUT-V: 1×2
    "H": ((0, 0), (0, 1), (0, 2)),  # HKLUT horizontal
    "D": ((0, 0), (1, 1), (2, 2)),  # HKLUT diagonal
    "B": ((0, 0), (1, 2), (2, 1)),  # HKLUT knight ("B")
    "H2": ((0, 0), (0, 1)),  # HKLUT LSB horizontal
    "D2": ((0, 0), (1, 1)),  # HKLUT LSB diagonal
}

# Quarter turns (numpy rot90, counter-clockwise) that bring rotation k's block back upright.
BLOCK_ROT = (0, 3, 2, 1)


def rotate_offset(offset: tuple[int, int], k: int) -> tuple[int, int]:
    """``R^k(offset)`` with ``R(i, j) = (j, -i)``."""
    i, j = offset
    for _ in range(k % 4):
        i, j = j, -i
    return i, j


def rotated_pattern(pattern: Sequence[tuple[int, int]], k: int) -> tuple[tuple[int, int], ...]:
    return tuple(rotate_offset(o, k) for o in pattern)


def pattern_radius(pattern: Sequence[tuple[int, int]]) -> int:
    """How far (in LR pixels) any rotation of ``pattern`` reaches from the centre pixel."""
    return max(max(abs(i), abs(j)) for i, j in pattern)
