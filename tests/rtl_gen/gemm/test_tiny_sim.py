"""The MLPerf Tiny image-classification ResNet-8 (``nnloom example tiny-ic``, 32x32x3, 12.5 M
MACs) and visual wake words MobileNetV1 (``tiny-vww``) on the ULX3S-85F's DSP-only overlay
under cocotb + Verilator: 8 vectors bit-exact against the IR golden, the cycle counter and
every layer's RTL cycles equal to the model's. Every convolution window comes from the
cores' address counters (no gather table)."""

import json

import pytest

from frontends.vectors import golden_vectors
from rtl_gen.gemm import BOARDS, compile_graph
from rtl_gen.gemm.emit import write_gemm_artefact
from sim.runner import run_sim

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_resnet8_on_the_ulx3s_overlay_bit_and_cycle_exact(tmp_path):
    from frontends.examples.tiny import make_tiny
    from frontends.onnx_import import import_onnx

    made = make_tiny("tiny_ic", tmp_path / "models")
    graph = import_onnx(made.quantized)
    program = compile_graph(graph, BOARDS["ulx3s-85f"]["dsp"], split="auto")
    assert len(program.idx) <= program.n_out  # no gather table grows with the image
    vectors = golden_vectors(program.graph, random=8, seed=5)
    vectors = {k: v[:8] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "ic", vectors=vectors)
    result = run_sim(out)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == 8
    summary = json.loads((out / "sim" / "summary.json").read_text())
    assert len(summary["layers"]) == len(program.layers)
    for layer in summary["layers"]:
        assert layer["rtl"] == layer["model"], layer


def test_vww_on_the_ulx3s_overlay_bit_and_cycle_exact(tmp_path):
    """The MLPerf Tiny MobileNetV1 0.25 (``nnloom example tiny-vww``, 96x96x3): its memories
    overflow the ULX3S-85F's 208 DP16KD as compiled first, so the compiler packs them
    tighter (its average pool on the lane cache, accumulators in blocks of output rows);
    8 vectors bit-exact, every layer's RTL cycles the model's."""
    from frontends.examples.tiny import make_tiny
    from frontends.onnx_import import import_onnx

    made = make_tiny("tiny_vww", tmp_path / "models")
    graph = import_onnx(made.quantized)
    program = compile_graph(graph, BOARDS["ulx3s-85f"]["dsp"], split="auto")
    assert program.config.accd_depth < 48 * 48 * 16  # row blocks
    vectors = golden_vectors(program.graph, random=8, seed=5)
    vectors = {k: v[:8] for k, v in vectors.items()}
    out = write_gemm_artefact(program, tmp_path / "vww", vectors=vectors)
    result = run_sim(out)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == 8
    summary = json.loads((out / "sim" / "summary.json").read_text())
    for layer in summary["layers"]:
        assert layer["rtl"] == layer["model"], layer
