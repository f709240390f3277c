"""Per-channel requantization of weights to the LUT core's precision, and its error.

N3H-Core gives the LUT core the output channels that are easiest to quantize at its bit
width; it ranks channels by KL divergence. We rank by the relative squared error
``||w - f*q||^2 / ||w||^2`` of the channel's best symmetric quantization ``f*q`` (a simpler
measure with the same ordering intent). Channels whose weights already fit have error 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantize_channels", "channel_errors"]


def quantize_channels(
    w: np.ndarray, lo: int, hi: int, *, ternary: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of ``w`` (N, K) as ``f[n] * q[n]`` with ``q`` in ``[lo, hi]``.

    Returns ``(q, f, err)``: integer codes, positive float scales, relative squared errors.
    Rows already inside ``[lo, hi]`` keep their values (``f = 1``, ``err = 0``). Otherwise
    ternary rows use the TWN threshold ``0.7 * mean|w|``; other rows are symmetric uniform
    with ``qmax = min(hi, -lo)``.
    """
    w = np.asarray(w, dtype=np.int64)
    q = w.copy()
    f = np.ones(len(w))
    err = np.zeros(len(w))
    for n, row in enumerate(w):
        if row.min(initial=0) >= lo and row.max(initial=0) <= hi:
            continue
        a = np.abs(row).astype(np.float64)
        if ternary:
            delta = 0.7 * a.mean()
            keep = a > delta
            codes = np.where(keep, np.sign(row), 0)
            scale = a[keep].mean() if keep.any() else 1.0
        else:
            qmax = min(hi, -lo)
            scale = a.max() / qmax
            codes = np.clip(np.rint(row / scale), -qmax, qmax)
        q[n] = codes.astype(np.int64)
        f[n] = scale
        norm = float((a**2).sum())
        err[n] = float(((row - scale * codes) ** 2).sum()) / norm if norm else 0.0
    return q, f, err


def channel_errors(w: np.ndarray, lo: int, hi: int, *, ternary: bool = False) -> np.ndarray:
    return quantize_channels(w, lo, hi, ternary=ternary)[2]
