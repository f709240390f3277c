"""The engine registry (``flows.engines``) and the one user-error base class, as the command
line uses them: ``--engine auto``, options refused by name, errors that are bugs."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory):
    """A small QDQ CNN: conv 3x3 (4 channels), ReLU, flatten, dense 5."""
    import torch
    from models import torch_qdq

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5)
    )
    return torch_qdq(net, (1, 6, 6), tmp_path_factory.mktemp("cnn") / "cnn.onnx")


def test_every_engine_is_registered_whatever_was_imported():
    """``BENCHES`` holds every engine's benchmark in a process that imported only
    ``flows.bench`` (not the command line)."""
    code = (
        "import sys, flows.bench as b; print(','.join(sorted(b.BENCHES))); "
        "print('flows.cli' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["dense,gemm,lutnet,protect,regress,smurf,snn", "False"]


def test_no_module_imports_the_command_line():
    """Only the console entry point imports ``flows.cli``."""
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if path.parts[len(ROOT.parts)] in ("tests", ".venv") or path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                node.module == "flows.cli"
                or (node.module == "flows" and any(a.name == "cli" for a in node.names))
                or (node.module == "cli" and node.level == 1 and path.parent.name == "flows")
            ):
                offenders.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Import) and any(a.name == "flows.cli" for a in node.names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_every_user_error_class_is_an_nnloom_error():
    from boards import BoardError
    from boards.clocking import ClockError
    from boards.protocol import LinkError, ProtocolError
    from flows.browser import BrowserError
    from flows.build import BuildError
    from flows.host import HostError
    from flows.tools import MissingTool
    from frontends.compress.qat import QatError
    from frontends.errors import ModelError, NnloomError, UsageError
    from frontends.lutnet.srlut import TableError
    from rtl_gen.artefact import ArtefactError
    from rtl_gen.gemm.isa import AsmError
    from rtl_gen.smurf.design import DesignError
    from rtl_gen.smurf.expr import ExpressionError
    from sim.runner import SimError

    for cls in (
        BoardError,
        ClockError,
        LinkError,
        ProtocolError,
        BrowserError,
        BuildError,
        HostError,
        MissingTool,
        QatError,
        ModelError,
        UsageError,
        ArtefactError,
        AsmError,
        TableError,
        DesignError,
        ExpressionError,
        SimError,
    ):
        assert issubclass(cls, NnloomError), cls


def test_an_option_the_engine_does_not_take_is_refused_by_name(mlp_onnx, tmp_path):
    result = runner.invoke(
        app,
        ["generate", str(mlp_onnx), "--engine", "gemm", "--lanes", "2", "-o", str(tmp_path / "a")],
    )
    assert result.exit_code == 1
    assert (
        "--lanes: the gemm engine does not take it "
        "(it takes --nonlinear, --protect, --random, --seed)" in result.output
    )
    assert not (tmp_path / "a").exists()
    result = runner.invoke(
        app,
        ["generate", str(mlp_onnx), "--engine", "smurf", "--seed", "3", "-o", str(tmp_path / "b")],
    )
    assert result.exit_code == 1 and "--seed: the smurf engine does not take it" in result.output
    assert not (tmp_path / "b").exists()


def test_an_unknown_engine_names_the_engines(mlp_onnx, tmp_path):
    result = runner.invoke(
        app, ["generate", str(mlp_onnx), "--engine", "tpu", "-o", str(tmp_path / "a")]
    )
    assert result.exit_code == 1
    assert "unknown engine 'tpu'; available: auto, gemm, dense, snn, smurf, lutnet" in result.output


def test_auto_chooses_gemm_for_a_cnn_and_says_why(cnn_onnx, tmp_path):
    result = runner.invoke(
        app, ["generate", str(cnn_onnx), "-o", str(tmp_path / "a"), "--random", "2"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "engine auto: gemm (the icebreaker overlay runs all 2 layers (Conv, Gemm)" in text
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["engine"] == "gemm" and manifest["board_config"] == "icebreaker"


def test_auto_passes_over_an_engine_that_does_not_take_an_option(mlp_onnx, tmp_path):
    """``--lanes`` is the dense engine's: auto skips gemm for it and says so."""
    result = runner.invoke(
        app, ["generate", str(mlp_onnx), "-o", str(tmp_path / "a"), "--lanes", "2", "--random", "2"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "engine auto: dense (a chain of 2 fully connected int8 layers); not gemm: does "
        "not take --lanes" in text
    )
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["parameters"]["lanes"] == 2


def test_auto_refuses_a_model_no_engine_runs_with_each_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model\n")
    result = runner.invoke(
        app, ["generate", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "a")]
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "notes.txt: no engine can run it: gemm: not an ONNX model;" in text
    assert "lutnet: not LUT tables" in text
    assert not (tmp_path / "a").exists()


def test_a_value_error_from_our_code_is_a_bug_not_a_user_error(mlp_onnx, tmp_path, monkeypatch):
    """Only ``NnloomError`` becomes one ``error:`` line; a ValueError keeps its traceback."""
    import flows.commands.gemm as gemm

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(gemm, "generate_gemm", broken)
    result = runner.invoke(
        app, ["generate", str(mlp_onnx), "--engine", "gemm", "-o", str(tmp_path / "a")]
    )
    assert isinstance(result.exception, ValueError)
    assert "error:" not in result.output
