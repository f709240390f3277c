"""The engine in Amaranth's simulator (no Verilator build): the ternary LUT core, a
DSP-less configuration and the bit-serial LUT core beside packed DSP lanes (their
``SB_MAC16`` arithmetic as logic), bit-exact against the golden, with the cycle counter and
perf counters equal to the model's."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.vectors import golden_vectors
from rtl_gen.gemm import GemmConfig, compile_graph, model
from rtl_gen.gemm.emit import create_engine

from .nets import dense_chain

PERF = [(c, w) for c in ("dsp", "lut") for w in ("busy", "stall", "wait")]


def simulate(program, inputs):
    dut = create_engine(program)
    results = []

    async def bench(ctx):
        for x in inputs:
            for j, v in enumerate(x):
                ctx.set(dut.i.payload, {"data": int(v), "last": j == len(x) - 1})
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 1)
            out = []
            while len(out) < program.n_out:
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if valid:
                    out.append(payload.data)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            results.append((out, ctx.get(dut.cycles),
                            {f"{c}_{w}": ctx.get(getattr(dut, f"perf_{c}_{w}"))
                             for c, w in PERF}))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("config,split", [
    (GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary"), 0.7),
    (GemmConfig(dsp_lanes=0, lut_lanes=4, lut_wbits=3), 1.0),
    (GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="bitserial", dsp_pack=True,
                primitives=False), 0.6),
])
def test_engine_bit_exact_cycles_and_perf(config, split):
    program = compile_graph(dense_chain((11, 9, 6), seed=4), config, split=split)
    vectors = golden_vectors(program.graph, random=2, seed=3)
    sched = model.schedule(program)
    expected_perf = {f"{c}_{w}": getattr(sched, w)[c] for c, w in PERF}
    for (out, cycles, perf), want in zip(simulate(program, vectors["inputs"][:4]),
                                         vectors["outputs"]):
        assert out == list(want)
        assert cycles == sched.cycles
        assert perf == expected_perf



def test_reductions_of_one_and_two():
    # K = 1, 5, 2: the core's registered last-k flag at its shortest loops
    config = GemmConfig(dsp_lanes=2, lut_lanes=3, lut_mode="bitserial", dsp_pack=True,
                        primitives=False)
    program = compile_graph(dense_chain((1, 5, 2, 3), seed=2), config, split=0.5)
    vectors = golden_vectors(program.graph, random=2, seed=3)
    sched = model.schedule(program)
    for (out, cycles, _), want in zip(simulate(program, vectors["inputs"][:3]),
                                      vectors["outputs"]):
        assert out == list(want)
        assert cycles == sched.cycles
