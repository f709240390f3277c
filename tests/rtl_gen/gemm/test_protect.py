"""The GEMM overlay with parity/SECDED on its instruction, weight and parameter memories:
bit-exact with no faults and the model's cycles (one more FETCH cycle per instruction);
under injected flips equal to the flipped-memory golden (``protect.faulted_program``),
outputs and error counters, in Amaranth's simulator."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.errors import UsageError
from frontends.vectors import golden_vectors
from rtl_gen.ecc import EccCode
from rtl_gen.gemm import GemmConfig, compile_graph, model
from rtl_gen.gemm.emit import create_engine, stored_images
from rtl_gen.gemm.protect import codes, faulted_program, read_counts

from .nets import dense_chain
from .test_engine_amaranth import infer

# both cores, the ternary LUT core (whose lanes read a flipped "10" code as 0)
CONFIG = GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="ternary")


@pytest.fixture(scope="module")
def case():
    graph = dense_chain((11, 9, 6), seed=4)
    programs = {
        p: compile_graph(graph, replace(CONFIG, protect=p), split=0.7)
        for p in ("none", "parity", "secded")
    }
    vectors = golden_vectors(programs["none"].graph, random=2, seed=3)
    return programs, vectors["inputs"][:3], vectors["outputs"][:3]


def _simulate(program, inputs, images=None):
    """Outputs per inference, the cycle counter and (protected) the error counters after
    the last inference."""
    dut = create_engine(program, images=images, observe=False)
    res = {}

    async def bench(ctx):
        outs = []
        for x in inputs:
            outs.append(await infer(ctx, dut, program, x))
        await ctx.tick().repeat(8)
        res.update(outs=outs, cycles=ctx.get(dut.cycles))
        if program.config.protect != "none":
            res.update(corrected=ctx.get(dut.ecc_corrected), errors=ctx.get(dut.ecc_errors))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


def _flip(program, rng, n_words, per_word, memories=("wd", "wl", "params")):
    """The stored images with ``per_word`` bits flipped in ``n_words`` used words of each of
    ``memories``."""
    images = stored_images(program)
    coded = codes(program.config)
    reads = read_counts(program)
    for name in memories:
        words = list(images[name])
        used = np.flatnonzero(reads[name])
        for w in rng.choice(used, size=min(n_words, len(used)), replace=False):
            for b in rng.choice(coded[name].word_bits, size=per_word, replace=False):
                words[int(w)] ^= 1 << int(b)
        images[name] = words
    return images


def test_coded_memories_widths_and_cycles(case):
    programs, _, _ = case
    plain, secded = stored_images(programs["none"]), stored_images(programs["secded"])
    k = {"imem": 64, "wd": 3 * 8, "wl": 5 * 2}
    for name, bits in k.items():
        code = EccCode("secded", bits)
        assert secded[name] == code.encode_words(plain[name])
        assert code.decode_words(secded[name])[0] == [int(w) for w in plain[name]]
    # every instruction spends the decoder's stages more before its EXEC (parity one,
    # SECDED two); a wait for a core may absorb them
    base = model.schedule(programs["none"])
    for p, stages in (("parity", 1), ("secded", 2)):
        sched = model.schedule(programs[p])
        assert min(np.diff(base.fetch)) == 2 and min(np.diff(sched.fetch)) == 2 + stages
        assert sched.fetch[-1] > base.fetch[-1] and sched.cycles > base.cycles


def test_unknown_protection_is_refused_by_name():
    with pytest.raises(UsageError, match="--protect ecc"):
        replace(CONFIG, protect="ecc")


def test_read_counts_follow_the_program(case):
    program = case[0]["secded"]
    reads = read_counts(program)
    assert (reads["imem"] == 1).all()
    # a dense chain reads every weight word once and every parameter word once
    assert reads["wd"].sum() == len(program.wd) and reads["wl"].sum() == len(program.wl)
    assert reads["params"].sum() == sum(l.n_dsp + l.n_lut for l in program.layers)


@pytest.mark.parametrize("protect", ["parity", "secded"])
def test_protected_engine_is_bit_exact_with_the_model_cycles(case, protect):
    programs, inputs, expected = case
    res = _simulate(programs[protect], inputs)
    assert res["outs"] == [list(e) for e in expected]
    assert res["cycles"] == model.schedule(programs[protect]).cycles
    assert (res["corrected"], res["errors"]) == (0, 0)


def test_shared_instruction_and_parameter_port_corrects_both(case):
    # SECDED keeps instructions and parameters in one block RAM behind one decoder (not
    # with the registered instruction word, ins_reg), and a flip in every instruction and
    # parameter word is corrected where it is read
    programs, inputs, expected = case
    program = programs["secded"]
    assert codes(program.config)["params"] == codes(program.config)["imem"]
    cfg = replace(program.config, ins_reg=True)  # (ins_reg: the memories apart)
    assert codes(cfg)["params"].data_bits == cfg.bias_bits + cfg.mult_bits
    images = _flip(program, np.random.default_rng(5), 99, 1, memories=("imem", "params"))
    res = _simulate(program, inputs, images)
    faulted, counts = faulted_program(program, images)
    assert faulted.instrs == program.instrs and (faulted.params == program.params).all()
    # every instruction word is flipped and read once an inference, parameters more
    assert counts["corrected"] > len(program.instrs) and counts["errors"] == 0
    assert res["outs"] == [list(e) for e in expected]
    assert res["cycles"] == model.schedule(program).cycles
    # (instruction 0, flipped too, is fetched once more: after the last END)
    assert (res["corrected"], res["errors"]) == (counts["corrected"] * len(inputs) + 1, 0)


def test_flipped_memories_equal_the_flipped_golden_with_their_counts(case):
    programs, inputs, expected = case
    rng = np.random.default_rng(7)
    n = len(inputs)
    # SECDED, one flip in 2 words of each memory: corrected, outputs unchanged
    program = programs["secded"]
    images = _flip(program, rng, 2, 1)
    faulted, counts = faulted_program(program, images)
    assert counts == {"corrected": 6, "errors": 0}
    res = _simulate(program, inputs, images)
    assert res["outs"] == [list(e) for e in expected]
    assert (res["corrected"], res["errors"]) == (6 * n, 0)
    # SECDED, two flips in a word: detected, computed with the word as read
    images = _flip(program, rng, 2, 2)
    faulted, counts = faulted_program(program, images)
    assert counts == {"corrected": 0, "errors": 6}
    res = _simulate(program, inputs, images)
    assert res["outs"] == [list(o) for o in model.run(faulted, inputs)]
    assert (res["corrected"], res["errors"]) == (0, 6 * n)
    # unprotected: the flips change the outputs, as the golden of the flipped words says
    program = programs["none"]
    images = _flip(program, rng, 3, 1)
    faulted, _ = faulted_program(program, images)
    golden = model.run(faulted, inputs)
    assert (golden != expected).any()
    assert _simulate(program, inputs, images)["outs"] == [list(o) for o in golden]


@pytest.mark.sim
def test_verilog_with_flipped_memories_equals_the_flipped_golden(case, tmp_path):
    """Verilator: SECDED memories with a double flip in two weight words (detected; the
    outputs change) and single flips elsewhere (corrected): outputs and counters as the
    flipped-memory golden says."""
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm.emit import TOP, write_gemm_artefact
    from sim.runner import run_sim

    program = case[0]["secded"]
    rng = np.random.default_rng(11)
    images = _flip(program, rng, 2, 1)
    wd = list(images["wd"])
    for w in (0, 3):
        wd[w] ^= 0b101 << 4
    images["wd"] = wd
    faulted, counts = faulted_program(program, images)
    assert counts["errors"] == 2 and counts["corrected"] >= 4
    vectors = golden_vectors(program.graph, random=4, seed=3)
    expected = model.run(faulted, vectors["inputs"])
    assert (expected != vectors["outputs"]).any()
    vectors = {k: v for k, v in vectors.items() if not k.startswith("layer")}
    vectors["outputs"] = expected
    verilog = emit_verilog(create_engine(program, images=images), TOP)
    out = write_gemm_artefact(program, tmp_path / "flipped", vectors=vectors, verilog_text=verilog)
    result = run_sim(out)
    assert result.passed, "\n".join(result.mismatches)
    import json

    summary = json.loads((out / "sim" / "summary.json").read_text())
    n = len(vectors["inputs"])
    assert summary["memory"] == {"corrected": counts["corrected"] * n, "errors": 2 * n}
    assert summary["cycles"]["max"] == model.schedule(program).cycles


def _check_parameter_reads(graph, protect, ops):
    """``graph`` bit-exact and cycle-exact under ``protect``, and with one flip in every
    parameter word: outputs and counters as the flipped-memory golden says."""
    from .test_engine_amaranth import check_outputs_and_cycles

    program = compile_graph(graph, replace(CONFIG, protect=protect, primitives=False))
    assert set(ops) <= {ins.op for ins in program.instrs}
    check_outputs_and_cycles(program, 1)
    images = _flip(program, np.random.default_rng(5), 10**6, 1, memories=("params",))
    faulted, counts = faulted_program(program, images)
    x = golden_vectors(program.graph, random=1, seed=3)["inputs"][:1]
    res = _simulate(program, x, images)
    assert res["outs"] == [list(o) for o in model.run(faulted, x)]
    assert counts["corrected" if protect == "secded" else "errors"] > 0
    assert (res["corrected"], res["errors"]) == (counts["corrected"], counts["errors"])


@pytest.mark.parametrize("protect", ["parity", "secded"])
def test_post_unit_reads_parameters_early_for_post_and_add(protect):
    """The post unit's POST and ADD parameter reads through the registered decoder
    (``PostUnit.p_addr_early``: an ADD alternates two words)."""
    from .nets import conv_net

    layers = [dict(cout=3, kernel=(1, 1)), dict(cout=3, kernel=(1, 1))]
    graph = conv_net((2, 3, 3), layers, residual=(0, 1), seed=3, head=3)
    _check_parameter_reads(graph, protect, ("POST", "ADD"))


@pytest.mark.slow
def test_post_unit_reads_parameters_early_for_max(pool_cat):
    _check_parameter_reads(pool_cat, "secded", ("POST", "MAX"))


def test_flipped_instructions_equal_the_golden_of_the_program_they_decode_to(case):
    """A flipped bit in the last PCFG's zero point: SECDED corrects it, parity passes the changed
    instruction on and counts it, unprotected it changes the outputs silently; the RTL
    computes what the golden of the decoded program says. A flipped opcode that changes
    the streams leaves the golden unable to say (``undefined``)."""
    from rtl_gen.gemm.isa import OP_SHIFT, field_offsets

    programs, inputs, expected = case
    pcfg = max(i for i, ins in enumerate(programs["none"].instrs) if ins.op == "PCFG")
    bit = field_offsets("PCFG")["zp"][0] + 5
    outs = {}
    for protect in ("none", "parity", "secded"):
        program = programs[protect]
        images = stored_images(program)
        images["imem"] = list(images["imem"])
        images["imem"][pcfg] ^= 1 << bit
        faulted, counts = faulted_program(program, images)
        res = _simulate(program, inputs, images)
        outs[protect] = res["outs"]
        assert res["outs"] == [list(o) for o in model.run(faulted, inputs)]
        want = {"none": (0, 0), "parity": (0, 1), "secded": (1, 0)}[protect]
        assert (counts["corrected"], counts["errors"]) == want
        if protect != "none":
            assert (res["corrected"], res["errors"]) == tuple(len(inputs) * c for c in want)
    assert outs["secded"] == [list(e) for e in expected] != outs["none"] == outs["parity"]
    images = stored_images(programs["parity"])
    images["imem"] = list(images["imem"])
    images["imem"][0] ^= 1 << (OP_SHIFT + 3)  # the LOAD's opcode
    faulted, counts = faulted_program(programs["parity"], images)
    assert faulted is None and counts["errors"] == 1 and counts["undefined"]
