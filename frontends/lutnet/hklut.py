"""HKLUT: the integer golden model of a hundred-kilobyte LUT ×4 super-resolution (two ×2 stages).

HKLUT (Li et al., IJCAI 2024, config "HKLUT-S" ``msb:hdb-lsb:hd-2x2``), spec ``lutnet.md`` §2
and §5.2. One ×2 stage of an 8-bit image X:

* MSB branch: ``M = X >> 4``; kernels H, D, B of three pixels each, four rotations each, index
  ``M_a·256 + M_b·16 + M_c`` into 4096-entry tables (no interpolation); reflect border of 2.
* LSB branch: ``Lb = X & 15``; kernels H2, D2 of two pixels, four rotations, index
  ``Lb_a·16 + Lb_b`` into 256-entry tables; replicate (edge) border of 1, as the authors' LUT
  test code pads it.
* ``V = 2·Sm + 3·Sl + 6·X`` in sixths of a level (the float model's ``ΣMSB/3 + ΣLSB/2`` plus
  the nearest-neighbour-upsampled input).

Rounding rule: between stages ``clamp(floor(V / 6), 0, 255)`` (the float model floors the
intermediate image back to 8 bits); at the output ``clamp(floor((V + 3) / 6), 0, 255)`` (half
up). Division by 6 is exact integer division here; the hardware clamps first and divides
the remaining 0 ≤ u < 1530 as ``(u·683) >> 12`` (``rtl_gen.lutnet.hklut.stage``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .pattern import BLOCK_ROT, PATTERNS, rotated_pattern
from .srlut import TableError

__all__ = ["HklutStage", "HklutPlan", "load_hklut_dir", "random_plan", "table_files"]

MSB_KERNELS = ("H", "D", "B")
LSB_KERNELS = ("H2", "D2")


def _gather(padded, p, offsets, h, w):
    return [padded[p + dy : p + dy + h, p + dx : p + dx + w] for dy, dx in offsets]


@dataclass(frozen=True, eq=False)
class HklutStage:
    """One ×2 stage: MSB tables (4096, 4) for H, D, B and LSB tables (256, 4) for H, D."""

    msb: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)
    lsb: tuple[np.ndarray, np.ndarray] = field(repr=False)
    scale: int = 2

    def __post_init__(self):
        rr = self.scale * self.scale
        for name, tables, entries in (("MSB", self.msb, 4096), ("LSB", self.lsb, 256)):
            for t in tables:
                if np.shape(t) != (entries, rr):
                    raise TableError(
                        f"HKLUT {name} table has shape {np.shape(t)}; expected ({entries}, {rr})"
                    )

    @property
    def table_bytes(self) -> int:
        return sum(int(np.size(t)) for t in (*self.msb, *self.lsb))

    def sixths(self, x: np.ndarray) -> np.ndarray:
        """V for every pixel of one uint8 channel: (h, w, r, r) in sixths of a level."""
        x = np.asarray(x).astype(np.int64)
        h, w = x.shape
        r = self.scale
        pm = np.pad(x >> 4, 2, mode="reflect")
        pl = np.pad(x & 15, 1, mode="edge")
        sm = np.zeros((h, w, r, r), np.int64)
        sl = np.zeros((h, w, r, r), np.int64)
        for k in range(4):
            for name, t in zip(MSB_KERNELS, self.msb):
                a, b, c = _gather(pm, 2, rotated_pattern(PATTERNS[name], k), h, w)
                blk = t.astype(np.int64)[a * 256 + b * 16 + c].reshape(h, w, r, r)
                sm += np.rot90(blk, BLOCK_ROT[k], axes=(2, 3))
            for name, t in zip(LSB_KERNELS, self.lsb):
                a, b = _gather(pl, 1, rotated_pattern(PATTERNS[name], k), h, w)
                blk = t.astype(np.int64)[a * 16 + b].reshape(h, w, r, r)
                sl += np.rot90(blk, BLOCK_ROT[k], axes=(2, 3))
        return 2 * sm + 3 * sl + 6 * x[:, :, None, None]


def _to_image(v: np.ndarray) -> np.ndarray:
    h, w, r, _ = v.shape
    return v.transpose(0, 2, 1, 3).reshape(h * r, w * r)


@dataclass(frozen=True, eq=False)
class HklutPlan:
    """HKLUT ×4: two ×2 stages; ``reference(image)`` is the integer golden."""

    stages: tuple[HklutStage, ...]
    name: str = "hklut"

    @property
    def scale(self) -> int:
        return int(np.prod([s.scale for s in self.stages]))

    @property
    def table_bytes(self) -> int:
        return sum(s.table_bytes for s in self.stages)

    def reference(self, image: np.ndarray) -> np.ndarray:
        a = np.asarray(image)
        if a.dtype != np.uint8:
            raise TableError(f"image: pixels are {a.dtype}; HKLUT takes uint8 images")
        if a.ndim == 3:
            return np.stack([self.reference(a[..., c]) for c in range(a.shape[2])], axis=-1)
        if min(a.shape) < 3:
            raise TableError(
                f"image: {a.shape[0]}×{a.shape[1]} is too small; HKLUT needs at "
                f"least 3 pixels a side for its reflect border"
            )
        x = a
        for i, stage in enumerate(self.stages):
            v = _to_image(stage.sixths(x))
            last = i == len(self.stages) - 1
            x = np.clip((v + 3) // 6 if last else v // 6, 0, 255).astype(np.uint8)
        return x

    def min_size(self) -> int:
        """Smallest LR side: the MSB branch's reflect border of 2 needs 3 pixels."""
        return 3


def table_file(stage: int, kernel: str, bits: int = 4) -> str:
    """The released file name of ``stage``'s table for ``kernel`` (MSB H/D/B, LSB H2/D2)."""
    branch = "MSB_HDB" if kernel in MSB_KERNELS else "LSB_HD"
    return f"S{stage}_{branch}_LUT_{kernel[0]}_x2_{bits}bit_int8.npy"


def table_files(plan: HklutPlan) -> dict[str, np.ndarray]:
    """``plan``'s tables by the file names ``load_hklut_dir`` reads."""
    return {
        table_file(s, k): t
        for s, stage in enumerate(plan.stages)
        for k, t in (*zip(MSB_KERNELS, stage.msb), *zip(LSB_KERNELS, stage.lsb))
    }


def random_plan(seed: int = 0) -> HklutPlan:
    """Seeded untrained HKLUT-S tables for testing the engines and the flow (not for
    upscaling images): MSB entries in -40..40 with one -128 and one 127, LSB entries in
    -11..8 (the released tables' range)."""
    rng = np.random.default_rng(seed)
    stages = []
    for _ in range(2):
        msb = [rng.integers(-40, 41, (4096, 4)).astype(np.int8) for _ in MSB_KERNELS]
        msb[0][0, 0], msb[-1][-1, -1] = -128, 127
        lsb = [rng.integers(-11, 9, (256, 4)).astype(np.int8) for _ in LSB_KERNELS]
        stages.append(HklutStage(tuple(msb), tuple(lsb)))
    return HklutPlan(tuple(stages), name=f"random{seed}")


def load_hklut_dir(folder: str | os.PathLike, *, bits: int = 4) -> HklutPlan:
    """The authors' released HKLUT-S tables:
    ``S{0,1}_{MSB_HDB,LSB_HD}_LUT_{K}_x2_4bit_int8.npy``."""
    from pathlib import Path

    folder = Path(folder)
    stages = []
    for s in (0, 1):
        msb, lsb = [], []
        for kernels, out in ((MSB_KERNELS, msb), (LSB_KERNELS, lsb)):
            for k in kernels:
                path = folder / table_file(s, k, bits)
                if not path.is_file():
                    raise TableError(
                        f"{path}: missing; an HKLUT folder holds the released "
                        f"S0/S1 MSB_HDB (H, D, B) and LSB_HD (H, D) tables"
                    )
                t = np.load(path, allow_pickle=False)
                out.append(t.reshape(t.shape[0], -1))
        stages.append(HklutStage(tuple(msb), tuple(lsb)))
    return HklutPlan(tuple(stages))
