"""The ``spram`` overlay (iCE40 UP5K) as synthesized, under cocotb + Verilator: its memories
are ``SB_SPRAM256KA`` instances (Yosys' simulation model compiled beside them), the DSP
lanes ``SB_MAC16`` pairs; the weight SPRAM is written through ``load`` first (it has no
initial value). A reduced DS-CNN (convolution, depthwise on every lane, pointwise in weight
chunks) in the sim tier; the MLPerf Tiny KWS DS-CNN itself (``nnloom example tiny-kws``) on
the iCEBreaker's overlay in the slow tier, 8 vectors: outputs equal to the golden, the cycle
counter and every layer's RTL cycles equal to the model's."""

import json
from dataclasses import replace

import pytest

from frontends.vectors import golden_vectors
from rtl_gen.gemm import BOARDS, compile_graph
from rtl_gen.gemm.emit import write_gemm_artefact
from sim.runner import run_sim

from .test_spram_engine import SPRAM, SPRAM_DIRECT, dw_net, residual_net

pytestmark = pytest.mark.sim


def _check(out, program, count):
    result = run_sim(out)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == count
    summary = json.loads((out / "sim" / "summary.json").read_text())
    assert summary["cycles"]["max"] == summary["expected_latency"]
    assert len(summary["layers"]) == len(program.layers)
    for layer in summary["layers"]:
        assert layer["rtl"] == layer["model"], layer
    return summary


def test_reduced_ds_cnn_on_spram_primitives(tmp_path):
    program = compile_graph(dw_net(seed=4), replace(SPRAM, primitives=True))
    assert program.config.spram and program.config.dsp_pack
    vectors = golden_vectors(program.graph, random=2, seed=7)
    vectors = {k: v[:2] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "dw", vectors=vectors)
    assert (out / "rtl" / "ice40_sb_spram256ka_sim.v").exists()
    _check(out, program, 2)


def test_residual_block_on_spram_primitives_direct_weights(tmp_path):
    """ResNet's residual block on the UP5K overlay without the weight cache (4-bit weights
    read from SPRAM, accumulators in block RAM, each 3x3 layer in blocks of output rows,
    the ADD on the single-ported activation SPRAM), as synthesized."""
    program = compile_graph(
        residual_net(seed=6), replace(SPRAM_DIRECT, primitives=True), acc_cap=40
    )
    assert program.config.spram_wbits == 4
    vectors = golden_vectors(program.graph, random=2, seed=8)
    vectors = {k: v[:2] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "res", vectors=vectors)
    _check(out, program, 2)


@pytest.mark.slow
def test_resnet8_int4_on_the_icebreaker(tmp_path):
    """The MLPerf Tiny ResNet-8 with 4-bit weights (``nnloom example tiny-ic-int4``; the
    int8 one needs 6 SPRAMs, named in the refusal) on the iCEBreaker's overlay: act and
    weights in the four SPRAMs, accumulators in block RAM; 8 vectors bit- and
    cycle-exact, per layer."""
    pytest.importorskip("brevitas", reason="optional extra: pip install -e .[brevitas]")
    from frontends.examples.tiny_brevitas import make_tiny_brevitas
    from frontends.onnx_import import import_onnx

    made = make_tiny_brevitas("tiny_ic_int4", tmp_path / "models")
    graph = import_onnx(made.model)
    program = compile_graph(graph, BOARDS["icebreaker"]["hetero"], split="auto")
    assert program.config.spram and program.config.spram_wbits == 4
    vectors = golden_vectors(program.graph, random=8, seed=5)
    vectors = {k: v[:8] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "ic", vectors=vectors)
    _check(out, program, 8)


@pytest.mark.slow
def test_kws_on_the_icebreaker_spram_overlay(tmp_path):
    from frontends.examples.tiny import make_tiny
    from frontends.onnx_import import import_onnx

    made = make_tiny("tiny_kws", tmp_path / "models")
    graph = import_onnx(made.quantized)
    program = compile_graph(graph, BOARDS["icebreaker"]["hetero"], split="auto")
    assert program.config.spram  # its memories exceed the UP5K's block RAM
    vectors = golden_vectors(program.graph, random=8, seed=5)
    vectors = {k: v[:8] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "kws", vectors=vectors)
    _check(out, program, 8)


@pytest.mark.slow
def test_kws_depthwise_on_every_lane_on_the_ulx3s(tmp_path):
    """The DS-CNN on the ULX3S-85F's overlay (block RAM, MULT18X18D lanes): its depthwise
    layers on all 16 lanes through the lane cache, bit- and cycle-exact."""
    from frontends.examples.tiny import make_tiny
    from frontends.onnx_import import import_onnx

    made = make_tiny("tiny_kws", tmp_path / "models")
    graph = import_onnx(made.quantized)
    program = compile_graph(graph, BOARDS["ulx3s-85f"]["dsp"], split="auto")
    assert program.config.lane_cache and not program.config.spram
    assert sum(i.op == "CFG" and i["dw"] == 1 for i in program.instrs) >= 4
    vectors = golden_vectors(program.graph, random=8, seed=5)
    vectors = {k: v[:8] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "kws", vectors=vectors)
    _check(out, program, 8)
