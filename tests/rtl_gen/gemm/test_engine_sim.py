"""Whole networks on the overlay's Verilog under cocotb + Verilator: outputs equal the IR
golden bit for bit, the cycle counter and perf counters equal the model, per-layer RTL
cycles equal the model's. One Verilator build serves every case: the artefacts are
``loadable`` (empty memories, images written through the ``load`` port) and share a path."""

import json

import numpy as np
import pytest

from frontends.vectors import golden_vectors
from rtl_gen.emit import emit_verilog
from rtl_gen.gemm import GemmConfig, compile_graph
from rtl_gen.gemm.emit import TOP, create_engine, write_gemm_artefact
from sim.bench.gemm_run import run_gemm_sim

from .nets import dense_chain, qdq_cnn, saturating_chain

pytestmark = pytest.mark.sim

SIM_CONFIG = GemmConfig(dsp_lanes=4, lut_lanes=8, acc_bits=24, bias_bits=24, imem_depth=64,
                        act_depth=4096, idx_depth=8192, wd_depth=1024, wl_depth=1024,
                        param_depth=128, accd_depth=512, accl_depth=512)


class Slot:
    """One artefact path and one build folder for every program on ``SIM_CONFIG``."""

    def __init__(self, root):
        self.root = root
        self.verilog = None

    def run(self, graph, split, *, backpressure=False, random=6):
        program = compile_graph(graph, SIM_CONFIG, split=split, fit=False)
        vectors = golden_vectors(program.graph, random=random, seed=2)
        if self.verilog is None:
            self.verilog = emit_verilog(create_engine(program, loadable=True), TOP)
        out = write_gemm_artefact(program, self.root / "slot", vectors=vectors, loadable=True,
                                  verilog_text=self.verilog)
        result = run_gemm_sim(out, build_root=self.root / "build", backpressure=backpressure)
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
    # K = 13, 19, 7 (not multiples of the lanes); LUT channels 11, 4, 7 on 8 lanes
    graph = dense_chain((13, 19, 7, 11), seed=5)
    slot.run(graph, 0.6)
    slot.run(graph, 0.6, backpressure=True)


@pytest.mark.parametrize("split", [0.0, 1.0])
def test_accumulator_extremes_and_clamps(slot, split):
    program, _ = slot.run(saturating_chain(), split)
    assert program.needs["acc_bits"] <= SIM_CONFIG.acc_bits


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    from frontends.onnx_import import import_onnx
    return import_onnx(qdq_cnn(tmp_path_factory.mktemp("cnn") / "cnn.onnx"))


@pytest.mark.parametrize("split", [0.0, 1.0, "auto"])
def test_cnn_with_depthwise_pointwise_and_residual(slot, cnn, split):
    program, summary = slot.run(cnn, split, random=2)
    assert [l.op for l in program.layers] == ["conv", "conv", "conv", "add", "conv",
                                              "avgpool", "dense"]
