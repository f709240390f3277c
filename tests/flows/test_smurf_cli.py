"""`nnloom smurf`: prints the fit, writes a deterministic artefact; errors are one line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(map(str, args)), terminal_width=200)


def _one_error_line(result):
    text = (result.stderr or result.output).strip()
    lines = [l for l in text.splitlines() if l.strip()]
    assert result.exit_code == 1 and len(lines) == 1, text
    assert lines[0].startswith("error: ") and "Traceback" not in text
    return lines[0]


def test_writes_artefact_and_prints_fit(tmp_path):
    out = tmp_path / "tanh"
    result = _run("smurf", "tanh(4*x)", "--radix", "8", "--length", "256", "-o", out)
    assert result.exit_code == 0, result.output
    assert "tanh(4*x): fit RMSE 0.002" in result.output
    assert "257 input codes" not in result.output and "256 input codes" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "smurf"
    assert manifest["sim"] == {"bench": "sim.bench.smurf_bench"}
    assert manifest["latency_cycles"] == 1 + 256 + 8 + 1 + 1
    assert manifest["parameters"]["unit_latency_cycles"] == 256 + 8 + 1
    assert manifest["parameters"]["radix"] == [8]
    with np.load(out / "vectors" / "golden.npz") as f:
        assert f["inputs"].shape == (256, 1) and f["outputs"].shape == (256, 1)
        assert f["counts"].shape == (256, 1) and f["outputs"].max() <= 255
    first = (out / "rtl" / "nnloom_smurf.v").read_bytes()
    again = _run("smurf", "tanh(4*x)", "--radix", "8", "--length", "256", "-o", out)
    assert again.exit_code == 0
    assert (out / "rtl" / "nnloom_smurf.v").read_bytes() == first


def test_two_inputs_two_outputs_and_auto_basis(tmp_path):
    result = _run(
        "smurf",
        "sigmoid(4*(x-y))",
        "sigmoid(4*(y-x))",
        "--radix",
        "4,4",
        "--length",
        "128",
        "-o",
        tmp_path / "sm",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "sm" / "manifest.json").read_text())
    assert manifest["streams"]["input"]["names"] == ["x", "y"]
    assert manifest["streams"]["output"]["elements"] == 2
    result = _run(
        "smurf", "sin(pi*x)", "--range", "x=0:1", "--basis", "auto", "-o", tmp_path / "sin"
    )
    assert "picked bernstein" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["exp(x)", "--encoding", "bipolar"],
            r"error: 'exp(x)' spans [0.3679, 2.718] on x in "
            r"[-1, 1], outside the output range [-1, 1]; use --encoding auto or --out-range LO:HI",
        ),
        (
            ["open('f').read()"],
            "error: in 'open('f').read()': 'open('f').read' is not an allowed function",
        ),
        (["tanh(x)", "--range", "x:0:1"], "error: --range 'x:0:1' is not NAME=LO:HI (e.g. x=-1:1)"),
        (["tanh(x)", "--radix", "eight"], "error: --radix 'eight' is not an integer"),
        (["tanh(x)", "--radix", "99"], "error: radix 99 is out of range; choose 2..64"),
    ],
)
def test_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    line = _one_error_line(_run("smurf", *args, "-o", tmp_path / "x"))
    assert line.startswith(message)
    assert not (tmp_path / "x").exists()


def test_nnloom_bench_rows_carry_units_and_ratios(monkeypatch, tmp_path):
    """``nnloom bench``'s smurf rows: one per function, family and unit; the area ratios that
    sit beside the units in the benchmark's results go on the SMURF row, not as units."""
    import rtl_gen.smurf.benchmark as benchmark
    from flows.bench import BENCHES

    unit = {
        "lut4": 90,
        "ff": 40,
        "dsp": 0,
        "ram": 0,
        "fmax_mhz": 120.0,
        "latency": 1035,
        "adp": 9.9,
    }
    results = {
        "tanh": {
            "basis": "fsm",
            "accuracy": {"1024": {"rmse": 0.05}},
            "synth": {
                "ice40": {"smurf": unit, "taylor": dict(unit, lut4=200), "smurf_over_taylor": 0.57}
            },
        }
    }
    monkeypatch.setattr(benchmark, "run_bench", lambda out, **kwargs: results)
    rows = BENCHES["smurf"](tmp_path)
    assert [r["config"] for r in rows] == ["tanh smurf (fsm)", "tanh taylor"]
    assert rows[0]["smurf_over_taylor"] == 0.57 and rows[0]["rmse_L1024"] == 0.05
    assert "smurf_over_taylor" not in rows[1] and rows[1]["lut4"] == 200
