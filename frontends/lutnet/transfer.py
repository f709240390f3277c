"""From a trained pattern net (ONNX) to an SR-LUT table: evaluate it on the sampling grid.

The net takes the n pattern pixels as a float tensor ``(B, 1, ph, pw)`` in [0, 1] (pixel/255):
``(2, 2)`` is pattern S, ``(1, 3)`` F, ``(1, 2)`` V. It returns r² values per sample in
[-1, 1] (before or after PixelShuffle; the r×r block row-major either way). SR-LUT's
transfer (spec §1): the grid is ``0, q, 2q, …, 256 - q`` and 255 in place of 256; each entry
is ``round(clamp(y, -1, 1) · 127)`` as int8, so the four rotations' entries add up to pixels.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .srlut import SrlutPlan, TableError

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = [
    "transfer_onnx",
    "sampling_grid",
    "grid_inputs",
    "onnx_session",
    "run_batched",
    "PATTERN_BY_SHAPE",
]

PATTERN_BY_SHAPE = {(2, 2): "S", (1, 3): "F", (1, 2): "V"}
BATCH = 4096


def sampling_grid(interval_bits: int) -> np.ndarray:
    q = 1 << interval_bits
    grid = np.arange(0, 257, q)
    grid[-1] = 255
    return grid


def grid_inputs(n: int, interval_bits: int) -> np.ndarray:
    """All L^n grid points as (L^n, n) pixel values, first pixel slowest (the table order)."""
    g = sampling_grid(interval_bits)
    return np.array(list(product(g, repeat=n)), dtype=np.float32)


def to_table(y: np.ndarray) -> np.ndarray:
    return np.round(np.clip(y, -1.0, 1.0) * 127).astype(np.int8)


def onnx_session(path: str | Path, what: str = "ONNX model") -> ort.InferenceSession:
    """An onnxruntime CPU session for the model at ``path``; ``TableError`` naming the file
    when it is missing or does not load."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such {what}")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TableError(f"{path}: onnxruntime cannot load it ({exc})") from None


def run_batched(sess: ort.InferenceSession, x: np.ndarray, *, batch: int = BATCH) -> np.ndarray:
    """The one-input ``sess`` on every sample of ``x`` (N, *sample shape), in batches (a
    fixed batch size is padded with zeros); the first output flattened per sample, (N, k)."""
    inp = sess.get_inputs()[0]
    fixed = isinstance(inp.shape[0], int)
    batch = inp.shape[0] if fixed else batch
    x = np.asarray(x, np.float32)
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        if n < batch and fixed:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *x.shape[1:]), np.float32)])
        y = sess.run(None, {inp.name: chunk})[0]
        outs.append(y.reshape(len(chunk), -1)[:n])
    return np.concatenate(outs)


def transfer_onnx(path: str | Path, *, interval_bits: int = 4) -> SrlutPlan:
    """Run the ONNX net at ``path`` on every grid point (onnxruntime) and return its table."""
    path = Path(path)
    sess = onnx_session(path)
    inputs = sess.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise TableError(
            f"{path}: the net must take one (B, 1, ph, pw) input; it takes "
            f"{[(i.name, i.shape) for i in inputs]}"
        )
    shape = tuple(inputs[0].shape[2:])
    if shape not in PATTERN_BY_SHAPE or inputs[0].shape[1] not in (1, "1"):
        raise TableError(
            f"{path}: input '{inputs[0].name}' has shape {inputs[0].shape}; a "
            f"pattern net takes (B, 1, 2, 2) (S), (B, 1, 1, 3) (F) or "
            f"(B, 1, 1, 2) (V)"
        )
    pattern = PATTERN_BY_SHAPE[shape]
    n = shape[0] * shape[1]
    x = grid_inputs(n, interval_bits) / 255.0
    y = run_batched(sess, x.reshape(-1, 1, *shape))
    r = int(round(np.sqrt(y.shape[1])))
    if r * r != y.shape[1]:
        raise TableError(
            f"{path}: the net returns {y.shape[1]} values per pattern; an ×r "
            f"net returns r² (4 for ×2, 16 for ×4)"
        )
    return SrlutPlan(pattern, interval_bits, r, to_table(y), name=path.stem)
