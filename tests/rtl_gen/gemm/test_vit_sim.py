"""Transformers on the overlay under Verilator (``slow``): one block of the digits ViT's
architecture (untrained, from torch's own modules, quantized by onnxruntime) on a handful
of vectors, and the trained example on every test vector; RTL = golden bit for bit, RTL
cycles = model cycles per layer. (The sim tier runs each transformer unit on small nets in
``test_engine_sim``'s shared build: ``test_transformer_units``.)"""

from __future__ import annotations

import json

import pytest

from frontends.vectors import golden_vectors
from rtl_gen.gemm import compile_graph
from rtl_gen.gemm.config import board_configs
from rtl_gen.gemm.emit import write_gemm_artefact
from sim.runner import run_sim

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def _simulate(tmp_path, graph, vectors):
    program = compile_graph(graph, board_configs("ulx3s-85f")["dsp"])
    out = write_gemm_artefact(program, tmp_path / "art", vectors=vectors(program.graph))
    result = run_sim(out, build_root=tmp_path / "build")
    summary = json.loads((out / "sim" / "summary.json").read_text())
    assert result.passed, "\n".join(result.mismatches)
    for layer in summary["layers"]:
        assert layer["rtl"] == layer["model"], layer
    return program, result


def test_one_block_bit_exact(tmp_path):
    from frontends.examples.digits_mlp import load_digits_split
    from frontends.examples.digits_vit import build_vit, export_vit, quantize_vit
    from frontends.onnx_import import import_onnx

    x = load_digits_split()[0]
    raw = export_vit(build_vit(blocks=1, seed=3), tmp_path / "float.onnx", dynamo=False)
    graph = import_onnx(quantize_vit(raw, tmp_path / "vit.onnx", x[:64]))
    program, result = _simulate(
        tmp_path, graph, lambda g: golden_vectors(g, data_x=x[:4], random=2, seed=1)
    )
    ops = {l.op for l in program.layers}
    assert {"layernorm", "matmul", "nonlinear", "dense", "add"} <= ops
    assert result.vectors >= 4


def test_digits_vit_every_test_vector(tmp_path):
    from frontends.examples.digits_vit import make_digits_vit
    from frontends.onnx_import import import_onnx
    from frontends.vectors import load_data

    made = make_digits_vit(tmp_path / "m")
    x, y = load_data(made.test_data)
    graph = import_onnx(made.quantized)
    _, result = _simulate(
        tmp_path, graph, lambda g: golden_vectors(g, data_x=x, data_y=y, random=0)
    )
    assert result.vectors == len(x)
