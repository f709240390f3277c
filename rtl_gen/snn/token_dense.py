"""``TokenDense``: the ST-BIF neurons of a ``dense`` unit on a token sequence (the same weight
matrix on every token; ``tokens = 1`` is a plain dense layer) behind accumulate-only synapses.

Memories, ``lanes`` neurons a word (``lanes`` divides ``n_out``): the weights column-major
(input ``j``'s row to all ``n_out`` neurons at words ``j * n_out / lanes ...``), the initial
membranes (``v0 + bias``, per token), the membranes ``V`` and tracers ``S`` of the ``tokens *
n_out`` neurons (token-major). ``words = tokens * n_out / lanes``.

Commands (a one-cycle pulse; ``busy`` is high from the next cycle until done):

- ``init``: ``V = v_init``, ``S = 0`` for every neuron; ``words`` busy cycles;
- ``row`` with ``nbase`` (``token * n_out / lanes``), ``wbase`` (``j * n_out / lanes``),
  ``neg``, ``shift``: one input event, ``V[nbase + n] += (-1)**neg * (W[wbase + n] << shift)``
  for every ``n``, ``lanes`` neurons a cycle, adds or subtracts, never a multiply (a
  multi-bit input increment is one event per set bit); ``n_out / lanes`` busy cycles;
- ``sweep``: one ST-BIF step of every neuron (``frontends.snn.neurons.stbif_step``, the
  inputs already in ``V``), word ``w``'s ``lanes`` spikes on ``spike`` (lane ``l`` in bits
  ``2l, 2l+1``)/``spike_valid`` one cycle after its read, in order; ``words`` busy cycles.

``s_addr``/``s_data`` read the tracers (one cycle) while idle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import signed_bits

if TYPE_CHECKING:
    from frontends.snn.units import StbifUnit

__all__ = ["TokenDense"]


class TokenDense(wiring.Component):
    """The ST-BIF dense unit ``unit`` (``synapse.kind == "dense"``); ``in_range`` bounds its
    input's tracer (the summed increments), ``shift_bits`` the width of an event's bit
    index (0: spikes only)."""

    def __init__(
        self, unit: StbifUnit, in_range: tuple[int, int], *, shift_bits: int = 0, lanes: int = 1
    ):
        syn = unit.synapse
        if syn.kind != "dense":
            raise ValueError(f"{unit.node.describe()}: not a dense unit")
        self.unit = unit
        self.weight = np.asarray(syn.weights["weight"], np.int64)  # (n_out, n_in)
        self.n_out, self.n_in = self.weight.shape
        self.tokens = int(syn.attrs.get("tokens", 1))
        self.n = self.tokens * self.n_out
        if self.n_out < 2:
            raise ValueError(f"{unit.node.describe()}: a token dense unit needs 2 outputs")
        if lanes < 1 or lanes & (lanes - 1) or self.n_out % lanes:
            raise ValueError(f"{unit.node.describe()}: {lanes} lanes do not divide {self.n_out}")
        self.lanes = lanes
        self.lane_bits = lanes.bit_length() - 1
        self.words = self.n // lanes
        self.row_words = self.n_out // lanes
        self.v_init = np.broadcast_to(unit.v_init, syn.out_shape).reshape(-1).astype(np.int64)
        lo, hi = in_range
        w = self.weight
        top = np.maximum(w * hi, w * lo).sum(axis=1).max()
        bottom = np.minimum(w * hi, w * lo).sum(axis=1).min()
        span = unit.theta * (max(abs(unit.smin), abs(unit.smax)) + 1)
        self.v_bits = signed_bits(
            int(self.v_init.min() + bottom - span), int(self.v_init.max() + top + span)
        )
        self.w_bits = signed_bits(int(w.min()), int(w.max()))
        self.s_bits = signed_bits(min(unit.smin, 0), max(unit.smax, 0))
        self.shift_bits = shift_bits
        super().__init__(
            {
                "init": In(1),
                "row": In(1),
                "sweep": In(1),
                "nbase": In(range(self.words)),
                "wbase": In(range(max(self.n_in * self.row_words, 2))),
                "neg": In(1),
                "shift": In(max(1, shift_bits)),
                "busy": Out(1),
                "spike": Out(2 * lanes),
                "spike_valid": Out(1),
                "s_addr": In(range(self.n)),
                "s_data": Out(signed(self.s_bits)),
            }
        )

    def _pack(self, values: np.ndarray, bits: int) -> list[int]:
        """``lanes`` values a word, lane ``l`` in bits ``l * bits ...``."""
        words = np.asarray(values, np.int64).reshape(-1, self.lanes) & ((1 << bits) - 1)
        return [sum(int(v) << (bits * i) for i, v in enumerate(w)) for w in words]

    def elaborate(self, platform) -> Module:
        m = Module()
        u = self.unit
        lanes, words, vb, sb = self.lanes, self.words, self.v_bits, self.s_bits
        w_img = self._pack(self.weight.T.reshape(-1), self.w_bits)  # column-major
        w_rom = Memory(shape=lanes * self.w_bits, depth=len(w_img), init=w_img)
        vi_rom = Memory(shape=lanes * vb, depth=words, init=self._pack(self.v_init, vb))
        v_mem = Memory(shape=lanes * vb, depth=words, init=[])
        s_mem = Memory(shape=lanes * sb, depth=words, init=[])
        m.submodules.w_rom, m.submodules.vi_rom = w_rom, vi_rom
        m.submodules.v_mem, m.submodules.s_mem = v_mem, s_mem
        v_wr, s_wr = v_mem.write_port(), s_mem.write_port()
        v_rd = v_mem.read_port(transparent_for=(v_wr,))
        s_rd = s_mem.read_port(transparent_for=(s_wr,))
        w_rd, vi_rd = w_rom.read_port(), vi_rom.read_port()

        mode = Signal(2)  # 0 idle, 1 init, 2 row, 3 sweep
        na = Signal(range(max(words, 2)))
        wa = Signal(range(max(len(w_img), 2)))
        left = Signal(range(words + 1))
        neg, shift = Signal(), Signal(max(1, self.shift_bits))
        m.d.comb += self.busy.eq(mode != 0)
        with m.Switch(mode):
            with m.Case(0):
                with m.If(self.init):
                    m.d.sync += [mode.eq(1), na.eq(0), left.eq(words)]
                with m.Elif(self.row):
                    m.d.sync += [
                        mode.eq(2),
                        na.eq(self.nbase),
                        wa.eq(self.wbase),
                        left.eq(self.row_words),
                        neg.eq(self.neg),
                        shift.eq(self.shift if self.shift_bits else 0),
                    ]
                with m.Elif(self.sweep):
                    m.d.sync += [mode.eq(3), na.eq(0), left.eq(words)]
            with m.Default():
                m.d.sync += [na.eq(na + 1), wa.eq(wa + 1), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += mode.eq(0)
        lane = Signal(max(1, self.lane_bits))  # the tracer read's lane, for s_data
        if self.lane_bits:
            m.d.sync += lane.eq(self.s_addr[: self.lane_bits])
        s_word = self.s_addr >> self.lane_bits
        m.d.comb += [
            v_rd.addr.eq(na),
            s_rd.addr.eq(Mux(mode == 0, s_word, na)),
            vi_rd.addr.eq(na),
            w_rd.addr.eq(wa),
            self.s_data.eq(s_rd.data.word_select(lane, sb) if self.lane_bits else s_rd.data),
        ]
        # stage 1: the memories answer, then the write back
        mode1 = Signal(2)
        na1 = Signal.like(na)
        m.d.sync += [mode1.eq(mode), na1.eq(na)]
        theta = Const(u.theta, signed(vb + 1))
        v_next, s_next, spikes = [], [], []
        for i in range(lanes):
            w = w_rd.data.word_select(i, self.w_bits).as_signed()
            if self.shift_bits:
                w = w << shift
            x = Mux(neg, -w, w)
            h = v_rd.data.word_select(i, vb).as_signed()
            s = s_rd.data.word_select(i, sb).as_signed()
            up = (h >= u.theta) & (s < u.smax)
            down = (h < 0) & (s > u.smin)
            spike = Signal(signed(2), name=f"spike{i}")
            m.d.comb += spike.eq(Mux(up, 1, Mux(down, -1, 0)))
            v_lane = Signal(signed(vb), name=f"v{i}")
            s_lane = Signal(signed(sb), name=f"s{i}")
            with m.Switch(mode1):
                with m.Case(1):
                    m.d.comb += [v_lane.eq(vi_rd.data.word_select(i, vb)), s_lane.eq(0)]
                with m.Case(2):
                    m.d.comb += [v_lane.eq(h + x), s_lane.eq(s)]
                with m.Default():
                    m.d.comb += [
                        v_lane.eq(h - Mux(up, theta, Mux(down, -theta, 0))),
                        s_lane.eq(s + spike),
                    ]
            v_next.append(v_lane)
            s_next.append(s_lane)
            spikes.append(spike)
        m.d.comb += [
            v_wr.addr.eq(na1),
            s_wr.addr.eq(na1),
            v_wr.data.eq(Cat(*v_next)),
            s_wr.data.eq(Cat(*s_next)),
            v_wr.en.eq(mode1 != 0),
            s_wr.en.eq((mode1 == 1) | (mode1 == 3)),
        ]
        sweep1 = mode1 == 3
        m.d.comb += [self.spike.eq(Mux(sweep1, Cat(*spikes), 0)), self.spike_valid.eq(sweep1)]
        return m
