"""Compression facts per layer, read from the IR: what the generators can exploit.

For each node: weight type (declared) and the bits its values really need, ternary/binary
flags, sparsity, pruned (all-zero) output channels and input rows/channels, activation types,
MACs and parameter bytes. Pure functions of the graph; nothing here knows about hardware.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .fixedpoint import signed_bits
from .ir import Graph, IntType, Node

__all__ = ["LayerFacts", "layer_facts"]


@dataclass(frozen=True)
class LayerFacts:
    name: str
    source_op: str
    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_dtype: str
    output_dtype: str
    weight_dtype: str | None
    weight_bits: int | None  # bits the zero-point-free values need (1 for +-1)
    ternary: bool
    binary: bool
    macs: int
    params: int
    param_bytes: int
    sparsity: float  # fraction of zero weights
    pruned_outputs: tuple[int, ...]  # output channels whose weights are all zero
    pruned_inputs: tuple[int, ...]  # inputs (dense) / input channels (conv) never read

    def as_dict(self) -> dict:
        return asdict(self)


def _weight_bits(w: np.ndarray, declared: IntType | None) -> int:
    values = set(np.unique(w).tolist())
    if values <= {-1, 1}:
        return 1
    return (
        signed_bits(int(w.min()), int(w.max()))
        if w.min() < 0
        else max(1, int(w.max()).bit_length())
    )


def _declared_bits(dtype: IntType | None, effective: int) -> int:
    if dtype is None:
        return effective
    return 1 if dtype.bipolar else dtype.width


def layer_facts(graph: Graph) -> list[LayerFacts]:
    out = []
    for node in graph.nodes:
        x = graph.tensor(node.inputs[0])
        y = graph.tensor(node.outputs[0])
        out.append(_facts(node, x, y))
    return out


def _facts(node: Node, x, y) -> LayerFacts:
    w = node.weights.get("weight")
    wd = node.attrs.get("weight_dtype")
    if w is None:
        macs = {"maxpool": 0, "avgpool": 0}.get(node.op, 0)
        if node.op in ("maxpool", "avgpool"):
            macs = int(node.weights["im2col"].size)  # adds/compares, one per window element
        elif node.op in ("add", "nonlinear", "requant", "concat", "layernorm"):
            macs = y.size
        elif node.op == "matmul":  # two activations: every output sums over the inner axis
            macs = y.size * int(node.attrs["a_shape"][-1])
        return LayerFacts(
            node.name,
            node.source_op,
            node.op,
            x.shape,
            y.shape,
            str(x.dtype),
            str(y.dtype),
            None,
            None,
            False,
            False,
            macs,
            0,
            0,
            0.0,
            (),
            (),
        )
    n = w.shape[0]
    flat = w.reshape(n, -1)
    bits = _weight_bits(w, wd)
    values = set(np.unique(w).tolist())
    binary = values <= {-1, 1}
    ternary = not binary and values <= {-1, 0, 1}
    pruned_out = tuple(int(i) for i in np.flatnonzero(~flat.any(axis=1)))
    if node.op == "conv":
        per_in = np.abs(w).sum(axis=tuple(range(2, w.ndim)))  # (Cout, C/G)
        g = node.attrs["group"]
        cg = w.shape[1]
        used = np.zeros(cg * g, dtype=bool)
        for gi in range(g):
            rows = per_in[gi * (n // g) : (gi + 1) * (n // g)]
            used[gi * cg : (gi + 1) * cg] = rows.any(axis=0)
        pruned_in = tuple(int(i) for i in np.flatnonzero(~used))
        macs = int(node.weights["im2col"].shape[1]) * flat.size
    else:
        pruned_in = tuple(int(i) for i in np.flatnonzero(~flat.any(axis=0)))
        macs = flat.size * int(node.attrs.get("tokens", 1))  # the layer on every token
    params = int(w.size + n)
    param_bytes = int(np.ceil(w.size * _declared_bits(wd, bits) / 8)) + 4 * n
    return LayerFacts(
        node.name,
        node.source_op,
        node.op,
        x.shape,
        y.shape,
        str(x.dtype),
        str(y.dtype),
        str(wd) if wd is not None else None,
        bits,
        ternary,
        binary,
        int(macs),
        params,
        param_bytes,
        float((w == 0).mean()),
        pruned_out,
        pruned_in,
    )
