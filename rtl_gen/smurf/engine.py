"""``SmurfEngine``: a ``SmurfUnit`` behind the element-stream contract every board top drives.

Ports as the other engines' (``i``, ``o`` streams of ``{data, last}`` elements, ``cycles``,
``busy``) plus ``counts``:

- ``i``: the ``M`` input codes of one evaluation, one element each (``data`` is
  ``max(8, B)`` bits; a code above ``2^B - 1`` saturates, as ``SmurfPlan.encode`` does;
  ``last`` is ignored, elements are counted). The ``M``-th transfer starts the unit.
- ``o``: ``K`` elements, the ``CODE_BITS``-bit codes ``min(round(count * 2^8 / L), 255)``
  (``SmurfPlan.output_codes``), ``last`` on the ``K``-th.
- ``counts``: the unit's ``K`` ones-counts, valid while ``o.valid`` (the full-precision
  result; a board top leaves it unconnected).
- ``cycles``: cycles from the first input transfer to the last output transfer of the last
  evaluation, inclusive; ``busy``: high from the first input transfer to the last output.

Latency (input always valid, output always ready): ``SmurfPlan.engine_latency_cycles`` =
``M + unit latency + K``. Inputs are taken only between evaluations.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..cycles import count_inference_cycles
from .plan import CODE_BITS, SmurfPlan
from .unit import SmurfUnit

__all__ = ["SmurfEngine", "element_layout", "input_element_bits"]


def element_layout(width: int) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(width), "last": 1})


def input_element_bits(plan: SmurfPlan) -> int:
    return max(CODE_BITS, plan.input_bits)


class SmurfEngine(wiring.Component):
    def __init__(self, plan: SmurfPlan):
        self.plan = plan
        super().__init__(
            {
                "i": In(stream.Signature(element_layout(input_element_bits(plan)))),
                "o": Out(stream.Signature(element_layout(CODE_BITS))),
                "counts": Out(data.ArrayLayout(unsigned(plan.count_bits), len(plan.outputs))),
                "cycles": Out(32),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        n_in, n_out = plan.m, len(plan.outputs)
        m.submodules.unit = unit = SmurfUnit(plan)

        j = Signal(range(max(n_in, 2)))  # input element being received
        k = Signal(range(max(n_out, 2)))  # output element being sent
        codes = Signal(data.ArrayLayout(unsigned(plan.input_bits), n_in))

        code_in = Signal(unsigned(plan.input_bits))
        m.d.comb += code_in.eq(self.i.payload.data)
        if input_element_bits(plan) > plan.input_bits:
            with m.If(self.i.payload.data[plan.input_bits :].any()):
                m.d.comb += code_in.eq((1 << plan.input_bits) - 1)

        # The M-th element goes straight into the unit together with the stored ones; the
        # unit is ready exactly when it is idle.
        final = j == n_in - 1
        m.d.comb += [
            unit.i.payload.eq(codes),
            unit.i.payload[n_in - 1].eq(code_in),
            unit.i.valid.eq(self.i.valid & final),
            self.i.ready.eq(~unit.busy),
        ]
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(j):
                for index in range(n_in - 1):
                    with m.Case(index):
                        m.d.sync += codes[index].eq(code_in)
            m.d.sync += j.eq(Mux(final, 0, j + 1))

        c, shift = plan.code_scale
        full = (1 << CODE_BITS) - 1
        element = Signal(CODE_BITS)
        with m.Switch(k):
            for index in range(n_out):
                with m.Case(index):
                    num = (unit.o.payload[index] << CODE_BITS) + plan.length // 2
                    q = (num if c == 1 else num * c) >> shift
                    m.d.comb += element.eq(Mux(q > full, full, q))
        last = k == n_out - 1
        m.d.comb += [
            self.o.valid.eq(unit.o.valid),
            self.o.payload.data.eq(element),
            self.o.payload.last.eq(last),
            self.counts.eq(unit.o.payload),
            unit.o.ready.eq(self.o.ready & last),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += k.eq(Mux(last, 0, k + 1))

        running = count_inference_cycles(m, self, first=j == 0)
        m.d.comb += self.busy.eq(running | unit.busy)
        return m
