"""Sampling-gate coefficients by box-constrained least squares (specs/smurf.md §1.4).

``min ||A w - y||^2  s.t.  0 <= w <= 1`` where ``A[g, j] = pi(j | p_g)`` is the joint steady
state of the bases on a grid of input probabilities and ``y[g]`` the normalised target. This is
the convex problem SMURF's abstract describes ("convex optimization"); the grid form is our
reading. The same solver fits the Bernstein (ReSC) basis, as scsynth's ``BernAppr`` does with a
QP.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

from .basis import Basis

__all__ = ["joint", "probability_grid", "solve", "quantize", "GRID_POINTS"]

# Points per axis of the fitting grid, by number of inputs (1D 257, 2D 65x65, 3D 17^3).
GRID_POINTS = {1: 257, 2: 65, 3: 17}


def joint(bases: tuple[Basis, ...], ps: list[np.ndarray]) -> np.ndarray:
    """``pi(j | p)`` of the joint index ``j = s_0 + N_0 (s_1 + N_1 s_2)``; shape ``(..., prod N)``.

    The inputs' bases run independently, so the joint law is the product of the marginals
    (specs/smurf.md §1.3).
    """
    out = None
    for basis, p in reversed(list(zip(bases, ps))):
        marg = basis.stationary(p)
        out = (
            marg
            if out is None
            else (out[..., :, None] * marg[..., None, :]).reshape(*marg.shape[:-1], -1)
        )
    return out


def probability_grid(m: int, points: int | None = None) -> list[np.ndarray]:
    """A full grid over ``[0, 1]^m``: ``m`` flat arrays of equal length."""
    g = np.linspace(0.0, 1.0, points or GRID_POINTS[m])
    mesh = np.meshgrid(*([g] * m), indexing="ij")
    return [a.ravel() for a in mesh]


def solve(bases: tuple[Basis, ...], target: np.ndarray, ps: list[np.ndarray]) -> np.ndarray:
    """Coefficients ``w`` in ``[0, 1]`` minimising the squared error to ``target`` on ``ps``."""
    a = joint(bases, ps)
    result = lsq_linear(
        a, np.clip(target, 0.0, 1.0), bounds=(0.0, 1.0), method="bvls", tol=1e-12, max_iter=10000
    )
    return np.clip(result.x, 0.0, 1.0)


def quantize(w: np.ndarray, bits: int) -> np.ndarray:
    """Integer gate thresholds ``round(w * 2^bits)`` in ``0..2^bits`` (``w = 1`` is exact)."""
    return np.clip(np.rint(np.asarray(w) * (1 << bits)), 0, 1 << bits).astype(np.int64)
