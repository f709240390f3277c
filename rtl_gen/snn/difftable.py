"""``DifferentialTable``: an element-wise nonlinear function of a spiking network (the IR's
``nonlinear`` code table, GELU and the like; ``frontends.snn.units.DifferentialUnit``) as
hardware.

One element a cycle: with ``valid``, element ``k`` (a counter that wraps at ``N``, so a time
step is ``N`` consecutive valid cycles) takes its increment ``d``::

    X_new = X[k] + d;  out = table[X_new] - table[X[k]];  X[k] = X_new

(in codes: ``X`` counts from the input's zero point). ``first`` marks an inference's first
step: ``X[k]`` is taken as 0 and ``table[X[k]]`` as the output's zero point, so that step
emits ``table[zp_in] - zp_out`` even where ``d`` is 0. The increments sum to
``table[X_final] - zp_out``. The table is a ROM read twice (no arithmetic beyond two adds);
``out``/``out_valid`` follow the inputs by two cycles; ``N`` cycles per time step.
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
    from frontends.snn.units import DifferentialUnit

__all__ = ["DifferentialTable"]


class DifferentialTable(wiring.Component):
    """The differential unit of one element-wise ``nonlinear`` node (a code table);
    ``d_bits`` is the width of the input increments (2: spikes)."""

    def __init__(self, unit: DifferentialUnit, *, d_bits: int = 2):
        node = unit.node
        if node.op != "nonlinear" or "table" not in node.weights:
            raise ValueError(f"{node.describe()}: not an element-wise code table")
        self.unit = unit
        self.table = np.asarray(node.weights["table"], np.int64)
        self.lo = int(node.attrs["input_min"]) - unit.in_zero_points[0]  # X of table[0]
        self.n = int(np.prod(unit.in_shapes[0]))
        if self.n < 2:
            raise ValueError("a differential table needs at least 2 elements")
        self.x_bits = signed_bits(self.lo, self.lo + len(self.table) - 1)
        self.y_bits = signed_bits(
            min(int(self.table.min()), unit.out_zero_point),
            max(int(self.table.max()), unit.out_zero_point),
        )
        self.d_bits = d_bits
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "d": In(signed(d_bits)),
                "out": Out(signed(self.y_bits + 1)),
                "out_valid": Out(1),
            }
        )

    @property
    def cycles_per_step(self) -> int:
        return self.n

    latency = 2

    def elaborate(self, platform) -> Module:
        m = Module()
        n = self.n
        x_mem = Memory(shape=signed(self.x_bits), depth=n, init=[])
        rom = Memory(shape=signed(self.y_bits), depth=len(self.table), init=self.table.tolist())
        m.submodules.x_mem, m.submodules.rom = x_mem, rom
        x_rd, x_wr = x_mem.read_port(), x_mem.write_port()
        new_rd, old_rd = rom.read_port(domain="comb"), rom.read_port(domain="comb")

        st = element_stage(m, self.valid, self.first, n, d=self.d)
        k1, valid1, first1, d1 = st.k1, st.valid1, st.first1, st.inputs1["d"]
        m.d.comb += x_rd.addr.eq(st.k)

        x_old = Signal(signed(self.x_bits))
        x_new = Signal(signed(self.x_bits))
        m.d.comb += [x_old.eq(Mux(first1, 0, x_rd.data)), x_new.eq(x_old + d1)]
        m.d.comb += [new_rd.addr.eq(x_new - self.lo), old_rd.addr.eq(x_old - self.lo)]
        y_old = Mux(first1, self.unit.out_zero_point, old_rd.data)
        m.d.comb += [x_wr.addr.eq(k1), x_wr.data.eq(x_new), x_wr.en.eq(valid1)]
        m.d.sync += [
            self.out.eq(Mux(valid1, new_rd.data - y_old, 0)),
            self.out_valid.eq(valid1),
        ]
        return m
