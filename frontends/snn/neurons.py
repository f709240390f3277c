"""Integer golden models of the spiking neurons: ST-BIF, IF and LIF, one time step each.

All state is integer (numpy int64 arrays, one element per neuron). Every function computes one
discrete time step for a whole array of neurons and returns the new state and the spikes.

``stbif_step`` is SpikeZIP-TF's ST-BIF neuron (``IFNeuron.forward``; spec ``snn.md`` A.2)::

    H = V + x
    s = +1 if H >= theta and S < smax;  -1 if H < 0 and S > smin;  0 otherwise
    V' = H - theta * s            (reset by subtraction)
    S' = S + s                    (spike tracer)

Started from ``V = v0`` (``theta // 2`` gives round-to-nearest), ``S = 0``, the tracer that is
left when the neuron falls silent is ``clamp(floor((v0 + sum x) / theta), smin, smax)`` -- the
quantized ANN's activation -- whatever the order and timing of the inputs (``qann``).

``if_step`` and ``lif_step`` are the classic NIR-style neurons (spec A.4), unipolar, with the
comparator (``>`` as NIR/snnTorch, ``>=`` as SpikeZIP) and the reset (``subtract`` or
``value``: to ``v_reset``) as parameters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stbif_step", "qann", "if_step", "lif_step", "COMPARATORS", "RESETS"]

COMPARATORS = (">", ">=")
RESETS = ("subtract", "value")


def _fires(v, theta, cmp: str):
    if cmp == ">":
        return v > theta
    if cmp == ">=":
        return v >= theta
    raise ValueError(f"comparator '{cmp}' is not one of {', '.join(COMPARATORS)}")


def stbif_step(v, s, x, *, theta, smin, smax):
    """One ST-BIF step: returns ``(v, s, spike)`` with ``spike`` in {-1, 0, +1}."""
    h = np.asarray(v, np.int64) + np.asarray(x, np.int64)
    s = np.asarray(s, np.int64)
    up = (h >= theta) & (s < smax)
    down = (h < 0) & (s > smin)
    spike = up.astype(np.int64) - down.astype(np.int64)
    return h - theta * spike, s + spike, spike


def qann(acc, *, theta, v0, smin, smax):
    """The quantized activation an ST-BIF neuron's tracer settles at:
    ``clamp(floor((acc + v0) / theta), smin, smax)``."""
    return np.clip(np.floor_divide(np.asarray(acc, np.int64) + v0, theta), smin, smax)


def _reset(h, spike, theta, reset: str, v_reset):
    if reset == "subtract":
        return h - theta * spike
    if reset == "value":
        return np.where(spike == 1, v_reset, h)
    raise ValueError(f"reset '{reset}' is not one of {', '.join(RESETS)}")


def if_step(v, x, *, theta, cmp: str = ">", reset: str = "subtract", v_reset=0):
    """One integrate-and-fire step: ``H = V + x``; spike when ``H cmp theta``; reset.
    Returns ``(v, spike)`` with ``spike`` in {0, 1}. The gain is folded into ``x``."""
    h = np.asarray(v, np.int64) + np.asarray(x, np.int64)
    spike = _fires(h, theta, cmp).astype(np.int64)
    return _reset(h, spike, theta, reset, v_reset), spike


def lif_step(v, x, *, theta, cmp: str = ">", reset: str = "subtract", v_reset=0, v_leak=0,
             leak_shift: int | None = None, beta: int | None = None, beta_bits: int = 0,
             prev_spike=None):
    """One leaky integrate-and-fire step; returns ``(v, spike)``.

    Leak, one of:

    - ``leak_shift=k``: ``V - ((V - v_leak) >> k)`` (beta = 1 - 2**-k, arithmetic shift: floor);
    - ``beta=b, beta_bits=F``: ``v_leak + ((b * (V - v_leak) + 2**(F-1)) >> F)`` (round half up).

    With ``prev_spike`` (snnTorch ``reset_delay``), the reset of the previous step's spike is
    applied after the leak, so the subtracted ``theta`` is not decayed; otherwise the reset
    happens in the step that fires (before the next leak).
    """
    v = np.asarray(v, np.int64)
    if (leak_shift is None) == (beta is None):
        raise ValueError("give exactly one of leak_shift= or beta=")
    if leak_shift is not None:
        if leak_shift < 0:
            raise ValueError(f"leak_shift must be >= 0, got {leak_shift}")
        leaked = v - ((v - v_leak) >> leak_shift)
    else:
        rnd = (1 << (beta_bits - 1)) if beta_bits > 0 else 0
        leaked = v_leak + ((beta * (v - v_leak) + rnd) >> beta_bits)
    h = leaked + np.asarray(x, np.int64)
    if prev_spike is not None:
        h = _reset(h, np.asarray(prev_spike, np.int64), theta, reset, v_reset)
        return h, _fires(h, theta, cmp).astype(np.int64)
    spike = _fires(h, theta, cmp).astype(np.int64)
    return _reset(h, spike, theta, reset, v_reset), spike
