"""``rtl_gen.gemm.post.requant_pipeline`` against ``frontends.fixedpoint.requantize``: every
rounding mode, ties and near-ties at every shift, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from frontends.fixedpoint import ROUNDINGS, requantize
from rtl_gen.gemm.post import requant_pipeline

MODES = {"half_up": 0, "floor": 1, "ceil": 2, "half_even": 3}
WIDTH = 40


def _cases(rng):
    """(prod, shift): exact ties, one above and below them, for odd and even floors, signs,
    shifts 0-20; results around the clamp's 10-bit window; and random products."""
    out = []
    for shift in range(21):
        for q in (-3, -2, -1, 0, 1, 2, 5):
            base = q << shift
            half = (1 << (shift - 1)) if shift else 0
            out += [(base + half + d, shift) for d in (-1, 0, 1)]
    for shift in (0, 1, 3, 9):  # results at the edges of the 10-bit window and past them
        for v in (509, 510, 511, 512, 513, 1023, 1024, 1025, -510, -511, -512, -513, -1024):
            half = (1 << (shift - 1)) if shift else 0
            out += [((v << shift) + half + d, shift) for d in (-1, 0, 1)]
    for _ in range(150):
        out.append((int(rng.integers(-(1 << 38), 1 << 38)), int(rng.integers(0, 32))))
    return out


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_requant_pipeline_equals_requantize(rounding):
    rng = np.random.default_rng(3)
    cases = _cases(rng)
    m = Module()
    prod, valid = Signal(signed(WIDTH)), Signal()
    shift, addr = Signal(unsigned(6)), Signal(4)
    zp, lo, hi = (
        Signal(signed(10), init=3),
        Signal(signed(10), init=-200),
        Signal(signed(10), init=250),
    )
    mode = Signal(2, init=MODES[rounding])
    v, _, result = requant_pipeline(
        m, valid, prod, addr, shift=shift, zp=zp, lo=lo, hi=hi, mode=mode
    )
    got = []

    async def bench(ctx):
        for p, s in cases:
            ctx.set(shift, s)
            await ctx.tick().repeat(3)  # shift steady two cycles before the element
            ctx.set(prod, p)
            ctx.set(valid, 1)
            await ctx.tick()
            ctx.set(valid, 0)
            for _ in range(8):
                if ctx.get(v):
                    got.append(ctx.get(result))
                    break
                await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = [int(requantize(p, 1, s, 3, -200, 250, rounding)) for p, s in cases]
    assert got == want
