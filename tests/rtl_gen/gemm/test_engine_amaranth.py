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


async def infer(ctx, dut, program, x, gaps=0) -> list[int]:
    """One inference in the simulator: ``x`` in over ``i`` (``gaps`` idle cycles before each
    element), ``n_out`` elements back on ``o``."""
    for j, v in enumerate(x):
        if gaps:
            ctx.set(dut.i.valid, 0)
            await ctx.tick().repeat(gaps)
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
    return out


def collision_checker(dut, found: list):
    """A simulator process: every cycle in which a memory read whose data is used names
    the address a write port writes (the engine's block RAMs are ``no_rw_check``: such a
    read's data would be undefined on an FPGA) goes into ``found`` as (cycle, memory,
    address)."""
    ports = dut.probes["ports"]
    conflict = dut.probes.get("conflict")  # a shared read port asked for by two readers
    conflicts = {} if conflict is None else {"act_shared_port": conflict}
    sigs, layout = [], []
    for name, (writes, reads) in ports.items():
        for kind, pairs in (("w", writes), ("r", reads)):
            for addr, flag in pairs:
                layout.append((name, kind))
                sigs += [addr, flag]

    async def process(ctx):
        cycle = 0
        async for _, _, *values in ctx.tick().sample(*sigs, *conflicts.values()):
            found.extend(
                (cycle, name, None) for name, v in zip(conflicts, values[len(sigs) :]) if v
            )
            values = values[: len(sigs)]
            written, read = {}, []
            for (name, kind), addr, flag in zip(layout, values[::2], values[1::2]):
                if flag and kind == "w":
                    written.setdefault(name, set()).add(addr)
                elif flag:
                    read.append((name, addr))
            found.extend(
                (cycle, name, addr) for name, addr in read if addr in written.get(name, ())
            )
            cycle += 1

    return process


def simulate(program, inputs, *, observe=True, gaps=0, dut=None, collisions=None):
    """``inputs`` through the engine in Amaranth's simulator: per inference (outputs,
    cycles, perf counters). Fails on a read-during-write collision (``collision_checker``)
    unless a ``collisions`` list is given to collect them."""
    dut = dut or create_engine(program, observe=observe)
    results, found = [], [] if collisions is None else collisions

    async def bench(ctx):
        for x in inputs:
            out = await infer(ctx, dut, program, x, gaps)
            results.append(
                (
                    out,
                    ctx.get(dut.cycles),
                    {f"{c}_{w}": ctx.get(getattr(dut, f"perf_{c}_{w}")) for c, w in PERF}
                    if observe
                    else {},
                )
            )

    sim = Simulator(dut)  # elaborates the engine: its probes exist from here on
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(collision_checker(dut, found))
    sim.run()
    if collisions is None:
        assert found == [], found[:5]
    return results


def check_outputs_and_cycles(program, count, *, random=2, seed=3, **kwargs):
    """``count`` golden vectors through the engine: outputs equal, cycles the model's."""
    vectors = golden_vectors(program.graph, random=random, seed=seed)
    sched = model.schedule(program)
    results = simulate(program, vectors["inputs"][:count], **kwargs)
    assert len(results) == count
    for (out, cycles, _), want in zip(results, vectors["outputs"]):
        assert out == list(want)
        assert cycles == sched.cycles


@pytest.mark.parametrize(
    "config,split",
    [
        (GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary"), 0.7),
        (GemmConfig(dsp_lanes=0, lut_lanes=4, lut_wbits=3), 1.0),
        (
            GemmConfig(
                dsp_lanes=3, lut_lanes=5, lut_mode="bitserial", dsp_pack=True, primitives=False
            ),
            0.6,
        ),
    ],
)
def test_engine_bit_exact_cycles_and_perf(config, split):
    program = compile_graph(dense_chain((11, 9, 6), seed=4), config, split=split)
    vectors = golden_vectors(program.graph, random=2, seed=3)
    sched = model.schedule(program)
    expected_perf = {f"{c}_{w}": getattr(sched, w)[c] for c, w in PERF}
    for (out, cycles, perf), want in zip(
        simulate(program, vectors["inputs"][:4]), vectors["outputs"]
    ):
        assert out == list(want)
        assert cycles == sched.cycles
        assert perf == expected_perf


def test_engine_without_observation_ports():
    # what the benchmark synthesizes (and a board keeps): no perf counters, no pc, the same
    # outputs and cycle count
    program = compile_graph(
        dense_chain((11, 9, 6), seed=4),
        GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary"),
        split=0.7,
    )
    dut = create_engine(program, observe=False)
    members = set(dut.signature.members)
    assert "pc" not in members and not any(name.startswith("perf_") for name in members)
    assert {"i", "o", "cycles", "busy"} <= members
    check_outputs_and_cycles(program, 3, observe=False, dut=dut)


@pytest.mark.parametrize("n_out", [1, 2, 4])
def test_streamed_store_of_a_short_output(n_out):
    # STORE stream=1 starts while the last POST's pipeline still writes: with fewer outputs
    # than its depth the first elements must wait for their writes
    program = compile_graph(
        dense_chain((7, 5, n_out), seed=n_out), GemmConfig(dsp_lanes=4, lut_lanes=0), split=0.0
    )
    store = program.instrs[-2]
    assert store.op == "STORE" and store["stream"] == 1
    check_outputs_and_cycles(program, 4, random=4, seed=2)


@pytest.mark.parametrize("gaps", [1, 3])
def test_streamed_first_layer_waits_for_a_slow_input(gaps):
    # the first layer's GEMMs run ahead of the LOAD: with idle cycles between input
    # elements each core must wait for every element it reads (a core reading ahead of the
    # LOAD would see the previous inference's input)
    program = compile_graph(
        dense_chain((11, 9, 6), seed=4),
        GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary"),
        split=0.7,
    )
    assert program.instrs[1].op == "GEMM" and program.instrs[1]["stream"] == 1
    vectors = golden_vectors(program.graph, random=3, seed=5)
    fast = model.schedule(program).cycles
    for (out, cycles, _), want in zip(
        simulate(program, vectors["inputs"][:5], gaps=gaps), vectors["outputs"]
    ):
        assert out == list(want)
        assert cycles > fast


def test_reductions_of_one_and_two():
    # K = 1, 5, 2: the core's registered last-k flag at its shortest loops
    config = GemmConfig(
        dsp_lanes=2, lut_lanes=3, lut_mode="bitserial", dsp_pack=True, primitives=False
    )
    program = compile_graph(dense_chain((1, 5, 2, 3), seed=2), config, split=0.5)
    check_outputs_and_cycles(program, 3)


def drain_order_slack(program, inputs):
    """Runs the engine in Amaranth's simulator with a checker on every POST accumulator
    read: the element must have been written, in an earlier cycle, by the drain of the GEMM
    the POST belongs to (on that core, the last one started before the POST's SYNC: a
    streamed GEMM of the next layer may start before the POST, but must not drain over
    what it reads). Returns (outputs, reads checked, violations, the least slack: read
    cycle minus write cycle)."""
    dut = create_engine(program)
    results, state = [], {"reads": 0, "bad": [], "slack": None}
    # GEMMs a POST's core starts between the POST's SYNC and the POST (streamed ahead)
    ahead, since_sync = {}, {"dsp": 0, "lut": 0}
    for i, ins in enumerate(program.instrs):
        if ins.op == "SYNC":
            since_sync = {"dsp": 0, "lut": 0}
        elif ins.op == "GEMM":
            since_sync[ins.core] += 1
        elif ins.op == "POST":
            ahead[i] = since_sync[ins.core]

    async def bench(ctx):
        for x in inputs:
            out = await infer(ctx, dut, program, x)
            results.append(out)

    sim = Simulator(dut)  # elaborates the engine: its probes exist from here on
    post, cores = dut.probes["post"], dut.probes["cores"]
    names = sorted(cores)
    sigs = [post.acc_re, post.acc_addr, dut.probes["post_core"], dut.pc]
    for c in names:
        sigs += [cores[c].start, cores[c].acc_en, cores[c].acc_addr]

    async def checker(ctx):
        written = {c: {} for c in names}  # address -> (cycle, GEMM number)
        started = {c: 0 for c in names}
        cycle = 0
        async for _, _, re, raddr, pcore, pc, *rest in ctx.tick().sample(*sigs):
            for i, c in enumerate(names):
                start, en, waddr = rest[3 * i : 3 * i + 3]
                if start:
                    started[c] += 1
                if en:
                    written[c][waddr] = (cycle, started[c])
            if re:
                core = ("dsp", "lut")[pcore] if len(names) == 2 else names[0]
                state["reads"] += 1
                when, gemm = written[core].get(raddr, (None, None))
                if when is None or when >= cycle or gemm != started[core] - ahead[pc]:
                    state["bad"].append((cycle, core, raddr, when))
                else:
                    slack = cycle - when
                    state["slack"] = slack if state["slack"] is None else min(state["slack"], slack)
            cycle += 1

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(checker)
    sim.run()
    return results, state["reads"], state["bad"], state["slack"]


@pytest.mark.parametrize(
    "config,split",
    [
        (GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary"), 0.7),
        (GemmConfig(dsp_lanes=4, lut_lanes=8, lut_mode="ternary"), 0.5),  # one tile a core
        (GemmConfig(dsp_lanes=0, lut_lanes=4, lut_wbits=3), 1.0),
    ],
)
def test_post_reads_after_drain(config, split):
    # SYNC waits for the cores' compute only; their last drains run on behind it. Every
    # POST read must still find its accumulator written, in an earlier cycle.
    program = compile_graph(dense_chain((11, 9, 6), seed=4), config, split=split)
    vectors = golden_vectors(program.graph, random=2, seed=3)
    outs, reads, bad, slack = drain_order_slack(program, vectors["inputs"][:2])
    assert reads == 2 * (9 + 6)
    assert bad == [], bad[:5]
    assert slack >= 1
    assert outs == [list(w) for w in vectors["outputs"][:2]]


def test_drain_checker_catches_an_early_post():
    # mutant: the barrier removed (SYNC -> NOP): the POSTs read accumulators the cores
    # have not drained yet, and the checker reports them
    from dataclasses import replace

    from rtl_gen.gemm.isa import Instr

    config = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary")
    program = compile_graph(dense_chain((11, 9, 6), seed=4), config, split=0.7)
    instrs = [Instr("NOP") if i.op == "SYNC" else i for i in program.instrs]
    mutant = replace(program, instrs=instrs)
    vectors = golden_vectors(program.graph, random=1, seed=3)
    _, reads, bad, _ = drain_order_slack(mutant, vectors["inputs"][:1])
    assert reads == 9 + 6
    assert bad


@pytest.mark.parametrize("net", ["cnn", "pool_cat"])
def test_convolutions_residual_and_pools_read_nothing_being_written(net, request):
    # im2col gathers with pad entries, a residual ADD and max pools through the shared
    # activation port: bit-exact, cycle-exact, and no used read of an address being written
    config = GemmConfig(
        dsp_lanes=4,
        lut_lanes=8,
        lut_mode="bitserial",
        dsp_pack=True,
        primitives=False,
        acc_bits=24,
        bias_bits=24,
        imem_depth=64,
        act_depth=4096,
        idx_depth=8192,
        wd_depth=1024,
        wl_depth=4096,
        param_depth=128,
        accd_depth=512,
        accl_depth=512,
    )
    program = compile_graph(request.getfixturevalue(net), config, split="auto", fit=False)
    assert {"ADD", "MAX"} & {i.op for i in program.instrs}
    check_outputs_and_cycles(program, 1, random=1)


def test_collision_checker_catches_gemms_reading_ahead_of_their_load():
    # mutant: the first layer's GEMMs lose their stream flag, so the cores read the input
    # buffer while the LOAD writes it, unguarded: the checker reports those reads
    from dataclasses import replace

    from rtl_gen.gemm.isa import Instr

    program = compile_graph(
        dense_chain((11, 9, 6), seed=4),
        GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary"),
        split=0.7,
    )
    first = [i for i, ins in enumerate(program.instrs) if ins.op == "LOAD"][0]
    instrs = [
        Instr("GEMM", ins.core, {**ins.fields, "stream": 0})
        if ins.op == "GEMM" and i < first
        else ins
        for i, ins in enumerate(program.instrs)
    ]
    vectors = golden_vectors(program.graph, random=1, seed=3)
    found = []
    simulate(replace(program, instrs=instrs), vectors["inputs"][:2], collisions=found)
    assert found and {name for _, name, _ in found} == {"act"}, found[:5]


def test_registered_mult18_lanes_add_a_cycle_the_model_knows():
    # dsp_regs: each DSP lane a MULT18X18D with its input and output registers (here as
    # logic): one more core pipeline cycle, bit-exact, cycle-exact with the model's
    from dataclasses import replace

    base = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary")
    graph = dense_chain((11, 9, 6), seed=4)
    program = compile_graph(graph, replace(base, dsp_regs=True, primitives=False), split=0.7)
    check_outputs_and_cycles(program, 3)
    plain = compile_graph(graph, base, split=0.7)
    assert model.schedule(program).cycles > model.schedule(plain).cycles


@pytest.mark.parametrize("protect", ["none", "secded"])
def test_registered_instruction_word_adds_a_cycle_an_instruction(protect):
    # ins_reg: the word registered in the sequencer's LATCH state before its decode (the
    # ECP5 boards): bit-exact, cycle-exact with the model's, at most one cycle more an
    # instruction (fewer where an instruction's cost hides behind a core's or the input's)
    from dataclasses import replace

    base = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary", protect=protect)
    graph = dense_chain((11, 9, 6), seed=4)
    program = compile_graph(graph, replace(base, ins_reg=True), split=0.7)
    check_outputs_and_cycles(program, 2)
    plain = compile_graph(graph, base, split=0.7)
    assert program.instrs == plain.instrs
    grown = model.schedule(program).cycles - model.schedule(plain).cycles
    assert 0 < grown <= len(plain.instrs) + 1  # (+ 1: the END's, before the next inference)


def test_window_counters_on_every_window_feature():
    # stride 2 with asymmetric pads, dilation 2, depthwise with stride (2, 1), 2 groups of 4
    # (their input scattered by the split: reordered first), a 1x5 kernel, a 1x1 and a
    # residual add: bit-exact, cycle-exact, no used read of an address being written
    from .nets import window_cases

    config = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary", primitives=False)
    program = compile_graph(window_cases(), config, split=0.5)
    assert any("reordered" in i.comment for i in program.instrs)
    check_outputs_and_cycles(program, 1, random=1)


def test_diagonal_dense_layer_runs_as_one_channel_groups():
    # a per-channel affine layer (BatchNormalization on quantized codes) is a diagonal
    # dense layer: n groups of one weight, not an n x n GEMM, on both cores
    diag = np.diag(np.random.default_rng(5).integers(-127, 128, 7))
    diag[3, 3] = 0
    rng = np.random.default_rng(6)
    weights = [rng.integers(-127, 128, (7, 6)), diag, rng.integers(-127, 128, (4, 7))]
    graph = dense_chain((6, 7, 7, 4), weights=weights, seed=1)
    config = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary")
    program = compile_graph(graph, config, split=0.5)
    layer = program.layers[1]
    assert (layer.groups, layer.k, layer.m) == (7, 1, 1)
    full = diag.copy()
    full[0, 1] = 1  # not diagonal: the dense GEMM
    dense = compile_graph(
        dense_chain((6, 7, 7, 4), weights=[weights[0], full, weights[2]], seed=1), config, split=0.5
    )
    assert dense.layers[1].k == 7
    assert len(program.wd) + len(program.wl) < len(dense.wd) + len(dense.wl)
    check_outputs_and_cycles(program, 3)


def test_conflict_checker_catches_a_store_while_the_sharing_core_computes():
    # the sequencer shares the first core's activation read port: a STORE moved ahead of
    # the last layer's SYNC reads while that core computes, and the checker reports it
    from dataclasses import replace

    from rtl_gen.gemm.isa import Instr

    program = compile_graph(dense_chain((11, 9, 6), seed=4), GemmConfig(dsp_lanes=3, lut_lanes=0))
    instrs = list(program.instrs)
    store = next(i for i, ins in enumerate(instrs) if ins.op == "STORE")
    gemm = max(i for i, ins in enumerate(instrs) if ins.op == "GEMM")
    moved = Instr("STORE", fields={**instrs[store].fields, "stream": 0})
    instrs = instrs[: gemm + 1] + [moved] + instrs[gemm + 1 : store] + instrs[store + 1 :]
    vectors = golden_vectors(program.graph, random=1, seed=3)
    found = []
    simulate(replace(program, instrs=instrs), vectors["inputs"][:1], collisions=found)
    assert {name for _, name, _ in found} == {"act_shared_port"}, found[:5]


def test_narrow_ternary_convolutions_split_by_output_rows():
    # 4-channel ternary convolutions on 3 DSP + 5 LUT lanes: each core takes every channel
    # of a range of output rows (the LUT core's window starts below the top padding; a
    # strided and a dilated window), bit-exact and cycle-exact, faster than by channels
    from .nets import conv_net

    graph = conv_net(
        (2, 9, 7),
        [
            dict(cout=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
            dict(cout=4, kernel=(3, 3), stride=(2, 2), pads=(1, 0, 1, 2)),
            dict(cout=4, kernel=(3, 3), dilation=(2, 2), pads=(2, 2, 2, 2)),
        ],
        residual=(1, 2),
        seed=7,
        weight_max=1,
    )
    config = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary", primitives=False)
    program = compile_graph(graph, config, split="auto")
    rows = [layer.lut_rows for layer in program.layers if layer.op == "conv"]
    assert all(rows), rows
    by_channels = compile_graph(graph, config, split=0.5)
    assert model.schedule(program).cycles < model.schedule(by_channels).cycles
    check_outputs_and_cycles(program, 3)


def _pool_graph(mult: int, shift: int):
    """(4, 5, 25) uint8 -> a 5x25 average pool (a 125-element window, as the KWS
    DS-CNN's) -> (4,) int8 with the IR's ``mult`` and ``shift``, rounding half to even."""
    from frontends.im2col import Window
    from frontends.im2col import conv_im2col as windows
    from frontends.ir import Graph, IntType, Node, QuantParams, Tensor

    q = QuantParams(np.float32(0.05), np.int64(0))
    shape = (4, 5, 25)
    node = Node(
        "pool",
        "avgpool",
        ("x",),
        ("y",),
        attrs={
            "kernel_shape": (5, 25),
            "strides": (5, 25),
            "pads": (0, 0, 0, 0),
            "dilations": (1, 1),
            "input_shape": shape,
            "output_shape": (4, 1, 1),
            "input_zero_point": 2,
            "output_zero_point": -3,
            "shift": shift,
            "lo": -128,
            "hi": 127,
            "rounding": "half_even",
        },
        weights={
            "multiplier": np.array([mult], np.int64),
            "im2col": windows(Window((5, 25), (5, 25), (5, 25), (0, 0, 0, 0), (1, 1)), 4, 4),
        },
        source_op="AveragePool",
    )
    tensors = {
        "x": Tensor("x", shape, IntType(8, False), QuantParams(np.float32(0.05), np.int64(2))),
        "y": Tensor("y", (4, 1, 1), IntType(8, True), q),
    }
    return Graph("pool", tensors, (node,), ("x",), ("y",))


def test_a_pool_divisor_wider_than_the_multiplier_runs_as_weighted_sums():
    # a 22-bit divisor multiplier (Brevitas' DS-CNN pool) as weight * sum with a 15-bit
    # multiplier, equal on every sum (checked by the compiler; here on edge and random
    # vectors in the simulator); without a DSP core it is refused by name
    from frontends.errors import ModelError
    from rtl_gen.gemm.config import MULT_BITS

    graph = _pool_graph(2780037, 28)
    config = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary", primitives=False)
    program = compile_graph(graph, config, split="auto")
    assert program.graph.nodes[0] is graph.nodes[0]  # the golden is the IR's
    assert int(program.params[:, 1].max()) < 1 << MULT_BITS
    assert program.layers[0].n_lut == 0
    check_outputs_and_cycles(program, 4, random=8)
    with pytest.raises(ModelError, match="'pool'.*no DSP core"):
        compile_graph(graph, GemmConfig(dsp_lanes=0, lut_lanes=5, lut_mode="ternary"))
