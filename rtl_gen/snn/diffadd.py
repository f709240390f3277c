"""``DifferentialAdd``: an ``add`` (or a ``requant``: one input, ``m1 = 0``) whose requantizer
no ST-BIF neuron computes (onnxruntime's round-half-even residual adds and requantizations;
``frontends.snn.units.DifferentialUnit``) or whose inputs move by several codes a step, as
hardware.

One element a cycle: with ``valid``, element ``k`` (a counter that wraps at ``N``, so a time
step is ``N`` consecutive valid cycles) takes its increments ``da``, ``db``::

    A[k] += da;  B[k] += db                    (A, B: codes minus their zero points)
    Y = requantize(A[k] * m0 + B[k] * m1)       (frontends.fixedpoint.requantize, m = 1)
    out = Y - Y_prev[k];  Y_prev[k] = Y

(an add of a constant has one input: ``B`` is the constant minus its zero point, a ROM).
``first`` marks an inference's first step: ``A``, ``B`` start from 0 and ``Y_prev`` from the
output zero point. The multipliers are constants: sums of shifted copies, no multiplier;
the rounding (half up, floor, ceil or half to even) is a shift, a compare and an add.
``out``/``out_valid`` follow the inputs by two cycles; ``N`` cycles per time step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import signed_bits

from .streaming import element_stage

if TYPE_CHECKING:
    from frontends.snn.units import DifferentialUnit

__all__ = ["DifferentialAdd", "requantizer"]


def _times(x, k: int):
    """``x * k`` for a constant ``k`` as a sum of shifted copies of ``x``."""
    total = 0
    for i in range(abs(k).bit_length()):
        if abs(k) >> i & 1:
            total = total + (x << i)
    return -total if k < 0 else total


def requantizer(
    m: Module, acc: Value, shift: int, rounding: str, out: tuple, y_bits: int
) -> Signal:
    """``frontends.fixedpoint.requantize(acc, 1, shift, zp, lo, hi, rounding)`` of the signal
    ``acc`` as logic (``out = (zp, lo, hi)``): a shift, the rounding's compare and add, the
    clamp."""
    zp, lo, hi = out
    r = {"half_up": 1 << max(shift - 1, 0), "floor": 0, "ceil": (1 << shift) - 1}.get(rounding, 0)
    y0 = Signal(signed(len(acc) + 1))
    m.d.comb += y0.eq((acc + (r if shift > 0 else 0)) >> shift)
    y = Signal(signed(len(acc) + 2))
    if rounding == "half_even" and shift > 0:
        rem = Signal(shift + 1)
        m.d.comb += rem.eq(acc - (y0 << shift))
        half = 1 << (shift - 1)
        m.d.comb += y.eq(y0 + ((rem > half) | ((rem == half) & y0[0])) + zp)
    else:
        m.d.comb += y.eq(y0 + zp)
    result = Signal(signed(y_bits))
    m.d.comb += result.eq(Mux(y < lo, lo, Mux(y > hi, hi, y)))
    return result


class DifferentialAdd(wiring.Component):
    """The differential unit of one ``add`` node; ``ranges`` bound the inputs' codes minus
    their zero points, ``d_bits`` the width of each input's increments."""

    def __init__(
        self,
        unit: DifferentialUnit,
        ranges: tuple[tuple[int, int], ...],
        *,
        d_bits: tuple[int, ...] = (2, 2),
    ):
        node = unit.node
        if node.op not in ("add", "requant"):
            raise ValueError(f"{node.describe()}: not an add or a requantization")
        a = node.attrs
        self.unit = unit
        self.n = int(np.prod(unit.out_shape))
        if self.n < 2:
            raise ValueError("a differential add needs at least 2 elements")
        self.two = len(node.inputs) == 2
        if node.op == "requant":  # one input, one multiplier: B is 0
            self.m0, self.m1 = int(np.asarray(node.weights["multiplier"]).reshape(-1)[0]), 0
            self.const = np.zeros(self.n, np.int64)
        else:
            self.m0, self.m1 = (int(v) for v in node.weights["multiplier"])
        if node.op == "add" and not self.two:
            zb = int(a["input_zero_points"][1])
            const = np.asarray(node.weights["constant"], np.int64) - zb
            self.const = np.broadcast_to(const, tuple(a["input_shape"])).reshape(-1)
        self.ranges = tuple(ranges) if self.two else (ranges[0], (0, 0))
        self.shift = int(a["shift"])
        self.rounding = a.get("rounding", "half_up")
        if self.rounding not in ("half_up", "floor", "ceil", "half_even"):
            raise ValueError(f"{node.describe()}: rounding '{self.rounding}'")
        self.zp, self.lo, self.hi = int(a["output_zero_point"]), int(a["lo"]), int(a["hi"])
        (alo, ahi), (blo, bhi) = self.ranges
        if not self.two:
            blo, bhi = int(self.const.min()), int(self.const.max())
        self.a_bits, self.b_bits = signed_bits(alo, ahi), signed_bits(blo, bhi)
        corners = [x * self.m0 + y * self.m1 for x in (alo, ahi) for y in (blo, bhi)]
        self.acc_bits = signed_bits(min(corners), max(corners)) + 1
        self.y_bits = signed_bits(min(self.lo, self.zp), max(self.hi, self.zp))
        self.d_bits = tuple(d_bits) + (2,) * (2 - len(d_bits))
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "da": In(signed(self.d_bits[0])),
                "db": In(signed(self.d_bits[1])),
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
        a_mem = Memory(shape=signed(self.a_bits), depth=n, init=[])
        y_mem = Memory(shape=signed(self.y_bits), depth=n, init=[])
        m.submodules.a_mem, m.submodules.y_mem = a_mem, y_mem
        a_rd, a_wr = a_mem.read_port(), a_mem.write_port()
        y_rd, y_wr = y_mem.read_port(), y_mem.write_port()
        if self.two:
            b_mem = Memory(shape=signed(self.b_bits), depth=n, init=[])
            m.submodules.b_mem = b_mem
            b_rd, b_wr = b_mem.read_port(), b_mem.write_port()
        else:
            b_rom = Memory(shape=signed(self.b_bits), depth=n, init=self.const.tolist())
            m.submodules.b_rom = b_rom
            b_rd = b_rom.read_port()

        st = element_stage(m, self.valid, self.first, n, da=self.da, db=self.db)
        k, k1, valid1, first1 = st.k, st.k1, st.valid1, st.first1
        da1, db1 = st.inputs1["da"], st.inputs1["db"]
        m.d.comb += [a_rd.addr.eq(k), b_rd.addr.eq(k), y_rd.addr.eq(k)]
        a_new = Signal(signed(self.a_bits))
        b_new = Signal(signed(self.b_bits))
        m.d.comb += a_new.eq(Mux(first1, 0, a_rd.data) + da1)
        if self.two:
            m.d.comb += b_new.eq(Mux(first1, 0, b_rd.data) + db1)
            m.d.comb += [b_wr.addr.eq(k1), b_wr.data.eq(b_new), b_wr.en.eq(valid1)]
        else:
            m.d.comb += b_new.eq(b_rd.data)
        acc = Signal(signed(self.acc_bits))
        m.d.comb += acc.eq(_times(a_new, self.m0) + _times(b_new, self.m1))
        y = requantizer(m, acc, self.shift, self.rounding, (self.zp, self.lo, self.hi), self.y_bits)
        prev = Mux(first1, self.zp, y_rd.data)
        m.d.comb += [
            a_wr.addr.eq(k1),
            a_wr.data.eq(a_new),
            a_wr.en.eq(valid1),
            y_wr.addr.eq(k1),
            y_wr.data.eq(y),
            y_wr.en.eq(valid1),
        ]
        m.d.sync += [self.out.eq(Mux(valid1, y - prev, 0)), self.out_valid.eq(valid1)]
        return m
