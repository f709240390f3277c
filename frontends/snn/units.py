"""The units of a spiking graph (SpikeZIP-TF, spec ``snn.md`` A.3), each one time step at a
time, all in integers.

Every tensor of the graph is carried as a stream of integer increments, one array per time
step, in code units relative to the tensor's zero point: once the network is silent, the sum
of a tensor's increments plus its zero point is the quantized ANN's code for it. A unit turns
its inputs' increments of step ``t`` into its output's increments of step ``t``:

``StbifUnit``
    ST-BIF neurons (``neurons.stbif_step``) behind a linear synapse; the output increments
    are the spikes (-1, 0, +1). The node's requantization ``clamp(((acc * m + r) >> shift) +
    zp, lo, hi)`` becomes the neuron's threshold ``2**(shift - e)`` and initial membrane
    ``r >> e`` (plus bias), the multipliers divided by ``2**e`` (``e``: the trailing zero bits
    they share, at most ``shift``) scaling the synapse (``convert`` states why this is
    exact). Synapses: ``dense`` (per token), ``conv`` (its Toeplitz matrix), ``avgpool``
    (window sums), ``add`` (the residual increment adder: both branches' increments scaled,
    a constant operand injected at t = 0), ``requant`` and ``concat`` (scaled increments),
    and ``matmul`` of two activations as SESA (below).
``DifferentialUnit``
    ``X += in; Y = f(X); out = Y - Y_prev`` with ``f`` the op's exact integer definition
    (``frontends.reference``): max-pool (the differential max), row softmax, LayerNorm and
    element-wise code tables; also a requantizing op that rounds half to even (ONNX's
    QuantizeLinear: adds, requants, pools, concats of onnxruntime QDQ models), which no
    ST-BIF neuron computes (its settled tracer is a floor of a linear form; ties to even are
    not). The increments are multi-bit; their sum telescopes to
    ``f(X_final)``. Only samples whose input changed are recomputed (the others output 0).
``MoveUnit``
    ``transpose`` and ``slice``: data movement, applied to the increments.

SESA (spike-equivalent self-attention, A.3): for ``acc = A @ B`` of two activations with
tracers ``S_A``, ``S_B`` (the sums of their increments, this step's included), the step's
increment is ``S_A @ dB + dA @ S_B - dA @ dB``, which sums to ``S_A @ S_B`` over the run;
with spike inputs each term adds or subtracts tracer rows/columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frontends import reference
from frontends.ir import Node

from .neurons import stbif_step

__all__ = ["Synapse", "StbifUnit", "DifferentialUnit", "MoveUnit"]


def _exact_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` of integers, through float64 (BLAS) when every partial sum is below 2**53 and
    so exact, else in int64."""
    bound = float(np.abs(x).max(initial=0)) * float(np.abs(w).sum(axis=0).max(initial=0))
    if bound < 2.0**53:
        return np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    return x @ w


@dataclass(frozen=True, eq=False)
class Synapse:
    """The linear (SESA: bilinear) map from a unit's input increments to its membrane input.

    ``kind`` is the source op; ``weights`` its integer constants, already divided by the
    shared power of two; ``current(state, dx)`` returns (B, *out_shape).
    """

    kind: str
    out_shape: tuple[int, ...]
    weights: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def init(self, batch: int) -> dict:
        if self.kind != "matmul":
            return {}
        a, b = self.attrs["a_shape"], self.attrs["b_shape"]
        return {
            "sa": np.zeros((batch, *a), np.int64),
            "sb": np.zeros((batch, *b), np.int64),
        }

    def current(self, state: dict, dx: list[np.ndarray]) -> np.ndarray:
        batch = len(dx[0])
        w, at = self.weights, self.attrs
        if self.kind == "dense":
            x = (
                dx[0].reshape(batch, -1)
                if at["tokens"] == 1
                else dx[0].reshape(batch, at["tokens"], -1)
            )
            y = _exact_matmul(x, w["weight"].T)
        elif self.kind == "conv":
            y = _exact_matmul(dx[0].reshape(batch, -1), w["weight"].T)
        elif self.kind == "avgpool":
            y = reference._gather(dx[0], w["im2col"], 0).sum(axis=-1) * w["multiplier"]
        elif self.kind == "add":
            m = w["multiplier"]
            b = dx[1].reshape(batch, *at["input_shape"]) if len(dx) > 1 else 0
            y = dx[0].reshape(batch, *at["input_shape"]) * m[0] + b * m[1]
        elif self.kind == "requant":
            y = dx[0] * w["multiplier"]
        elif self.kind == "concat":
            parts = [
                d.reshape(batch, *s) * m for d, s, m in zip(dx, at["input_shapes"], w["multiplier"])
            ]
            y = np.concatenate(parts, axis=at["axis"] + 1)
        elif self.kind == "matmul":
            da = dx[0].reshape(state["sa"].shape)
            db = dx[1].reshape(state["sb"].shape)
            state["sa"] += da
            state["sb"] += db
            sa, sb = state["sa"], state["sb"]
            pad = len(at["b_shape"]) - len(at["a_shape"])
            if pad > 0:
                sa, da = (z.reshape((batch,) + (1,) * pad + z.shape[1:]) for z in (sa, da))
            elif pad < 0:
                sb, db = (z.reshape((batch,) + (1,) * -pad + z.shape[1:]) for z in (sb, db))
            y = (np.matmul(sa, db) + np.matmul(da, sb) - np.matmul(da, db)) * w["multiplier"]
        else:  # pragma: no cover - convert_graph builds only the kinds above
            raise AssertionError(self.kind)
        return y.reshape(batch, *self.out_shape)


@dataclass(frozen=True, eq=False)
class StbifUnit:
    """ST-BIF neurons of one node behind its synapse: the node's output code is
    ``zero_point + tracer`` once silent."""

    node: Node
    synapse: Synapse
    v_init: np.ndarray  # broadcast against (B, *shape): r >> e plus bias (and a constant)
    theta: int
    smin: int
    smax: int

    @property
    def levels(self) -> int:
        return self.smax - self.smin + 1

    def init(self, batch: int) -> dict:
        shape = self.synapse.out_shape
        return {
            "v": np.broadcast_to(self.v_init, (batch, *shape)).astype(np.int64),
            "s": np.zeros((batch, *shape), np.int64),
            "syn": self.synapse.init(batch),
        }

    def step(self, state: dict, dx: list[np.ndarray]) -> np.ndarray:
        x = self.synapse.current(state["syn"], dx)
        state["v"], state["s"], spike = stbif_step(
            state["v"], state["s"], x, theta=self.theta, smin=self.smin, smax=self.smax
        )
        return spike


@dataclass(frozen=True, eq=False)
class DifferentialUnit:
    """``X += in; Y = f(X); out = Y - Y_prev`` with ``f`` = ``reference.OPS[node.op]`` on
    codes ``X + in_zero_point`` (one ``X`` per input), ``Y`` relative to ``out_zero_point``."""

    node: Node
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    in_zero_points: tuple[int, ...]
    out_zero_point: int

    def init(self, batch: int) -> dict:
        return {
            "x": [np.zeros((batch, *shape), np.int64) for shape in self.in_shapes],
            "y": np.zeros((batch, *self.out_shape), np.int64),
            "first": True,
        }

    def step(self, state: dict, dx: list[np.ndarray]) -> np.ndarray:
        changed = np.full(len(dx[0]), state["first"])
        state["first"] = False
        for x, d in zip(state["x"], dx):
            d = d.reshape(x.shape)
            x += d
            changed |= d.reshape(len(d), -1).any(axis=1)
        out = np.zeros_like(state["y"])
        if changed.any():
            codes = [x[changed] + z for x, z in zip(state["x"], self.in_zero_points)]
            y = reference.OPS[self.node.op](self.node, *codes)
            y = np.asarray(y, np.int64).reshape((len(codes[0]), *self.out_shape))
            y -= self.out_zero_point
            out[changed] = y - state["y"][changed]
            state["y"][changed] = y
        return out


@dataclass(frozen=True, eq=False)
class MoveUnit:
    """``transpose`` / ``slice``: the node's data movement applied to the increments."""

    node: Node
    out_shape: tuple[int, ...]

    def init(self, batch: int) -> dict:
        return {}

    def step(self, state: dict, dx: list[np.ndarray]) -> np.ndarray:
        y = reference.OPS[self.node.op](self.node, dx[0])
        return np.ascontiguousarray(y).reshape(len(dx[0]), *self.out_shape)
