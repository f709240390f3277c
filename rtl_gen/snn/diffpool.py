"""``DifferentialPool``: an average pool (or ``ReduceMean``) whose requantizer no ST-BIF
neuron computes (round half to even; ``frontends.snn.units.DifferentialUnit`` on an
``avgpool`` node) or whose input moves by several codes a step, as hardware.

A time step has two phases:

- accumulate, one input element a cycle: with ``valid``, element ``k`` (a counter that wraps
  at the input size) adds its increment ``d`` to the sum of its window, ``S[window(k)] += d``
  (a ROM names the window; ``first``: the inference's first step, a window's first tap
  starts it from 0); padding and elements in no window are skipped;
- sweep, started by a ``sweep`` pulse (``sweep_first``: ``Y_prev`` is the output zero
  point): each window ``w`` in order, ``Y = requantize(S[w] * m)`` (``m`` one constant: a sum
  of shifted copies, no multiplier), ``out = Y - Y_prev[w]`` on ``out``/``out_addr``/
  ``out_valid``, ``Y_prev[w] = Y``; ``busy`` from the cycle after ``sweep`` to the last output.

So the increments sum to the IR's ``avgpool`` of the settled inputs. A step takes ``n_in``
accumulate cycles, the ``sweep`` cycle and ``windows + 2`` busy cycles (``busy_cycles``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from frontends.fixedpoint import signed_bits

from .diffadd import _times, requantizer
from .streaming import sweep_ports

if TYPE_CHECKING:
    from frontends.snn.units import DifferentialUnit

__all__ = ["DifferentialPool"]


class DifferentialPool(wiring.Component):
    """The differential unit of one ``avgpool`` node with one multiplier whose windows do
    not overlap; ``in_range`` bounds the input's codes minus its zero point."""

    def __init__(self, unit: DifferentialUnit, in_range: tuple[int, int], *, d_bits: int = 2):
        node = unit.node
        if node.op != "avgpool":
            raise ValueError(f"{node.describe()}: not an average pool")
        m = np.asarray(node.weights["multiplier"], np.int64).reshape(-1)
        if m.size != 1:
            raise ValueError(f"{node.describe()}: one multiplier per channel")
        self.mult = int(m[0])
        idx = np.asarray(node.weights["im2col"], np.int64)
        self.windows, taps = idx.shape[0] * idx.shape[1], idx.shape[2]
        flat = idx.reshape(self.windows, taps)
        self.n_in = int(np.prod(unit.in_shapes[0]))
        target = np.full(self.n_in, self.windows, np.int64)  # windows: in no window
        head = np.zeros(self.n_in, np.int64)
        for w in range(self.windows):
            taps_w = [int(i) for i in flat[w] if i >= 0]
            for i in taps_w:
                if target[i] != self.windows:
                    raise ValueError(f"{node.describe()}: overlapping windows")
                target[i] = w
            if taps_w:
                head[min(taps_w)] = 1
        if int(np.prod(unit.out_shape)) != self.windows:
            raise ValueError(f"{node.describe()}: outputs are not one per window")
        self.unit = unit
        self.target, self.head = target, head
        a = node.attrs
        lo, hi = in_range
        self.s_bits = signed_bits(lo * taps, hi * taps)
        self.acc_bits = (
            signed_bits(
                min(lo * taps * self.mult, hi * taps * self.mult),
                max(lo * taps * self.mult, hi * taps * self.mult),
            )
            + 1
        )
        self.shift, self.rounding = int(a["shift"]), a.get("rounding", "half_up")
        self.out_q = (int(a["output_zero_point"]), int(a["lo"]), int(a["hi"]))
        self.y_bits = signed_bits(
            min(self.out_q[1], self.out_q[0]), max(self.out_q[2], self.out_q[0])
        )
        self.d_bits = d_bits
        super().__init__(sweep_ports(d_bits, self.y_bits + 1, self.windows))

    @property
    def busy_cycles(self) -> int:
        return self.windows + 2

    def elaborate(self, platform) -> Module:
        m = Module()
        n_in, windows = self.n_in, self.windows
        s_mem = Memory(shape=signed(self.s_bits), depth=windows + 1, init=[])
        y_mem = Memory(shape=signed(self.y_bits), depth=max(windows, 2), init=[])
        t_rom = Memory(
            shape=range(windows + 1),
            depth=n_in,
            init=[int(w) for w in self.target],
        )
        h_rom = Memory(shape=1, depth=n_in, init=[int(h) for h in self.head])
        m.submodules.s_mem, m.submodules.y_mem = s_mem, y_mem
        m.submodules.t_rom, m.submodules.h_rom = t_rom, h_rom
        s_wr = s_mem.write_port()
        s_rd = s_mem.read_port(transparent_for=(s_wr,))
        y_rd, y_wr = y_mem.read_port(), y_mem.write_port()
        t_rd, h_rd = t_rom.read_port(domain="comb"), h_rom.read_port(domain="comb")

        # accumulate: read S[window(k)] this cycle, write it plus d the next
        k = Signal(range(n_in))
        with m.If(self.valid):
            m.d.sync += k.eq(Mux(k == n_in - 1, 0, k + 1))
        m.d.comb += [t_rd.addr.eq(k), h_rd.addr.eq(k)]
        acc1, fresh1 = Signal(), Signal()
        d1 = Signal(signed(self.d_bits))
        w1 = Signal(range(windows + 1))
        m.d.sync += [
            acc1.eq(self.valid),
            fresh1.eq(self.first & h_rd.data),
            d1.eq(self.d),
            w1.eq(t_rd.data),
        ]

        # sweep: window counter -> S, Y_prev reads -> requantize -> out
        running = Signal()
        w = Signal(range(max(windows, 2)))
        sfirst = Signal()
        with m.If(self.sweep):
            m.d.sync += [running.eq(1), w.eq(0), sfirst.eq(self.sweep_first)]
        with m.Elif(running):
            m.d.sync += w.eq(w + 1)
            with m.If(w == windows - 1):
                m.d.sync += running.eq(0)
        m.d.comb += s_rd.addr.eq(Mux(running, w, t_rd.data))
        m.d.comb += y_rd.addr.eq(w)
        live1 = Signal()
        wa1 = Signal(range(max(windows, 2)))
        m.d.sync += [live1.eq(running), wa1.eq(w)]
        acc = Signal(signed(self.acc_bits))
        m.d.comb += acc.eq(_times(s_rd.data, self.mult))
        y = requantizer(m, acc, self.shift, self.rounding, self.out_q, self.y_bits)
        prev = Mux(sfirst, self.out_q[0], y_rd.data)
        m.d.comb += [
            s_wr.addr.eq(w1),
            s_wr.data.eq(Mux(fresh1, 0, s_rd.data) + d1),
            s_wr.en.eq(acc1 & ~live1),
            y_wr.addr.eq(wa1),
            y_wr.data.eq(y),
            y_wr.en.eq(live1),
        ]
        m.d.sync += [
            self.out.eq(y - prev),
            self.out_addr.eq(wa1),
            self.out_valid.eq(live1),
        ]
        m.d.comb += self.busy.eq(running | live1 | self.out_valid)
        return m
