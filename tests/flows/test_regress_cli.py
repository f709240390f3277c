"""``nnloom sim --vectors N``: N seeded random vectors (and the edge cases) through the
golden model and the RTL, progress as plain lines when not a terminal; the regression rows
of ``nnloom bench``."""

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from rtl_gen.artefact import Artefact
from sim.regress import RegressionError, regression_artefact

runner = CliRunner()
SIMULATOR = "icarus" if shutil.which("iverilog") else "verilator"


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=250)


@pytest.fixture(scope="module")
def generated(mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("regress") / "mlp"
    assert (
        _invoke("generate", mlp_onnx, "--engine", "dense", "-o", out, "--random", "4").exit_code
        == 0
    )
    return out


def test_regression_vectors_are_seeded_random_plus_edges(generated, tmp_path):
    art = Artefact(generated)
    a = regression_artefact(art, 50, 3, tmp_path / "a")
    b = regression_artefact(art, 50, 3, tmp_path / "b")
    c = regression_artefact(art, 50, 4, tmp_path / "c")
    va, vb, vc = a.vectors(), b.vectors(), c.vectors()
    edges = len(art.vectors()["inputs"]) - 4
    assert len(va["inputs"]) == edges + 50
    assert (va["inputs"] == vb["inputs"]).all() and (va["outputs"] == vb["outputs"]).all()
    assert not (va["inputs"][edges:] == vc["inputs"][edges:]).all()
    assert (va["inputs"][:edges] == art.vectors()["inputs"][:edges]).all()
    assert {-128, 127} <= set(np.unique(va["inputs"][:edges]))
    assert a.rtl_sources[0].read_bytes() == art.rtl_sources[0].read_bytes()


def test_an_artefact_without_its_source_cannot_draw_vectors(generated, tmp_path):
    art = tmp_path / "nosource"
    shutil.copytree(generated, art)
    shutil.rmtree(art / "source")
    with pytest.raises(RegressionError, match="no copy of its source model in source/"):
        regression_artefact(Artefact(art), 10, 1, tmp_path / "x")
    result = _invoke("sim", art, "--vectors", "10")
    assert result.exit_code == 1 and "no copy of its source model" in result.output


@pytest.mark.sim
@pytest.mark.parametrize("bench", ["sv", pytest.param("cocotb", marks=pytest.mark.slow)])
def test_sim_vectors_runs_a_regression_with_plain_progress(generated, tmp_path, bench):
    art = tmp_path / "mlp"
    shutil.copytree(generated, art, ignore=shutil.ignore_patterns("sim"))
    result = _invoke(
        "sim", art, "--vectors", "200", "--seed", "7", "--bench", bench, "--simulator", SIMULATOR
    )
    assert result.exit_code == 0, result.output
    assert "PASS 207 vectors (200 random, seed 7, and the edge cases) bit-exact" in result.output
    lines = [ln for ln in result.output.splitlines() if " vectors, " in ln and "/207" in ln]
    assert lines and lines[-1].startswith("mlp: ") and "207/207 vectors" in lines[-1]
    assert "\x1b[" not in result.output  # not a terminal: no bar


@pytest.mark.sim
def test_a_wrong_golden_in_the_regression_fails(generated, tmp_path, monkeypatch):
    import sim.regress as regress

    real = regress.regression_artefact

    def corrupted(*args, **kwargs):
        reg = real(*args, **kwargs)
        vectors = reg.vectors()
        vectors["outputs"][-1, 0] += 1
        np.savez(reg.path / "vectors" / "golden.npz", **vectors)
        return reg

    monkeypatch.setattr(regress, "regression_artefact", corrupted)
    art = tmp_path / "mlp"
    shutil.copytree(generated, art, ignore=shutil.ignore_patterns("sim"))
    result = _invoke("sim", art, "--vectors", "30", "--bench", "sv", "--simulator", SIMULATOR)
    assert result.exit_code == 1
    assert "regression of mlp" in result.output and "MISMATCH vector 36" in result.output


@pytest.mark.sim
@pytest.mark.slow  # 331 s at a load average of 20 (Icarus on 44 frames, plus the generate)
def test_sim_vectors_on_an_srlut_engine_from_its_table(tmp_path):
    """An SR-LUT engine keeps its table (.npy) in source/: `--vectors N` draws N random
    frames plus constant, checkerboard and ramp frames through the table's golden model and
    the RTL."""
    rng = np.random.default_rng(0)
    table = rng.integers(-128, 128, (((256 >> 6) + 1) ** 4, 16)).astype(np.int8)
    np.save(tmp_path / "t.npy", table)  # pattern S, 6-bit intervals, x4
    np.savez(tmp_path / "frames.npz", x=rng.integers(0, 256, (2, 6, 7), dtype=np.uint8))
    art = tmp_path / "lut"
    made = _invoke(
        "lutnet", "generate", tmp_path / "t.npy", "--data", tmp_path / "frames.npz", "-o", art
    )
    assert made.exit_code == 0, made.output
    reg = regression_artefact(Artefact(art), 5, 2, tmp_path / "reg")
    frames = reg.vectors()["inputs"]
    assert frames.shape == (4 + 5, 6, 7) and (frames[1] == 255).all() and (frames[0] == 0).all()
    assert reg.rtl_sources[0].read_bytes() == Artefact(art).rtl_sources[0].read_bytes()
    result = _invoke("sim", art, "--vectors", "40", "--seed", "3", "--simulator", SIMULATOR)
    assert result.exit_code == 0, result.output
    assert "PASS 44 vectors (40 random, seed 3, and the edge cases) bit-exact" in result.output


@pytest.mark.parametrize("variant", ["hklut", "icelut"])
def test_hklut_and_icelut_engines_draw_vectors_from_their_tables(tmp_path, variant, request):
    """HKLUT keeps its table folder, ICELUT its .npz in source/; the regression's frames are
    the edge frames then seeded random ones, its golden the tables' own model, its Verilog
    the artefact's."""
    from frontends.lutnet.hklut import load_hklut_dir
    from frontends.lutnet.icelut import load_icelut_npz

    rng = np.random.default_rng(0)
    tables = request.getfixturevalue(f"{variant}_tables")
    if variant == "hklut":
        frames = rng.integers(0, 256, (1, 6, 7), dtype=np.uint8)
    else:
        frames = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "frames.npz", x=frames)
    art = tmp_path / "lut"
    made = _invoke("lutnet", "generate", tables, "--data", tmp_path / "frames.npz", "-o", art)
    assert made.exit_code == 0, made.output
    reg = regression_artefact(Artefact(art), 3, 5, tmp_path / "reg")
    v = reg.vectors()
    edges = 4 if variant == "hklut" else 16
    assert len(v["inputs"]) == edges + 3
    assert (v["inputs"][0] == 0).all() and (v["inputs"][1] == 255).all()
    if variant == "icelut":  # seeded (one variant: an HKLUT engine takes ~10 s to write)
        again = regression_artefact(Artefact(art), 3, 5, tmp_path / "again").vectors()
        assert (again["inputs"] == v["inputs"]).all()
    if variant == "hklut":
        plan = load_hklut_dir(tables)
        expect = np.stack([plan.reference(f) for f in v["inputs"]])
    else:
        plan = load_icelut_npz(tables)
        expect = np.stack([plan.apply(f, plan.lut(f)) for f in v["inputs"]])
    np.testing.assert_array_equal(v["outputs"], expect)
    assert reg.rtl_sources[0].read_bytes() == Artefact(art).rtl_sources[0].read_bytes()


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["hklut", "icelut"])
def test_sim_vectors_on_hklut_and_icelut_engines(tmp_path, variant, request):
    """`nnloom sim --vectors N` on the HKLUT and ICELUT engines: RTL = golden on the edge
    frames and N random ones."""
    rng = np.random.default_rng(1)
    tables = request.getfixturevalue(f"{variant}_tables")
    shape, edges = ((1, 6, 7), 4) if variant == "hklut" else ((1, 32, 32, 3), 16)
    np.savez(tmp_path / "frames.npz", x=rng.integers(0, 256, shape, dtype=np.uint8))
    art = tmp_path / "lut"
    made = _invoke("lutnet", "generate", tables, "--data", tmp_path / "frames.npz", "-o", art)
    assert made.exit_code == 0, made.output
    result = _invoke("sim", art, "--vectors", "8", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert f"PASS {edges + 8} vectors (8 random, seed 3, and the edge cases) bit-exact" in (
        result.output
    )
