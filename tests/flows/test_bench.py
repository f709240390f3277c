"""`nnloom bench`: every registered benchmark into one markdown table and one JSON file."""

import json

import pytest
from typer.testing import CliRunner

from flows import bench
from flows.cli import app


@pytest.fixture
def fake_benches(monkeypatch):
    def good(out_dir):
        out_dir.mkdir(parents=True)
        return [
            {"engine": "good", "config": "a|b", "family": "ice40", "lut4": 120, "fmax_mhz": 41.256}
        ]

    def bad(out_dir):
        raise RuntimeError("synthesis exploded")

    monkeypatch.setattr(bench, "BENCHES", {"good": good, "bad": bad})


def test_run_all_keeps_going_and_writes_both_files(fake_benches, tmp_path):
    rows, md = bench.run_all(tmp_path)
    assert [r["engine"] for r in rows] == ["bad", "good"]  # in name order
    assert rows[1]["lut4"] == 120
    assert rows[0] == {
        "engine": "bad",
        "config": "FAILED",
        "family": None,
        "error": "RuntimeError: synthesis exploded",
    }
    text = md.read_text()
    assert "| engine | config | family | error | lut4 | fmax_mhz |" in text
    assert "| bad | FAILED |  | RuntimeError: synthesis exploded |  |  |" in text
    assert "| good | a\\|b | ice40 |  | 120 | 41.26 |" in text
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["rows"] == rows and set(saved["seconds"]) == {"good", "bad"}
    assert saved["versions"]["amaranth"]


def test_cli_runs_selected_engines(fake_benches, tmp_path):
    result = CliRunner().invoke(app, ["bench", "-o", str(tmp_path), "--engines", "good"])
    assert result.exit_code == 0, result.output
    assert "41.26" in result.output and (tmp_path / "bench.md").is_file()
    result = CliRunner().invoke(app, ["bench", "-o", str(tmp_path / "x"), "--engines", "nope"])
    assert result.exit_code == 1
    assert "no benchmark for nope; available: bad, good" in result.output
    assert not (tmp_path / "x").exists()


def test_full_reaches_only_the_benches_that_take_it(monkeypatch, tmp_path):
    seen = []

    def sweeps(out_dir, *, full=False):
        seen.append(full)
        return [{"engine": "sweeps", "config": "full" if full else "short", "family": None}]

    def plain(out_dir):
        return [{"engine": "plain", "config": "only", "family": None}]

    monkeypatch.setattr(bench, "BENCHES", {"sweeps": sweeps, "plain": plain})
    steps = []
    rows, md = bench.run_all(tmp_path, full=True, progress=lambda *step: steps.append(step))
    assert seen == [True] and [r["config"] for r in rows] == ["only", "full"]
    assert steps == [("plain", 0, 2), ("sweeps", 1, 2)]
    assert md.read_text().startswith("# nnloom bench --full, ")
    result = CliRunner().invoke(app, ["bench", "-o", str(tmp_path / "short"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [True, False] and "| sweeps | short |" in result.output


def test_jobs_run_engines_in_their_own_processes(monkeypatch, tmp_path):
    import os

    def make(name, fail=False):
        def run(out_dir, *, full=False):
            out_dir.mkdir(parents=True)
            (out_dir / "pid").write_text(str(os.getpid()))
            if fail:
                raise RuntimeError(f"{name} broke")
            return [{"engine": name, "config": "full" if full else "short", "family": None}]

        return run

    monkeypatch.setattr(
        bench, "BENCHES", {"c": make("c"), "a": make("a", fail=True), "b": make("b")}
    )
    rows, md = bench.run_all(tmp_path, jobs=2, full=True)
    assert [(r["engine"], r["config"]) for r in rows] == [
        ("a", "FAILED"),
        ("b", "full"),
        ("c", "full"),
    ]
    assert rows[0]["error"] == "RuntimeError: a broke"
    pids = {(tmp_path / n / "pid").read_text() for n in "abc"}
    assert str(os.getpid()) not in pids
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["jobs"] == 2 and set(saved["seconds"]) == {"a", "b", "c"}
    assert "Seconds per engine (2 at a time): a " in md.read_text()
