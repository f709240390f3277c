"""SR-LUT: the integer golden model of a table-driven ×r super-resolution engine.

``SrlutPlan`` is the engine's one frozen parameter object: ``reference(image)`` is the integer
model of the hardware's arithmetic; ``rtl_gen.lutnet.srlut.SrlutEngine(plan, …)`` the
streaming Amaranth component.

Arithmetic (SR-LUT, Jo & Kim CVPR 2021, eq. 3–6, with the simplex interpolation written as a
sort, spec ``lutnet.md`` §5.1). For one LR pixel and one rotation ``k`` of the ensemble:

* the n pattern pixels ``v_i`` (reflect borders) split into ``msb_i = v_i >> b`` and
  ``f_i = v_i & (q-1)``, ``q = 2^b``; the table has ``L = 2^(8-b) + 1`` samples a side;
* sorting the fractions descending (``f_(1) ≥ … ≥ f_(n)``, over dimensions ``o_1..o_n``) gives
  the n+1 simplex vertices ``v_0 = msb``, ``v_j = v_(j-1) + e_(o_j)`` and the weights
  ``q - f_(1), f_(1) - f_(2), …, f_(n)`` (they sum to q);
* ``acc_k = Σ_j w_j · T[v_j]`` is one r×r block in units of 1/q, rotated back by
  ``BLOCK_ROT[k]``.

The four blocks add up, ``S = Σ_k acc_k`` (the tables already hold 127/255 of a pixel, so
``S/q`` is the HR pixel), and the **rounding rule** is round half to even, then clamp:
``HR = clamp((S + q/2 - 1 + ((S >> b) & 1)) >> b, 0, 255)``. It equals the authors' float
``np.round(np.clip(S / q, 0, 255))`` on every input (S/q is exact in binary floating point),
so the released tables give the published PSNR; round half up would differ by one level on
about 3 % of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frontends.errors import NnloomError

from .pattern import BLOCK_ROT, PATTERNS, pattern_radius, rotated_pattern

__all__ = ["SrlutPlan", "TableError", "random_plan", "round_half_even_shift"]


class TableError(NnloomError, ValueError):
    """A look-up table or image the LUT engines cannot use (the message says why and how)."""


def round_half_even_shift(s: np.ndarray, b: int) -> np.ndarray:
    """``s / 2^b`` rounded to the nearest integer, ties to even (numpy ``round``)."""
    s = np.asarray(s, dtype=np.int64)
    if b == 0:
        return s
    return (s + ((1 << (b - 1)) - 1) + ((s >> b) & 1)) >> b


@dataclass(frozen=True, eq=False)
class SrlutPlan:
    """An SR-LUT engine: pattern, sampling-interval bits ``b``, scale ``r`` and its table.

    ``table`` has shape ``(L^n, r*r)``, int8, entry index ``Σ_i msb_i · L^(n-1-i)`` in the
    pattern's order and the r×r block row-major (PixelShuffle order).
    """

    pattern: str
    interval_bits: int
    scale: int
    table: np.ndarray = field(repr=False)
    name: str = "srlut"

    def __post_init__(self):
        if self.pattern not in PATTERNS:
            raise TableError(
                f"unknown SR-LUT pattern '{self.pattern}'; choose one of {', '.join(PATTERNS)}"
            )
        if not 0 <= self.interval_bits <= 7:
            raise TableError(f"sampling interval bits {self.interval_bits} out of range 0..7")
        t = np.asarray(self.table)
        want = (self.levels**self.n, self.scale * self.scale)
        if t.shape != want:
            raise TableError(
                f"table '{self.name}' has shape {t.shape}; pattern "
                f"{self.pattern} with {self.interval_bits}-bit intervals at "
                f"×{self.scale} needs {want}"
            )
        if t.min(initial=0) < -128 or t.max(initial=0) > 127:
            raise TableError(
                f"table '{self.name}' holds values in [{t.min()}, {t.max()}]; entries must be int8"
            )
        t = np.ascontiguousarray(t, dtype=np.int8)
        t.setflags(write=False)
        object.__setattr__(self, "table", t)

    # --- sizes -----------------------------------------------------------------------------

    @property
    def offsets(self) -> tuple[tuple[int, int], ...]:
        return PATTERNS[self.pattern]

    @property
    def n(self) -> int:
        return len(self.offsets)

    @property
    def q(self) -> int:
        return 1 << self.interval_bits

    @property
    def levels(self) -> int:
        """Samples per table axis, L = 2^(8-b) + 1 (the last stands for input 256)."""
        return (256 >> self.interval_bits) + 1

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(self.levels ** (self.n - 1 - i) for i in range(self.n))

    @property
    def radius(self) -> int:
        return pattern_radius(self.offsets)

    @property
    def table_bytes(self) -> int:
        return int(self.table.size)

    @property
    def acc_bits(self) -> int:
        """Signed bits of one rotation's ``acc`` (|acc| ≤ 128·q)."""
        return 8 + self.interval_bits + 1

    @property
    def sum_bits(self) -> int:
        """Signed bits of the 4-rotation sum S."""
        return self.acc_bits + 2

    def resampled(self, interval_bits: int) -> SrlutPlan:
        """The same net on a coarser grid: every 2^(b'-b)-th sample a side (SR-LUT's 5- and
        6-bit tables are the 4-bit net sampled so; the last sample stays the 255 one)."""
        step = 1 << (interval_bits - self.interval_bits)
        if interval_bits < self.interval_bits or interval_bits > 7:
            raise TableError(
                f"cannot resample a {self.interval_bits}-bit table to "
                f"{interval_bits} bits; only coarser grids (up to 7 bits)"
            )
        t = self.table.reshape((self.levels,) * self.n + (-1,))
        t = t[(slice(None, None, step),) * self.n]
        return SrlutPlan(
            self.pattern,
            interval_bits,
            self.scale,
            t.reshape(-1, self.scale * self.scale),
            name=f"{self.name}@{interval_bits}bit",
        )

    # --- models ----------------------------------------------------------------------------

    def min_size(self) -> int:
        """Smallest image side the reflect border works for."""
        return self.radius + 1

    def check_image(self, image: np.ndarray, what: str = "image") -> np.ndarray:
        a = np.asarray(image)
        if a.dtype != np.uint8:
            raise TableError(
                f"{what}: pixels are {a.dtype}; the SR-LUT engine takes 8-bit images (uint8)"
            )
        if a.ndim not in (2, 3):
            raise TableError(f"{what}: shape {a.shape} is not an H×W or H×W×C image")
        if min(a.shape[:2]) < self.min_size():
            raise TableError(
                f"{what}: {a.shape[0]}×{a.shape[1]} is too small; pattern "
                f"{self.pattern} needs at least {self.min_size()} pixels a side "
                f"for its reflect border"
            )
        return a

    def simplex(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Simplex vertices of pattern values ``v`` (n, ...): entry indices and weights,
        each (n+1, ...); a pixel's weights sum to q (SR-LUT eq. 3–6 as a sort)."""
        b, q, n = self.interval_bits, self.q, self.n
        msb, f = v >> b, v & (q - 1)
        strides = np.array(self.strides, dtype=np.int64)
        idx = np.tensordot(strides, msb, axes=1)
        order = np.argsort(-f, axis=0, kind="stable")
        fs = np.take_along_axis(f, order, axis=0)
        idxs, weights = [idx], [q - fs[0]]
        for j in range(n):
            idx = idx + strides[order[j]]
            idxs.append(idx)
            weights.append(fs[j] - (fs[j + 1] if j < n - 1 else 0))
        return np.stack(idxs), np.stack(weights)

    def rotation_vertices(
        self, padded: np.ndarray, k: int, h: int, w: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rotation k's simplex for every pixel of a reflect-padded channel, (n+1, h, w)."""
        p = self.radius
        return self.simplex(
            np.stack(
                [
                    padded[p + dy : p + dy + h, p + dx : p + dx + w]
                    for dy, dx in rotated_pattern(self.offsets, k)
                ]
            )
        )

    def rotation_acc(self, padded: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
        """One rotation's interpolated block, upright: (h, w, r, r) in units of 1/q."""
        r = self.scale
        idxs, weights = self.rotation_vertices(padded, k, h, w)
        table = self.table.astype(np.int64)
        acc = sum(wj[..., None] * table[ij] for ij, wj in zip(idxs, weights))
        return np.rot90(acc.reshape(h, w, r, r), BLOCK_ROT[k], axes=(2, 3))

    def sums(self, channel: np.ndarray) -> np.ndarray:
        """S for every LR pixel of one uint8 channel: (h, w, r, r), units of 1/q."""
        x = np.asarray(channel).astype(np.int64)
        h, w = x.shape
        padded = np.pad(x, self.radius, mode="reflect")
        return sum(self.rotation_acc(padded, k, h, w) for k in range(4))

    def reference(self, image: np.ndarray) -> np.ndarray:
        """The engine's output for an H×W (or H×W×C, channel by channel) uint8 image:
        (rH)×(rW)(×C) uint8, bit-exact with the RTL."""
        a = self.check_image(image)
        if a.ndim == 3:
            return np.stack([self.reference(a[..., c]) for c in range(a.shape[2])], axis=-1)
        s = self.sums(a)
        out = np.clip(round_half_even_shift(s, self.interval_bits), 0, 255).astype(np.uint8)
        h, w, r = a.shape[0], a.shape[1], self.scale
        return out.transpose(0, 2, 1, 3).reshape(h * r, w * r)


def random_plan(
    pattern: str = "S", interval_bits: int = 6, scale: int = 4, seed: int = 0
) -> SrlutPlan:
    """Seeded untrained tables for testing the engines and the flow (not for upscaling
    images): each entry a quarter of its grid point's mean level plus noise, so outputs cover
    0..255, with the int8 extremes -128 and 127 in two entries so the sums saturate."""
    rng = np.random.default_rng(seed)
    n, levels = len(PATTERNS[pattern]), (256 >> interval_bits) + 1
    grid = np.stack(np.meshgrid(*[np.arange(levels)] * n, indexing="ij"), -1).reshape(-1, n)
    mean = grid.mean(axis=1, keepdims=True) * (1 << interval_bits) / 4
    t = np.clip(np.round(mean + rng.normal(0, 6, (len(grid), scale * scale))), -128, 127)
    t = t.astype(np.int8)
    t[0, 0], t[-1, -1] = -128, 127
    return SrlutPlan(pattern, interval_bits, scale, t, name=f"random{seed}")
