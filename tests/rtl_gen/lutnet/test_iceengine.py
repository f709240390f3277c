"""The ICELUT apply engine in Amaranth's simulator: a LUT loaded, pixels in, the golden out."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.lutnet.icelut import random_plan
from rtl_gen.lutnet.icelut.engine import LOAD_WORDS, PIPELINE_LATENCY, IcelutEngine, lut_words

from .simcheck import EDGE_VALUES, extreme_luts


def run_engine(interpolation, lut, pixels, *, stall_seed=None, memory="ebr"):
    """Load ``lut``, stream ``pixels`` (N, 3) with ``last`` on the final one; returns the
    output pixels and the cycle of each input and output transfer."""
    dut = IcelutEngine(interpolation=interpolation, memory=memory)
    rng = None if stall_seed is None else np.random.default_rng(stall_seed)
    got, t_in, t_out = [], [], []

    async def bench(ctx):
        for word in lut_words(lut):
            ctx.set(dut.load.payload, int(word))
            ctx.set(dut.load.valid, 1)
            await ctx.tick()
        ctx.set(dut.load.valid, 0)
        assert ctx.get(dut.loaded)
        sent, cycle = 0, 0
        while len(got) < len(pixels):
            if sent < len(pixels):
                ctx.set(
                    dut.i.payload,
                    {"data": [int(v) for v in pixels[sent]], "last": int(sent == len(pixels) - 1)},
                )
            ctx.set(dut.i.valid, sent < len(pixels))
            ctx.set(dut.o.ready, rng is None or rng.random() < 0.6)
            _, _, i_rdy, i_val, o_rdy, o_val, o_pay = await ctx.tick().sample(
                dut.i.ready, dut.i.valid, dut.o.ready, dut.o.valid, dut.o.payload
            )
            if i_rdy and i_val:
                sent += 1
                t_in.append(cycle)
            if o_val and o_rdy:
                got.append([int(v) for v in o_pay.data])
                assert o_pay.last == (len(got) == len(pixels))
                t_out.append(cycle)
            cycle += 1
        assert not ctx.get(dut.loaded)  # the next frame's LUT is awaited

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, np.uint8), t_in, t_out


def edge_pixels():
    return np.array(
        [[r, g, b] for r in EDGE_VALUES for g in EDGE_VALUES for b in EDGE_VALUES], np.uint8
    )


def test_tetrahedral_edge_values_equal_golden():
    lut = extreme_luts(1, seed=7)[0]
    px = np.concatenate(
        [edge_pixels(), np.random.default_rng(7).integers(0, 256, (75, 3), np.uint8)]
    )
    got, t_in, t_out = run_engine("tetrahedral", lut, px)
    want = random_plan(0).apply(px[None], lut)[0]
    np.testing.assert_array_equal(got, want)
    assert (want == 0).any() and (want == 255).any()
    # One pixel a cycle; each output PIPELINE_LATENCY cycles after its input.
    assert t_in == list(range(len(px)))
    assert t_out == [t + PIPELINE_LATENCY for t in t_in]


def test_trilinear_with_output_stalls_equals_golden():
    lut = extreme_luts(1, seed=8)[0]
    px = np.concatenate(
        [edge_pixels()[::3], np.random.default_rng(8).integers(0, 256, (40, 3), np.uint8)]
    )
    got, _, _ = run_engine("trilinear", lut, px, stall_seed=1)
    want = random_plan(0, interpolation="trilinear").apply(px[None], lut)[0]
    np.testing.assert_array_equal(got, want)


def test_lut_words_pack_channels_and_check_range():
    lut = np.zeros((3, 17, 17, 17), np.int64)
    lut[:, 1, 2, 3] = [-256, 255, -1]
    words = lut_words(lut)
    assert len(words) == LOAD_WORDS
    assert int(words[1 * 289 + 2 * 17 + 3]) == 0x100 | (0xFF << 9) | (0x1FF << 18)
    with pytest.raises(
        ValueError,
        match=r"^residual LUT has shape \(3, 17, 17, 17\) and "
        r"values in \[-257, 254\]; expected",
    ):
        lut_words(lut - 1)


def test_engine_rejects_unknown_options():
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        IcelutEngine(interpolation="cubic")
    with pytest.raises(ValueError, match="memory kind must be one of"):
        IcelutEngine(memory="dram")


@pytest.mark.parametrize("interpolation,steps", [("tetrahedral", 2), ("trilinear", 4)])
def test_spram_copies_take_steps_per_pixel(interpolation, steps):
    # UP5K: two SPRAM copies, two vertices a cycle.
    lut = extreme_luts(1, seed=9)[0]
    px = np.concatenate(
        [edge_pixels()[::2], np.random.default_rng(9).integers(0, 256, (20, 3), np.uint8)]
    )
    got, t_in, t_out = run_engine(interpolation, lut, px, memory="spram")
    want = random_plan(0, interpolation=interpolation).apply(px[None], lut)[0]
    np.testing.assert_array_equal(got, want)
    assert np.diff(t_in).tolist() == [steps] * (len(px) - 1)
    assert [b - a for a, b in zip(t_in, t_out)] == [steps + PIPELINE_LATENCY + 1] * len(px)
    got, _, _ = run_engine(interpolation, lut, px[:30], memory="spram", stall_seed=2)
    np.testing.assert_array_equal(got, want[:30])


@pytest.mark.parametrize("memory", ["ebr", "spram"])
def test_next_frame_waits_for_its_lut(memory):
    # Two frames of zeros with different LUTs, loaded while the pixels wait: every pixel of
    # frame 1, its first too, uses frame 1's LUT (the load starts when frame 0's last pixel
    # has read its vertices).
    luts = extreme_luts(2, seed=13)
    frames = np.zeros((2, 5, 3), np.uint8)
    dut = IcelutEngine(memory=memory)
    got = []

    async def loader(ctx):
        for lut in luts:
            for word in lut_words(lut):
                ctx.set(dut.load.payload, int(word))
                ctx.set(dut.load.valid, 1)
                while not (await ctx.tick().sample(dut.load.ready))[2]:
                    pass
        ctx.set(dut.load.valid, 0)

    async def sender(ctx):
        for f in frames:
            for j, p in enumerate(f):
                ctx.set(dut.i.payload, {"data": [int(v) for v in p], "last": int(j == 4)})
                ctx.set(dut.i.valid, 1)
                while not (await ctx.tick().sample(dut.i.ready))[2]:
                    pass
        ctx.set(dut.i.valid, 0)

    async def receiver(ctx):
        ctx.set(dut.o.ready, 1)
        while len(got) < 10:
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append([int(v) for v in payload.data])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in (loader, sender, receiver):
        sim.add_testbench(bench)
    sim.run()
    plan = random_plan(0)
    want = np.concatenate([plan.apply(f[None], t)[0] for f, t in zip(frames, luts)])
    np.testing.assert_array_equal(np.array(got), want)
