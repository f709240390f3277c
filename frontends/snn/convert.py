"""Exact conversion of a quantized ANN in the IR into an ST-BIF spiking network.

Each IR ``dense`` node (and each ``conv`` node, expanded into its dense Toeplitz matrix) is one
ST-BIF layer. The node computes ``y = clamp(((acc * m + r) >> shift) + zp_out, lo, hi)``; with
``e`` trailing zero bits shared by the multipliers (at most ``shift``), this equals
``clamp(floor((acc * (m >> e) + (r >> e)) / 2**(shift - e)), lo, hi)`` exactly (the floor of
a floor), which is the ST-BIF's settled tracer (``neurons.qann``) plus ``zp_out`` with:

- synapse weights ``W[n, k] * (m[n] >> e)`` (integer constants: the synapses only add them);
- ``theta = 2**(shift - e)``; ``v0 = r >> e`` (``theta / 2`` for round-half-up);
- bias ``b[n] * (m[n] >> e)`` injected at t = 0 (folded into the initial membrane);
- ``smin = lo - zp_out``, ``smax = hi - zp_out`` (they must contain 0: the tracer starts there).

The next layer sees ``x - zp_in`` = the tracer, since a tensor's zero point is the producer's
``zp_out``. The first layer takes the input codes minus their zero point in full at t = 0
(the "analog" encoding of SpikeZIP-TF), as bit-plane events ``(k, sign, bit)``.

Rounding ``half_even`` (ties to even) and ``sign`` (bipolar) outputs have no ST-BIF form and
are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import signed_bits
from frontends.ir import Graph, IntType

__all__ = ["StbifLayer", "StbifNetwork", "convert", "ROUND_CONSTANT"]


def ROUND_CONSTANT(rounding: str, shift: int) -> int:
    """``r`` of requantize for ``rounding`` (see ``frontends.fixedpoint``)."""
    if shift == 0:
        return 0
    return {"half_up": 1 << (shift - 1), "floor": 0, "ceil": (1 << shift) - 1}[rounding]


@dataclass(frozen=True, eq=False)
class StbifLayer:
    """One layer of ST-BIF neurons behind accumulate-only synapses."""

    name: str
    source_op: str
    n_in: int
    n_out: int
    weight: np.ndarray  # (n_out, n_in) int64: added (or subtracted) per input spike
    v_init: np.ndarray  # (n_out,) int64: v0 + bias, the membrane at t = 0
    theta: int
    smin: int
    smax: int
    zero_point: int  # output code = tracer + zero_point
    out_dtype: IntType

    @property
    def levels(self) -> int:
        return self.smax - self.smin + 1

    def v_bounds(self, in_lo: int, in_hi: int) -> tuple[int, int]:
        """Exact bounds of the membrane over any run: initial value, plus any input within
        [in_lo, in_hi] per synapse, minus theta times any tracer in [smin, smax]."""
        w = self.weight
        top = np.maximum(w * in_hi, w * in_lo).sum(axis=1) + self.v_init
        bottom = np.minimum(w * in_hi, w * in_lo).sum(axis=1) + self.v_init
        return (
            int(bottom.min()) - self.theta * max(self.smax, 0),
            int(top.max()) - self.theta * min(self.smin, 0),
        )

    def v_bits(self, in_lo: int, in_hi: int) -> int:
        return signed_bits(*self.v_bounds(in_lo, in_hi))


@dataclass(frozen=True, eq=False)
class StbifNetwork:
    """A chain of ST-BIF layers; the input is ``codes - in_zero_point`` at t = 0."""

    name: str
    layers: tuple[StbifLayer, ...]
    in_dtype: IntType
    in_zero_point: int
    input_tensor: str
    output_tensor: str

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def out_dtype(self) -> IntType:
        return self.layers[-1].out_dtype

    def input_range(self, index: int) -> tuple[int, int]:
        """Range of what layer ``index`` integrates per synapse: the input minus its zero
        point for layer 0, the previous tracer otherwise."""
        if index == 0:
            return (self.in_dtype.min - self.in_zero_point, self.in_dtype.max - self.in_zero_point)
        prev = self.layers[index - 1]
        return prev.smin, prev.smax

    def t_max(self) -> int:
        """A proven bound on the time steps to silence (layer-sequential schedule): layer l's
        last input arrives by the step layer l-1 falls silent; after it, each neuron moves its
        tracer monotonically, one level a step, so it is silent within ``levels - 1`` more
        steps. One more step observes the silence."""
        return sum(layer.levels - 1 for layer in self.layers) + 1


def _toeplitz(node) -> np.ndarray:
    """A ``conv`` node as a dense (Cout*M, C*H*W) weight matrix (zero where no tap)."""
    im2col = node.weights["im2col"]
    groups, m_out, kg = im2col.shape
    w = node.weights["weight"].reshape(groups, -1, kg)
    ng = w.shape[1]
    n_in = int(np.prod(node.attrs["input_shape"]))
    dense = np.zeros((groups * ng, m_out, n_in), np.int64)
    for g in range(groups):
        for m in range(m_out):
            for k in range(kg):
                src = im2col[g, m, k]
                if src >= 0:
                    dense[g * ng : (g + 1) * ng, m, src] += w[g, :, k]
    return dense.reshape(groups * ng * m_out, n_in)


def convert(graph: Graph) -> StbifNetwork:
    """The ST-BIF network whose settled tracers plus zero points equal ``graph``'s codes."""
    layers = []
    prev = graph.inputs[0]
    for node in graph.nodes:
        where = f"{node.describe()}"
        if node.op not in ("dense", "conv"):
            raise ModelError(
                f"{where}: op '{node.op}' has no ST-BIF form; the snn engine "
                f"converts chains of MatMul/Gemm/Conv layers with a quantized "
                f"(QuantizeLinear or Quant) output"
            )
        if node.attrs.get("tokens", 1) > 1:
            raise ModelError(
                f"{where}: a layer on a sequence of {node.attrs['tokens']} tokens has no "
                f"ST-BIF form yet; the snn engine converts one vector per sample"
            )
        if node.inputs[0] != prev:
            raise ModelError(
                f"{where}: the snn engine runs a chain of layers; this node does "
                f"not take the previous layer's output"
            )
        if node.attrs.get("sign"):
            raise ModelError(
                f"{where}: a bipolar (sign) output has no ST-BIF form; quantize "
                f"the activation to 2 or more bits instead"
            )
        rounding = node.attrs.get("rounding", "half_up")
        if rounding not in ("half_up", "floor", "ceil"):
            raise ModelError(
                f"{where}: requantization rounds '{rounding}'; an ST-BIF neuron "
                f"rounds half up, floor or ceil (quantize with round-half-up, "
                f"the nnloom default, to convert this layer)"
            )
        x_t, y_t = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
        zp_out = int(node.attrs["output_zero_point"])
        smin, smax = int(node.attrs["lo"]) - zp_out, int(node.attrs["hi"]) - zp_out
        if not smin <= 0 <= smax:
            raise ModelError(
                f"{where}: output range [{node.attrs['lo']}, {node.attrs['hi']}] "
                f"does not contain the zero point {zp_out}; an ST-BIF tracer "
                f"starts at 0, so the zero point must be a valid code"
            )
        if layers and int(node.attrs["input_zero_point"]) != layers[-1].zero_point:
            raise ModelError(
                f"{where}: input zero point {node.attrs['input_zero_point']} "
                f"differs from the previous layer's output zero point "
                f"{layers[-1].zero_point}"
            )
        shift = int(node.attrs["shift"])
        m = np.asarray(node.weights["multiplier"], np.int64).reshape(-1)
        if m.size == 1:
            m = np.full(y_t.shape[0] if node.op == "conv" else y_t.size, int(m[0]))
        e = shift
        for value in m.tolist():
            if value:
                e = min(e, (value & -value).bit_length() - 1)
        r = ROUND_CONSTANT(rounding, shift)
        mm = m >> e
        if node.op == "conv":
            w = _toeplitz(node)
            per = w.shape[0] // mm.size
            mm_rows = np.repeat(mm, per)
            bias = np.repeat(np.asarray(node.weights["bias"], np.int64), per)
        else:
            w = np.asarray(node.weights["weight"], np.int64).reshape(y_t.size, -1)
            mm_rows = mm
            bias = np.asarray(node.weights["bias"], np.int64)
        if w.shape != (y_t.size, x_t.size):
            raise ModelError(
                f"{where}: weight shape {w.shape} does not map {x_t.size} inputs "
                f"to {y_t.size} outputs"
            )
        layers.append(
            StbifLayer(
                name=node.name,
                source_op=node.source_op,
                n_in=x_t.size,
                n_out=y_t.size,
                weight=w * mm_rows[:, None],
                v_init=(r >> e) + bias * mm_rows,
                theta=1 << (shift - e),
                smin=smin,
                smax=smax,
                zero_point=zp_out,
                out_dtype=y_t.dtype,
            )
        )
        prev = node.outputs[0]
    if not layers:
        raise ModelError(f"model '{graph.name}' has no layers to convert")
    if prev != graph.outputs[0]:
        raise ModelError(f"model '{graph.name}': the output is not the last layer's")
    x_t = graph.tensor(graph.inputs[0])
    return StbifNetwork(
        name=graph.name,
        layers=tuple(layers),
        in_dtype=x_t.dtype,
        in_zero_point=int(graph.nodes[0].attrs["input_zero_point"]),
        input_tensor=graph.inputs[0],
        output_tensor=graph.outputs[0],
    )
