"""Time-stepped golden run of an ST-BIF network, layer-sequential, batched.

Schedule (the one ``rtl_gen.snn`` implements): at step ``t`` every layer in order integrates
the spikes its predecessor emitted at step ``t`` (layer 0: the whole input at ``t = 0``), then
every neuron takes one ST-BIF step. A layer that received no spike and did not fire at
``t - 1`` is skipped: its state cannot change, so it cannot fire. The run stops after the
first step in which no neuron anywhere fired (a silent step is followed only by silent ones),
or after ``t_max`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convert import StbifNetwork
from .neurons import stbif_step

__all__ = ["SnnRun", "run_network"]


@dataclass(frozen=True, eq=False)
class SnnRun:
    """What a batch of inferences did.

    ``tracers[l]`` (B, n_l): settled tracers; ``codes[l]``: tracers plus zero point;
    ``steps`` (B,): time steps run (silence observed in the last); ``silent`` (B,): stopped on
    silence rather than at ``t_max``; ``spikes[l]`` (B,): spikes emitted by layer l (+1 and -1
    alike); ``events`` (B, T, L): spikes layer l received at step t (``swept`` (B, T, L):
    layer l took its neuron step at t); ``synops`` (B,): synaptic additions (spikes into a
    layer times its fan-out; layer 0's input counts one per nonzero input bit).
    """

    tracers: list[np.ndarray]
    codes: list[np.ndarray]
    steps: np.ndarray
    silent: np.ndarray
    spikes: list[np.ndarray]
    events: np.ndarray
    swept: np.ndarray
    synops: np.ndarray


def _bit_events(a: np.ndarray) -> np.ndarray:
    """Nonzero bits of ``|a|`` per sample: the bit-plane events of the analog input."""
    mag = np.abs(a)
    count = np.zeros(a.shape[0], np.int64)
    while mag.any():
        count += (mag & 1).sum(axis=1)
        mag >>= 1
    return count


def run_network(net: StbifNetwork, codes: np.ndarray, *, t_max: int | None = None) -> SnnRun:
    codes = np.asarray(codes, np.int64).reshape(len(codes), -1)
    batch = len(codes)
    t_max = t_max or net.t_max()
    n_layers = len(net.layers)
    a = codes - net.in_zero_point
    v = [np.broadcast_to(l.v_init, (batch, l.n_out)).copy() for l in net.layers]
    s = [np.zeros((batch, l.n_out), np.int64) for l in net.layers]
    fired_last = [np.ones(batch, bool) for _ in net.layers]  # t = 0 sweeps every layer
    running = np.ones(batch, bool)
    steps = np.zeros(batch, np.int64)
    spikes = [np.zeros(batch, np.int64) for _ in net.layers]
    events = np.zeros((batch, t_max, n_layers), np.int64)
    swept = np.zeros((batch, t_max, n_layers), bool)
    synops = _bit_events(a) * net.layers[0].n_out
    for t in range(t_max):
        if not running.any():
            break
        steps[running] = t + 1
        any_spike = np.zeros(batch, bool)
        x_in = a if t == 0 else None
        for i, layer in enumerate(net.layers):
            if x_in is not None:
                v[i] = v[i] + np.where(running[:, None], x_in @ layer.weight.T, 0)
            n_events = (
                np.count_nonzero(x_in, axis=1)
                if x_in is not None and i > 0
                else np.zeros(batch, np.int64)
            )
            events[:, t, i] = np.where(running, n_events, 0)
            if i > 0:
                synops += np.where(running, n_events * layer.n_out, 0)
            active = running & (fired_last[i] | (n_events > 0) | (t == 0))
            swept[:, t, i] = active
            nv, ns, spike = stbif_step(
                v[i], s[i], 0, theta=layer.theta, smin=layer.smin, smax=layer.smax
            )
            spike = np.where(active[:, None], spike, 0)
            v[i] = np.where(active[:, None], nv, v[i])
            s[i] = np.where(active[:, None], ns, s[i])
            fired = spike.any(axis=1)
            fired_last[i] = fired
            spikes[i] += np.abs(spike).sum(axis=1)
            any_spike |= fired
            x_in = spike
        running &= any_spike
    silent = ~running
    return SnnRun(
        tracers=s,
        codes=[s[i] + l.zero_point for i, l in enumerate(net.layers)],
        steps=steps,
        silent=silent,
        spikes=spikes,
        events=events,
        swept=swept,
        synops=synops,
    )
