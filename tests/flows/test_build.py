"""Bitstream builds through YoWASP, and how the build reports failures."""

import json
import shutil

import pytest

from boards import get_board
from flows.build import BuildError, build, parse_nextpnr_report
from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact
from rtl_gen.dense.artefact import write_dense_artefact


def test_parse_nextpnr_report():
    report = {
        "fmax": {"cd_sync.clk": {"achieved": 61.25, "constraint": 12.0}},
        "utilization": {
            "ICESTORM_LC": {"available": 5280, "used": 1320},
            "ICESTORM_DSP": {"available": 8, "used": 5},
        },
    }
    util, fmax = parse_nextpnr_report(report)
    assert fmax == 61.25
    assert util["ICESTORM_LC"] == {"used": 1320, "available": 5280, "percent": 25.0}
    assert util["ICESTORM_DSP"]["used"] == 5


def test_parse_falls_back_to_the_log():
    log = (
        "Info: Max frequency for clock 'cd_sync.clk': 40.10 MHz (PASS at 12.00 MHz)\n"
        "Info: Max frequency for clock 'cd_sync.clk': 38.52 MHz (PASS at 12.00 MHz)\n"
    )
    assert parse_nextpnr_report({}, log)[1] == 38.52


@pytest.fixture(scope="module")
def small_artefact(mlp_graph, tmp_path_factory):
    return Artefact(
        write_dense_artefact(
            mlp_graph,
            tmp_path_factory.mktemp("b") / "mlp",
            vectors=golden_vectors(mlp_graph, random=2),
            lanes=2,
        )
    )


def test_tool_failure_names_tool_command_and_log(small_artefact, tmp_path, monkeypatch):
    art = Artefact(shutil.copytree(small_artefact.path, tmp_path / "mlp"))
    fake = tmp_path / "broken-yosys"
    fake.write_text("#!/bin/sh\necho 'ERROR: something broke inside yosys' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(
        "flows.build.tool_env",
        lambda names: {"YOSYS": str(fake), "NEXTPNR_ICE40": "/bin/false", "ICEPACK": "/bin/false"},
    )
    with pytest.raises(BuildError) as info:
        build(art, "icebreaker")
    text = str(info.value)
    assert text.startswith("yosys failed for board icebreaker")
    assert "command: " + str(fake) + " -q -l top.rpt top.ys" in text
    assert "something broke inside yosys" in text


def test_impossible_clock_is_refused_before_writing(small_artefact, tmp_path):
    art = Artefact(shutil.copytree(small_artefact.path, tmp_path / "mlp"))
    with pytest.raises(
        BuildError,
        match=r"^board ulx3s-85f: Cannot make a 900 MHz clock with "
        r"the EHXPLLL from 25 MHz: .*; ask for one of those$",
    ):
        build(art, "ulx3s-85f", clock_mhz=900)
    assert not (art.path / "build").exists()


def test_an_engine_without_the_board_contract_is_refused_by_name(small_artefact, tmp_path):
    """A top without a cycle counter and with an input a board top does not drive:
    ``nnloom build`` says so in one line naming the artefact and the engine, and writes
    nothing."""
    from typer.testing import CliRunner

    from flows.cli import app

    art = shutil.copytree(small_artefact.path, tmp_path / "mlp")
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["ports"] = [p for p in manifest["ports"] if p["name"] != "cycles"] + [
        {"name": "load", "dir": "in", "width": 1}
    ]
    (art / "manifest.json").write_text(json.dumps(manifest))
    before = sorted(p.relative_to(art) for p in art.rglob("*"))
    result = CliRunner().invoke(app, ["build", str(art), "--board", "icebreaker"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert text.startswith(f"error: {art}: the dense engine's artefact cannot go on a board")
    assert "no port cycles" in text and "inputs a board top does not drive: load" in text
    assert sorted(p.relative_to(art) for p in art.rglob("*")) == before


@pytest.mark.parametrize("command", ["build", "sim"])
def test_cli_refuses_a_clock_the_pll_cannot_make(small_artefact, tmp_path, command):
    from typer.testing import CliRunner

    from flows.cli import app

    art = Artefact(shutil.copytree(small_artefact.path, tmp_path / "mlp"))
    before = sorted(p.relative_to(art.path) for p in art.path.rglob("*"))
    result = CliRunner().invoke(
        app, [command, str(art.path), "--board", "icebreaker", "--clock", "300"]
    )
    assert result.exit_code == 1
    assert (
        "error: board icebreaker: Cannot make a 300 MHz clock with the SB_PLL40_PAD from "
        "12 MHz: its output ranges 16 MHz to 275 MHz and the nearest settings give 270 MHz"
        in " ".join(result.output.split())
    )
    assert sorted(p.relative_to(art.path) for p in art.path.rglob("*")) == before


@pytest.mark.synth
@pytest.mark.parametrize(
    "board",
    [
        "icebreaker",
        "ulx3s-85f",
        "orangecrab-25f",
        pytest.param("tang-nano-9k", marks=pytest.mark.slow),
    ],
)
def test_build_writes_bitstream_and_report(small_artefact, tmp_path, board):
    art = Artefact(shutil.copytree(small_artefact.path, tmp_path / "mlp"))
    report = build(art, board)
    assert report.bitstream.is_file() and report.bitstream.stat().st_size > 10_000
    data = json.loads(report.path.read_text())
    assert data["board"] == board and data["timing_met"] is True
    assert data["fmax_mhz"] >= data["clock_mhz"] > 0
    spec = get_board(board)
    assert data["clock_requested_mhz"] == spec.target_hz / 1e6
    assert data["clock_source_mhz"] == spec.clock_hz / 1e6
    assert abs(data["clock_mhz"] - data["clock_requested_mhz"]) <= 0.01 * data["clock_mhz"]
    assert data["pll"]["primitive"] in {"SB_PLL40_PAD", "EHXPLLL", "rPLL"}
    # nextpnr timed the engine against the PLL's output, not the oscillator
    tim = (art.path / "build" / board / "top.tim").read_text()
    assert f"PASS at {data['clock_mhz']:.2f} MHz" in tim
    if board == "tang-nano-9k":  # no multiplier BELs in nextpnr-gowin 0.7: MACs in LUTs
        assert "MULT18X18" not in data["utilisation"] and data["utilisation"]["SLICE"]["used"]
    else:
        dsp = "ICESTORM_DSP" if board == "icebreaker" else "MULT18X18D"
        assert data["utilisation"][dsp]["used"] >= 2  # the MAC lanes map to DSPs
    assert (art.path / "build" / board / "build_top.sh").is_file()


@pytest.mark.synth
def test_missed_timing_fails_clearly(small_artefact, tmp_path):
    art = Artefact(shutil.copytree(small_artefact.path, tmp_path / "mlp"))
    with pytest.raises(
        BuildError,
        match=r"^icebreaker: timing missed: Fmax [\d.]+ MHz is below "
        r"the engine clock 270.00 MHz .*; ask for a slower "
        r"clock with --clock$",
    ):
        build(art, "icebreaker", clock_mhz=270)
    data = json.loads((art.path / "build" / "icebreaker" / "report.json").read_text())
    assert data["timing_met"] is False and data["clock_mhz"] == 270.0


@pytest.mark.synth
@pytest.mark.slow
def test_kws_bitstream_on_the_icebreaker(tmp_path):
    """The MLPerf Tiny KWS DS-CNN on the iCEBreaker: its SPRAM overlay (weights in the four
    SB_SPRAM256KA, written at run time) on the board top with the host link's LOAD path
    places, routes and meets the engine clock."""
    from frontends.examples.tiny import make_tiny
    from frontends.onnx_import import import_onnx
    from rtl_gen.gemm import BOARDS, compile_graph
    from rtl_gen.gemm.emit import write_gemm_artefact

    made = make_tiny("tiny_kws", tmp_path / "models")
    program = compile_graph(
        import_onnx(made.quantized), BOARDS["icebreaker"]["hetero"], split="auto"
    )
    vectors = {k: v[:1] for k, v in golden_vectors(program.graph, random=1).items()}
    art = Artefact(write_gemm_artefact(program, tmp_path / "kws", vectors=vectors))
    assert art.manifest["run_time_load"]["mems"]["wd"]["words"] > 0
    report = build(art, "icebreaker")
    assert report.bitstream.is_file() and report.timing_met
    assert report.utilisation["ICESTORM_SPRAM"]["used"] == 4
