"""The ``spram`` overlay (iCE40 UP5K: activations, accumulators and weights in
SB_SPRAM256KA blocks, the weight cache and the depthwise lane cache in block RAM) in
Amaranth's simulator: bit-exact against the golden, cycles and perf counters the model's,
no cycle in which two units use a single-ported memory; the compiler's chunks and its
refusals."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.errors import ModelError
from frontends.vectors import golden_vectors
from rtl_gen.gemm import BOARDS, GemmConfig, compile_graph, model
from rtl_gen.gemm.emit import create_engine
from rtl_gen.gemm.engine import MEMS
from rtl_gen.gemm.program import program_images
from rtl_gen.gemm.ram import DeviceFitError

from .nets import conv_net
from .test_engine_amaranth import PERF, check_outputs_and_cycles, collision_checker, infer

SPRAM = GemmConfig(
    dsp_lanes=4,
    lut_lanes=0,
    dsp_pack=True,
    primitives=False,
    spram=True,
    wc_depth=32,
    xc_depth=128,  # two halves for a 7x5 plane a lane: the depthwise fills double-buffered
    lane_cache=True,
)


def dw_net(seed=1):
    """conv 3x3 (14 channels), depthwise 3x3 (14 groups: 3.5 tiles of 4 lanes), pointwise
    (13 channels, weights in several cache chunks), depthwise stride 2 with dilation-free
    padding."""
    return conv_net(
        (3, 7, 5),
        [
            dict(cout=14, kernel=(3, 3), pads=(1, 1, 1, 1)),
            dict(cout=14, kernel=(3, 3), pads=(1, 1, 1, 1), group=14),
            dict(cout=13, kernel=(1, 1)),
            dict(cout=13, kernel=(3, 3), pads=(1, 0, 1, 1), stride=(2, 1), group=13),
        ],
        seed=seed,
    )


def run_spram(program, inputs):
    """``inputs`` through the engine after its weight SPRAM is written through ``load``;
    per inference (outputs, cycles, perf); fails on a single-port conflict or a
    read-during-write collision."""
    dut = create_engine(program)
    words = program_images(program)["wd"]
    results, found, conflicts = [], [], []

    async def bench(ctx):
        for addr, word in enumerate(words):
            ctx.set(dut.load.payload, {"mem": MEMS["wd"], "addr": addr, "data": word})
            ctx.set(dut.load.valid, 1)
            await ctx.tick()
        ctx.set(dut.load.valid, 0)
        for x in inputs:
            out = await infer(ctx, dut, program, x)
            perf = {f"{c}_{w}": ctx.get(getattr(dut, f"perf_{c}_{w}")) for c, w in PERF}
            results.append((out, ctx.get(dut.cycles), perf))

    async def watch(ctx):
        cycle = 0
        async for _, _, hit in ctx.tick().sample(dut.probes["conflict"]):
            if hit:
                conflicts.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(collision_checker(dut, found))
    sim.add_process(watch)
    sim.run()
    assert found == [], found[:5]
    assert conflicts == [], f"single-port conflicts at cycles {conflicts[:5]}"
    return results


def test_spram_engine_bit_exact_cycles_and_perf():
    program = compile_graph(dw_net(), SPRAM)
    ops = [i.op for i in program.instrs]
    assert sum(i.op == "LOAD" and i["fill"] and i["lanes"] > 0 for i in program.instrs) == 8
    assert sum(i.op == "CFG" and i["dw"] == 1 for i in program.instrs) >= 2
    assert ops.count("LOAD") > 10  # weight chunks
    # double buffering: fills into the caches' second halves, issued while a GEMM computes
    assert any(i.op == "LOAD" and i["lanes"] and i["dst"] == 64 for i in program.instrs)
    assert any(i.op == "LOAD" and i["fill"] and not i["lanes"] and i["dst"] for i in program.instrs)
    between = [
        a.op == "GEMM" and b.op == "LOAD" for a, b in zip(program.instrs, program.instrs[1:])
    ]
    assert any(between)
    vectors = golden_vectors(program.graph, random=2, seed=3)
    sched = model.schedule(program)
    assert np.array_equal(model.run(program, vectors["inputs"]), vectors["outputs"])
    expected_perf = {f"{c}_{w}": getattr(sched, w)[c] for c, w in PERF}
    results = run_spram(program, vectors["inputs"][:2])
    for (out, cycles, perf), want in zip(results, vectors["outputs"]):
        assert out == list(want)
        assert cycles == sched.cycles
        assert perf == expected_perf


def test_chunks_fit_the_caches():
    program = compile_graph(dw_net(), SPRAM)
    fills = [i for i in program.instrs if i.op == "LOAD" and i["fill"] and not i["lanes"]]
    assert max(i["n"] for i in fills) <= SPRAM.wc_depth
    assert program.config.xc_depth >= 35  # a 7x5 plane a lane


SPRAM_DIRECT = replace(SPRAM, spram_wbits=4, wc_depth=2)


def residual_net(seed=5, weight_max=7):
    """conv 3x3, conv 3x3, their sum (the first conv's output the residual branch), and a
    1x1 conv: ResNet's block at 4 channels on a 6x5 image."""
    return conv_net(
        (3, 6, 5),
        [
            dict(cout=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
            dict(cout=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
            dict(cout=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
            dict(cout=5, kernel=(1, 1)),
        ],
        residual=(0, 2),
        weight_max=weight_max,
        seed=seed,
    )


def test_residual_block_on_spram_with_direct_weights():
    """The UP5K overlay without the weight cache: 4-bit weights read from SPRAM each cycle,
    accumulators in block RAM (a cap of 40 words: every 3x3 layer in blocks of output
    rows), the residual ADD on the single-ported activation SPRAM (an element every 4
    cycles); bit-exact, the model's cycles and perf counters, no port conflict."""
    program = compile_graph(residual_net(), SPRAM_DIRECT, acc_cap=40)
    cfg = program.config
    assert cfg.spram and cfg.spram_wbits == 4 and cfg.accd_depth <= 64
    assert any(i.op == "ADD" for i in program.instrs)
    assert not any(i.op == "LOAD" and i["fill"] for i in program.instrs)
    assert sum(i.op == "GEMM" for i in program.instrs) > 8  # row blocks
    vectors = golden_vectors(program.graph, random=2, seed=3)
    sched = model.schedule(program)
    assert np.array_equal(model.run(program, vectors["inputs"]), vectors["outputs"])
    expected_perf = {f"{c}_{w}": getattr(sched, w)[c] for c, w in PERF}
    for (out, cycles, perf), want in zip(
        run_spram(program, vectors["inputs"][:1]), vectors["outputs"]
    ):
        assert out == list(want)
        assert cycles == sched.cycles
        assert perf == expected_perf


def test_spram_fallbacks_and_refusals():
    """int8 weights do not fit a 4-bit weight memory (named); the UP5K refuses a model
    whose memories exceed its SPRAM with one line: the kind, bytes needed, bytes there."""
    with pytest.raises(ModelError, match="holds 4-bit signed weights"):
        compile_graph(residual_net(weight_max=100), SPRAM_DIRECT)
    graph = conv_net((3, 6, 5), [dict(cout=4, kernel=(3, 3), pads=(1, 1, 1, 1))], weight_max=7)
    with pytest.raises(ModelError, match="20 accumulators; the gemm overlay's accumulator"):
        compile_graph(graph, SPRAM_DIRECT, acc_cap=8)
    big = conv_net((16, 48, 48), [dict(cout=16, kernel=(1, 1))] * 2, weight_max=7)
    with pytest.raises(DeviceFitError, match=r"bytes of SPRAM .* has 131,072 bytes \(4 SB_SP"):
        compile_graph(big, replace(BOARDS["icebreaker"]["hetero"], primitives=False))


def test_a_reduction_longer_than_the_cache_is_refused():
    graph = conv_net((8, 4, 4), [dict(cout=3, kernel=(3, 3))])
    with pytest.raises(ModelError, match="72-step reduction exceeds the 32-word weight cache"):
        compile_graph(graph, SPRAM)


@pytest.mark.parametrize(
    "config",
    [
        GemmConfig(dsp_lanes=4, lut_lanes=0, dsp_regs=True, primitives=False),
        pytest.param(GemmConfig(dsp_lanes=3, lut_lanes=0), marks=pytest.mark.slow),
    ],
    ids=["mult18", "plain"],
)
def test_depthwise_on_every_lane_without_spram(config):
    """The lane cache on block RAM (the ECP5 boards): depthwise layers on every DSP lane,
    the weights read where they are, and (a cap of 80 accumulator words, as a board whose
    block RAM a program overflows gets) every layer in blocks of output rows; bit-exact,
    the model's cycles."""
    config = replace(config, lane_cache=True, xc_depth=64)
    program = compile_graph(dw_net(seed=2), config, acc_cap=80)
    assert program.config.lane_cache and not program.config.spram
    assert program.config.accd_depth <= 128
    assert sum(i.op == "PCFG" and i["mc"] > 0 for i in program.instrs) >= 4  # row blocks
    assert sum(i.op == "CFG" and i["dw"] == 1 for i in program.instrs) >= 2
    assert not any(i.op == "LOAD" and i["fill"] and not i["lanes"] for i in program.instrs)
    check_outputs_and_cycles(program, 2)
    without = compile_graph(dw_net(seed=2), replace(config, lane_cache=False))
    assert not without.config.lane_cache
    assert model.schedule(program).cycles < model.schedule(without).cycles
