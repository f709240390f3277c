"""``nnloom bench tiny`` without synthesis: its rows against the compiler's own figures
recomputed here, a refusal as a one-line row, and the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.commands import tiny_bench


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """The ResNet-8 digits twin, trained for 2 epochs only (the bench reuses it)."""
    import torch

    from frontends.examples.tiny import make_tiny_twin

    out = tmp_path_factory.mktemp("bench") / "models"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_tiny_twin("ic", out, epochs=2)
    finally:
        torch.set_num_threads(threads)
    return out.parent


def test_rows_match_the_compiled_program(twin):
    from dataclasses import replace

    from frontends import reference
    from frontends.onnx_import import import_onnx
    from rtl_gen.gemm import BOARDS, compile_graph
    from rtl_gen.gemm.model import schedule

    report = tiny_bench.bench_tiny(twin, synth=False, models=["tiny_ic_digits"])
    rows = {(r["board"], r["kind"]): r for r in report["rows"]}
    assert set(rows) == {(b, k) for b in ("icebreaker", "ulx3s-85f") for k in ("dsp", "hetero")}
    graph = import_onnx(twin / "models" / "tiny_ic_digits.onnx")
    with np.load(twin / "models" / "tiny_ic_digits_test.npz") as f:
        x, y = f["x"], f["y"]
    row = rows[("ulx3s-85f", "dsp")]
    assert "error" not in row, row
    program = compile_graph(graph, replace(BOARDS["ulx3s-85f"]["dsp"], lut_lanes=0))
    lanes = program.config.dsp_lanes + program.config.lut_lanes
    assert row["cycles_model"] == schedule(program).cycles
    assert row["macs"] == program.macs() > 0
    assert row["utilisation_total"] == pytest.approx(row["macs"] / (row["cycles_model"] * lanes))
    assert 0 < row["utilisation_total"] <= 1
    assert set(row["utilisation"]) >= {"conv 3x3", "conv 1x1", "dense", "add", "avgpool"}
    golden = reference.predict(program.graph, x).reshape(len(x), -1).argmax(1)
    assert row["accuracy"] == pytest.approx(float((golden == y).mean()))
    saved = json.loads((twin / "tiny.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(report["rows"]))
    assert "| tiny_ic_digits | ulx3s-85f | dsp: " in (twin / "tiny.md").read_text()


def test_a_refused_row_is_one_line(twin, monkeypatch):
    import rtl_gen.gemm

    def refuse(*args, **kwargs):
        raise ValueError("GEMM field idx=175104 does not fit in 16 bits (0..65535)\nmore")

    monkeypatch.setattr(rtl_gen.gemm, "compile_graph", refuse)
    report = tiny_bench.bench_tiny(twin, synth=False, models=["tiny_ic_digits"])
    assert {r["error"] for r in report["rows"]} == {
        "GEMM field idx=175104 does not fit in 16 bits (0..65535)"
    }
    assert "stops: GEMM field idx=175104" in tiny_bench.markdown(report)


def test_cli_no_synth(twin):
    from flows.cli import app

    result = CliRunner().invoke(
        app, ["bench", "tiny", "--no-synth", "-o", str(twin), "--models", "tiny_ic_digits"]
    )
    assert result.exit_code == 0, result.output
    assert "25,191,424 cycles per inference" in result.output
    assert "tiny_ic_digits | ulx3s-85f | dsp" in result.output
    bad = CliRunner().invoke(
        app, ["bench", "tiny", "--no-synth", "-o", str(twin), "--models", "tiny_nope"]
    )
    assert bad.exit_code == 1 and "unknown model tiny_nope" in bad.output
    assert "Traceback" not in bad.output
