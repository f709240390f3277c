"""Integer golden models of the spiking neurons: ST-BIF, IF, LIF and CubaLIF, one time step
each.

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
``value``: to ``v_reset``) as parameters. ``cuba_lif_step`` adds a synaptic current per
neuron in front of the LIF membrane (spec A.4): ``I = alpha*I + x``, ``V = beta*V + I``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "stbif_step",
    "qann",
    "if_step",
    "lif_step",
    "cuba_lif_step",
    "leak",
    "COMPARATORS",
    "RESETS",
]

COMPARATORS = (">", ">=")
RESETS = ("subtract", "value")


def _fires(v, theta, cmp: str):
    if cmp == ">":
        return v > theta
    if cmp == ">=":
        return v >= theta
    raise ValueError(f"comparator '{cmp}' is not one of {', '.join(COMPARATORS)}")


def stbif_step(
    v: ArrayLike, s: ArrayLike, x: ArrayLike, *, theta: ArrayLike, smin: ArrayLike, smax: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ST-BIF step: returns ``(v, s, spike)`` with ``spike`` in {-1, 0, +1}."""
    h = np.asarray(v, np.int64) + np.asarray(x, np.int64)
    s = np.asarray(s, np.int64)
    up = (h >= theta) & (s < smax)
    down = (h < 0) & (s > smin)
    spike = up.astype(np.int64) - down.astype(np.int64)
    return h - theta * spike, s + spike, spike


def qann(
    acc: ArrayLike, *, theta: ArrayLike, v0: ArrayLike, smin: ArrayLike, smax: ArrayLike
) -> np.ndarray:
    """The quantized activation an ST-BIF neuron's tracer settles at:
    ``clamp(floor((acc + v0) / theta), smin, smax)``."""
    return np.clip(np.floor_divide(np.asarray(acc, np.int64) + v0, theta), smin, smax)


def _reset(h, spike, theta, reset: str, v_reset):
    if reset == "subtract":
        return h - theta * spike
    if reset == "value":
        return np.where(spike == 1, v_reset, h)
    raise ValueError(f"reset '{reset}' is not one of {', '.join(RESETS)}")


def if_step(
    v: ArrayLike,
    x: ArrayLike,
    *,
    theta: ArrayLike,
    cmp: str = ">",
    reset: str = "subtract",
    v_reset: ArrayLike = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One integrate-and-fire step: ``H = V + x``; spike when ``H cmp theta``; reset.
    Returns ``(v, spike)`` with ``spike`` in {0, 1}. The gain is folded into ``x``."""
    h = np.asarray(v, np.int64) + np.asarray(x, np.int64)
    spike = _fires(h, theta, cmp).astype(np.int64)
    return _reset(h, spike, theta, reset, v_reset), spike


def leak(
    v: ArrayLike,
    *,
    shift: int | None = None,
    beta: int | None = None,
    beta_bits: int = 0,
    rest: ArrayLike = 0,
) -> np.ndarray:
    """``v`` decayed one step towards ``rest``, one of:

    - ``shift=k``: ``v - ((v - rest) >> k)`` (factor 1 - 2**-k; arithmetic shift: floor);
    - ``beta=b, beta_bits=F``: ``rest + ((b * (v - rest) + 2**(F-1)) >> F)`` (factor b / 2**F;
      round half up).
    """
    v = np.asarray(v, np.int64)
    if (shift is None) == (beta is None):
        raise ValueError("give exactly one of leak_shift= or beta=")
    if shift is not None:
        if shift < 0:
            raise ValueError(f"leak_shift must be >= 0, got {shift}")
        return v - ((v - rest) >> shift)
    rnd = (1 << (beta_bits - 1)) if beta_bits > 0 else 0
    return rest + ((beta * (v - rest) + rnd) >> beta_bits)


def lif_step(
    v: ArrayLike,
    x: ArrayLike,
    *,
    theta: ArrayLike,
    cmp: str = ">",
    reset: str = "subtract",
    v_reset: ArrayLike = 0,
    v_leak: ArrayLike = 0,
    leak_shift: int | None = None,
    beta: int | None = None,
    beta_bits: int = 0,
    prev_spike: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One leaky integrate-and-fire step; returns ``(v, spike)``.

    Leak, one of:

    - ``leak_shift=k``: ``V - ((V - v_leak) >> k)`` (beta = 1 - 2**-k, arithmetic shift: floor);
    - ``beta=b, beta_bits=F``: ``v_leak + ((b * (V - v_leak) + 2**(F-1)) >> F)`` (round half up).

    With ``prev_spike`` (snnTorch ``reset_delay``), the reset of the previous step's spike is
    applied after the leak, so the subtracted ``theta`` is not decayed; otherwise the reset
    happens in the step that fires (before the next leak).
    """
    leaked = leak(v, shift=leak_shift, beta=beta, beta_bits=beta_bits, rest=v_leak)
    h = leaked + np.asarray(x, np.int64)
    if prev_spike is not None:
        h = _reset(h, np.asarray(prev_spike, np.int64), theta, reset, v_reset)
        return h, _fires(h, theta, cmp).astype(np.int64)
    spike = _fires(h, theta, cmp).astype(np.int64)
    return _reset(h, spike, theta, reset, v_reset), spike


def cuba_lif_step(
    v: ArrayLike,
    i: ArrayLike,
    x: ArrayLike,
    *,
    theta: ArrayLike,
    cmp: str = ">",
    reset: str = "subtract",
    v_reset: ArrayLike = 0,
    v_leak: ArrayLike = 0,
    leak_shift: int | None = None,
    beta: int | None = None,
    syn_shift: int | None = None,
    alpha: int | None = None,
    beta_bits: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One current-based LIF step; returns ``(v, i, spike)``::

        I' = leak_alpha(I) + x          # x: this step's weighted input spikes plus bias
        H  = leak_beta(V) + I'          # the membrane takes the current of this step
        s  = H cmp theta ;  V' = H - theta*s  or  (s ? v_reset : H)

    ``leak_alpha`` is ``leak(shift=syn_shift)`` or ``leak(beta=alpha)`` (towards 0),
    ``leak_beta`` is ``leak(shift=leak_shift)`` or ``leak(beta=beta)`` (towards ``v_leak``);
    both general factors share ``beta_bits`` of fraction. The input gain (NIR ``w_in``) and the
    membrane gain (``r``) are folded into ``x`` and ``theta`` by the importer, so no product
    with a gain remains. Discrete-time choices (what NIR's ODE leaves open):

    - the membrane integrates the current *after* this step's update (snnTorch ``Synaptic``:
      ``syn = alpha*syn + x; mem = beta*mem + syn``), so a spike in reaches ``V`` in the same
      step; Norse integrates the previous step's current (one step later);
    - the reset acts on ``V`` only, in the step that fires (no ``reset_delay``); the current
      is never reset (snnTorch and Norse alike);
    - forward Euler: ``alpha = 1 - dt/tau_syn``, ``beta = 1 - dt/tau_mem`` (as the exporters
      that write ``tau = dt / (1 - beta)``), rounded as ``leak`` says.
    """
    i = leak(i, shift=syn_shift, beta=alpha, beta_bits=beta_bits) + np.asarray(x, np.int64)
    h = leak(v, shift=leak_shift, beta=beta, beta_bits=beta_bits, rest=v_leak) + i
    spike = _fires(h, theta, cmp).astype(np.int64)
    return _reset(h, spike, theta, reset, v_reset), i, spike
