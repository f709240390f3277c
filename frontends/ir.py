"""The typed integer graph between importers and generators.

Tensors carry integer codes; their meaning is ``scale * (code - zero_point)``. Nodes keep the
name and op of the ONNX node they came from, so every error and every mismatch can name it.
This module imports neither ``onnx`` nor ``amaranth``.

Tensors have no batch dimension; images are (C, H, W) (or (C, L)) in C order, as in ONNX.
Every op below is exact integer arithmetic; ``frontends.reference`` is the executable form.
``requantize`` is ``frontends.fixedpoint.requantize``:
``clamp(((acc * m + r) >> shift) + output_zero_point, lo, hi)`` with ``r`` from the node's
``rounding`` attr: ``half_up`` (2**(shift-1), the default), ``floor`` (0), ``ceil`` (2**shift-1).
``lo``/``hi`` include a fused ReLU/Clip. Weights are zero-point-free integers.

``dense``
    ``acc[n] = sum_k (x[k] - input_zero_point) * weight[n, k] + bias[n]`` (x flattened), then
    ``y[n] = requantize(acc[n], multiplier[n], shift, ...)``; with attr ``sign`` (bipolar
    output) ``y[n] = 1 if acc[n] >= 0 else -1`` instead. With attr ``tokens`` T (a token
    sequence; absent: 1) x is viewed as (T, K) and the same layer runs on every token (a
    Linear on tokens x features): ``acc[t, n] = sum_k (x[t, k] - input_zero_point) *
    weight[n, k] + bias[n]``, y (T, N).
``conv``
    A grouped 2-D convolution (1-D as H=1) lowered to GEMMs: ``im2col`` (G, M, Kg) holds, for
    group g, output pixel m = oy*Wo+ox and column k = (c, ky, kx), the flat index into x (or -1
    for padding, which reads x's zero point, i.e. contributes 0).
    ``acc[g*Ng+n, m] = sum_k (x.flat[im2col[g, m, k]] - input_zero_point) *
    weight.reshape(G, Ng, Kg)[g, n, k] + bias[g*Ng+n]``, then requantize per output channel
    (``multiplier`` (Cout,)) or ``sign`` as for dense. Attrs keep the ONNX geometry:
    ``input_shape``, ``output_shape``, ``kernel_shape``, ``strides``, ``pads`` (begin..., end...),
    ``dilations``, ``group``.
``maxpool``
    ``y[c, m] = requantize(max_k x.flat[im2col[c, m, k]] - input_zero_point, multiplier[0],
    ...)``; -1 entries (padding) never win. Equal input/output quantization gives
    ``multiplier = 2**14, shift = 14``: an exact identity.
``avgpool``
    ``acc[c, m] = sum_k (x.flat[im2col[c, m, k]] - input_zero_point)`` (padding adds 0), then
    ``y[c, m] = requantize(acc[c, m], multiplier[m], shift, ...)`` (``multiplier`` has one
    entry, or one per output pixel when window counts differ at borders). The multiplier
    divides by the window's ``count[m]`` (kept in the weights; ONNX's divisor, with or
    without ``count_include_pad``) and rescales: ``fixedpoint.division_multiplier`` proves it
    equal to ``round(acc * M / (count * 2**s))``, ``M / 2**s`` the scale ratio as every
    requantization has it (15 bits),
    for every possible sum, an exact tie of a non-power-of-two count going to either
    neighbour. GlobalAveragePool (and ReduceMean over the spatial axes) is an avgpool over
    the whole plane.
``add``
    ``acc = (a - input_zero_points[0]) * multiplier[0] + (b - input_zero_points[1]) *
    multiplier[1]``, ``y = requantize(acc, 1, shift, ...)``: both inputs rescaled with one
    shared shift (residual adds; shapes equal). With one input, ``b`` is the constant
    ``weights["constant"]`` (a bias or position embedding the model adds to an activation),
    of a's per-sample ``input_shape``; the importer stores it at the accumulator's scale
    (``multiplier[1] = 1``, ``input_zero_points[1] = 0``, ``constant = round(c / s_y *
    2**shift)``): a per-element bias.
``matmul``
    Two activations (Q x K^T, A x V): inputs ``a`` viewed as ``a_shape`` (..., M, K) and ``b``
    as ``b_shape`` (..., K, N), leading axes broadcast by numpy's rules (per head: a is
    (H, T, d) queries, b is (H, d, T) keys transposed -- the model's Transpose is a
    ``transpose`` node before it -- or a is (H, T, T) attention weights and b (H, T, d)
    values). ``acc[..., m, n] = sum_k (a[..., m, k] - input_zero_points[0]) *
    (b[..., k, n] - input_zero_points[1])``, ``y = requantize(acc, multiplier[0], shift,
    ...)``: one per-tensor multiplier ``s_a * s_b / s_y``, no bias.
``layernorm``
    Over the last axis of ``input_shape`` (..., C), each row separately, I-BERT style, all in
    integers (x's zero point cancels): ``S = sum_c x[c]``, ``D[c] = C * x[c] - S`` (C times
    the deviation from the mean, exact), ``V = sum_c D[c]**2 + epsilon_codes`` (``C**3 *
    (var + eps) / s_x**2``; ``epsilon_codes = max(1, round_half_up(C**3 * eps / s_x**2))``
    so V > 0), ``R = isqrt(V << 2*sqrt_shift)`` (the floor of the square root, exact, as
    ``math.isqrt``), one division per row ``inv = floor(2**(sqrt_shift + norm_bits) / R)``,
    then per channel ``acc[c] = sign[c] * D[c] * inv + bias[c]`` and ``y[c] =
    requantize(acc[c], multiplier[c], shift, ...)`` (half up). ``D[c] * inv`` is
    ``2**norm_bits * n[c] / sqrt(C)`` for the normalized ``n = (x - mean) / sqrt(var +
    eps)``, so ``|D[c] * inv| <= 2**norm_bits``; ``multiplier[c] / 2**shift`` is
    ``|gamma[c]| * sqrt(C) / (2**norm_bits * s_y)``, ``sign[c]`` gamma's sign (+-1) and
    ``bias[c] = round(beta[c] / (s_y * multiplier[c] / 2**shift))``: gamma and beta folded
    into one per-channel requantization. With ``V_max = C * (C * (in.max - in.min))**2 +
    epsilon_codes`` (the largest V): ``sqrt_shift`` p is the smallest p >= 0 making
    ``V_max << 2p`` at least 48 bits wide (R >= 2**p), ``norm_bits = 16 +
    ceil(bit_length(V_max) / 2)`` (so ``inv >= 2**16`` on every row). For C = 32 int8:
    V_max < 2**31, p = 9, the square root of a 49-bit number, norm_bits = 32, inv <= 2**32.
``concat``
    ``y = concatenate([requantize(x_i - input_zero_points[i], multiplier[i], shift, ...)],
    axis)`` (sample axis, so 0 is channels). With attr ``parts`` (``"input"`` or
    ``"constant"`` per part, in order; a class token before the patch tokens) a constant
    part is ``weights["constant_<part index>"]``, codes already in the output's quantization
    (``QuantizeLinear`` of the constant at import), placed as they are; the inputs fill the
    ``"input"`` parts in order.
``requant``
    ``y = requantize(x - input_zero_point, multiplier[0], shift, ...)``: a change of scale, a
    standalone ReLU/Clip, or a QONNX Trunc (``rounding`` floor, multiplier a power of two).
``transpose`` / ``slice``
    Data movement only: ``perm`` / ``starts``, ``ends``, ``axes``, ``steps`` over the axes of
    ``input_shape``, the view of the input tensor (C order) the model moves; the view may
    carry size-1 axes (torch's MultiheadAttention moves the batch axis of a batch of one:
    (1, T, E) -> (T, 1, E)). Heads are split and merged by ``transpose`` and ``slice``
    nodes (a Gather of one index on an activation is a ``slice``).
    Flatten/Reshape/Squeeze/Unsqueeze emit no node: consumers read the producer's tensor in C
    order (conv's ``input_shape`` says how it is viewed).
``nonlinear``
    Elementwise ``function`` (sigmoid, tanh, gelu, gelu_tanh, exp): ``y = table[x - in.min]``,
    where ``table[c] = clamp(round_half_even(f(s_in*(c - z_in)) / s_out) + z_out, lo, hi)`` is
    computed once in float64 (GELU's erf and tanh forms, and any element-wise float island
    the model computes between a DequantizeLinear and a QuantizeLinear -- Mul/Div/Add/Sub/
    Pow by scalars, Erf, Tanh, Sigmoid, Sqrt of one quantized input -- become such a table,
    its ``function`` the known function it equals, or ``island:`` and its ops' names).
    ``function == "softmax"`` (over ``axis``, the last
    axis of ``input_shape``: one row per token and head): ``d = x - max(x)`` (<= 0), ``e =
    exp_table[d + (in.max - in.min)]`` (``round_half_even(2**24 * exp(s_in * d))``, a table
    of ``in.max - in.min + 1`` entries, so ``e = 2**24`` at the maximum), ``S = sum(e)``
    (``>= 2**24``). With attr ``recip_shift`` (what the importer emits): one division per
    row ``inv = floor(2**recip_shift / S)`` and ``y = requantize(e * inv, multiplier[0],
    shift, ...)`` (half up; ``multiplier / 2**shift`` is ``2**-recip_shift / s_out``;
    ``recip_shift = 48 + bit_length(row length)``, so ``inv >= 2**24``;
    ``fixedpoint.softmax_params``). The table and reciprocal are exact to below 2**-15 of
    an 8-bit output code, so the result is the correctly rounded code of the float softmax
    of the same input codes but where that lies within about 2**-15 of a rounding tie.
    (Not I-BERT's shift-based exp: a table of the at most 256 code differences costs one
    block RAM and is exact to its 24 bits.) Without ``recip_shift`` (older graphs):
    ``y = clamp(z_out + floor((e * multiplier * 2 + S * 2**shift) / (2 * S * 2**shift)),
    lo, hi)`` -- half-up rounding of ``e / S / s_out``, one division per element.

Token sequences: a transformer's activations are (T, E) per sample (tokens x features), per
head (H, T, d); a mean over the tokens is an ``avgpool`` whose ``im2col`` (E, 1, T) reads
``x.flat[t * E + e]`` (attrs ``input_shape`` (T, E), ``output_shape`` (E,)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "IntType",
    "QuantParams",
    "Tensor",
    "Node",
    "Graph",
    "TRANSFORMER_OPS",
    "is_transformer",
    "layer_depth",
]


@dataclass(frozen=True)
class IntType:
    """A two's-complement (``signed``) or unsigned integer of ``width`` bits.

    ``narrow`` drops one code as QONNX does: the most negative one when signed
    (int2n = ternary {-1, 0, 1}), the largest one when unsigned. ``bipolar`` (width 1, signed)
    holds {-1, +1}: one stored bit ``b`` means ``2*b - 1``; code 0 never occurs.
    """

    width: int
    signed: bool
    narrow: bool = False
    bipolar: bool = False

    def __post_init__(self):
        if not 1 <= self.width <= 32:
            raise ValueError(f"integer width {self.width} is outside 1..32")
        if self.bipolar and (self.width != 1 or not self.signed or self.narrow):
            raise ValueError("a bipolar type is 1 bit, signed, not narrow")

    @classmethod
    def ternary(cls) -> IntType:
        return cls(2, True, narrow=True)

    @classmethod
    def of_bipolar(cls) -> IntType:
        return cls(1, True, bipolar=True)

    @property
    def min(self) -> int:
        if self.bipolar:
            return -1
        if not self.signed:
            return 0
        return -(1 << (self.width - 1)) + (1 if self.narrow else 0)

    @property
    def max(self) -> int:
        if self.bipolar:
            return 1
        if self.signed:
            return (1 << (self.width - 1)) - 1
        return (1 << self.width) - 1 - (1 if self.narrow else 0)

    @property
    def is_ternary(self) -> bool:
        return self.signed and self.min == -1 and self.max == 1 and not self.bipolar

    def contains(self, codes: ArrayLike) -> bool:
        codes = np.asarray(codes)
        if codes.size == 0:
            return True
        ok = codes.min() >= self.min and codes.max() <= self.max
        return bool(ok and not (self.bipolar and np.any(codes == 0)))

    def __str__(self) -> str:
        if self.bipolar:
            return "bipolar"
        if self.is_ternary:
            return "ternary"
        return f"{'' if self.signed else 'u'}int{self.width}{'n' if self.narrow else ''}"


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Per-tensor (``axis is None``) or per-channel affine quantization.

    ``offset`` (graph outputs only; None: 0) is a float added per channel after scaling, so
    the real value is ``scale * (code - zero_point) + offset``: a float bias the host adds to
    an integer accumulator leaving the hardware (Brevitas' float bias on float logits).

    ``rounding`` says how the host quantizes floats into this tensor (graph inputs):
    ``onnx`` is QuantizeLinear (``round_half_even(x / s) + zp``, float32); the QONNX modes
    (``ROUND``, ``FLOOR``, ``CEIL``, ``HALF_UP``, ...) compute ``mode(x / s + zp)`` in float32
    as QONNX ``Quant`` does; ``BIPOLAR`` is ``+1 if x >= 0 else -1``.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    rounding: str = "onnx"
    offset: np.ndarray | None = None

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
    """A topologically ordered integer graph with float-domain quantized inputs/outputs.

    What the host does around the hardware (``frontends.reference`` is its executable form):

    - ``input_shape``: the model's float input per sample (None: the input tensor's shape);
      ``input_layout``: the layout steps (``("reshape", shape)``, ``("transpose", perm)``, over
      sample axes) the model applies to it before its first quantizer, which the host applies
      before quantizing, so the hardware sees the input tensor's shape;
    - ``host_ops``: float ops after the output's dequantization, in order: ``("softmax",
      axis)``, ``("log_softmax", axis)``, ``("argmax", axis, keepdims)`` (sample axes).
    """

    name: str
    tensors: Mapping[str, Tensor]
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    source_sha256: str = ""
    input_shape: tuple[int, ...] | None = None
    input_layout: tuple = ()
    host_ops: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "tensors", _frozen(self.tensors))

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None


TRANSFORMER_OPS = ("layernorm", "matmul")


def is_transformer(graph: Graph) -> bool:
    """A transformer graph: it has a LayerNorm, a MatMul of two activations or a row
    softmax inside the network."""
    return any(
        n.op in TRANSFORMER_OPS or (n.op == "nonlinear" and n.attrs.get("function") == "softmax")
        for n in graph.nodes
    )


def layer_depth(graph: Graph) -> int:
    """Nodes on the graph's longest path from an input to an output (a residual block's
    skip is the shorter way round)."""
    depth: dict[str, int] = {}
    for n in graph.nodes:
        d = 1 + max((depth.get(t, 0) for t in n.inputs), default=0)
        depth.update(dict.fromkeys(n.outputs, d))
    return max((depth.get(t, 0) for t in graph.outputs), default=0)
