"""``SmurfEngine``: the SMURF artefact meets the board contract (element streams, cycles, busy),
its output codes follow the counts, and its board top passes the golden through the UART."""

import dataclasses
import json

import numpy as np
import pytest
from amaranth.hdl import Fragment

from boards.top import BoardTop
from flows.engine_instance import EngineInstance
from rtl_gen.artefact import Artefact
from rtl_gen.smurf import design
from rtl_gen.smurf.emit import write_smurf_artefact


@pytest.fixture(scope="module")
def tanh_artefact(tmp_path_factory):
    plan, fit = design(["tanh(4*x)"], radix=4, basis="fsm", length=64)
    return plan, Artefact(
        write_smurf_artefact(plan, tmp_path_factory.mktemp("e") / "tanh", fit=fit)
    )


def test_board_contract_accepts_a_smurf_artefact(tanh_artefact):
    plan, art = tanh_artefact
    engine = EngineInstance(art)
    assert (engine.n_in, engine.n_out) == (1, 1)
    top = BoardTop(engine, n_in=engine.n_in, n_out=engine.n_out, clk_freq=12e6)
    Fragment.get(top, None)  # the board top elaborates around it
    streams = art.manifest["streams"]
    assert streams["input"]["dtype"] == streams["output"]["dtype"] == {"width": 8, "signed": False}
    ports = {p["name"] for p in art.manifest["ports"]}
    assert {"i__payload", "o__payload", "cycles", "busy", "counts"} <= ports
    golden = art.vectors()
    # min and max codes come first, so a short (board-level) run covers both ends
    assert golden["inputs"][:2, 0].tolist() == [0, 255]
    assert (golden["counts"] == plan.reference(golden["inputs"])).all()
    assert (golden["outputs"] == plan.output_codes(golden["counts"])).all()


@pytest.mark.parametrize("length", [64, 100, 256, 1000, 1024])
def test_output_codes_round_counts_to_eight_bits(length):
    plan, _ = design(["tanh(4*x)"], radix=4, basis="fsm", length=64)
    plan = dataclasses.replace(plan, length=length)
    counts = np.arange(length + 1)
    want = np.minimum(np.floor(counts * 256 / length + 0.5), 255)
    assert (plan.output_codes(counts) == want).all()
    c, shift = plan.code_scale
    assert (
        ((counts * 256 + length // 2) * c >> shift) == np.floor(counts * 256 / length + 0.5)
    ).all()


@pytest.mark.sim
def test_board_top_passes_the_golden_through_the_uart(tanh_artefact):
    from flows.board_sim import run_board_sim

    plan, art = tanh_artefact
    result = run_board_sim(art, "icebreaker", limit=6)
    assert result.passed, result.mismatches
    assert result.vectors == 6 and result.mismatching_elements == 0
    out_dir = art.path / "sim" / "board-icebreaker"
    outputs = np.load(out_dir / "outputs.npz")["outputs"]
    assert (outputs == art.vectors()["outputs"][:6]).all()
    assert json.loads((out_dir / "summary.json").read_text())["vectors"] == 6


@pytest.mark.synth
def test_builds_an_icebreaker_bitstream(tanh_artefact):
    from flows.build import build

    _, art = tanh_artefact
    report = build(art, "icebreaker")
    assert report.bitstream.is_file() and report.bitstream.stat().st_size > 10_000
    data = json.loads(report.path.read_text())
    assert data["timing_met"] is True and data["fmax_mhz"] >= data["clock_mhz"]
