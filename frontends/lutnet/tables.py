"""Import of ready look-up tables (``.npy``, e.g. the SR-LUT authors' released ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .srlut import SrlutPlan, TableError

__all__ = ["load_srlut_table", "infer_grid"]

DEFAULT_PATTERN = {4: "S", 3: "F", 2: "V"}


def infer_grid(entries: int) -> tuple[int, int] | None:
    """(n, interval bits) with ``entries == (2^(8-b) + 1)^n``, preferring more pixels."""
    for n in (4, 3, 2):
        for b in range(8):
            if ((256 >> b) + 1) ** n == entries:
                return n, b
    return None


def load_srlut_table(
    path: str | Path, *, pattern: str | None = None, interval_bits: int | None = None
) -> SrlutPlan:
    """An SR-LUT table file: int8, shape (L^n, 1, r, r), (L^n, r, r) or (L^n, r²)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(
            f"{path}: no such table file; pass an SR-LUT .npy table "
            f"(e.g. one that `nnloom lutnet train` writes)"
        )
    try:
        t = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise TableError(f"{path}: not a readable .npy array ({exc})") from None
    if t.dtype.kind not in "iu":
        raise TableError(f"{path}: table is {t.dtype}; SR-LUT tables hold int8 values")
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim == 3 and t.shape[1] == t.shape[2]:
        t = t.reshape(t.shape[0], -1)
    r = int(round(np.sqrt(t.shape[1]))) if t.ndim == 2 else 0
    if t.ndim != 2 or r * r != t.shape[1]:
        raise TableError(
            f"{path}: table shape {t.shape} is not (entries, 1, r, r), "
            f"(entries, r, r) or (entries, r²)"
        )
    grid = infer_grid(t.shape[0])
    if grid is None:
        raise TableError(
            f"{path}: {t.shape[0]} entries is not (2^(8-b)+1)^n for any pattern "
            f"of 2, 3 or 4 pixels; is this an SR-LUT table?"
        )
    n, b = grid
    if interval_bits is not None and interval_bits != b:
        raise TableError(
            f"{path}: {t.shape[0]} entries means {b}-bit intervals, not {interval_bits}"
        )
    pattern = pattern or DEFAULT_PATTERN[n]
    return SrlutPlan(pattern, b, r, t, name=path.stem)
