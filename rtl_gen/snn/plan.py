"""``SnnPlan``: the spiking engine's frozen parameters, golden model and cycle model.

``reference()`` runs the layer-sequential ST-BIF network (``frontends.snn.run_network``:
the engine's own schedule and arithmetic); ``cycles()`` is the exact latency of
``SnnEngine`` for each input, from the same run; ``create()`` builds the component.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from frontends.errors import ModelError
from frontends.ir import Graph
from frontends.snn import SnnRun, StbifNetwork, convert, run_network

if TYPE_CHECKING:
    from frontends.ir import IntType

    from .engine import SnnEngine

__all__ = ["SnnPlan"]

MAX_STEPS = (1 << 16) - 1


@dataclass(frozen=True, eq=False)
class SnnPlan:
    network: StbifNetwork
    t_max: int
    v_bits: tuple[int, ...]
    mag_bits: int  # width of |input - zero point|
    shift_bits: int  # width of a bit-plane index

    @classmethod
    def from_graph(cls, graph: Graph, *, t_max: int | None = None) -> SnnPlan:
        return cls.from_network(convert(graph), t_max=t_max)

    @classmethod
    def from_network(cls, net: StbifNetwork, *, t_max: int | None = None) -> SnnPlan:
        bound = net.t_max()
        t_max = bound if t_max is None else t_max
        if not 1 <= t_max <= MAX_STEPS:
            raise ModelError(f"model '{net.name}': t_max {t_max} is outside 1..{MAX_STEPS}")
        lo, hi = net.input_range(0)
        mag = max(abs(lo), abs(hi))
        mag_bits = max(1, mag.bit_length())
        v_bits = tuple(l.v_bits(*net.input_range(i)) for i, l in enumerate(net.layers))
        return cls(net, t_max, v_bits, mag_bits, max(1, (mag_bits - 1).bit_length()))

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def in_dtype(self) -> IntType:
        return self.network.in_dtype

    @property
    def out_dtype(self) -> IntType:
        return self.network.out_dtype

    @property
    def n_in(self) -> int:
        return self.network.n_in

    @property
    def n_out(self) -> int:
        return self.network.n_out

    @property
    def exact(self) -> bool:
        """``t_max`` is at least the proven bound, so every run ends on silence."""
        return self.t_max >= self.network.t_max()

    def weight_bits(self) -> list[int]:
        from frontends.fixedpoint import signed_bits

        return [signed_bits(int(l.weight.min()), int(l.weight.max())) for l in self.network.layers]

    def memory_bits(self) -> dict[str, int]:
        """Bits of each memory kind over all layers."""
        from frontends.fixedpoint import signed_bits

        net = self.network
        w = sum(l.n_in * l.n_out * b for l, b in zip(net.layers, self.weight_bits()))
        v = sum(2 * l.n_out * b for l, b in zip(net.layers, self.v_bits))  # V and v_init
        s = sum(l.n_out * signed_bits(min(l.smin, 0), max(l.smax, 0)) for l in net.layers)
        ev = sum(
            l.n_out * (max(1, (l.n_out * nxt.n_out - 1).bit_length()) + 1)
            for l, nxt in zip(net.layers, net.layers[1:])
        )
        return {
            "weights": w,
            "membranes": v,
            "tracers": s,
            "events": ev,
            "input": net.n_in * net.in_dtype.width,
        }

    # --- models --------------------------------------------------------------------------------
    def run(self, codes: np.ndarray) -> SnnRun:
        return run_network(self.network, codes, t_max=self.t_max)

    def reference(self, codes: np.ndarray) -> list[np.ndarray]:
        """Every layer's output codes (settled tracers plus zero point)."""
        return self.run(codes).codes

    def cycles(self, codes: np.ndarray, run: SnnRun | None = None) -> np.ndarray:
        """Cycles per inference of ``SnnEngine`` (see its docstring), one per input vector."""
        net = self.network
        codes = np.asarray(codes, np.int64).reshape(len(codes), -1)
        run = run if run is not None else self.run(codes)
        n = [l.n_out for l in net.layers]
        mag = np.abs(codes - net.in_zero_point)
        scan = np.full(len(codes), 1 + 3 * net.n_in, np.int64)
        b = 0
        while (mag >> b).any():
            live = (mag >> b) > 0
            bit = ((mag >> b) & 1).astype(bool)
            scan += np.where(live, np.where(bit, n[0] + 3, 1), 0).sum(axis=1)
            b += 1
        load = max(net.n_in + 1, max(n) + 3)
        total = load + scan + net.n_out + 1
        # per step and layer: DECIDE (+ sweep) and NEXT; for l > 0 the drain of its events
        sweep = np.array([x + 3 for x in n])
        ev_cost = np.array([x + 4 for x in n])
        steps_live = np.arange(run.events.shape[1])[None, :] < run.steps[:, None]  # (B, T)
        per = np.where(run.swept, sweep[None, None, :], 1) + 1
        per[:, :, 1:] += run.events[:, :, 1:] * ev_cost[None, None, 1:] + 1
        total += (per.sum(axis=2) * steps_live).sum(axis=1)
        return total

    def create(self) -> SnnEngine:
        from .engine import SnnEngine

        return SnnEngine(self)
