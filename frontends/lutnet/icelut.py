"""ICELUT-style colour enhancement: the integer golden model (spec ``lutnet.md`` §3, §5.3).

Per frame, a statistics path turns a 32×32 thumbnail into one 17³ colour LUT; every pixel is
then the input plus an interpolated residual from that LUT (ICELUT, Yang et al., ECCV 2024,
with the channel and split-FC nets already turned into tables):

1. Thumbnail, 32×32×3: the mean of each block (round half up) when the block sides are
   powers of two, otherwise the pixel at each block's centre (the paper resizes bilinearly).
2. Features: ``F[n] = Σ_pixels FM[(R>>4)·256 + (G>>4)·16 + (B>>4), n] + FL[(R&15)·256 +
   (G&15)·16 + (B&15), n]``, int16 tables in Q6 (1/64), ``n`` = 0..9.
3. Quantised mean, doubled: ``g[n] = clamp((F[n] + 2^14) >> 15, -32, 31)`` (F/1024/64·2).
4. Split FC: ``W[n] = Σ_p C_p[(g[2p] + 32)·64 + g[2p+1] + 32, n]``, five int8 tables of
   4096 × 10 entries in quarter units.
5. Fusion: ``R3[c, b, g, r] = clamp((Σ_n W[n]·B_n[c, b, g, r] + 2^(1+u)) >> (2+u), -256,
   255)`` with int8 bases scaled by 2^-u (``basis_shift`` u): the residual LUT in levels.
6. Per pixel, 17 samples a side (vertex 16 stands for input 256): ``i = p >> 4``,
   ``f = p & 15``; tetrahedral ``res = (Σ_j w_j·R3[v_j] + 8) >> 4`` (weights sum to 16, the
   SR-LUT simplex in 3-D) or trilinear ``(Σ w_r·w_g·w_b·R3 + 2048) >> 12``;
   ``out = clamp(p + res, 0, 255)``. Every division is a shift with round half up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from .srlut import TableError

__all__ = [
    "IcelutPlan",
    "thumbnail",
    "random_plan",
    "load_icelut_npz",
    "icelut_npz_bytes",
    "DIM",
    "THUMB",
]

DIM = 17  # LUT samples a side
THUMB = 32  # thumbnail side
FEATURES = 10


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The 32×32×3 thumbnail of an H×W×3 uint8 frame (step 1)."""
    h, w = image.shape[:2]
    bh, bw = h // THUMB, w // THUMB
    pow2 = bh * THUMB == h and bw * THUMB == w and bh & (bh - 1) == 0 and bw & (bw - 1) == 0
    if pow2 and bh and bw:
        k = (bh * bw).bit_length() - 1
        s = image.astype(np.int64).reshape(THUMB, bh, THUMB, bw, 3).sum(axis=(1, 3))
        return ((s + ((1 << k) >> 1)) >> k).astype(np.uint8)
    ys = (2 * np.arange(THUMB) + 1) * h // (2 * THUMB)
    xs = (2 * np.arange(THUMB) + 1) * w // (2 * THUMB)
    return image[ys][:, xs]


@dataclass(frozen=True, eq=False)
class IcelutPlan:
    """Tables of an ICELUT-style engine; ``reference(frame)`` is the integer golden.

    ``fm``, ``fl``: (4096, 10) int16 channel tables (Q6); ``split``: (5, 4096, 10) int8;
    ``bases``: (10, 3, 17, 17, 17) int8 indexed ``[n, c, b, g, r]``; ``basis_shift`` u.
    """

    fm: np.ndarray = field(repr=False)
    fl: np.ndarray = field(repr=False)
    split: np.ndarray = field(repr=False)
    bases: np.ndarray = field(repr=False)
    basis_shift: int = 0
    interpolation: str = "tetrahedral"
    name: str = "icelut"

    def __post_init__(self):
        want = {
            "fm": ((4096, FEATURES), np.int16),
            "fl": ((4096, FEATURES), np.int16),
            "split": ((FEATURES // 2, 4096, FEATURES), np.int8),
            "bases": ((FEATURES, 3, DIM, DIM, DIM), np.int8),
        }
        for key, (shape, dtype) in want.items():
            a = np.asarray(getattr(self, key))
            info = np.iinfo(dtype)
            if a.shape != shape or a.min() < info.min or a.max() > info.max:
                raise TableError(
                    f"ICELUT table '{key}' of '{self.name}' has shape {a.shape} "
                    f"and values in [{a.min()}, {a.max()}]; expected {shape} "
                    f"{np.dtype(dtype).name}"
                )
            object.__setattr__(self, key, a.astype(dtype))
        if self.interpolation not in ("tetrahedral", "trilinear"):
            raise TableError(
                f"interpolation '{self.interpolation}' is not tetrahedral or trilinear"
            )
        if not 0 <= self.basis_shift <= 8:
            raise TableError(f"basis shift {self.basis_shift} out of range 0..8")

    @property
    def table_bytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.fm, self.fl, self.split, self.bases))

    # --- statistics path, once per frame ----------------------------------------------------

    def features(self, thumb: np.ndarray) -> np.ndarray:
        """Steps 2–3: the ten quantised features g in -32..31."""
        t = thumb.reshape(-1, 3).astype(np.int64)
        hi = ((t[:, 0] >> 4) << 8) | ((t[:, 1] >> 4) << 4) | (t[:, 2] >> 4)
        lo = ((t[:, 0] & 15) << 8) | ((t[:, 1] & 15) << 4) | (t[:, 2] & 15)
        f = self.fm[hi].astype(np.int64).sum(0) + self.fl[lo].astype(np.int64).sum(0)
        return np.clip((f + (1 << 14)) >> 15, -32, 31)

    def weights(self, g: np.ndarray) -> np.ndarray:
        """Step 4: the ten basis weights, quarter units."""
        idx = (g[0::2] + 32) * 64 + g[1::2] + 32
        return sum(self.split[p, idx[p]].astype(np.int64) for p in range(len(idx)))

    def lut(self, image: np.ndarray) -> np.ndarray:
        """Steps 1–5: the frame's residual LUT R3 (3, 17, 17, 17) ``[c, b, g, r]``, levels."""
        w = self.weights(self.features(thumbnail(self.check(image))))
        k = 2 + self.basis_shift
        s = np.tensordot(w, self.bases.astype(np.int64), axes=1)
        return np.clip((s + (1 << (k - 1))) >> k, -256, 255)

    # --- per-pixel path -------------------------------------------------------------------

    def apply(self, image: np.ndarray, lut: np.ndarray) -> np.ndarray:
        """Step 6: ``clamp(p + interpolated residual)`` for every pixel and channel."""
        p = self.check(image, thumb=False).astype(np.int64)
        i, f = p >> 4, p & 15
        out = np.empty_like(p)
        for c in range(3):
            table = lut[c]
            if self.interpolation == "trilinear":
                acc = 0
                for cb, cg, cr in product((0, 1), repeat=3):
                    wgt = (
                        (f[..., 2] if cb else 16 - f[..., 2])
                        * (f[..., 1] if cg else 16 - f[..., 1])
                        * (f[..., 0] if cr else 16 - f[..., 0])
                    )
                    acc = acc + wgt * table[i[..., 2] + cb, i[..., 1] + cg, i[..., 0] + cr]
                res = (acc + 2048) >> 12
            else:
                order = np.argsort(-f, axis=-1, kind="stable")
                fs = np.take_along_axis(f, order, axis=-1)
                v = i.copy()
                acc = (16 - fs[..., 0]) * table[v[..., 2], v[..., 1], v[..., 0]]
                for j in range(3):
                    np.put_along_axis(
                        v,
                        order[..., j : j + 1],
                        np.take_along_axis(v, order[..., j : j + 1], -1) + 1,
                        -1,
                    )
                    wj = fs[..., j] - (fs[..., j + 1] if j < 2 else 0)
                    acc = acc + wj * table[v[..., 2], v[..., 1], v[..., 0]]
                res = (acc + 8) >> 4
            out[..., c] = p[..., c] + res
        return np.clip(out, 0, 255).astype(np.uint8)

    def check(self, image: np.ndarray, *, thumb: bool = True) -> np.ndarray:
        """``image`` as an H×W×3 uint8 array; ``thumb``: at least 32×32 (the thumbnail)."""
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise TableError(f"image: {a.dtype} {a.shape}; ICELUT enhances H×W×3 uint8 RGB frames")
        if thumb and min(a.shape[:2]) < THUMB:
            raise TableError(
                f"image: {a.shape[0]}×{a.shape[1]} is smaller than the {THUMB}×{THUMB} thumbnail"
            )
        return a

    def reference(self, image: np.ndarray) -> np.ndarray:
        """The enhanced frame, uint8, with the LUT made from the frame itself."""
        return self.apply(image, self.lut(image))


TABLE_KEYS = ("fm", "fl", "split", "bases")


def load_icelut_npz(path: str | os.PathLike) -> IcelutPlan:
    """ICELUT tables from an .npz with ``fm``, ``fl`` (4096, 10) int16, ``split``
    (5, 4096, 10) int8, ``bases`` (10, 3, 17, 17, 17) int8 and optionally ``basis_shift``
    and ``interpolation`` (``IcelutPlan``)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such ICELUT table file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:
        raise TableError(f"{path}: not an .npz of ICELUT tables ({exc})") from None
    missing = [k for k in TABLE_KEYS if k not in arrays]
    if missing:
        raise TableError(
            f"{path}: missing {', '.join(missing)}; an ICELUT .npz holds "
            f"{', '.join(TABLE_KEYS)} (and optionally basis_shift, interpolation)"
        )
    return IcelutPlan(
        *(arrays[k] for k in TABLE_KEYS),
        basis_shift=int(arrays.get("basis_shift", 0)),
        interpolation=str(arrays.get("interpolation", "tetrahedral")),
        name=path.stem,
    )


def icelut_npz_bytes(plan: IcelutPlan) -> bytes:
    """``plan``'s tables as the .npz that ``load_icelut_npz`` reads."""
    import io

    buf = io.BytesIO()
    np.savez(
        buf,
        **{k: getattr(plan, k) for k in TABLE_KEYS},
        basis_shift=np.int64(plan.basis_shift),
        interpolation=np.str_(plan.interpolation),
    )
    return buf.getvalue()


def random_plan(seed: int = 0, *, interpolation: str = "tetrahedral") -> IcelutPlan:
    """Seeded random (untrained) tables whose residuals reach the clamp limits: for testing
    the engines and the flow, not for enhancing images."""
    rng = np.random.default_rng(seed)
    fm = rng.integers(-3000, 3000, (4096, FEATURES)).astype(np.int16)
    fl = rng.integers(-3000, 3000, (4096, FEATURES)).astype(np.int16)
    split = rng.integers(-20, 21, (FEATURES // 2, 4096, FEATURES)).astype(np.int8)
    bases = rng.integers(-128, 128, (FEATURES, 3, DIM, DIM, DIM)).astype(np.int8)
    return IcelutPlan(
        fm, fl, split, bases, basis_shift=3, interpolation=interpolation, name=f"random{seed}"
    )
