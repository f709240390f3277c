"""``nnloom lutnet sr``, ``nnloom generate --engine lutnet``: golden path and errors."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from frontends.lutnet.tables import load_srlut_table

runner = CliRunner()


def test_sr_golden_writes_the_upscaled_image(tmp_path, srlut_table5, lutnet_on_image):
    from skimage import data as skdata

    lr = skdata.astronaut()[100:120, 200:230]
    Image.fromarray(lr).save(tmp_path / "in.png")
    res = lutnet_on_image("sr", srlut_table5, tmp_path / "in.png", tmp_path / "out.png")
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (80, 120, 3)
    np.testing.assert_array_equal(out, load_srlut_table(srlut_table5).reference(lr))


def test_sr_errors_name_the_file(tmp_path, srlut_table5, lutnet_on_image):
    res = lutnet_on_image("sr", tmp_path / "no.npy", "x.png", tmp_path / "o.png")
    assert res.exit_code == 1
    assert "error:" in res.output and "no.npy: no such table file" in res.output
    (tmp_path / "bad.png").write_bytes(b"not an image")
    res = lutnet_on_image("sr", srlut_table5, tmp_path / "bad.png", tmp_path / "o.png")
    assert res.exit_code == 1 and "bad.png: not an image PIL can read" in res.output


def test_generate_engine_lutnet_is_deterministic(tmp_path):
    from frontends.lutnet.srlut import random_plan

    np.save(tmp_path / "s6.npy", random_plan("S", 6).table)
    texts = []
    for name in ("a", "b"):
        res = runner.invoke(
            app,
            [
                "generate",
                str(tmp_path / "s6.npy"),
                "--engine",
                "lutnet",
                "-o",
                str(tmp_path / name),
            ],
        )
        assert res.exit_code == 0, res.output
        texts.append((tmp_path / name / "rtl" / "nnloom_lutnet.v").read_bytes())
    assert texts[0] == texts[1]
    import json

    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["engine"] == "lutnet" and m["sim"]["bench"] == "sim.bench.lutnet_bench"
    assert m["parameters"]["interval_bits"] == 6
    # the report shows the first frame: LR, bicubic and nnloom side by side
    png = tmp_path / "a" / "images" / "frame0.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.read_bytes() == (tmp_path / "b" / "images" / "frame0.png").read_bytes()
    res = runner.invoke(app, ["report", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "a" / "report.html").read_text()
    assert "frame0.png" in page and "data:image/png;base64," in page


@pytest.mark.slow
def test_generate_hklut_puts_msb_tables_in_spram_on_the_up5k(tmp_path, hklut_tables):
    import json

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", x=rng.integers(0, 256, (2, 4, 5), dtype=np.uint8))
    res = runner.invoke(
        app,
        [
            "lutnet",
            "generate",
            str(hklut_tables),
            "-o",
            str(tmp_path / "a"),
            "--data",
            str(tmp_path / "x.npz"),
            "--family",
            "ice40",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "SPRAM" in res.output and "0.33 HR px/cycle" in res.output
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["variant"] == "hklut" and m["parameters"]["msb_memory"] == "spram"
    assert m["streams"]["load"]["elements"] == 2 * 3 * 4096
    # SPRAM has no initial contents; Yosys maps an initialised memory to EBR only.
    text = (tmp_path / "a" / "rtl" / "nnloom_lutnet.v").read_text()
    assert "reg [31:0] msb [12287:0]" in text and "msb[0] = " not in text
    assert "lsb[0] = " in text
    with np.load(tmp_path / "a" / "vectors" / "golden.npz") as f:
        assert f["outputs"].shape == (2, 16, 20) and f["tables"].shape == (2 * 3 * 4096,)
    res = runner.invoke(
        app,
        ["lutnet", "generate", str(hklut_tables), "-o", str(tmp_path / "b"), "--family", "gowin"],
    )
    assert res.exit_code == 1 and "unknown FPGA family 'gowin'" in res.output
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.sim
def test_sr_rtl_runs_hklut_through_the_up5k_engine(tmp_path, hklut_tables, lutnet_on_image):
    from skimage import data as skdata

    from frontends.lutnet.hklut import load_hklut_dir

    lr = skdata.camera()[200:208, 230:240]
    Image.fromarray(lr).save(tmp_path / "in.png")
    res = lutnet_on_image(
        "sr", hklut_tables, tmp_path / "in.png", tmp_path / "out.png", "--rtl", "--family", "ice40"
    )
    assert res.exit_code == 0, res.output
    assert "bit-exact with the golden" in res.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    np.testing.assert_array_equal(out, load_hklut_dir(hklut_tables).reference(lr))


def test_nnloom_bench_places_the_two_targets_by_default(tmp_path, monkeypatch):
    """``nnloom bench``'s lutnet rows: the issue's two targets and ICELUT on ECP5, placed and
    routed (every configuration with ``full``)."""
    import types

    import flows.synth
    import rtl_gen.emit
    import rtl_gen.lutnet.artefact
    from flows.commands.lutnet import BENCH_CONFIGS, DEFAULT_CONFIGS, TARGET_CONFIGS, bench_rows
    from frontends.data import DataUnavailable

    placed = []

    def fake_synthesize(sources, top, *, family, out_dir):
        placed.append(out_dir.parent.name)
        return types.SimpleNamespace(
            lut4=1, ff=1, fmax_mhz=10.0, utilisation={"DP16KD": {"used": 1}}
        )

    monkeypatch.setattr(flows.synth, "synthesize", fake_synthesize)
    monkeypatch.setattr(rtl_gen.emit, "emit_verilog", lambda *a, **k: "")
    monkeypatch.setattr(rtl_gen.lutnet.artefact, "emit_hklut_verilog", lambda *a, **k: "")
    monkeypatch.setattr("rtl_gen.lutnet.icelut.engine.emit_icelut_verilog", lambda *a, **k: "")
    monkeypatch.setattr("flows.commands.lutnet.create_engine", lambda *a, **k: None)
    rows = bench_rows(tmp_path)
    assert sorted(placed) == sorted(f"{e}-{f}-p{p}" for e, f, p in DEFAULT_CONFIGS)
    assert set(TARGET_CONFIGS) < set(DEFAULT_CONFIGS)
    assert len(rows) == len(DEFAULT_CONFIGS) and all(r["fmax_mhz"] == 10.0 for r in rows)
    lut = [r for r in rows if not r["config"].startswith("icelut")]
    try:  # with the authors' tables and Set5: their PSNR; without: our seeded tables, no PSNR
        from frontends.data import set5

        set5()
    except DataUnavailable:
        assert all(r["tables"] == "seeded" and r["psnr_set5_x4"] is None for r in rows)
    else:
        assert all(r["tables"] == "released" and r["psnr_set5_x4"] > 28 for r in lut)
    ice = [r for r in rows if r["config"].startswith("icelut")]
    assert len(ice) == 1 and ice[0]["family"] == "ECP5-85F" and ice[0]["hr_px_per_cycle"] > 0.99
    assert len(DEFAULT_CONFIGS) < len(BENCH_CONFIGS)


def test_generate_icelut_from_tables_npz(tmp_path):
    """``nnloom lutnet icelut-tables`` then ``nnloom generate --engine lutnet``: the ICELUT
    apply engine, each golden frame's LUT from the statistics path, same bytes twice."""
    from frontends.lutnet.icelut import load_icelut_npz

    tables = tmp_path / "ice.npz"
    res = runner.invoke(app, ["lutnet", "icelut-tables", "-o", str(tables), "--seed", "4"])
    assert res.exit_code == 0, res.output
    for name in ("a", "b"):
        res = runner.invoke(
            app, ["generate", str(tables), "--engine", "lutnet", "-o", str(tmp_path / name)]
        )
        assert res.exit_code == 0, res.output
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "rtl/nnloom_lutnet.v").read_bytes() == (b / "rtl/nnloom_lutnet.v").read_bytes()
    import json

    m = json.loads((a / "manifest.json").read_text())
    assert m["variant"] == "icelut" and m["streams"]["load"]["per_frame"]
    assert m["throughput"]["pixels_per_cycle"] == 1.0
    plan = load_icelut_npz(tables)
    with np.load(a / "vectors/golden.npz") as f:
        x, y, words = f["inputs"], f["outputs"], f["tables"]
    assert x.shape[1:] == (32, 32, 3) and words.shape == (len(x), 4913)
    np.testing.assert_array_equal(y, np.stack([plan.reference(f) for f in x]))


def test_icelut_errors_name_the_file(tmp_path, lutnet_on_image):
    np.savez(tmp_path / "bad.npz", fm=np.zeros((4096, 10), np.int16))
    res = runner.invoke(
        app,
        ["generate", str(tmp_path / "bad.npz"), "--engine", "lutnet", "-o", str(tmp_path / "o")],
    )
    assert res.exit_code == 1
    assert "bad.npz: missing fl, split, bases; an ICELUT .npz holds" in res.output
    res = lutnet_on_image("enhance", tmp_path / "no.npz", "x.png", tmp_path / "o.png")
    assert res.exit_code == 1 and "no.npz: no such ICELUT table file" in res.output


@pytest.mark.slow
@pytest.mark.sim
def test_enhance_rtl_equals_golden(tmp_path, lutnet_on_image):
    from skimage import data as skdata

    from frontends.lutnet.icelut import load_icelut_npz

    img = skdata.coffee()[100:140, 200:248]
    Image.fromarray(img).save(tmp_path / "in.png")
    runner.invoke(app, ["lutnet", "icelut-tables", "-o", str(tmp_path / "t.npz")])
    res = lutnet_on_image(
        "enhance", tmp_path / "t.npz", tmp_path / "in.png", tmp_path / "out.png", "--rtl"
    )
    assert res.exit_code == 0, res.output
    assert "bit-exact with the golden" in res.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    np.testing.assert_array_equal(out, load_icelut_npz(tmp_path / "t.npz").reference(img))


def test_icelut_bench_rows_and_frame_cycles():
    from amaranth.hdl import Fragment

    from flows.commands.lutnet import BENCH_CONFIGS, DEFAULT_CONFIGS, create_engine, frame_cycles
    from frontends.lutnet.icelut import random_plan

    assert ("icelut-tetrahedral", "ecp5", 1) in DEFAULT_CONFIGS
    assert ("icelut-tetrahedral", "ice40", 1) in BENCH_CONFIGS
    plan = random_plan(0)
    assert frame_cycles(plan, width=1024, height=1024, ports=1) == 1024 * 1024 + 4913
    assert (
        frame_cycles(plan, width=1024, height=1024, ports=1, family="ice40")
        == 2 * 1024 * 1024 + 4913 + 2
    )
    for family, memory in (("ecp5", "ebr"), ("ice40", "spram")):
        engine = create_engine(plan, width=256, height=256, family=family, ports=1)
        assert engine.memory == memory
        Fragment.get(engine, None)  # the bench emits it; an unused one would warn
