"""Lowering of an IR graph of ``dense`` nodes to the dense engine's memories and constants.

``DensePlan`` is the one frozen parameter object of the engine: ``reference()`` is its
integer model (the hardware's own arithmetic) and ``cycles()`` its latency model;
``DenseEngine(plan)`` (``engine.py``, which builds on this module) is the Amaranth component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import MULTIPLIER_BITS, requantize, signed_bits
from frontends.ir import Graph, IntType

from ..ecc import EccCode

__all__ = ["DenseLayer", "DensePlan", "WEIGHT_BITS", "ACT_BITS", "faulted_reference"]

WEIGHT_BITS = 8
ACT_BITS = 8
# Cycles a layer spends beyond its MACs: the pipeline to the accumulators (3), the requantizer
# (4) and the hand-over to the next layer, less one overlapped cycle. See DenseEngine.
LAYER_OVERHEAD = 6


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """One ``dense`` IR node in the engine's terms (zero points folded into the bias)."""

    name: str
    source_op: str
    n_in: int
    n_out: int
    in_dtype: IntType
    out_dtype: IntType
    weight: np.ndarray  # (n_out, n_in) signed, fits WEIGHT_BITS
    bias: np.ndarray  # (n_out,) bias - input_zero_point * sum_k weight
    multiplier: np.ndarray  # (n_out,) unsigned, < 2**MULTIPLIER_BITS
    shift: int
    zero_point: int
    lo: int
    hi: int

    def groups(self, lanes: int) -> int:
        return _ceil_div(self.n_out, lanes)

    def acc_range(self) -> tuple[int, int]:
        """Exact bounds of ``sum_k x[k] * weight[n, k]`` over every input code."""
        w = self.weight
        hi_x, lo_x = self.in_dtype.max, self.in_dtype.min
        top = np.maximum(w * hi_x, w * lo_x).sum(axis=1)
        bottom = np.minimum(w * hi_x, w * lo_x).sum(axis=1)
        return int(bottom.min()), int(top.max())


@dataclass(frozen=True, eq=False)
class DensePlan:
    """``protect`` (``rtl_gen.ecc``: none, parity, secded) codes the weight and parameter
    ROM words; their decoders are registered (``EccCode.stages``: parity one stage, SECDED
    two on each of the two ROMs), two or four cycles more per layer."""

    layers: tuple[DenseLayer, ...]
    lanes: int
    protect: str = "none"

    @classmethod
    def from_graph(cls, graph: Graph, *, lanes: int = 4, protect: str = "none") -> DensePlan:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        if len(graph.outputs) != 1:
            raise ModelError(
                f"model '{graph.name}' has {len(graph.outputs)} graph outputs "
                f"({', '.join(repr(o) for o in graph.outputs)}); the dense engine "
                f"computes one"
            )
        layers = []
        prev = graph.inputs[0]
        for node in graph.nodes:
            if node.op != "dense":
                raise ModelError(
                    f"{node.describe()}: op '{node.op}' cannot run on the dense "
                    f"engine (it runs MatMul/Gemm layers only)"
                )
            if node.attrs.get("tokens", 1) > 1:
                raise ModelError(
                    f"{node.describe()}: a layer on a sequence of {node.attrs['tokens']} "
                    f"tokens cannot run on the dense engine (one vector per sample)"
                )
            if node.inputs[0] != prev:
                raise ModelError(
                    f"{node.describe()}: the dense engine runs a chain of layers; "
                    f"this node does not take the previous layer's output"
                )
            if node.attrs.get("sign") or node.attrs.get("rounding", "half_up") != "half_up":
                need = (
                    "a bipolar sign"
                    if node.attrs.get("sign")
                    else f"rounding {node.attrs['rounding']}"
                )
                raise ModelError(
                    f"{node.describe()}: the dense engine requantizes with "
                    f"round-half-up only; this layer needs {need}"
                )
            x_t, y_t = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
            # a layer whose float output leaves the graph outputs its accumulator (up to 32
            # bits; the host scales it): the engine's last buffer and output are that wide
            wide_ok = node.attrs.get("accumulator_output") and node.outputs[0] in graph.outputs
            for t in (x_t,) if wide_ok else (x_t, y_t):
                if t.dtype.width > ACT_BITS:
                    raise ModelError(
                        f"{node.describe()}: tensor '{t.name}' is {t.dtype}; the "
                        f"dense engine's activations are at most {ACT_BITS} bits"
                    )
            w = node.weights["weight"]
            lo_w, hi_w = -(1 << (WEIGHT_BITS - 1)), (1 << (WEIGHT_BITS - 1)) - 1
            if w.min() < lo_w or w.max() > hi_w:
                raise ModelError(
                    f"{node.describe()}: weight values span [{w.min()}, {w.max()}] "
                    f"after removing the zero point; the dense engine multiplies "
                    f"{WEIGHT_BITS}-bit signed weights"
                )
            if np.max(node.weights["multiplier"], initial=0) >= 1 << MULTIPLIER_BITS:
                raise ModelError(
                    f"{node.describe()}: its requantization multipliers are wider than the "
                    f"dense engine's {MULTIPLIER_BITS} bits (a transformer's); use --engine gemm"
                )
            bias = node.weights["bias"] - node.attrs["input_zero_point"] * w.sum(axis=1)
            layers.append(
                DenseLayer(
                    name=node.name,
                    source_op=node.source_op,
                    n_in=x_t.size,
                    n_out=y_t.size,
                    in_dtype=x_t.dtype,
                    out_dtype=y_t.dtype,
                    weight=w.astype(np.int64),
                    bias=bias.astype(np.int64),
                    multiplier=node.weights["multiplier"],
                    shift=node.attrs["shift"],
                    zero_point=node.attrs["output_zero_point"],
                    lo=node.attrs["lo"],
                    hi=node.attrs["hi"],
                )
            )
            prev = node.outputs[0]
        if not layers:
            raise ModelError(f"model '{graph.name}' has no layers to run")
        if prev != graph.outputs[0]:
            raise ModelError(f"model '{graph.name}': the output is not the last layer's")
        min_in = min(layer.n_in for layer in layers)
        # The accumulators of a group drain one lane a cycle while the next group computes,
        # so a group must take at least `lanes` cycles.
        EccCode(protect, 1)  # refuses an unknown protection by name
        return cls(tuple(layers), min(lanes, min_in), protect)

    # --- sizes the hardware derives ----------------------------------------------------------

    @property
    def in_dtype(self) -> IntType:
        return self.layers[0].in_dtype

    @property
    def out_dtype(self) -> IntType:
        return self.layers[-1].out_dtype

    @property
    def out_bits(self) -> int:
        """Width of the activation buffers and of the requantizer's result: 8, or the
        last layer's accumulator output."""
        return max(ACT_BITS, self.out_dtype.width)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def buffer_depth(self) -> int:
        return max(max(layer.n_in, layer.n_out) for layer in self.layers)

    @property
    def acc_bits(self) -> int:
        ranges = [layer.acc_range() for layer in self.layers]
        return signed_bits(min(r[0] for r in ranges), max(r[1] for r in ranges))

    @property
    def bias_bits(self) -> int:
        return signed_bits(
            min(int(l.bias.min()) for l in self.layers), max(int(l.bias.max()) for l in self.layers)
        )

    @property
    def sum_bits(self) -> int:
        lo = min(l.acc_range()[0] + int(l.bias.min()) for l in self.layers)
        hi = max(l.acc_range()[1] + int(l.bias.max()) for l in self.layers)
        return signed_bits(lo, hi)

    @property
    def weight_code(self) -> EccCode:
        return EccCode(self.protect, WEIGHT_BITS * self.lanes)

    @property
    def param_code(self) -> EccCode:
        return EccCode(self.protect, self.bias_bits + MULTIPLIER_BITS)

    def weight_image(self) -> list[int]:
        """Weight ROM words: per layer, per group of ``lanes`` outputs, one word per input;
        lane ``p`` in bits ``[8p, 8p+8)``; missing lanes of the last group are zero; the
        check bits of ``protect`` above them."""
        return self.weight_code.encode_words(self._weight_data())

    def _weight_data(self) -> list[int]:
        words = []
        mask = (1 << WEIGHT_BITS) - 1
        for layer in self.layers:
            padded = np.zeros((layer.groups(self.lanes) * self.lanes, layer.n_in), np.int64)
            padded[: layer.n_out] = layer.weight
            for g in range(layer.groups(self.lanes)):
                lanes = padded[g * self.lanes : (g + 1) * self.lanes]
                for k in range(layer.n_in):
                    word = 0
                    for p in range(self.lanes):
                        word |= (int(lanes[p, k]) & mask) << (WEIGHT_BITS * p)
                    words.append(word)
        return words

    def param_image(self) -> list[int]:
        """Requantizer ROM words ``bias << MULTIPLIER_BITS | multiplier``, one per output,
        each layer padded to a whole number of groups; the check bits of ``protect`` above."""
        return self.param_code.encode_words(self._param_data())

    def _param_data(self) -> list[int]:
        words = []
        bias_mask = (1 << self.bias_bits) - 1
        for layer in self.layers:
            n = layer.groups(self.lanes) * self.lanes
            for c in range(n):
                if c < layer.n_out:
                    words.append(
                        ((int(layer.bias[c]) & bias_mask) << MULTIPLIER_BITS)
                        | int(layer.multiplier[c])
                    )
                else:
                    words.append(0)
        return words

    # --- models ------------------------------------------------------------------------------

    def reference(self, codes: np.ndarray) -> list[np.ndarray]:
        """The engine's arithmetic on a batch of input codes: every layer's output codes."""
        x = np.asarray(codes, dtype=np.int64)
        outs = []
        for layer in self.layers:
            acc = x @ layer.weight.T + layer.bias
            x = requantize(acc, layer.multiplier, layer.shift, layer.zero_point, layer.lo, layer.hi)
            outs.append(x)
        return outs

    def layer_cycles(self, layer: DenseLayer) -> int:
        decode = 2 * self.weight_code.stages  # the decoders' registers, weights and params
        return layer.groups(self.lanes) * layer.n_in + self.lanes + LAYER_OVERHEAD + decode

    def cycles(self) -> int:
        """Cycles from the first input transfer to the last output transfer, inclusive, when
        the input is always valid and the output always ready."""
        return self.n_in + sum(self.layer_cycles(l) for l in self.layers) + self.n_out + 1

    def macs(self) -> int:
        return sum(layer.n_in * layer.n_out for layer in self.layers)


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` as a ``bits``-bit two's complement register holds it."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def faulted_reference(
    plan: DensePlan, codes: np.ndarray, weight_words: list[int], param_words: list[int]
) -> tuple[list[np.ndarray], dict[str, int]]:
    """What the engine of ``plan`` computes when its ROMs hold ``weight_words`` and
    ``param_words`` (``plan.weight_image()``/``param_image()`` with bits flipped): every
    layer's output codes for a batch of input codes, and per inference the words read with
    a corrected flip (``corrected``) and with an error the code cannot correct (``errors``),
    which is what the engine's counters add per inference. The data are what the decoders
    pass on; the accumulator and bias sums wrap at the engine's widths, as its registers do."""
    w_data, w_corr, w_err = plan.weight_code.decode_words(weight_words)
    p_data, p_corr, p_err = plan.param_code.decode_words(param_words)
    mask, bias_bits = (1 << WEIGHT_BITS) - 1, plan.bias_bits
    x = np.asarray(codes, dtype=np.int64)
    outs, w_at, p_at = [], 0, 0
    for layer in plan.layers:
        n = layer.groups(plan.lanes) * plan.lanes
        weight = np.zeros((n, layer.n_in), np.int64)
        for g in range(layer.groups(plan.lanes)):
            for k in range(layer.n_in):
                word = w_data[w_at]
                w_at += 1
                for p in range(plan.lanes):
                    v = (word >> (WEIGHT_BITS * p)) & mask
                    weight[g * plan.lanes + p, k] = v - (1 << WEIGHT_BITS) * (
                        v >> (WEIGHT_BITS - 1)
                    )
        words = np.array(p_data[p_at : p_at + n], dtype=object)
        p_at += n
        mult = np.array([int(w) & ((1 << MULTIPLIER_BITS) - 1) for w in words], np.int64)
        bias = np.array(
            [_wrap(np.int64(int(w) >> MULTIPLIER_BITS), bias_bits) for w in words], np.int64
        )
        acc = _wrap(x @ weight[: layer.n_out].T, plan.acc_bits)
        total = _wrap(acc + bias[: layer.n_out], plan.sum_bits)
        x = requantize(
            total, mult[: layer.n_out], layer.shift, layer.zero_point, layer.lo, layer.hi
        )
        outs.append(x)
    counts = {
        "corrected": int(w_corr.sum() + p_corr.sum()),
        "errors": int(w_err.sum() + p_err.sum()),
    }
    return outs, counts
