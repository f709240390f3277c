"""The per-input bases of a SMURF unit: what turns one input bitstream into a ROM index.

A basis maps input probability ``p`` to a distribution over ``size`` index values; the unit's
output probability is ``sum_s w_s * prod_m pi_m(s_m | p_m)`` (specs/smurf.md §1.3). Two are
implemented, each as an analytic distribution, a bit-level step for the cycle model and a
hardware block:

- ``FsmBasis(radix)``: a saturating up/down counter over ``0..radix-1`` driven by one stream
  (up on 1, down on 0; reset ``radix // 2``). Its steady state is the birth-death law
  ``pi_i(p) ∝ p^i (1-p)^(N-1-i)`` (specs/smurf.md §1.2, our reading of SMURF). One random
  value per clock.
- ``BernsteinBasis(degree)``: ``degree`` independent copies of the stream, popcounted (ReSC,
  Qian & Riedel 2011); ``pi_k(p) = C(n,k) p^k (1-p)^(n-k)`` exactly on every clock, no state.
  ``degree`` random values per clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from numpy.typing import ArrayLike

__all__ = ["Basis", "FsmBasis", "BernsteinBasis", "FsmCounter", "Popcount", "basis_from_dict"]


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class Basis:
    """Interface: ``size``, ``index_bits``, ``draws``, ``stationary``, ``reset``, ``step``."""

    kind: str
    size: int
    draws: int

    @property
    def index_bits(self) -> int:
        return _bits(self.size)

    def stationary(self, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset(self, n: int) -> np.ndarray:
        """The state of ``n`` units at the first clock."""
        raise NotImplementedError

    def index(self, state: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """The ROM index field this clock, from the state and this clock's stream bits."""
        raise NotImplementedError

    def step(self, state: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """The state of the next clock; ``bits`` is ``(draws, n)`` booleans."""
        raise NotImplementedError


@dataclass(frozen=True)
class FsmBasis(Basis):
    radix: int
    kind = "fsm"

    def __post_init__(self):
        if not 2 <= self.radix <= 256:
            raise ValueError(f"radix {self.radix} is out of range; choose 2..256")

    @property
    def size(self) -> int:
        return self.radix

    draws = 1

    def stationary(self, p: ArrayLike) -> np.ndarray:
        """``pi_i(p) = p^i (1-p)^(N-1-i) / sum_j p^j (1-p)^(N-1-j)``, exact at p = 0, ½, 1."""
        p = np.asarray(p, dtype=float)[..., None]
        i = np.arange(self.radix)
        w = p**i * (1 - p) ** (self.radix - 1 - i)
        return w / w.sum(axis=-1, keepdims=True)

    def reset(self, n: int) -> np.ndarray:
        return np.full(n, self.radix // 2, dtype=np.int64)

    def index(self, state: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return state

    def step(self, state: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return np.where(bits[0], np.minimum(state + 1, self.radix - 1), np.maximum(state - 1, 0))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "radix": self.radix}


@dataclass(frozen=True)
class BernsteinBasis(Basis):
    degree: int
    kind = "bernstein"

    def __post_init__(self):
        if not 1 <= self.degree <= 31:
            raise ValueError(f"Bernstein degree {self.degree} is out of range; choose 1..31")

    @property
    def size(self) -> int:
        return self.degree + 1

    @property
    def draws(self) -> int:
        return self.degree

    def stationary(self, p: ArrayLike) -> np.ndarray:
        p = np.asarray(p, dtype=float)[..., None]
        k = np.arange(self.degree + 1)
        c = np.array([comb(self.degree, int(j)) for j in k], dtype=float)
        return c * p**k * (1 - p) ** (self.degree - k)

    def reset(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)

    def index(self, state: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return bits.sum(axis=0).astype(np.int64)

    def step(self, state: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return state

    def to_dict(self) -> dict:
        return {"kind": self.kind, "degree": self.degree}


def basis_from_dict(d: dict) -> Basis:
    if d["kind"] == "fsm":
        return FsmBasis(d["radix"])
    if d["kind"] == "bernstein":
        return BernsteinBasis(d["degree"])
    raise ValueError(f"unknown basis kind '{d['kind']}'; available: fsm, bernstein")


class FsmCounter(wiring.Component):
    """Saturating up/down counter over ``0..radix-1`` (``FsmBasis`` in hardware).

    ``load`` (priority) sets ``radix // 2``; otherwise, when ``advance``, steps up on ``bit``
    and down on ``not bit``, saturating. ``index`` is the register: no latency. No reset: 0
    until the first ``load``.
    """

    def __init__(self, basis: FsmBasis):
        self.basis = basis
        super().__init__(
            {"load": In(1), "advance": In(1), "bits": In(1), "index": Out(basis.index_bits)}
        )

    def elaborate(self, platform):
        m = Module()
        n = self.basis.radix
        state = Signal(range(n), reset_less=True)  # set by ``load`` before every run
        with m.If(self.load):
            m.d.sync += state.eq(n // 2)
        with m.Elif(self.advance):
            with m.If(self.bits[0]):
                with m.If(state != n - 1):
                    m.d.sync += state.eq(state + 1)
            with m.Elif(state != 0):
                m.d.sync += state.eq(state - 1)
        m.d.comb += self.index.eq(state)
        return m


class Popcount(wiring.Component):
    """Number of ones among ``degree`` stream bits (``BernsteinBasis`` in hardware).

    Combinational: ``index`` follows ``bits`` in the same clock. ``load``/``advance`` exist
    for a uniform interface and are unused.
    """

    def __init__(self, basis: BernsteinBasis):
        self.basis = basis
        super().__init__(
            {
                "load": In(1),
                "advance": In(1),
                "bits": In(basis.degree),
                "index": Out(basis.index_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        total = 0
        for j in range(self.basis.degree):
            total = total + self.bits[j]
        m.d.comb += self.index.eq(total)
        return m


def basis_block(basis: Basis) -> wiring.Component:
    return FsmCounter(basis) if isinstance(basis, FsmBasis) else Popcount(basis)
