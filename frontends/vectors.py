"""Golden test vectors: edge cases, random codes and (optionally) a user's data set."""

from __future__ import annotations

import numpy as np

from .errors import ModelError
from .ir import Graph
from .reference import quantize_inputs, run

__all__ = ["edge_inputs", "golden_vectors"]


def edge_inputs(graph: Graph) -> np.ndarray:
    """Input codes at the corners: all min, all max, all zero point, all zero, alternating
    min/max both ways, and a ramp through every code."""
    t = graph.tensor(graph.inputs[0])
    lo, hi, n = t.dtype.min, t.dtype.max, t.size
    zp = int(t.quant.zero_point)
    alt = np.where(np.arange(n) % 2 == 0, lo, hi)
    ramp = lo + np.arange(n) % (hi - lo + 1)
    rows = [np.full(n, lo), np.full(n, hi), np.full(n, zp), np.full(n, max(lo, min(hi, 0))),
            alt, lo + hi - alt, ramp]
    return np.stack(rows).reshape((len(rows),) + t.shape).astype(np.int64)


def golden_vectors(graph: Graph, *, data_x: np.ndarray | None = None,
                   data_y: np.ndarray | None = None, random: int = 32,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """``inputs``/``outputs`` codes for the edge cases, ``random`` random vectors and every
    row of ``data_x`` (float, quantized as the model's QuantizeLinear does), with ``labels``
    (-1 where there is none) and ``source`` (0 edge, 1 random, 2 data)."""
    t = graph.tensor(graph.inputs[0])
    rng = np.random.default_rng(seed)
    parts = [edge_inputs(graph),
             rng.integers(t.dtype.min, t.dtype.max + 1, size=(random,) + t.shape)]
    labels = [np.full(len(parts[0]), -1), np.full(random, -1)]
    source = [np.zeros(len(parts[0])), np.ones(random)]
    if data_x is not None:
        data_x = np.asarray(data_x)
        if data_x.ndim < 2 or int(np.prod(data_x.shape[1:])) != t.size:
            raise ModelError(f"data: x has shape {data_x.shape}, but input '{t.name}' takes "
                             f"{t.size} values per sample")
        parts.append(quantize_inputs(graph, data_x))
        if data_y is not None and len(data_y) != len(data_x):
            raise ModelError(f"data: {len(data_x)} samples in x but {len(data_y)} labels in y")
        labels.append(np.asarray(data_y if data_y is not None else np.full(len(data_x), -1)))
        source.append(np.full(len(data_x), 2))
    inputs = np.concatenate([p.astype(np.int64) for p in parts])
    env = run(graph, inputs)
    vectors = {"inputs": inputs.reshape(len(inputs), -1),
               "outputs": env[graph.outputs[0]].reshape(len(inputs), -1),
               "labels": np.concatenate(labels).astype(np.int64),
               "source": np.concatenate(source).astype(np.int8)}
    for i, node in enumerate(graph.nodes):
        vectors[f"layer{i}"] = env[node.outputs[0]].reshape(len(inputs), -1)
    return vectors
