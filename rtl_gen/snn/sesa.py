"""``SesaUnit``: spike-equivalent self-attention (SpikeZIP-TF's SESA, ``frontends.snn.units``'
ST-BIF unit behind a ``matmul`` synapse of two spiking activations: Q x K^T, and A x V whose
A, the differential softmax's output, moves by several codes a step) as hardware.

Memories: the tracers ``S_A`` (the queries, (H, M, K) per head) and ``S_B`` (the keys
transposed, (H, K, N)), the integer accumulator ``P = S_A @ S_B`` (H, M, N) and the output
tracers ``S``. A time step:

1. the step's A events, one at a time (``ev_valid``, ``ev_b`` low): event ``(h, i, k)``
   with sign ``neg`` and bit ``shift`` adds (or subtracts) the B tracer row ``S_B[h, k, :]``
   shifted left by ``shift`` into ``P[h, i, :]``, one element a cycle, then ``S_A[h, i, k]
   += +-2**shift``. A spike is one event of bit 0; a multi-bit increment ``d`` is one event
   per set bit of ``|d|`` (``planes``): shifts and adds only, no multiplier;
2. the step's B events (``ev_b`` high, bit planes alike): ``(h, k, j)`` adds the *updated*
   A tracer column ``S_A[h, :, k]`` into ``P[h, :, j]``, then ``S_B[h, k, j] += +-2**shift``.
   Taking A's events against the old ``S_B`` and B's against the new ``S_A`` gives
   ``dA S_B + S_A' dB`` = ``S_A' dB + dA S_B' - dA dB``: coincident events subtract their
   product with no third pass;
3. ``sweep``: every output neuron, one a cycle, takes one ST-BIF step on
   ``H = v0 + P * m - theta * S`` (the membrane's invariant, so no membrane memory; ``P * m``
   is a sum of shifted copies of ``P``, ``theta`` a power of two: no multiplier), spike on
   ``spike``/``spike_valid`` two cycles after its read.

An event names its addresses as the producer's event list would store them (``own``: the
tracer it bumps; ``p_base``, ``o_base``: where its row/column starts in ``P`` and in the other
side's tracers; the strides are 1 for A, ``N`` and ``K`` for B), so nothing multiplies
indices. ``clear`` zeroes every memory (``clear_cycles``) between inferences.

Cycles: an A event (bit plane) ``N + 1``, a B event ``M + 1``, a sweep ``H * M * N + 1``
(``busy`` high meanwhile), as ``step_cycles`` counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import signed_bits

if TYPE_CHECKING:
    from frontends.snn.units import StbifUnit

__all__ = ["SesaUnit"]


def _times_constant(m: Module, x, k: int, width: int) -> Signal:
    """``x * k`` for a constant ``k >= 0`` as a sum of shifted copies of ``x``."""
    out = Signal(signed(width))
    total = 0
    for i in range(k.bit_length()):
        if k >> i & 1:
            total = total + (x << i)
    m.d.comb += out.eq(total)
    return out


class SesaUnit(wiring.Component):
    """SESA of one ``matmul`` unit of two spiking inputs; ``ranges`` are the two inputs'
    tracer ranges, ``shift_bits`` the width of an event's bit index (0: both inputs move by
    -1, 0 or +1 a step)."""

    def __init__(
        self,
        unit: StbifUnit,
        ranges: tuple[tuple[int, int], tuple[int, int]],
        *,
        shift_bits: int = 0,
    ):
        syn = unit.synapse
        if syn.kind != "matmul":
            raise ValueError(f"{unit.node.describe()}: not a matmul of two activations")
        a_shape, b_shape = syn.attrs["a_shape"], syn.attrs["b_shape"]
        if len(a_shape) != 3 or len(b_shape) != 3 or a_shape[0] != b_shape[0]:
            raise ValueError(f"{unit.node.describe()}: SESA takes (H, M, K) x (H, K, N) heads")
        if np.unique(unit.v_init).size != 1:
            raise ValueError(f"{unit.node.describe()}: a matmul has no bias")
        self.unit = unit
        self.heads, self.m_rows, self.k = a_shape
        self.n_cols = b_shape[2]
        self.mult = int(syn.weights["multiplier"])
        if self.mult < 0:
            raise ValueError(f"{unit.node.describe()}: negative multiplier")
        self.v0 = int(np.asarray(unit.v_init).reshape(-1)[0])
        (alo, ahi), (blo, bhi) = ranges
        self.a_bits, self.b_bits = signed_bits(alo, ahi), signed_bits(blo, bhi)
        corners = [x * y for x in (alo, ahi) for y in (blo, bhi)]
        self.p_bits = signed_bits(self.k * min(corners), self.k * max(corners))
        self.s_bits = signed_bits(min(unit.smin, 0), max(unit.smax, 0))
        h_lo = self.v0 + self.k * min(corners) * self.mult - unit.theta * max(unit.smax, 0)
        h_hi = self.v0 + self.k * max(corners) * self.mult - unit.theta * min(unit.smin, 0)
        self.h_bits = signed_bits(h_lo, h_hi)
        self.n_a = self.heads * self.m_rows * self.k
        self.n_b = self.heads * self.k * self.n_cols
        self.n_p = self.heads * self.m_rows * self.n_cols
        span = max(self.n_a, self.n_b, self.n_p)
        self.shift_bits = shift_bits
        super().__init__(
            {
                "ev_valid": In(1),
                "ev_b": In(1),
                "ev_neg": In(1),
                "ev_own": In(range(span)),
                "ev_p_base": In(range(self.n_p)),
                "ev_o_base": In(range(span)),
                "ev_shift": In(max(1, shift_bits)),
                "sweep": In(1),
                "clear": In(1),
                "busy": Out(1),
                "spike": Out(signed(2)),
                "spike_valid": Out(1),
            }
        )

    @property
    def clear_cycles(self) -> int:
        return max(self.n_a, self.n_b, self.n_p) + 1

    def step_cycles(self, a_events: int, b_events: int) -> int:
        return a_events * (self.n_cols + 1) + b_events * (self.m_rows + 1) + self.n_p + 1

    @staticmethod
    def planes(value: int) -> list[tuple[bool, int]]:
        """The events of an increment ``value``: ``(neg, shift)`` per set bit of ``|value|``,
        lowest first."""
        mag = abs(int(value))
        return [(value < 0, b) for b in range(mag.bit_length()) if mag >> b & 1]

    def event(self, side_b: bool, index: tuple[int, int, int]) -> dict:
        """The port values of an event at ``index`` ((h, i, k) for A, (h, k, j) for B)."""
        h, x, y = index
        t, d = self.m_rows, self.k
        if not side_b:
            own = (h * t + x) * d + y
            return dict(own=own, p_base=(h * t + x) * self.n_cols, o_base=(h * d + y) * self.n_cols)
        own = (h * d + x) * self.n_cols + y
        return dict(own=own, p_base=h * t * self.n_cols + y, o_base=h * t * d + x)

    def elaborate(self, platform) -> Module:
        m = Module()
        u = self.unit
        span = max(self.n_a, self.n_b, self.n_p)
        mems = {
            "sa": Memory(shape=signed(self.a_bits), depth=self.n_a, init=[]),
            "sb": Memory(shape=signed(self.b_bits), depth=self.n_b, init=[]),
            "p": Memory(shape=signed(self.p_bits), depth=self.n_p, init=[]),
            "s": Memory(shape=signed(self.s_bits), depth=self.n_p, init=[]),
        }
        for name, mem in mems.items():
            m.submodules[name] = mem
        sa_loop, sb_loop = mems["sa"].read_port(), mems["sb"].read_port()
        sa_own, sb_own = mems["sa"].read_port(), mems["sb"].read_port()
        p_rd, s_rd = mems["p"].read_port(), mems["s"].read_port()
        sa_wr, sb_wr = mems["sa"].write_port(), mems["sb"].write_port()
        p_wr, s_wr = mems["p"].write_port(), mems["s"].write_port()

        # the running loop: issue (read) in stage 0, write back in stage 1
        side_b, neg = Signal(), Signal()
        shift = Signal(max(1, self.shift_bits))
        own = Signal(range(span))
        pa = Signal(range(self.n_p))
        oa = Signal(range(span))
        left = Signal(range(span + 1))
        mode = Signal(2)  # 0 idle, 1 event loop, 2 sweep, 3 clear
        bump = Signal()  # the cycle after an event's loop: its own tracer is written
        m.d.comb += self.busy.eq(mode != 0)
        m.d.sync += bump.eq(0)
        with m.Switch(mode):
            with m.Case(0):
                with m.If(self.ev_valid):
                    m.d.sync += [
                        mode.eq(1),
                        side_b.eq(self.ev_b),
                        neg.eq(self.ev_neg),
                        shift.eq(self.ev_shift if self.shift_bits else 0),
                        own.eq(self.ev_own),
                        pa.eq(self.ev_p_base),
                        oa.eq(self.ev_o_base),
                        left.eq(Mux(self.ev_b, self.m_rows, self.n_cols)),
                    ]
                with m.Elif(self.sweep):
                    m.d.sync += [mode.eq(2), pa.eq(0), left.eq(self.n_p)]
                with m.Elif(self.clear):
                    m.d.sync += [mode.eq(3), oa.eq(0), left.eq(span)]
            with m.Case(1):
                m.d.sync += [
                    pa.eq(pa + Mux(side_b, self.n_cols, 1)),
                    oa.eq(oa + Mux(side_b, self.k, 1)),
                    left.eq(left - 1),
                ]
                with m.If(left == 1):
                    m.d.sync += [mode.eq(0), bump.eq(1)]
            with m.Case(2):
                m.d.sync += [pa.eq(pa + 1), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += mode.eq(0)
            with m.Case(3):
                m.d.sync += [oa.eq(oa + 1), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += mode.eq(0)
        m.d.comb += [
            p_rd.addr.eq(pa),
            s_rd.addr.eq(pa),
            sa_loop.addr.eq(oa),
            sb_loop.addr.eq(oa),
            sa_own.addr.eq(own),
            sb_own.addr.eq(own),
        ]

        loop1, sweep1, clear1 = Signal(), Signal(), Signal()
        pa1 = Signal(range(self.n_p))
        oa1 = Signal(range(span))
        m.d.sync += [
            loop1.eq(mode == 1),
            sweep1.eq(mode == 2),
            clear1.eq(mode == 3),
            pa1.eq(pa),
            oa1.eq(oa),
        ]
        # an A event adds the B tracers, a B event the A tracers
        other = Mux(side_b, sa_loop.data, sb_loop.data)
        if self.shift_bits:
            other = other << shift
        signed_other = Mux(neg, -other, other)
        # the sweep: one ST-BIF step on H = v0 + P*m - theta*S
        pm = _times_constant(m, p_rd.data, self.mult, self.h_bits)
        h = Signal(signed(self.h_bits))
        m.d.comb += h.eq(self.v0 + pm - (s_rd.data << (u.theta.bit_length() - 1)))
        up = (h >= u.theta) & (s_rd.data < u.smax)
        down = (h < 0) & (s_rd.data > u.smin)
        spike = Signal(signed(2))
        m.d.comb += spike.eq(Mux(up, 1, Mux(down, -1, 0)))
        one = Signal(signed((1 << self.shift_bits) + 2))  # 2**shift, shift < 2**shift_bits
        m.d.comb += one.eq(Const(1, 2) << shift if self.shift_bits else 1)
        own_step = Mux(neg, -one, one)
        m.d.comb += [
            p_wr.addr.eq(Mux(clear1, oa1, pa1)),
            p_wr.data.eq(Mux(clear1, 0, p_rd.data + signed_other)),
            p_wr.en.eq(loop1 | clear1),
            s_wr.addr.eq(Mux(clear1, oa1, pa1)),
            s_wr.data.eq(Mux(clear1, 0, s_rd.data + spike)),
            s_wr.en.eq(sweep1 | clear1),
            sa_wr.addr.eq(Mux(clear1, oa1, own)),
            sa_wr.data.eq(Mux(clear1, 0, sa_own.data + own_step)),
            sa_wr.en.eq(clear1 | (bump & ~side_b)),
            sb_wr.addr.eq(Mux(clear1, oa1, own)),
            sb_wr.data.eq(Mux(clear1, 0, sb_own.data + own_step)),
            sb_wr.en.eq(clear1 | (bump & side_b)),
        ]
        m.d.sync += [self.spike.eq(Mux(sweep1, spike, 0)), self.spike_valid.eq(sweep1)]
        return m
