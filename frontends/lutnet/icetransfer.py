"""From a trained ICELUT-style enhancement network (ONNX) to ICELUT tables (spec §3, §7).

What a user hands in is a folder in ICELUT's own structure, exported from PyTorch with
``torch.onnx.export`` (every net takes one float input with a free or fixed batch dimension):

* ``backbone_msb.onnx`` and ``backbone_lsb.onnx``, one per plane: ICELUT's pointwise
  backbone (its 1×1 convs). Input ``(B, 3)`` or ``(B, 3, 1, 1)``: one pixel's plane values
  R, G, B in [0, 1) — ``(x >> 4) / 16`` for the MSB plane, ``(x & 15) / 16`` for the LSB
  plane. Output 10 values (``(B, 10)`` or ``(B, 10, 1, 1)``): the pixel's contribution to the
  features, i.e. the net before the global average pool (the feature vector is the mean over
  the 32×32 thumbnail of MSB plus LSB output). Each net is evaluated on the 4096 nibble
  triples, R slowest, and stored as ``fm``/``fl`` = ``round(64·y)``, int16 Q6.
* ``split_fc.onnx``: the five pair nets (ICELUT's ``1×1(2→512)``, Hardswish,
  ``1×1(512→10)`` per pair) as one net, input ``(B, 5, 2)``: pair p's two quantised
  features ``v = (code - 32) / 2`` (code 0..63, ICELUT's ``clamp(round(2v)/2, -16, 15.5)``),
  output ``(B, 5, 10)``: pair p's share of the 10 basis weights. Evaluated on the 64×64 grid
  (first feature slowest) and stored as ``split[p]`` = ``round(4·w)``, int8 quarter units.
* ``bases.npy``: float ``(10, 3, 17, 17, 17)`` indexed ``[n, c, b, g, r]`` (ICELUT's
  layout), vertex i at input 16·i (vertex 16 stands for 256); the residual in image units
  (1.0 = 255 levels), so the frame's LUT is ``255 · Σ_n w_n · bases[n]`` in levels. 17
  samples a side: ICELUT's 33³ bases become ``bases[..., ::2, ::2, ::2]`` (the same points).
  Stored as int8 ``round(255 · 2^u · bases)`` with the finest ``basis_shift`` u (0..8) at
  which every entry fits.

Rounding is numpy's (half to even, as ``torch.round``); a value that does not fit its table's
integer type is an error naming the table and the file, never a silent clamp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .icelut import DIM, FEATURES, IcelutPlan
from .srlut import TableError
from .transfer import onnx_session, run_batched

__all__ = [
    "transfer_icelut_dir",
    "is_icelut_net_dir",
    "ICELUT_NET_FILES",
    "plane_inputs",
    "split_inputs",
    "quantize",
]

BACKBONES = {"fm": "backbone_msb.onnx", "fl": "backbone_lsb.onnx"}
SPLIT = "split_fc.onnx"
BASES = "bases.npy"
ICELUT_NET_FILES = (*BACKBONES.values(), SPLIT, BASES)
PAIRS = FEATURES // 2
LEVELS = 255.0  # image units → levels
MAX_SHIFT = 8


def is_icelut_net_dir(folder: str | Path) -> bool:
    """Whether ``folder`` holds any of the ICELUT net files (then all are required)."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / f).exists() for f in ICELUT_NET_FILES)


def plane_inputs() -> np.ndarray:
    """The 4096 nibble triples as (4096, 3) floats ``nibble / 16``, index R·256 + G·16 + B."""
    i = np.arange(4096)
    return (np.stack([i >> 8, (i >> 4) & 15, i & 15], axis=1) / 16).astype(np.float32)


def split_inputs() -> np.ndarray:
    """The 64×64 grid as (4096, 5, 2) floats ``(code - 32) / 2``, index code0·64 + code1,
    the same pair values for all five pairs."""
    i = np.arange(4096)
    v = (np.stack([i >> 6, i & 63], axis=1) - 32) / 2
    return np.repeat(v[:, None, :], PAIRS, axis=1).astype(np.float32)


def quantize(
    y: np.ndarray, scale: float, dtype: type[np.integer], *, table: str, path: Path
) -> np.ndarray:
    """``round(scale·y)`` as ``dtype``; a ``TableError`` naming ``table`` and ``path`` when a
    value is not finite or does not fit."""
    info = np.iinfo(dtype)
    y = np.asarray(y, np.float64)
    if not np.all(np.isfinite(y)):
        raise TableError(f"{path}: table '{table}' gets non-finite values (NaN or inf)")
    q = np.round(y * scale)
    if q.min() < info.min or q.max() > info.max:
        raise TableError(
            f"{path}: table '{table}' gets values in [{y.min():.6g}, "
            f"{y.max():.6g}], {q.min():.0f}..{q.max():.0f} after ×{scale:g} and "
            f"rounding; {np.dtype(dtype).name} holds {info.min}..{info.max} "
            f"(|y| ≤ {info.max / scale:g})"
        )
    return q.astype(dtype)


def _shape(inp) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in inp.shape[1:])


def _session(path: Path, want: tuple[tuple, ...], describe: str):
    sess = onnx_session(path, "ICELUT net file")
    inputs = sess.get_inputs()
    ok = len(inputs) == 1 and any(
        len(_shape(inputs[0])) == len(w)
        and all(d is None or d == e for d, e in zip(_shape(inputs[0]), w))
        for w in want
    )
    if not ok:
        raise TableError(f"{path}: input {[(i.name, i.shape) for i in inputs]}; {describe}")
    return sess


def _backbone(path: Path, table: str) -> np.ndarray:
    sess = _session(
        path,
        ((3,), (3, 1, 1)),
        "a backbone takes one (B, 3) or (B, 3, 1, 1) input: a pixel's plane R, G, B in [0, 1)",
    )
    x = plane_inputs()
    x = x.reshape(len(x), *[d or 1 for d in _shape(sess.get_inputs()[0])])
    y = run_batched(sess, x)
    if y.shape[1] != FEATURES:
        raise TableError(
            f"{path}: the backbone returns {y.shape[1]} values per pixel; it "
            f"returns the {FEATURES} feature contributions, (B, {FEATURES}) or "
            f"(B, {FEATURES}, 1, 1)"
        )
    return quantize(y, 64, np.int16, table=table, path=path)


def _split(path: Path) -> np.ndarray:
    sess = _session(
        path,
        ((PAIRS, 2),),
        f"the split FC takes one (B, {PAIRS}, 2) input: each pair's two quantised features",
    )
    y = run_batched(sess, split_inputs())
    if y.shape[1] != PAIRS * FEATURES:
        raise TableError(
            f"{path}: the split FC returns {y.shape[1]} values per sample; it "
            f"returns (B, {PAIRS}, {FEATURES}): each pair's share of the "
            f"{FEATURES} basis weights"
        )
    y = y.reshape(-1, PAIRS, FEATURES).transpose(1, 0, 2)
    return quantize(y, 4, np.int8, table="split", path=path)


def _bases(path: Path) -> tuple[np.ndarray, int]:
    want = (FEATURES, 3, DIM, DIM, DIM)
    if not path.is_file():
        raise TableError(f"{path}: no such ICELUT net file")
    try:
        b = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise TableError(f"{path}: not a .npy array ({exc})") from None
    if b.shape != want or not np.issubdtype(b.dtype, np.number):
        hint = (
            " (ICELUT's 33³ bases: save bases[..., ::2, ::2, ::2])"
            if b.shape == (FEATURES, 3, 33, 33, 33)
            else ""
        )
        raise TableError(
            f"{path}: bases of shape {b.shape} ({b.dtype}); expected float "
            f"{want} indexed [n, c, b, g, r]{hint}"
        )
    levels = b.astype(np.float64) * LEVELS
    fits = [
        u
        for u in range(MAX_SHIFT + 1)
        if np.all(np.isfinite(levels))
        and -128 <= np.round(levels * 2**u).min() <= np.round(levels * 2**u).max() <= 127
    ]
    if not fits:
        quantize(levels, 1, np.int8, table="bases", path=path)  # raises with the range
    u = max(fits)
    return np.round(levels * 2**u).astype(np.int8), u


def transfer_icelut_dir(folder: str | Path, *, interpolation: str = "tetrahedral") -> IcelutPlan:
    """The ``IcelutPlan`` of the net folder ``folder`` (module docstring): every ONNX net
    evaluated on its grid with onnxruntime, the bases quantised."""
    folder = Path(folder)
    missing = [f for f in ICELUT_NET_FILES if not (folder / f).is_file()]
    if missing:
        raise TableError(
            f"{folder}: missing {', '.join(missing)}; an ICELUT net folder "
            f"holds {', '.join(ICELUT_NET_FILES)}"
        )
    fm, fl = (_backbone(folder / f, t) for t, f in BACKBONES.items())
    split = _split(folder / SPLIT)
    bases, shift = _bases(folder / BASES)
    return IcelutPlan(
        fm, fl, split, bases, basis_shift=shift, interpolation=interpolation, name=folder.name
    )
