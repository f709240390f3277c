"""Golden test vectors: edge cases, random codes and (optionally) a user's data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .errors import ModelError
from .ir import Graph
from .reference import quantize_inputs, run

__all__ = ["edge_inputs", "golden_vectors", "check_data", "load_data"]

# Bytes of int64 intermediates the golden model may hold at once (per batch it runs).
GOLDEN_BATCH_BYTES = 256 << 20


def check_data(
    x: ArrayLike, y: ArrayLike | None = None, where: str = "data"
) -> tuple[np.ndarray, np.ndarray | None]:
    """A user's ``x`` (float or integer inputs, one sample per row) and ``y`` (integer labels)
    checked: real numbers only, no NaN (QuantizeLinear has no code for it; ±inf and huge
    values saturate as onnxruntime's QuantizeLinear does), one label per sample."""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        raise ModelError(f"{where}: x holds complex numbers; nnloom's inputs are real")
    if x.dtype.kind not in "biuf":
        raise ModelError(
            f"{where}: x has element type {x.dtype}; expected numbers (float or integer)"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ModelError(
            f"{where}: x has shape {x.shape}; expected one sample per row (samples, ...)"
        )
    if x.dtype.kind == "f":
        bad = np.isnan(x.reshape(len(x), -1)).any(axis=1)
        if bad.any():
            raise ModelError(
                f"{where}: x holds NaN (sample {int(np.flatnonzero(bad)[0])}); "
                f"a NaN input has no quantized code"
            )
    if y is not None:
        y = np.asarray(y)
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "biu":
            raise ModelError(
                f"{where}: y (labels) has element type {y.dtype}; expected integer class indices"
            )
        if y.ndim != 1:
            raise ModelError(
                f"{where}: y (labels) has shape {y.shape}; expected one label per sample"
            )
        if len(y) != len(x):
            raise ModelError(f"{where}: {len(x)} samples in x but {len(y)} labels in y")
        y = y.astype(np.int64)
    return x, y


def load_data(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` and optional ``y`` of an ``.npz`` (no pickles), checked by ``check_data``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as f:
            files = list(f.files)
            if "x" not in files:
                raise ModelError(
                    f"{path}: expected an .npz with arrays 'x' (inputs) and "
                    f"optionally 'y' (labels); it has {', '.join(files) or 'nothing'}"
                )
            x, y = f["x"], (f["y"] if "y" in files else None)
    except ModelError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ModelError(
            f"{path}: not a readable .npz file ({text[0] if text else type(exc).__name__})"
        ) from None
    return check_data(x, y, str(path))


def edge_inputs(graph: Graph) -> np.ndarray:
    """Input codes at the corners: all min, all max, all zero point, all zero, alternating
    min/max both ways, and a ramp through every code."""
    t = graph.tensor(graph.inputs[0])
    lo, hi, n = t.dtype.min, t.dtype.max, t.size
    zp = int(t.quant.zero_point)
    alt = np.where(np.arange(n) % 2 == 0, lo, hi)
    ramp = lo + np.arange(n) % (hi - lo + 1)
    rows = [
        np.full(n, lo),
        np.full(n, hi),
        np.full(n, zp),
        np.full(n, max(lo, min(hi, 0))),
        alt,
        lo + hi - alt,
        ramp,
    ]
    return np.stack(rows).reshape((len(rows),) + t.shape).astype(np.int64)


def golden_vectors(
    graph: Graph,
    *,
    data_x: np.ndarray | None = None,
    data_y: np.ndarray | None = None,
    random: int = 32,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``inputs``/``outputs`` codes for the edge cases, ``random`` random vectors and every
    row of ``data_x`` (float, quantized as the model's QuantizeLinear does), with ``labels``
    (-1 where there is none) and ``source`` (0 edge, 1 random, 2 data)."""
    t = graph.tensor(graph.inputs[0])
    rng = np.random.default_rng(seed)
    parts = [
        edge_inputs(graph),
        rng.integers(t.dtype.min, t.dtype.max + 1, size=(random,) + t.shape),
    ]
    labels = [np.full(len(parts[0]), -1), np.full(random, -1)]
    source = [np.zeros(len(parts[0])), np.ones(random)]
    if len(graph.outputs) != 1:
        raise ModelError(
            f"model '{graph.name}' has {len(graph.outputs)} graph outputs "
            f"({', '.join(repr(o) for o in graph.outputs)}); nnloom's engines "
            f"compute one output: keep one in the ONNX graph"
        )
    if data_x is not None:
        data_x, data_y = check_data(data_x, data_y)
        if int(np.prod(data_x.shape[1:])) != t.size:
            raise ModelError(
                f"data: x has shape {data_x.shape}, but input '{t.name}' takes "
                f"{t.size} values per sample"
            )
        parts.append(quantize_inputs(graph, data_x))
        labels.append(np.asarray(data_y if data_y is not None else np.full(len(data_x), -1)))
        source.append(np.full(len(data_x), 2))
    inputs = np.concatenate([p.astype(np.int64) for p in parts])
    names = list(dict.fromkeys([graph.outputs[0]] + [n.outputs[0] for n in graph.nodes]))
    per_sample = _sample_bytes(graph)
    batch = max(1, GOLDEN_BATCH_BYTES // max(per_sample, 1))
    chunks = {n: [] for n in names}
    for start in range(0, len(inputs), batch):
        env = run(graph, inputs[start : start + batch])
        for n in names:
            chunks[n].append(env[n].reshape(len(env[graph.inputs[0]]), -1))
    vectors = {
        "inputs": inputs.reshape(len(inputs), -1),
        "outputs": np.concatenate(chunks[graph.outputs[0]]),
        "labels": np.concatenate(labels).astype(np.int64),
        "source": np.concatenate(source).astype(np.int8),
    }
    for i, node in enumerate(graph.nodes):
        vectors[f"layer{i}"] = np.concatenate(chunks[node.outputs[0]])
    return vectors


def _sample_bytes(graph: Graph) -> int:
    """Int64 bytes the golden model holds for one sample at its widest step (a conv's or
    pool's gathered windows, or every tensor's codes)."""
    widest = max(
        [w.size for n in graph.nodes for k, w in n.weights.items() if k == "im2col"] or [0]
    )
    tensors = sum(t.size for t in graph.tensors.values())
    return 8 * (2 * widest + tensors)
