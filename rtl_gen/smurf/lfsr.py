"""Leap-forward Fibonacci LFSRs: the random sources of every SMURF stream.

One LFSR step (``width`` bits, taps numbered 1..width as in Xilinx XAPP052): the new bit is the
XOR of the tapped bits, shifted in at bit 0: ``s = ((s << 1) | xor(s[t - 1] for t in taps)) &
mask``. A *leap-forward* LFSR makes ``leap`` such steps per clock, so its low ``leap`` bits
are fresh every cycle; a ``B``-bit random value is the low ``B`` bits of the state. The
hardware computes the ``leap``-step map as one GF(2) matrix (each next-state bit an XOR of
current bits); the Python model steps it one bit at a time, so a test comparing the two checks
the matrix too.

Successive values of a plain (one step per clock) LFSR are serially correlated, which biases
an FSM driven by them; leap-forward sources do not (specs/smurf.md §2, "SNG choice").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, reduce
from itertools import combinations

import numpy as np
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Lfsr", "LeapLfsr", "primitive_taps", "step_matrix", "leap_matrix", "leap_cost"]


def step_matrix(width: int, taps: tuple[int, ...]) -> np.ndarray:
    """The one-step map as a ``width x width`` GF(2) matrix: ``next = A @ state (mod 2)``."""
    a = np.zeros((width, width), dtype=np.uint8)
    for t in taps:
        a[0, t - 1] ^= 1
    for i in range(1, width):
        a[i, i - 1] = 1
    return a


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.int64) @ b.astype(np.int64)) & 1).astype(np.uint8)


def _matpow(a: np.ndarray, n: int) -> np.ndarray:
    result = np.eye(len(a), dtype=np.uint8)
    while n:
        if n & 1:
            result = _matmul(result, a)
        a = _matmul(a, a)
        n >>= 1
    return result


def leap_matrix(width: int, taps: tuple[int, ...], leap: int) -> np.ndarray:
    """The ``leap``-step map as a GF(2) matrix."""
    return _matpow(step_matrix(width, taps), leap)


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        if n % p == 0:
            out.append(p)
            while n % p == 0:
                n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def _is_maximal(width: int, taps: tuple[int, ...]) -> bool:
    """True when the LFSR visits all ``2**width - 1`` non-zero states (primitive polynomial)."""
    a = step_matrix(width, taps)
    eye = np.eye(width, dtype=np.uint8)
    period = (1 << width) - 1
    if not np.array_equal(_matpow(a, period), eye):
        return False
    return all(not np.array_equal(_matpow(a, period // q), eye) for q in _prime_factors(period))


def leap_cost(width: int, taps: tuple[int, ...], leap: int) -> int:
    """LUT4s for the ``leap``-step map: a row of ``w`` ones is an XOR of ``w`` bits, a tree of
    ``ceil((w - 1) / 3)`` LUT4s (a row of weight 1 is a wire)."""
    weights = leap_matrix(width, taps, leap).sum(axis=1)
    return int(sum(-(-(int(w) - 1) // 3) for w in weights))


@cache
def primitive_taps(width: int, count: int, leap: int | None = None) -> tuple[tuple[int, ...], ...]:
    """``count`` distinct maximal-length tap sets ``(width, ...)``: four taps, then six.

    Without ``leap``, the first ones in a fixed order (taps descending, lexicographically);
    with ``leap``, the cheapest ``leap``-step maps first (``leap_cost``, ties in that order),
    so the hardware of a leap-forward LFSR is as small as the polynomial allows. Either way a
    plan's sources never change.
    """
    if leap is None:
        found = []
        for extra in (3, 5):
            for rest in combinations(range(width - 1, 0, -1), extra):
                taps = (width, *rest)
                if _is_maximal(width, taps):
                    found.append(taps)
                    if len(found) == count:
                        return tuple(found)
    else:
        found = []
        for extra in (3, 5):
            candidates = [(width, *rest) for rest in combinations(range(width - 1, 0, -1), extra)]
            for taps in sorted(candidates, key=lambda t: leap_cost(width, t, leap)):
                if _is_maximal(width, taps):
                    found.append(taps)
                    if len(found) == count:
                        return tuple(found)
    raise ValueError(
        f"only {len(found)} maximal four- and six-tap LFSRs of width {width} "
        f"exist; {count} were asked for"
    )


@dataclass(frozen=True)
class Lfsr:
    """One random source: a ``width``-bit Fibonacci LFSR, ``leap`` steps per clock."""

    width: int
    taps: tuple[int, ...]
    seed: int
    leap: int

    def __post_init__(self):
        if not 0 < self.seed < (1 << self.width):
            raise ValueError(f"LFSR seed {self.seed:#x} must be a non-zero {self.width}-bit value")
        if not 1 <= self.leap <= self.width:
            raise ValueError(f"LFSR leap {self.leap} must be within 1..{self.width}")

    def states(self, cycles: int, seeds: np.ndarray | None = None) -> np.ndarray:
        """The state at clock 0..cycles-1 (clock 0 holds the seed), stepping bit by bit.

        With ``seeds`` (shape ``(S,)``) returns ``(cycles, S)``: one run per seed, for
        Monte-Carlo estimates; otherwise ``(cycles,)`` for ``self.seed``.
        """
        s = np.atleast_1d(np.asarray(self.seed if seeds is None else seeds, dtype=np.int64))
        mask = (1 << self.width) - 1
        out = np.empty((cycles, len(s)), dtype=np.int64)
        for t in range(cycles):
            out[t] = s
            for _ in range(self.leap):
                fb = reduce(np.bitwise_xor, [(s >> (tap - 1)) & 1 for tap in self.taps])
                s = ((s << 1) | fb) & mask
        return out[:, 0] if seeds is None else out

    def values(self, cycles: int, bits: int, seeds: np.ndarray | None = None) -> np.ndarray:
        """The ``bits``-bit random value of each clock: the state's low ``bits`` bits."""
        if bits > self.leap:
            raise ValueError(
                f"a {bits}-bit value needs at least {bits} fresh bits per clock; "
                f"this LFSR makes {self.leap}"
            )
        return self.states(cycles, seeds) & ((1 << bits) - 1)


class LeapLfsr(wiring.Component):
    """A leap-forward LFSR register (``Lfsr`` in hardware).

    ``load`` (priority) puts the seed into the register; ``advance`` applies the ``leap``-step
    map. ``state`` is the register itself: the value of the current clock, no latency.
    The register has no reset and starts at 0 (stuck until the first ``load``): a unit loads
    every source before it advances them, and a zero start maps onto plain iCE40/ECP5
    flip-flops, where a seed as initial value costs an inverter per set bit.
    """

    def __init__(self, spec: Lfsr):
        self.spec = spec
        super().__init__({"load": In(1), "advance": In(1), "state": Out(spec.width)})

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        reg = Signal(spec.width, reset_less=True)
        matrix = leap_matrix(spec.width, spec.taps, spec.leap)
        nxt = Cat(
            *[
                reduce(lambda a, b: a ^ b, [reg[int(j)] for j in np.flatnonzero(row)])
                for row in matrix
            ]
        )
        with m.If(self.load):
            m.d.sync += reg.eq(spec.seed)
        with m.Elif(self.advance):
            m.d.sync += reg.eq(nxt)
        m.d.comb += self.state.eq(reg)
        return m
