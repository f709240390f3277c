"""The spiking digits ViT (``nnloom example digits-vit``, QDQ export) in the graph engine
under Verilator (``slow``: about 17 M cycles an inference): on 16 vectors (the edge
vectors, random codes and test digits) every output code equals the integer spiking
golden's, and each inference's time steps and cycles equal the engine's model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.sim, pytest.mark.slow]

VECTORS = 16


def vit_vectors(model: Path, test_data: Path, count: int = VECTORS) -> dict:
    """``count`` golden vectors of the ViT: its edge vectors, two random ones, then test
    digits."""
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors

    graph = import_onnx(model)
    with np.load(test_data) as f:
        x, y = f["x"], f["y"]
    vectors = golden_vectors(graph, data_x=x[:count], data_y=y[:count], random=2, seed=1)
    return graph, {k: v[:count] for k, v in vectors.items()}


def test_spiking_vit_rtl_equals_the_golden(tmp_path):
    from frontends.examples.digits_vit import make_digits_vit
    from rtl_gen.artefact import Artefact
    from rtl_gen.snn.emit import write_from_graph
    from sim.runner import run_sim

    made = make_digits_vit(tmp_path / "models")
    graph, vectors = vit_vectors(Path(made.quantized), Path(made.test_data))
    art = Artefact(write_from_graph(graph, tmp_path / "vit_snn", vectors=vectors))
    assert art.manifest["engine"] == "snn" and len(art.manifest["layers"]) >= 10
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
    summary = json.loads((art.path / "sim" / "summary.json").read_text())
    assert summary["vectors"] == VECTORS and summary["mismatching_elements"] == 0
    with np.load(result.outputs) as f:
        assert np.array_equal(f["steps"], art.vectors()["snn_steps"])
        assert np.array_equal(f["cycles"], art.vectors()["snn_cycles"])
    assert (art.vectors()["source"] == 2).sum() >= 5  # test digits among them
