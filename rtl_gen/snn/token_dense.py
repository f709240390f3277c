"""``TokenDense``: the ST-BIF neurons of a ``dense`` unit on a token sequence (the same weight
matrix on every token; ``tokens = 1`` is a plain dense layer) behind accumulate-only synapses.

Memories: the weights column-major (input ``j``'s row to all ``n_out`` neurons at
``j * n_out + n``), the initial membranes (``v0 + bias``, per token), the membranes ``V`` and
tracers ``S`` of the ``tokens * n_out`` neurons (token-major).

Commands (a one-cycle pulse; ``busy`` is high from the next cycle until done):

- ``init``: ``V = v_init``, ``S = 0`` for every neuron; ``tokens * n_out + 1`` busy cycles;
- ``row`` with ``nbase`` (``token * n_out``), ``wbase`` (``j * n_out``), ``neg``, ``shift``:
  one input event, ``V[nbase + n] += (-1)**neg * (W[wbase + n] << shift)`` for every ``n``,
  one neuron a cycle, an add or subtract, never a multiply (a multi-bit input increment is
  one event per set bit); ``n_out + 1`` busy cycles;
- ``sweep``: one ST-BIF step of every neuron (``frontends.snn.neurons.stbif_step``, the
  inputs already in ``V``), the spike of neuron ``i`` on ``spike``/``spike_valid`` one cycle
  after its read, in order; ``tokens * n_out + 1`` busy cycles.

``s_addr``/``s_data`` read the tracers (one cycle) while idle.
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

__all__ = ["TokenDense"]


class TokenDense(wiring.Component):
    """The ST-BIF dense unit ``unit`` (``synapse.kind == "dense"``); ``in_range`` bounds its
    input's tracer (the summed increments), ``shift_bits`` the width of an event's bit
    index (0: spikes only)."""

    def __init__(self, unit: StbifUnit, in_range: tuple[int, int], *, shift_bits: int = 0):
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
                "nbase": In(range(self.n)),
                "wbase": In(range(self.n_in * self.n_out)),
                "neg": In(1),
                "shift": In(max(1, shift_bits)),
                "busy": Out(1),
                "spike": Out(signed(2)),
                "spike_valid": Out(1),
                "s_addr": In(range(self.n)),
                "s_data": Out(signed(self.s_bits)),
            }
        )

    def row_cycles(self) -> int:
        return self.n_out + 1

    def sweep_cycles(self) -> int:
        return self.n + 1

    def elaborate(self, platform) -> Module:
        m = Module()
        u = self.unit
        n, n_out = self.n, self.n_out
        w_img = self.weight.T.reshape(-1).tolist()  # column-major
        w_rom = Memory(shape=signed(self.w_bits), depth=len(w_img), init=w_img)
        vi_rom = Memory(shape=signed(self.v_bits), depth=n, init=self.v_init.tolist())
        v_mem = Memory(shape=signed(self.v_bits), depth=n, init=[])
        s_mem = Memory(shape=signed(self.s_bits), depth=n, init=[])
        m.submodules.w_rom, m.submodules.vi_rom = w_rom, vi_rom
        m.submodules.v_mem, m.submodules.s_mem = v_mem, s_mem
        v_wr, s_wr = v_mem.write_port(), s_mem.write_port()
        v_rd = v_mem.read_port(transparent_for=(v_wr,))
        s_rd = s_mem.read_port(transparent_for=(s_wr,))
        w_rd, vi_rd = w_rom.read_port(), vi_rom.read_port()

        mode = Signal(2)  # 0 idle, 1 init, 2 row, 3 sweep
        na = Signal(range(n))
        wa = Signal(range(max(len(w_img), 2)))
        left = Signal(range(n + 1))
        neg, shift = Signal(), Signal(max(1, self.shift_bits))
        m.d.comb += self.busy.eq(mode != 0)
        with m.Switch(mode):
            with m.Case(0):
                with m.If(self.init):
                    m.d.sync += [mode.eq(1), na.eq(0), left.eq(n)]
                with m.Elif(self.row):
                    m.d.sync += [
                        mode.eq(2),
                        na.eq(self.nbase),
                        wa.eq(self.wbase),
                        left.eq(n_out),
                        neg.eq(self.neg),
                        shift.eq(self.shift if self.shift_bits else 0),
                    ]
                with m.Elif(self.sweep):
                    m.d.sync += [mode.eq(3), na.eq(0), left.eq(n)]
            with m.Default():
                m.d.sync += [na.eq(na + 1), wa.eq(wa + 1), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += mode.eq(0)
        m.d.comb += [
            v_rd.addr.eq(na),
            s_rd.addr.eq(Mux(mode == 0, self.s_addr, na)),
            vi_rd.addr.eq(na),
            w_rd.addr.eq(wa),
            self.s_data.eq(s_rd.data),
        ]
        # stage 1: the memories answer, then the write back
        mode1 = Signal(2)
        na1 = Signal(range(n))
        m.d.sync += [mode1.eq(mode), na1.eq(na)]
        w = w_rd.data
        if self.shift_bits:
            w = w << shift
        x = Mux(neg, -w, w)
        h = Signal(signed(self.v_bits))
        m.d.comb += h.eq(v_rd.data)
        up = (h >= u.theta) & (s_rd.data < u.smax)
        down = (h < 0) & (s_rd.data > u.smin)
        spike = Signal(signed(2))
        m.d.comb += spike.eq(Mux(up, 1, Mux(down, -1, 0)))
        theta = Const(u.theta, signed(self.v_bits + 1))
        m.d.comb += [v_wr.addr.eq(na1), s_wr.addr.eq(na1)]
        with m.Switch(mode1):
            with m.Case(1):
                m.d.comb += [v_wr.data.eq(vi_rd.data), s_wr.data.eq(0)]
                m.d.comb += [v_wr.en.eq(1), s_wr.en.eq(1)]
            with m.Case(2):
                m.d.comb += [v_wr.data.eq(v_rd.data + x), v_wr.en.eq(1)]
            with m.Case(3):
                m.d.comb += [
                    v_wr.data.eq(h - Mux(up, theta, Mux(down, -theta, 0))),
                    s_wr.data.eq(s_rd.data + spike),
                    v_wr.en.eq(1),
                    s_wr.en.eq(1),
                ]
        m.d.comb += [self.spike.eq(Mux(mode1 == 3, spike, 0)), self.spike_valid.eq(mode1 == 3)]
        return m
