"""``count_inference_cycles`` on bare streams: the count, inclusive at both ends, and when
``cycles`` and ``running`` change."""

from amaranth import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rtl_gen.cycles import count_inference_cycles

ELEMENT = data.StructLayout({"data": 8, "last": 1})


class Counted(wiring.Component):
    i: In(stream.Signature(ELEMENT))
    o: In(stream.Signature(ELEMENT))  # driven by the testbench, as an engine's output would be
    first: In(1)
    cycles: Out(32)
    running: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.running.eq(count_inference_cycles(m, self, first=self.first))
        return m


def test_first_input_to_last_output_inclusive():
    dut = Counted()
    seen = []

    async def bench(ctx):
        for gap in (4, 0):
            ctx.set(dut.first, 1)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.ready, 1)
            await ctx.tick()  # cycle 1: first input
            ctx.set(dut.first, 0)  # a later input does not restart
            await ctx.tick()  # cycle 2
            ctx.set(dut.i.valid, 0)
            assert ctx.get(dut.running)
            for _ in range(gap):
                await ctx.tick()
            ctx.set(dut.o.payload.last, 1)
            ctx.set(dut.o.valid, 1)
            ctx.set(dut.o.ready, 1)
            await ctx.tick()  # cycle 3 + gap: last output
            ctx.set(dut.o.valid, 0)
            assert not ctx.get(dut.running)
            seen.append(ctx.get(dut.cycles))  # registered: one cycle later
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [3 + 4, 3]
