"""SmurfUnit in Amaranth's simulator (fast, in-process) against the cycle model."""

import numpy as np
from amaranth.sim import Simulator

from rtl_gen.smurf import FsmBasis, SmurfOutput, SmurfPlan
from rtl_gen.smurf.design import sweep_codes
from rtl_gen.smurf.unit import SmurfUnit


def run_unit(plan, codes):
    dut = SmurfUnit(plan)
    got, cycles = [], []

    async def bench(ctx):
        for vector in codes:
            for m, c in enumerate(vector):
                ctx.set(dut.i.payload[m], int(c))
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            n = 0
            while not ctx.get(dut.o.valid):
                await ctx.tick()
                n += 1
            cycles.append(n)
            got.append([ctx.get(dut.o.payload[k]) for k in range(len(plan.outputs))])
            ctx.set(dut.o.ready, 1)
            await ctx.tick()
            ctx.set(dut.o.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got), cycles


def test_three_inputs_deterministic_gate():
    rng = np.random.default_rng(8)
    w = tuple(int(v) for v in rng.integers(0, 2, 2 * 3 * 4) * 16)
    plan = SmurfPlan(
        inputs=("a", "b", "c"),
        ranges=((-1.0, 1.0),) * 3,
        bases=(FsmBasis(2), FsmBasis(3), FsmBasis(4)),
        outputs=(SmurfOutput("g", -1.0, 1.0, w),),
        input_bits=4,
        coef_bits=4,
        length=24,
        warmup=2,
    )
    assert plan.deterministic_gate
    codes = sweep_codes(3, 4, per_axis=3)
    got, cycles = run_unit(plan, codes)
    assert (got == plan.reference(codes)).all()
    assert set(cycles) == {plan.latency_cycles}


def test_stanh_unit_counts_by_hand():
    # Code 0 walks the counter 4, 3, 2, 1, 0, ...: only the first clock is in a state >= 4.
    plan = SmurfPlan(
        inputs=("x",),
        ranges=((-1.0, 1.0),),
        bases=(FsmBasis(8),),
        outputs=(SmurfOutput("stanh", -1.0, 1.0, (0,) * 4 + (256,) * 4),),
        length=12,
    )
    got, _ = run_unit(plan, np.array([[0], [0]]))
    assert got.tolist() == [[1], [1]]
