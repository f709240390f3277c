"""``IfPlan``: a NIR IF/LIF/CubaLIF network (``frontends.snn.nir_import``) on ``SnnEngine``.

The engine runs in its fixed-step mode: each of ``steps`` time steps it takes one input spike
vector (``n_in`` elements, 0 or 1) from the stream, integrates it and every layer in turn,
and after the last step streams out the last layer's spike counts (an LI readout's
membranes, signed, ``v_bits`` wide). The synapses are the network's: a convolution (with a
non-overlapping sum pool before it) as its shared kernel behind ``ConvTaps``, anything else
as an integer matrix (pools folded); neurons are IF, LIF or CubaLIF with the network's
comparator and reset. ``reference()`` is ``run_if_network``, which uses the dense matrices
only, so a wrong tap address shows as a different count.

Widths are derived, never guessed, from the largest input of one step ``x_max`` (every
synapse plus the bias): IF/LIF membranes from ``steps * (x_max + 1)``; a CubaLIF current from
``(x_max + 1) * min(steps, 1 / (1 - alpha))`` and its membrane from ``(I_max + 1) *
min(steps, 1 / (1 - beta)) + |theta| + |v_reset|`` (each leak rounds by less than one), so
neither register can wrap, and inputs that spike every step reach the top bit of both
(``tests.rtl_gen.snn.test_if_engine``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import signed_bits
from frontends.ir import IntType
from frontends.snn.nir_import import IfNetwork, run_if_network

if TYPE_CHECKING:
    from .engine import SnnEngine

__all__ = ["IfPlan"]


def _memory(steps: int, shift: int | None, beta: int | None, beta_bits: int) -> int:
    """How many steps' inputs a decaying state can hold at most: ``min(steps, 1 / (1 -
    factor))`` for the factor ``1 - 2**-shift`` or ``beta / 2**beta_bits``."""
    if shift is not None:
        return min(steps, 1 << shift)
    if beta >= 1 << beta_bits:
        return steps
    return min(steps, -(-(1 << beta_bits) // ((1 << beta_bits) - beta)))


@dataclass(frozen=True, eq=False)
class _IfArrayLayer:
    """An ``IfLayer`` in the terms ``StbifArray`` reads."""

    name: str
    source_op: str
    weight: np.ndarray
    bias: np.ndarray
    v_init: np.ndarray
    theta: int
    v_reset: int
    smin: int
    smax: int
    cmp: str
    reset: str
    zero_point: int = 0
    kind: str = "if"
    leak_shift: int | None = None
    beta: int | None = None
    beta_bits: int = 0
    conv: object = None  # ConvSynapse: the synapses as a shared kernel
    syn_shift: int | None = None  # CubaLIF current decay
    alpha: int | None = None

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class _Net:
    name: str
    layers: tuple
    n_in: int
    n_out: int
    in_dtype: IntType
    out_dtype: IntType
    in_zero_point: int = 0
    input_tensor: str = "spikes"
    output_tensor: str = "counts"


@dataclass(frozen=True, eq=False)
class IfPlan:
    source: IfNetwork
    network: _Net
    t_max: int
    v_bits: tuple[int, ...]
    mode: str = "if"
    mag_bits: int = 1
    shift_bits: int = 0
    i_bits: tuple[int, ...] = ()  # CubaLIF current widths (0: no current memory)

    @classmethod
    def from_network(cls, net: IfNetwork, *, steps: int) -> IfPlan:
        if not 1 <= steps <= 255:
            raise ModelError(
                f"NIR network '{net.name}': {steps} time steps; the engine runs "
                f"1..255 (spike counts leave as bytes)"
            )
        layers, v_bits, i_bits = [], [], []
        names = {"if": "IF", "lif": "LIF", "cubalif": "CubaLIF", "li": "LI"}
        for layer in net.layers:
            kind = names[layer.kind]
            lif = layer.kind != "if"
            for what, values in (("v_threshold", layer.theta), ("v_reset", layer.v_reset)):
                if np.ptp(values) != 0:
                    raise ModelError(
                        f"NIR node '{layer.name}' ({kind}): {what} differs "
                        f"between neurons; the engine takes one per layer"
                    )
            theta, v_reset = int(layer.theta[0]), int(layer.v_reset[0])
            layers.append(
                _IfArrayLayer(
                    name=layer.name,
                    source_op=f"{kind}<{layer.source}>",
                    weight=layer.weight,
                    bias=layer.bias,
                    v_init=np.zeros(layer.n_out, np.int64),
                    theta=theta,
                    v_reset=v_reset,
                    smin=0,
                    smax=steps,
                    cmp=net.options.cmp,
                    reset=net.options.reset,
                    kind=layer.kind,
                    leak_shift=layer.leak_shift,
                    beta=layer.beta,
                    beta_bits=net.options.beta_bits
                    if layer.beta is not None or layer.alpha is not None
                    else 0,
                    conv=layer.conv,
                    syn_shift=layer.syn_shift,
                    alpha=layer.alpha,
                )
            )
            # the largest input of one step: every synapse and the bias
            x_max = int((np.abs(layer.weight).sum(axis=1) + np.abs(layer.bias)).max())
            if layer.kind == "cubalif":
                bits = net.options.beta_bits
                # |I_t| <= (x_max + 1) * min(t, 1 / (1 - alpha)): the leak rounds by < 1
                i_bound = (x_max + 1) * _memory(steps, layer.syn_shift, layer.alpha, bits)
                # |H_t| <= (i_bound + 1) * min(t, 1 / (1 - beta)) + |theta| + |v_reset|
                bound = (
                    (i_bound + 1) * _memory(steps, layer.leak_shift, layer.beta, bits)
                    + abs(theta)
                    + abs(v_reset)
                )
                i_bits.append(signed_bits(-i_bound, i_bound))
            else:
                # |leak(V)| <= |V| + 1 (round half up), so a LIF membrane gains at most a step
                bound = steps * (x_max + lif) + abs(theta) + abs(v_reset)
                i_bits.append(0)
            v_bits.append(signed_bits(-bound, bound))
        if net.layers[-1].kind == "li":  # the output is the LI membranes
            out_dtype = IntType(v_bits[-1], True)
        else:
            out_dtype = IntType(max(8, int(steps).bit_length()), False)
        inner = _Net(
            net.name,
            tuple(layers),
            net.n_in,
            net.layers[-1].n_out,
            IntType(8, False),
            out_dtype,
            output_tensor="membranes" if net.layers[-1].kind == "li" else "counts",
        )
        return cls(net, inner, steps, tuple(v_bits), i_bits=tuple(i_bits))

    @property
    def in_dtype(self) -> IntType:
        return self.network.in_dtype

    @property
    def out_dtype(self) -> IntType:
        return self.network.out_dtype

    @property
    def n_in(self) -> int:
        return self.network.n_in

    @property
    def n_out(self) -> int:
        return self.network.n_out

    def reference(self, spikes: np.ndarray) -> np.ndarray:
        """Spike counts of the last layer (its membranes, for an LI readout) for ``spikes``
        (B, steps * n_in)."""
        spikes = np.asarray(spikes).reshape(len(spikes), self.t_max, self.n_in)
        return run_if_network(self.source, spikes)[0]

    def create(self) -> SnnEngine:
        from .engine import SnnEngine

        return SnnEngine(self)
