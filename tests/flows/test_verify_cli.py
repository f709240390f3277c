"""``nnloom generate`` writes the SystemVerilog bench, VUnit script and source copy;
``nnloom sim --bench sv`` runs the bench; its bad options are one line."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def generated(mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "mlp"
    result = runner.invoke(
        app, ["generate", str(mlp_onnx), "--engine", "dense", "-o", str(out), "--random", "4"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_generate_writes_the_bench_files_and_the_source(generated, mlp_onnx):
    bench = (generated / "rtl" / "tb_nnloom_dense.sv").read_text()
    assert "module tb_nnloom_dense;" in bench and "$fatal" in bench
    words = (generated / "vectors" / "in.hex").read_text().split()
    assert len(words) == 16 * (7 + 4)  # 16 input words per vector, edge + random vectors
    assert (generated / "rtl" / "run.py").is_file()
    source = generated / "source" / mlp_onnx.name
    manifest = json.loads((generated / "manifest.json").read_text())
    assert hashlib.sha256(source.read_bytes()).hexdigest() == manifest["source"]["sha256"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bench", "vhdl"], "unknown bench 'vhdl'; choose cocotb or sv"),
        (
            ["--bench", "sv", "--simulator", "xsim"],
            "unknown simulator 'xsim'; choose verilator or icarus",
        ),
    ],
)
def test_bad_bench_options_are_one_line(generated, args, message):
    result = runner.invoke(app, ["sim", str(generated), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.sim
@pytest.mark.skipif(
    shutil.which("iverilog") is None,
    reason="Icarus Verilog is not installed: apt-get install iverilog",
)
def test_sim_bench_sv_under_icarus(generated, tmp_path):
    art = tmp_path / "mlp"
    shutil.copytree(generated, art)
    result = runner.invoke(
        app, ["sim", str(art), "--bench", "sv", "--simulator", "icarus"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "PASS tb_nnloom_dense: 11 vectors, 55 output words equal the golden" in result.output
    # `nnloom sim --bench sv` rewrites the bench from golden.npz: a wrong golden fails
    with np.load(art / "vectors" / "golden.npz") as f:
        vectors = dict(f)
    vectors["outputs"][0, 3] ^= 1
    np.savez(art / "vectors" / "golden.npz", **vectors)
    result = runner.invoke(
        app, ["sim", str(art), "--bench", "sv", "--simulator", "icarus"], terminal_width=200
    )
    assert result.exit_code == 1
    assert "FAIL tb_nnloom_dense: 1 of 55 output words differ" in result.output
    assert "MISMATCH vector 0, output word 3" in result.output
