"""The board top of each bitstream, simulated through its UART pins with the host protocol."""

import json
import shutil

import numpy as np
import pytest

from boards import BOARDS, get_board
from flows.board_sim import run_board_sim
from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact
from rtl_gen.dense.artefact import write_dense_artefact

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def artefact(mlp_graph, tmp_path_factory):
    return Artefact(
        write_dense_artefact(
            mlp_graph,
            tmp_path_factory.mktemp("board") / "mlp",
            vectors=golden_vectors(mlp_graph, random=2),
            lanes=2,
        )
    )


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_golden_through_the_uart(artefact, board):
    steps = []
    result = run_board_sim(artefact, board, limit=3, progress=lambda *step: steps.append(step))
    assert result.passed, result.mismatches
    assert steps[0] == ("building", None, None) and steps[-1] == ("simulating", 3, 3)
    # the board top runs at the clock the board's PLL makes, and the UART divides that
    summary = json.loads((artefact.path / "sim" / f"board-{board}" / "summary.json").read_text())
    assert summary["clk_hz"] == get_board(board).clock().output_hz
    assert result.vectors == 3 and result.mismatching_elements == 0
    outputs = np.load(artefact.path / "sim" / f"board-{board}" / "outputs.npz")["outputs"]
    assert (outputs == artefact.vectors()["outputs"][:3]).all()
    # the engine's counter runs from the first input byte (the UART's pace) to the last output
    assert result.cycles > artefact.manifest["latency_cycles"]


def test_a_wrong_golden_fails(artefact, tmp_path):
    broken = Artefact(shutil.copytree(artefact.path, tmp_path / "mlp"))
    vectors = dict(broken.vectors())
    vectors["outputs"] = vectors["outputs"].copy()
    vectors["outputs"][1, 2] += 1
    np.savez(broken.path / "vectors" / "golden.npz", **vectors)
    result = run_board_sim(
        broken,
        "icebreaker",
        limit=2,
        build_root=artefact.path / "sim" / "board-icebreaker" / "build",
    )
    assert not result.passed
    expected = int(vectors["outputs"][1, 2])
    assert f"vector 1: output 2: expected {expected}, got {expected - 1}" in result.mismatches[0]


@pytest.fixture(scope="module")
def spram_artefact(tmp_path_factory):
    """A reduced DS-CNN on the iCEBreaker's SPRAM overlay (SB_SPRAM256KA, SB_MAC16): its
    weights are written through the host link's LOAD before it runs."""
    from dataclasses import replace

    from rtl_gen.gemm import compile_graph
    from rtl_gen.gemm.emit import write_gemm_artefact
    from tests.rtl_gen.gemm.test_spram_engine import SPRAM, dw_net

    program = compile_graph(dw_net(seed=4), replace(SPRAM, primitives=True))
    vectors = {k: v[:2] for k, v in golden_vectors(program.graph, random=2, seed=7).items()}
    out = tmp_path_factory.mktemp("board") / "dw"
    return Artefact(write_gemm_artefact(program, out, vectors=vectors))


@pytest.mark.slow
def test_spram_weights_load_through_the_uart(spram_artefact):
    art = spram_artefact
    assert art.manifest["run_time_load"]["mems"]["wd"]["code"] == 2
    result = run_board_sim(art, "icebreaker", limit=2)
    assert result.passed, result.mismatches
    summary = json.loads((art.path / "sim" / "board-icebreaker" / "summary.json").read_text())
    words = art.manifest["run_time_load"]["mems"]["wd"]["words"]
    assert summary["load"]["words"] == words and summary["load"]["requests"] == -(-words // 256)
    outputs = np.load(art.path / "sim" / "board-icebreaker" / "outputs.npz")["outputs"]
    assert (outputs == art.vectors()["outputs"][:2]).all()


@pytest.mark.slow
def test_one_wrong_loaded_word_fails(spram_artefact, tmp_path):
    """The same board with one weight word of the image changed: the RTL no longer equals the
    golden (the loaded words are the ones the engine computes with)."""
    broken = Artefact(shutil.copytree(spram_artefact.path, tmp_path / "dw"))
    path = broken.path / "vectors" / "images.npz"
    with np.load(path) as f:
        images = {k: f[k].copy() for k in f.files}
    images["wd"][0] = str(int(images["wd"][0]) ^ 0x8080)
    np.savez(path, **images)
    result = run_board_sim(
        broken,
        "icebreaker",
        limit=2,
        build_root=spram_artefact.path / "sim" / "board-icebreaker" / "build",
    )
    assert not result.passed and result.mismatching_elements > 0


@pytest.mark.slow
def test_kws_through_the_icebreaker_board_top(tmp_path):
    """The MLPerf Tiny KWS DS-CNN (``nnloom example tiny-kws``) compiled for the iCEBreaker's
    SPRAM overlay, on the board top: its 11,136 weight words go through LOAD at 115,200 baud,
    then two vectors; outputs equal to the golden."""
    from frontends.examples.tiny import make_tiny
    from frontends.onnx_import import import_onnx
    from rtl_gen.gemm import BOARDS, compile_graph
    from rtl_gen.gemm.emit import write_gemm_artefact

    made = make_tiny("tiny_kws", tmp_path / "models")
    program = compile_graph(
        import_onnx(made.quantized), BOARDS["icebreaker"]["hetero"], split="auto"
    )
    assert program.config.spram
    vectors = {k: v[:2] for k, v in golden_vectors(program.graph, random=2, seed=5).items()}
    art = Artefact(write_gemm_artefact(program, tmp_path / "kws", vectors=vectors))
    result = run_board_sim(art, "icebreaker", limit=2)
    assert result.passed, result.mismatches
    summary = json.loads((art.path / "sim" / "board-icebreaker" / "summary.json").read_text())
    assert summary["load"]["words"] == art.manifest["run_time_load"]["mems"]["wd"]["words"]
