"""One HKLUT ×2 stage unit in Amaranth's simulator: windows in, blocks equal to the golden."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.lutnet.hklut import random_plan
from rtl_gen.lutnet.hklut.stage import STEPS, HklutStageUnit


def windows(x):
    """The reflect-padded 5×5 window of every pixel, raster order, row-major."""
    h, w = x.shape
    p = np.pad(x, 2, mode="reflect")
    return [p[y : y + 5, c : c + 5].ravel() for y in range(h) for c in range(w)]


def run_unit(stage, x, *, final, stall_seed=None):
    h, w = x.shape
    dut = HklutStageUnit(stage, width=w, height=h, final=final)
    rng = None if stall_seed is None else np.random.default_rng(stall_seed)
    got, starts = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        pending = windows(x)
        sent = 0
        while len(got) < h * w:
            if sent < len(pending):
                ctx.set(dut.i.payload, [int(v) for v in pending[sent]])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            ready = rng is None or rng.random() < 0.5
            ctx.set(dut.o.ready, ready)
            _, _, i_rdy, i_val, o_val, o_pay = await ctx.tick().sample(
                dut.i.ready, dut.i.valid, dut.o.valid, dut.o.payload
            )
            cycle += 1
            if i_rdy and i_val:
                sent += 1
                starts.append(cycle)
            if o_val and ready:
                got.append([int(v) for v in o_pay])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    r = 2
    blocks = np.array(got).reshape(h, w, r, r)
    return blocks.transpose(0, 2, 1, 3).reshape(h * r, w * r), np.diff(starts)


def golden(stage, x, final):
    v = stage.sixths(x)
    h, w = x.shape
    v = v.transpose(0, 2, 1, 3).reshape(2 * h, 2 * w)
    return np.clip((v + 3) // 6 if final else v // 6, 0, 255)


@pytest.mark.parametrize("final,stall", [(False, None), (True, 7)])
def test_stage_unit_equals_golden(final, stall):
    stage = random_plan(11).stages[1 if final else 0]
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    x[0, 0], x[-1, -1], x[1, 2] = 0, 255, 15  # nibble edges
    got, gaps = run_unit(stage, x, final=final, stall_seed=stall)
    np.testing.assert_array_equal(got, golden(stage, x, final))
    if stall is None:
        assert (gaps == STEPS).all(), gaps  # one window every 12 cycles
