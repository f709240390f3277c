"""``nnloom generate --engine snn`` for ONNX and NIR models, and its errors."""

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
SINABS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nir" / "cnn_sinabs.nir"


def invoke(*args):
    return runner.invoke(app, list(map(str, args)), terminal_width=200)


def test_generate_onnx_with_the_snn_engine(mlp_onnx, tmp_path):
    result = invoke("generate", mlp_onnx, "--engine", "snn", "-o", tmp_path / "snn")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "snn" / "manifest.json").read_text())
    assert manifest["engine"] == "snn" and manifest["parameters"]["exact"]
    assert manifest["sim"]["bench"] == "sim.bench.snn_bench"


def test_generate_small_nir(tmp_path):
    import nir

    from tests.frontends.snn.nir_graphs import tiny_cnn
    path = tmp_path / "tiny.nir"
    nir.write(str(path), tiny_cnn(0))
    result = invoke("generate", path, "--engine", "snn", "-o", tmp_path / "nir")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "nir" / "manifest.json").read_text())
    assert manifest["parameters"]["mode"] == "if"
    assert manifest["streams"]["input"]["elements"] == 16 * 72


def test_sinabs_cnn_is_refused_with_the_reason(tmp_path):
    import pytest
    if not SINABS.is_file():
        pytest.skip(f"{SINABS} is absent (the shared test data sits beside the repository)")
    result = invoke("generate", SINABS, "--engine", "snn", "-o", tmp_path / "x")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "28,477,952 weights" in text and "no convolution address generator" in text
