"""Whole networks on the overlay's Verilog under cocotb + Verilator: outputs equal the IR
golden bit for bit, the cycle counter and perf counters equal the model, per-layer RTL
cycles equal the model's. One Verilator build serves every case: the artefacts are
``loadable`` (empty memories, images written through the ``load`` port) and share a path.

The config is the iCE40 one: DSP lanes packed in pairs on ``SB_MAC16`` instances (Yosys'
simulation model of the primitive compiled beside them) and the bit-serial LUT core, whose
precision each program's CFGs set per layer. The shift-add LUT core with inferred
multipliers runs the same networks in the ``slow`` tier (and in Amaranth's simulator)."""

import json
from dataclasses import replace

import pytest

from frontends.fixedpoint import WIDE_MULTIPLIER_BITS, multiplier_width
from frontends.vectors import golden_vectors
from rtl_gen.emit import emit_verilog
from rtl_gen.gemm import GemmConfig, compile_graph
from rtl_gen.gemm.emit import TOP, create_engine, write_gemm_artefact
from sim.runner import run_sim

from .nets import dense_chain, saturating_chain

pytestmark = pytest.mark.sim

SIM_CONFIG = GemmConfig(
    dsp_lanes=4,
    lut_lanes=8,
    acc_bits=24,
    bias_bits=32,  # (a LayerNorm's folded beta)
    mult_bits=WIDE_MULTIPLIER_BITS,  # a transformer's; narrower programs run on it too
    imem_depth=64,
    act_depth=4096,
    idx_depth=8192,
    wd_depth=1024,
    wl_depth=4096,
    param_depth=128,
    accd_depth=512,
    accl_depth=512,
    tab_depth=512,
    etab_depth=512,
    row_bits=30,  # softmax rows up to 31: inv < 2**(48 + 5 - 24 + 1)
    matmul=True,
    cadd=True,
    norm=True,
    lut_mode="bitserial",
    dsp_pack=True,
)
SHIFTADD_CONFIG = replace(
    SIM_CONFIG, lut_mode="shiftadd", lut_wbits=4, dsp_pack=False, wl_depth=1024
)
# the ECP5 boards' DSP lanes: MULT18X18D instances with their own registers, simulated with
# the model rtl_gen.gemm.dsp writes beside them (Yosys ships none)
MULT18_CONFIG = replace(SIM_CONFIG, dsp_pack=False, dsp_regs=True, ins_reg=True, lut_mode="ternary")


class Slot:
    """One artefact path and one build folder for every program on ``config``."""

    def __init__(self, root, config=SIM_CONFIG):
        self.root, self.config = root, config
        self.verilog = None

    def run(self, graph, split, *, backpressure=False, random=6):
        program = compile_graph(graph, self.config, split=split, fit=False)
        vectors = golden_vectors(program.graph, random=random, seed=2)
        if self.verilog is None:
            self.verilog = emit_verilog(create_engine(program, loadable=True), TOP)
        out = write_gemm_artefact(
            program, self.root / "slot", vectors=vectors, loadable=True, verilog_text=self.verilog
        )
        result = run_sim(out, build_root=self.root / "build", backpressure=backpressure)
        if self.config.dsp_pack:
            assert (out / "rtl" / "ice40_sb_mac16_sim.v").exists()
        if self.config.dsp_regs:
            assert (out / "rtl" / "ecp5_mult18x18d_sim.v").exists()
            assert self.verilog.count("MULT18X18D #(") == self.config.dsp_lanes
        summary = json.loads((out / "sim" / "summary.json").read_text())
        assert result.passed, "\n".join(result.mismatches)
        assert result.vectors == len(vectors["inputs"])
        if not backpressure:
            for layer in summary["layers"]:
                assert layer["rtl"] == layer["model"], layer
            assert summary["perf"]["rtl"] == summary["perf"]["model"]
        return program, summary


@pytest.fixture(scope="module")
def slot(tmp_path_factory):
    return Slot(tmp_path_factory.mktemp("gemm_sim"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from frontends.examples.digits_mlp import make_digits_mlp
    from frontends.onnx_import import import_onnx

    made = make_digits_mlp(tmp_path_factory.mktemp("digits"))
    return import_onnx(made.quantized)


@pytest.mark.parametrize("split", [0.0, 1.0, "auto"])
def test_digits_mlp(slot, digits, split):
    program, summary = slot.run(digits, split)
    lut = [l.n_lut for l in program.layers]
    if split == 0.0:
        assert lut == [0, 0]
    elif split == 1.0:
        assert lut == [32, 10]
    else:
        assert summary["perf"]["rtl"]["dsp_busy"] and summary["perf"]["rtl"]["lut_busy"]


def test_odd_shapes_with_backpressure(slot):
    # K = 13, 19, 7 (not multiples of the lanes); LUT channels 11, 4, 7 on 8 lanes; the
    # bit-serial core runs 4- and 3-bit layers in one program
    graph = dense_chain((13, 19, 7, 11), seed=5)
    program, _ = slot.run(graph, 0.6)
    assert [l.lut_wbits for l in program.layers] == [4, 4, 3]
    slot.run(graph, 0.6, backpressure=True)


@pytest.mark.parametrize("split", [0.0, 1.0])
def test_accumulator_extremes_and_clamps(slot, split):
    program, _ = slot.run(saturating_chain(), split)
    assert program.needs["acc_bits"] <= SIM_CONFIG.acc_bits


@pytest.mark.parametrize("split", [0.0, 1.0, "auto"])
def test_cnn_with_depthwise_pointwise_and_residual(slot, cnn, split):
    program, summary = slot.run(cnn, split, random=2)
    assert [l.op for l in program.layers] == [
        "conv",
        "conv",
        "conv",
        "add",
        "conv",
        "avgpool",
        "dense",
    ]


def test_max_pools_and_concat(slot, pool_cat):
    program, _ = slot.run(pool_cat, "auto", random=2)
    assert [i["k"] for i in program.instrs if i.op == "MAX"] == [4, 1, 1, 9]


@pytest.mark.slow
def test_shiftadd_core_with_inferred_multipliers(tmp_path, digits, cnn):
    slot = Slot(tmp_path, SHIFTADD_CONFIG)
    for graph in (digits, cnn):
        for split in (1.0, "auto"):
            slot.run(graph, split, random=2)


def test_mult18x18d_lanes_bit_exact(tmp_path, digits):
    # split 0.5: both cores; 0.0: the DSP lanes alone, on accumulators of every sign
    slot = Slot(tmp_path, MULT18_CONFIG)
    for split in (0.5, 0.0):
        program, _ = slot.run(digits, split, random=3)
        assert program.config.dsp_regs


@pytest.mark.parametrize("split", [0.0, "auto"])
def test_window_counters_stride_padding_dilation_groups(slot, split):
    from .nets import window_cases

    program, _ = slot.run(window_cases(), split, random=2)
    assert {i.op for i in program.instrs} >= {"WIN", "WSTEP", "ADD"}


def test_nonlinear_tables(slot):
    # a GELU table on uint8 codes and a tanh table on int8 codes (rtl_gen.gemm.tables)
    from .test_tables import nonlinear_net

    for function, signed in (("gelu", False), ("tanh", True)):
        graph = nonlinear_net((12, 9, 5), function=function, signed=signed)
        program, summary = slot.run(graph, 0.0, random=4)
        assert [i.op for i in program.instrs].count("TAB") == 1


def test_softmax_rows(slot):
    # the row unit (rtl_gen.gemm.rowwise): rows of 7 and of 17, edge rows among them
    from .test_rowwise import softmax_net

    for shape in ((2, 5, 7), (3, 1, 17)):
        program, _ = slot.run(softmax_net(shape, s_x=0.3), 0.0, random=4)
        assert [i.op for i in program.instrs].count("ROW") == 1


def test_transformer_units(slot):
    # rtl_gen.gemm.attention and rowwise: heads of Q.K^T (slices and a transpose as
    # views), token dense layers, a position embedding, LayerNorm rows
    from .test_attention import const_add_net, matmul_net, token_net
    from .test_rowwise import layernorm_net

    with multiplier_width(WIDE_MULTIPLIER_BITS):  # as the importer gives a transformer
        graphs = (
            matmul_net(2, 5, 3, rounding="half_even"),
            token_net(),
            const_add_net(reach=2**10),
            layernorm_net(3, 8),
        )
    widths = [slot.run(graph, 0.0, random=3)[0].needs["mult_bits"] for graph in graphs]
    assert widths.count(WIDE_MULTIPLIER_BITS) == 3  # (token_net sets its own multipliers)
