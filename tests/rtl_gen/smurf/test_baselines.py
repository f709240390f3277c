"""Horner and LUT baselines: integer models by hand, RTL (Amaranth simulator) == model."""

import numpy as np
from amaranth.sim import Simulator

from rtl_gen.smurf.baselines import HornerPlan, fit_horner, fit_lut


def run(plan, codes):
    dut = plan.create()
    got, lat = [], []

    async def bench(ctx):
        for vector in codes:
            for j, c in enumerate(vector):
                ctx.set(dut.i.payload[j], int(c))
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            n = 0
            while not ctx.get(dut.o.valid):
                await ctx.tick()
                n += 1
            lat.append(n)
            got.append(ctx.get(dut.o.payload))
            ctx.set(dut.o.ready, 1)
            await ctx.tick()
            ctx.set(dut.o.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got), lat


def test_horner_by_hand():
    # p(u) = 3 + 2u - 5u^2 with B = 4 (v = c - 8, u = v / 16), F = 0:
    # acc = -5; acc = (acc * v >> 4) + 2; acc = (acc * v >> 4) + 3.
    plan = HornerPlan(1, 4, 2, 0, (3, 2, -5), 0.0, 1.0)
    for c in (0, 7, 8, 15):
        v = c - 8
        acc = ((((-5 * v) >> 4) + 2) * v >> 4) + 3
        assert plan.reference(np.array([[c]]))[0] == acc


def test_horner_rtl_equals_model_1d_and_2d():
    p1 = fit_horner(lambda c: (np.tanh(4 * (c[:, 0] / 64 - 1)) + 1) / 2, 1, 7, 5, 10, -1, 1)
    codes = np.arange(0, 128, 9)[:, None]
    got, lat = run(p1, codes)
    assert (got == p1.reference(codes)).all() and set(lat) == {p1.latency_cycles}
    p2 = fit_horner(lambda c: np.hypot(c[:, 0], c[:, 1]) / 64 / np.sqrt(2), 2, 6, 2, 9, 0, 1)
    codes = np.array([[0, 0], [63, 63], [10, 50], [32, 1], [63, 0]])
    got, lat = run(p2, codes)
    assert (got == p2.reference(codes)).all() and set(lat) == {p2.latency_cycles}
    err = p2.decode(p2.reference(codes)) - np.hypot(*(codes.T / 64)) / np.sqrt(2)
    assert np.abs(err).max() < 0.05


def test_lut_rtl_equals_model_and_address_order():
    plan = fit_lut(lambda c: (c[:, 0] + 2 * c[:, 1]) / 45, 2, 4, 6, 0, 1)
    assert plan.reference(np.array([[1, 0]]))[0] == round(63 / 45)
    assert plan.reference(np.array([[0, 1]]))[0] == round(2 * 63 / 45)
    codes = np.array([[0, 0], [15, 15], [3, 9], [9, 3]])
    got, lat = run(plan, codes)
    assert (got == plan.reference(codes)).all() and set(lat) == {0}
