from __future__ import annotations

import math

import numpy as np


def ternarize(w: np.ndarray, *, k: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Ternary codes in {-1, 0, 1} and per-output-channel scales, TGA-style (He & Fan,
    "Simultaneously optimizing weight and quantizer of ternary neural network using truncated
    Gaussian approximation"): each channel's weights are modelled as N(mu, sigma); the
    thresholds are ``mu +- k*sigma`` and the scale is the closed-form mean of the truncated
    Gaussian beyond them, ``sigma * phi(k) / (1 - Phi(k))`` (plus |mu|)."""
    w = np.asarray(w, dtype=np.float64)
    flat = w.reshape(len(w), -1)
    mu = flat.mean(axis=1, keepdims=True)
    sigma = flat.std(axis=1, keepdims=True) + 1e-12
    codes = np.where(flat > mu + k * sigma, 1, np.where(flat < mu - k * sigma, -1, 0))
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(k / math.sqrt(2))
    scale = (sigma * phi / tail + np.abs(mu)).reshape(-1)
    return codes.reshape(w.shape).astype(np.int64), scale


def prune_channels(w: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Structured pruning: zero the ``fraction`` of output channels (axis 0) with the smallest
    L1 norm; returns the pruned weights and the kept-channel mask."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    w = np.array(w, dtype=np.float64)
    norms = np.abs(w.reshape(len(w), -1)).sum(axis=1)
    n_prune = int(round(fraction * len(w)))
    keep = np.ones(len(w), dtype=bool)
    keep[np.argsort(norms, kind="stable")[:n_prune]] = False
    w[~keep] = 0
    return w, keep


def quantize_weights(
    w: np.ndarray, bits: int, *, narrow: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantization: codes in [-(2**(b-1)-1), 2**(b-1)-1] (narrow)
    and scales ``max|w| / qmax``; rounding half to even, as QONNX ROUND."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    w = np.asarray(w, dtype=np.float64)
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(w.reshape(len(w), -1)).max(axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0)
    codes = np.rint(w / scale.reshape((-1,) + (1,) * (w.ndim - 1)))
    lo = -qmax if narrow else -qmax - 1
    return np.clip(codes, lo, qmax).astype(np.int64), scale
