"""``IncrementAdder``: the residual add of a spiking transformer (``add`` of two activations,
``frontends.snn.units``' ST-BIF unit behind the ``add`` synapse) as hardware.

One element a cycle: with ``valid``, element ``n`` (a counter that wraps at ``N``, so a time
step is ``N`` consecutive valid cycles) takes its two branches' spikes ``da``, ``db`` (-1, 0,
+1) and computes, with no multiplier (each spike selects ``+-m`` or 0)::

    x = da * m0 + db * m1
    H = V[n] + x;  s = +1 if H >= theta and S[n] < smax; -1 if H < 0 and S[n] > smin; else 0
    V[n] = H - theta * s;  S[n] += s

(``neurons.stbif_step``). ``first`` marks the first time step of an inference: the element
then starts from ``V = v_init[n]``, ``S = 0`` (a ROM read, so inferences follow each other with
no clearing pass). The spike leaves on ``spike``/``spike_valid`` two cycles after its inputs
(one to read ``V[n]``, ``S[n]``, one to compute and write them back); ``N`` cycles per time
step, as ``cycles_per_step`` says. ``N >= 2`` (an element's write lands before its next read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import signed_bits

from .streaming import element_stage

if TYPE_CHECKING:
    from frontends.snn.units import StbifUnit

__all__ = ["IncrementAdder"]


class IncrementAdder(wiring.Component):
    """The ST-BIF residual adder of one ``add`` unit (ternary increments; an add of a
    constant has one input, its ``db`` held at 0, the constant in ``v_init``)."""

    def __init__(self, unit: StbifUnit, ranges: tuple[tuple[int, int], tuple[int, int]]):
        syn = unit.synapse
        if syn.kind != "add":
            raise ValueError(f"{unit.node.describe()}: not an add")
        self.unit = unit
        self.n = int(np.prod(syn.out_shape))
        if self.n < 2:
            raise ValueError("an increment adder needs at least 2 elements")
        self.m0, self.m1 = (int(v) for v in syn.weights["multiplier"])
        self.v_init = np.broadcast_to(unit.v_init, syn.out_shape).reshape(-1).astype(np.int64)
        (alo, ahi), (blo, bhi) = ranges
        reach = max(abs(alo), abs(ahi)) * abs(self.m0) + max(abs(blo), abs(bhi)) * abs(self.m1)
        reach += unit.theta * max(abs(unit.smin), abs(unit.smax)) + unit.theta
        self.v_bits = signed_bits(
            int(self.v_init.min()) - reach - 2 * (abs(self.m0) + abs(self.m1)),
            int(self.v_init.max()) + reach + 2 * (abs(self.m0) + abs(self.m1)),
        )
        self.s_bits = signed_bits(min(unit.smin, 0), max(unit.smax, 0))
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "da": In(signed(2)),
                "db": In(signed(2)),
                "spike": Out(signed(2)),
                "spike_valid": Out(1),
            }
        )

    @property
    def cycles_per_step(self) -> int:
        return self.n

    latency = 2

    def elaborate(self, platform) -> Module:
        m = Module()
        u = self.unit
        n = self.n
        v_mem = Memory(shape=signed(self.v_bits), depth=n, init=[])
        s_mem = Memory(shape=signed(self.s_bits), depth=n, init=[])
        v_rom = Memory(shape=signed(self.v_bits), depth=n, init=self.v_init.tolist())
        m.submodules.v_mem, m.submodules.s_mem, m.submodules.v_rom = v_mem, s_mem, v_rom
        v_rd, s_rd, rom_rd = v_mem.read_port(), s_mem.read_port(), v_rom.read_port()
        v_wr, s_wr = v_mem.write_port(), s_mem.write_port()

        st = element_stage(m, self.valid, self.first, n, da=self.da, db=self.db)
        addr, addr1, valid1, first1 = st.k, st.k1, st.valid1, st.first1
        da1, db1 = st.inputs1["da"], st.inputs1["db"]
        m.d.comb += [v_rd.addr.eq(addr), s_rd.addr.eq(addr), rom_rd.addr.eq(addr)]
        # stage 1: the memories answer; the inputs wait one cycle beside them
        v_old = Mux(first1, rom_rd.data, v_rd.data)
        s_old = Mux(first1, 0, s_rd.data)
        xa = Mux(da1 == 1, self.m0, Mux(da1 == -1, -self.m0, 0))
        xb = Mux(db1 == 1, self.m1, Mux(db1 == -1, -self.m1, 0))
        h = Signal(signed(self.v_bits))
        m.d.comb += h.eq(v_old + xa + xb)
        up = (h >= u.theta) & (s_old < u.smax)
        down = (h < 0) & (s_old > u.smin)
        spike = Signal(signed(2))
        m.d.comb += spike.eq(Mux(up, 1, Mux(down, -1, 0)))
        m.d.comb += [
            v_wr.addr.eq(addr1),
            s_wr.addr.eq(addr1),
            v_wr.data.eq(h - Mux(up, u.theta, Mux(down, -u.theta, 0))),
            s_wr.data.eq(s_old + spike),
            v_wr.en.eq(valid1),
            s_wr.en.eq(valid1),
        ]
        m.d.sync += [self.spike.eq(Mux(valid1, spike, 0)), self.spike_valid.eq(valid1)]
        return m
