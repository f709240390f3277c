"""report.html / report.json: the figures of an artefact on one page, and that page in
headless Chromium."""

import json

import numpy as np
import pytest
from PIL import Image

from flows.browser import chromium, screenshot
from flows.report import write_report
from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact
from rtl_gen.dense.artefact import write_dense_artefact


@pytest.fixture
def artefact(mlp_graph, tmp_path):
    art = Artefact(
        write_dense_artefact(
            mlp_graph, tmp_path / "mlp", vectors=golden_vectors(mlp_graph, random=2), lanes=2
        )
    )
    sim = art.path / "sim"
    sim.mkdir()
    (sim / "summary.json").write_text(
        json.dumps(
            {
                "vectors": 9,
                "mismatching_elements": 0,
                "mismatches": [],
                "cycles": {"min": 170, "max": 170},
            }
        )
    )
    trace = np.zeros((40, 5), dtype=np.uint8)
    trace[2:18, 0:2] = 1
    trace[30:35, 2:4] = 1
    trace[18:35, 4] = 1
    np.savez(
        sim / "trace.npz",
        signals=np.array(["i__valid", "i__ready", "o__valid", "o__ready", "busy"]),
        samples=trace,
    )
    build = art.path / "build" / "icebreaker"
    build.mkdir(parents=True)
    (build / "report.json").write_text(
        json.dumps(
            {
                "board": "icebreaker",
                "device": "iCE40UP5K-SG48",
                "clock_mhz": 12.0,
                "fmax_mhz": 41.5,
                "timing_met": True,
                "bitstream": str(build / "top.bin"),
                "seconds": 20.0,
                "utilisation": {
                    "ICESTORM_LC": {"used": 2640, "available": 5280, "percent": 50.0},
                    "ICESTORM_DSP": {"used": 2, "available": 8, "percent": 25.0},
                    "SB_GB": {"used": 3, "available": 8, "percent": 37.5},
                },
            }
        )
    )
    return art


def test_report_json_holds_the_figures(artefact):
    html_path, json_path = write_report(
        artefact, accuracy={"float": 0.9, "golden": 0.875, "rtl": 0.875, "samples": 8}
    )
    figures = json.loads(json_path.read_text())
    manifest = artefact.manifest
    assert figures["accuracy"] == {"float": 0.9, "golden": 0.875, "rtl": 0.875, "samples": 8}
    assert figures["latency_cycles"] == manifest["latency_cycles"]
    assert [l["name"] for l in figures["layers"]] == [l["name"] for l in manifest["layers"]]
    assert figures["simulation"]["vectors"] == 9
    util = figures["builds"]["icebreaker"]["utilisation"]
    assert set(util) == {"ICESTORM_LC", "ICESTORM_DSP"}  # the key resources only
    page = html_path.read_text()
    assert "87.50 %" in page and "90.00 %" in page and "bit-exact on all 9 vectors" in page
    assert "41.50" in page and "<script" not in page
    assert page.count("data:image/png;base64,") == 4  # cycles, resources, Fmax, waveform
    # an accuracy given once stays for a later `nnloom report`
    write_report(artefact)
    assert json.loads(json_path.read_text())["accuracy"]["golden"] == 0.875


def test_report_without_build_or_sim(mlp_graph, tmp_path):
    art = Artefact(
        write_dense_artefact(
            mlp_graph, tmp_path / "bare", vectors=golden_vectors(mlp_graph, random=1), lanes=2
        )
    )
    html_path, json_path = write_report(art)
    figures = json.loads(json_path.read_text())
    assert figures["builds"] == {} and figures["simulation"] is None
    assert "Not built yet" in html_path.read_text()


def _colour_fraction(png, rgb, tolerance=12):
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    close = np.abs(pixels - np.array(rgb)).max(axis=2) <= tolerance
    return close.mean()


@pytest.mark.browser
@pytest.mark.skipif(
    chromium() is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
def test_report_renders_in_chromium(artefact, tmp_path):
    html_path, _ = write_report(
        artefact, accuracy={"float": 0.9, "golden": 0.875, "rtl": 0.875, "samples": 8}
    )
    png = tmp_path / "report.png"
    assert screenshot(html_path, png) == []
    image = Image.open(png)
    assert image.width == 1100 and image.height > 1500  # the whole page, charts included
    # the charts are on the screenshot: resource bars (blue), cycle bars (purple), Fmax (green)
    for rgb in ((0x3B, 0x7D, 0xD8), (0x8E, 0x44, 0xAD), (0x2E, 0x9E, 0x5B)):
        assert _colour_fraction(png, rgb) > 0.001, rgb
    # the check can fail: a page with a broken script and a missing image
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><p>x</p><img src='missing.png'>"
        "<script>console.error('boom'); notAFunction();</script>"
    )
    errors = screenshot(bad, tmp_path / "bad.png")
    assert "boom" in errors and any("notAFunction" in e for e in errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in errors)


def test_report_plots_the_fault_campaign_and_the_attack(artefact):
    """faults.json (``nnloom faults``' last random and targeted runs) becomes a table, the
    accuracy-against-flips curves and the attack's success per flip."""
    rows = [
        {
            "protect": p,
            "flips": n,
            "trials": 4,
            "accuracy_mean": acc,
            "accuracy_min": acc - 0.1 * (p == "none"),
            "trials_changed": 0 if p == "secded" else 4,
            "vectors_changed": 0.5,
            "trials_detected": 4 if p != "none" else 0,
            "corrected_mean": float(n) if p == "secded" else 0.0,
            "errors_mean": 0.0,
        }
        for p, acc0 in (("none", 0.9), ("parity", 0.91), ("secded", 0.95))
        for n, acc in ((1, acc0), (10, acc0 - 0.2), (100, acc0 - 0.4 * (p != "secded")))
    ]
    targeted = {
        "source": 0,
        "target": 3,
        "success": [0.1, 0.5, 0.95],
        "flips_to_success": 3,
        "protected": {
            "parity": {
                "first_detected_flip": 1,
                "success_after_all": 0.95,
                "success": [0.1, 0.5, 0.95],
            },
            "secded": {"first_detected_flip": None, "success_after_all": 0.0, "success": [0, 0, 0]},
        },
    }
    (artefact.path / "faults.json").write_text(
        json.dumps({"random": {"rows": rows, "trials": 4, "spread": "word"}, "targeted": targeted})
    )
    html_path, json_path = write_report(artefact)
    page = html_path.read_text()
    assert "Bit flips in the weight memories" in page
    assert 'alt="accuracy against random flips"' in page and 'alt="targeted attack"' in page
    assert "goal reached after 3 flips" in page and "parity: detected at flip 1" in page
    figures = json.loads(json_path.read_text())
    assert figures["faults"]["targeted"]["flips_to_success"] == 3
    assert len(figures["faults"]["random"]["rows"]) == 9
