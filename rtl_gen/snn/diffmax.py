"""``DifferentialMax``: a max-pool of a spiking network (SpikeZIP-TF's ``SpikeMaxPooling``,
``frontends.snn.units.DifferentialUnit`` on a ``maxpool`` node) as hardware.

A time step has two phases:

- accumulate, one input element a cycle: with ``valid``, element ``k`` (a counter that wraps
  at the input size) takes its increment ``d``: ``X[k] += d`` (``first``: the inference's
  first step, ``X[k] = d``);
- sweep, started by a ``sweep`` pulse (``sweep_first``: the first step, ``Y_prev = 0``): for
  each window ``w`` in order, one tap a cycle, ``Y = max X[tap]`` over its taps (padding taps
  never win), then ``out = Y - Y_prev[w]``, ``Y_prev[w] = Y``: ``out``/``out_valid`` one
  window at a time, two cycles after the window's last tap is read; ``busy`` is high from
  the cycle after ``sweep`` while taps are read (the next step's inputs may follow at once).

So the increments sum to the max of the settled inputs, the IR's ``maxpool`` with an identity
requantization (equal input and output quantization). A step takes ``n_in`` accumulate
cycles, the ``sweep`` cycle and ``windows * taps`` tap cycles (``cycles_per_step``).
Comparators and adders only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from frontends.fixedpoint import signed_bits

from .streaming import element_stage, sweep_ports

if TYPE_CHECKING:
    from frontends.snn.units import DifferentialUnit

__all__ = ["DifferentialMax"]


class DifferentialMax(wiring.Component):
    """The differential max of one ``maxpool`` unit; ``d_bits`` is the width of the input
    increments (2: spikes)."""

    def __init__(self, unit: DifferentialUnit, in_range: tuple[int, int], *, d_bits: int = 2):
        node = unit.node
        a = node.attrs
        if node.op != "maxpool":
            raise ValueError(f"{node.describe()}: not a max-pool")
        if (
            int(node.weights["multiplier"].reshape(-1)[0]) != 1 << int(a["shift"])
            or a["output_zero_point"] != a["input_zero_point"]
            or (a["lo"], a["hi"])
            != (in_range[0] + a["input_zero_point"], in_range[1] + a["input_zero_point"])
        ):
            raise ValueError(f"{node.describe()}: the requantization is not an identity")
        self.unit = unit
        idx = np.asarray(node.weights["im2col"], np.int64)
        self.windows, self.taps = idx.shape[0] * idx.shape[1], idx.shape[2]
        self.index = idx.reshape(self.windows, self.taps)
        self.n_in = int(np.prod(unit.in_shapes[0]))
        self.x_bits = signed_bits(*in_range)
        self.d_bits = d_bits
        self.lo = int(in_range[0])
        super().__init__(sweep_ports(d_bits, self.x_bits + 1))

    @property
    def cycles_per_step(self) -> int:
        return self.n_in + 1 + self.windows * self.taps

    def elaborate(self, platform) -> Module:
        m = Module()
        n_in, windows, taps = self.n_in, self.windows, self.taps
        x_mem = Memory(shape=signed(self.x_bits), depth=n_in, init=[])
        y_mem = Memory(shape=signed(self.x_bits), depth=windows, init=[])
        flat = self.index.reshape(-1)
        rom = Memory(
            shape=range(n_in + 1), depth=len(flat), init=[n_in if i < 0 else int(i) for i in flat]
        )
        m.submodules.x_mem, m.submodules.y_mem, m.submodules.rom = x_mem, y_mem, rom
        x_rd, x_wr = x_mem.read_port(), x_mem.write_port()
        y_rd, y_wr = y_mem.read_port(domain="comb"), y_mem.write_port()
        rom_rd = rom.read_port(domain="comb")

        # accumulate: read X[k] this cycle, write X[k] + d the next
        st = element_stage(m, self.valid, self.first, n_in, d=self.d)
        k, k1, acc1, first1, d1 = st.k, st.k1, st.valid1, st.first1, st.inputs1["d"]

        # sweep: tap counter -> ROM (combinational) -> X read (one cycle) -> running max
        running = Signal()
        tap = Signal(range(windows * taps))
        j = Signal(range(taps))
        w = Signal(range(windows))
        sfirst = Signal()
        with m.If(self.sweep):
            m.d.sync += [running.eq(1), tap.eq(0), j.eq(0), w.eq(0), sfirst.eq(self.sweep_first)]
        with m.Elif(running):
            last_tap = tap == windows * taps - 1
            m.d.sync += [
                tap.eq(tap + 1),
                j.eq(Mux(j == taps - 1, 0, j + 1)),
                w.eq(Mux(j == taps - 1, w + 1, w)),
            ]
            with m.If(last_tap):
                m.d.sync += running.eq(0)
        m.d.comb += [rom_rd.addr.eq(tap), self.busy.eq(running)]
        tap_ok = rom_rd.data != n_in
        m.d.comb += x_rd.addr.eq(Mux(running, rom_rd.data, k))

        live1, ok1, j0_1, jl_1 = Signal(), Signal(), Signal(), Signal()
        w1 = Signal(range(windows))
        m.d.sync += [
            live1.eq(running),
            ok1.eq(tap_ok),
            j0_1.eq(j == 0),
            jl_1.eq(j == taps - 1),
            w1.eq(w),
        ]
        best = Signal(signed(self.x_bits))
        lowest = self.lo
        cur = Signal(signed(self.x_bits))
        seed = Mux(j0_1, lowest, best)
        m.d.comb += cur.eq(Mux(ok1 & (x_rd.data > seed), x_rd.data, seed))
        with m.If(live1):
            m.d.sync += best.eq(cur)
        prev = Mux(sfirst, 0, y_rd.data)
        m.d.comb += [
            y_rd.addr.eq(w1),
            y_wr.addr.eq(w1),
            y_wr.data.eq(cur),
            y_wr.en.eq(live1 & jl_1),
            x_wr.addr.eq(k1),
            x_wr.data.eq(Mux(first1, 0, x_rd.data) + d1),
            x_wr.en.eq(acc1),
        ]
        m.d.sync += [
            self.out.eq(cur - prev),
            self.out_valid.eq(live1 & jl_1),
        ]
        return m
