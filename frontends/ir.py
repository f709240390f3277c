"""The typed integer graph between importers and generators.

Tensors carry integer codes; their meaning is ``scale * (code - zero_point)``. Nodes keep the
name and op of the ONNX node they came from, so every error and every mismatch can name it.
This module imports neither ``onnx`` nor ``amaranth``.

IR ops and their exact integer semantics (see ``frontends.reference``):

``dense``
    ``acc[n] = sum_k (x[k] - input_zero_point) * weight[n, k] + bias[n]`` (exact), then
    ``y[n] = requantize(acc[n], multiplier[n], shift, output_zero_point, lo, hi)``.
    ``weight`` holds zero-point-free integers; ``lo``/``hi`` include a fused ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

__all__ = ["IntType", "QuantParams", "Tensor", "Node", "Graph"]


@dataclass(frozen=True)
class IntType:
    """A two's-complement (``signed``) or unsigned integer of ``width`` bits."""

    width: int
    signed: bool
    narrow: bool = False

    def __post_init__(self):
        if not 1 <= self.width <= 32:
            raise ValueError(f"integer width {self.width} is outside 1..32")

    @property
    def min(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.width - 1)) + (1 if self.narrow else 0)

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.width}{'n' if self.narrow else ''}"


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Per-tensor (``axis is None``) or per-channel affine quantization."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    @property
    def per_tensor(self) -> bool:
        return self.axis is None


@dataclass(frozen=True)
class Tensor:
    """An integer tensor of one sample (no batch dimension)."""

    name: str
    shape: tuple[int, ...]
    dtype: IntType
    quant: QuantParams | None = field(default=None, compare=False)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, eq=False)
class Node:
    """One integer operation; ``name`` and ``source_op`` are the ONNX node's."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)
    source_op: str = ""

    def __post_init__(self):
        object.__setattr__(self, "attrs", _frozen(self.attrs))
        object.__setattr__(self, "weights", _frozen(self.weights))

    def describe(self) -> str:
        return f"node '{self.name}' ({self.source_op or self.op})"


@dataclass(frozen=True, eq=False)
class Graph:
    """A topologically ordered integer graph with float-domain quantized inputs/outputs."""

    name: str
    tensors: Mapping[str, Tensor]
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    source_sha256: str = ""

    def __post_init__(self):
        object.__setattr__(self, "tensors", _frozen(self.tensors))

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None
