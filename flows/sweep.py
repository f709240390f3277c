"""Design-space sweep of the gemm overlay: every point compiled, modelled, synthesized, placed
and routed (optionally simulated) as an independent task, cached by content.

A point is one board and one ``GemmConfig`` (DSP lanes, LUT lanes, LUT mode on the board's
base config), a split and a clock; the placer seeds are all run inside the point's task
(Yosys once, nextpnr once per seed). ``run_point`` is the task: it carries the model and data
bytes, so it runs on any process or Ray node with nnloom installed (``flows.sweep_task``),
and measures the point with ``flows.commands.gemm.measure_config``, the function ``nnloom bench
gemm`` uses: a point
and the benchmark's row of the same config have the same figures.

Every finished point is written to ``cache/<key>.json`` at once (atomically); the key hashes
the model and data bytes, the point, the seeds, the flags, the tools' versions and the
source of the nnloom code that measures a point. A rerun reads the cache and runs only new or
failed points. A point's status:
``ok``; ``timing`` (placed, Fmax below the clock asked); ``error`` (a tool rejected it, e.g.
no legal placement; cached like a result); ``mismatch`` (``simulate``: the RTL differs from
the golden model); ``failed`` (the task raised or its worker died: not cached, so rerun).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from frontends.errors import UsageError

from .sweep_task import _versions

if TYPE_CHECKING:
    from rtl_gen.gemm import GemmConfig

__all__ = [
    "LUT_MODES",
    "Point",
    "parse_ints",
    "parse_seeds",
    "parse_splits",
    "parse_modes",
    "make_points",
    "run_sweep",
    "pareto",
    "write_outputs",
    "SweepError",
]

# --lut-mode names -> (GemmConfig.lut_mode, lut_wbits)
LUT_MODES = {
    "ternary": ("ternary", 2),
    "int2": ("shiftadd", 2),
    "int3": ("shiftadd", 3),
    "int4": ("shiftadd", 4),
    "bitserial": ("bitserial", 1),
}
SCHEMA = 1
# nnloom's source that decides a point's figures: edited code makes new keys
_CODE = (
    "frontends",
    "rtl_gen",
    "sim",
    "flows/commands/gemm.py",
    "flows/synth.py",
    "flows/build.py",
    "flows/tools.py",
    "flows/sweep_task.py",
)


class SweepError(UsageError):
    """A sweep the user asked for that cannot run (bad axis, board, model)."""


# --- axes ---------------------------------------------------------------------------------------


def _items(text: str, name: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise SweepError(f"{name} '{text}': give a comma-separated list with no empty item")
    if len(set(items)) != len(items):
        raise SweepError(f"{name} '{text}': a value is repeated")
    return items


def parse_ints(text: str, name: str, *, minimum: int = 0) -> list[int]:
    try:
        values = [int(t) for t in _items(text, name)]
    except ValueError:
        raise SweepError(
            f"{name} '{text}': give integers separated by commas, e.g. 4,8,12"
        ) from None
    if min(values) < minimum:
        raise SweepError(f"{name} '{text}': values must be at least {minimum}")
    return values


def parse_seeds(text: str) -> tuple[int, ...]:
    """``1-3`` or ``1,2,5`` (or both: ``1-3,7``): placer seeds, in order, no repeats."""
    seeds = []
    for item in _items(text, "--seeds"):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m or (m[2] and int(m[2]) < int(m[1])):
            raise SweepError(
                f"--seeds '{text}': give non-negative seeds or ranges, e.g. 1-3 or 1,2,5"
            )
        seeds += range(int(m[1]), int(m[2] or m[1]) + 1)
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds '{text}': a seed is repeated")
    return tuple(seeds)


def parse_splits(text: str) -> list:
    out = []
    for item in _items(text, "--split"):
        if item == "auto":
            out.append("auto")
            continue
        try:
            value = float(item)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise SweepError(
                f"--split '{text}': each split is 'auto' or the LUT core's share "
                f"of every layer, a number in [0, 1]"
            )
        out.append(value)
    return out


def parse_modes(text: str) -> list[str]:
    modes = _items(text, "--lut-mode")
    for mode in modes:
        if mode not in LUT_MODES:
            raise SweepError(f"--lut-mode '{mode}': choose from {', '.join(LUT_MODES)}")
    return modes


def parse_clocks(text: str) -> list[float]:
    try:
        clocks = [float(t) for t in _items(text, "--clock")]
    except ValueError:
        clocks = [0.0]
    if min(clocks) <= 0:
        raise SweepError(f"--clock '{text}': give clocks in MHz, e.g. 24 or 24,36")
    return clocks


@dataclass(frozen=True)
class Point:
    """One configuration to measure on one board."""

    board: str
    family: str
    config: dict  # GemmConfig fields (memories are fitted to the program)
    lut_mode: str  # the --lut-mode name ("-" without LUT lanes)
    split: object  # "auto" or a ratio
    clock_mhz: float
    seeds: tuple[int, ...]
    key: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.key[:10]

    def gemm_config(self) -> GemmConfig:
        from rtl_gen.gemm import GemmConfig

        return GemmConfig(**self.config)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "engine": "gemm",
            "board": self.board,
            "family": self.family,
            "config": self.config,
            "lut_mode": self.lut_mode,
            "split": self.split,
            "clock_mhz": self.clock_mhz,
            "seeds": list(self.seeds),
            "key": self.key,
        }


def make_points(
    boards: list[str],
    *,
    dsp_lanes: Sequence[int] | None = None,
    lut_lanes: Sequence[int] | None = None,
    lut_modes: Sequence[str] | None = None,
    splits: Sequence[str | float] | None = None,
    clocks: Sequence[float] | None = None,
    seeds: Iterable[int] = (1,),
) -> list[Point]:
    """The grid: every combination of the axes on each board, starting from the board's
    heterogeneous config (its DSP packing, its default lanes where an axis is not given).
    A combination without lanes is left out; without LUT lanes the mode and the split mean
    nothing, so such points collapse into one. Raises ``SweepError`` when nothing is left."""
    from rtl_gen.gemm import BOARDS

    unknown = [b for b in boards if b not in BOARDS]
    if unknown:
        raise SweepError(
            f"unknown board '{unknown[0]}'; the gemm engine has configs for {', '.join(BOARDS)}"
        )
    points, seen = [], set()
    for board in boards:
        spec = BOARDS[board]
        base = spec["hetero"]
        default_mode = next(k for k, v in LUT_MODES.items() if v == (base.lut_mode, base.lut_wbits))
        for d in dsp_lanes or [base.dsp_lanes]:
            for lanes in lut_lanes or [base.lut_lanes]:
                if d + lanes == 0:
                    continue
                for mode in lut_modes or [default_mode]:
                    for split in splits or ["auto"]:
                        for clock in clocks or [spec["clock_mhz"]]:
                            lut_mode, wbits = LUT_MODES[mode]
                            name, ratio = mode, split
                            if lanes == 0:
                                lut_mode, wbits, name = base.lut_mode, base.lut_wbits, "-"
                            if lanes == 0 or d == 0:
                                ratio = "auto"  # one core: nothing to split
                            config = replace(
                                base,
                                dsp_lanes=d,
                                lut_lanes=lanes,
                                lut_mode=lut_mode,
                                lut_wbits=wbits,
                                dsp_pack=base.dsp_pack and d > 0,
                                dsp_regs=base.dsp_regs and d > 0,
                                lane_cache=base.lane_cache and d > 0,  # feeds DSP lanes
                            )
                            point = Point(
                                board,
                                spec["family"],
                                config.to_json(),
                                name,
                                ratio,
                                float(clock),
                                tuple(seeds),
                            )
                            ident = json.dumps(point.to_json(), sort_keys=True)
                            if ident not in seen:
                                seen.add(ident)
                                points.append(point)
    if not points:
        raise SweepError("the axes give no point: every combination has 0 DSP and 0 LUT lanes")
    return points


# --- content keys -------------------------------------------------------------------------------


def _code_hash() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for part in _CODE:
        path = root / part
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def keyed(
    points: list[Point], *, model: bytes, data: bytes | None, tau: float, synth: bool, simulate: int
) -> list[Point]:
    """``points`` with their content keys."""
    common = {
        "schema": SCHEMA,
        "model": hashlib.sha256(model).hexdigest(),
        "data": hashlib.sha256(data).hexdigest() if data else None,
        "tau": tau,
        "synth": synth,
        "simulate": simulate,
        "versions": _versions(simulate),
        "code": _code_hash(),
    }
    out = []
    for p in points:
        text = json.dumps(
            {**common, **{k: v for k, v in p.to_json().items() if k not in ("id", "key")}},
            sort_keys=True,
        )
        out.append(replace(p, key=hashlib.sha256(text.encode()).hexdigest()))
    return out


# --- rows ---------------------------------------------------------------------------------------


def row_of(point: Point, result: dict) -> dict:
    """One flat row: the point's configuration and figures."""
    m = result.get("measure", {})
    est = m.get("estimate", {})
    cfg = point.config
    row = {
        "id": point.id,
        "board": point.board,
        "dsp_lanes": cfg["dsp_lanes"],
        "lut_lanes": cfg["lut_lanes"],
        "lut_mode": point.lut_mode,
        "split": point.split,
        "clock_mhz": point.clock_mhz,
        "seeds": ",".join(map(str, point.seeds)),
        "config": m.get("config"),
        "cycles": m.get("cycles_rtl"),
        "cycles_model": m.get("cycles_model"),
        "fmax_mhz": m.get("fmax_mhz"),
        "fmax_seeds": {str(k): v for k, v in m.get("fmax_seeds", {}).items()} or None,
        "latency_us": m.get("latency_us"),
        "lut4": m.get("lut4"),
        "cells": m.get("cells"),
        "ff": m.get("ff"),
        "dsp": m.get("dsp"),
        "ram": m.get("ebr"),
        "spram": m.get("spram"),
        "lut4_est": est.get("lut4"),
        "dsp_est": est.get("dsp"),
        "accuracy": m.get("accuracy"),
        "sim": (
            f"{m['sim']['vectors']} {'pass' if m['sim']['passed'] else 'FAIL'}"
            if m.get("sim")
            else None
        ),
        "status": result.get("status", "failed"),
        "reason": result.get("reason"),
        "netlist_sha256": m.get("netlist_sha256"),  # equal on every executor and node
    }
    return row


def _objective(row: dict, resource: str):
    """(latency µs, resource) of a row for the Pareto set, or None. Without synthesis the
    latency is at the clock asked and the resources are rtl_gen.gemm.cost's estimates."""
    if row["status"] not in ("ok", "timing") or row["cycles"] is None:
        return None
    latency = (
        row["latency_us"] if row["latency_us"] is not None else row["cycles"] / row["clock_mhz"]
    )
    amount = row[resource] if row[resource] is not None else row.get(f"{resource}_est")
    return None if amount is None else (latency, amount)


def pareto(rows: list[dict], resource: str) -> list[dict]:
    """The rows no other row of the same board beats in both latency and ``resource``
    (``lut4`` or ``dsp``), by board then latency."""
    out = []
    for board in dict.fromkeys(r["board"] for r in rows):
        scored = [(r, _objective(r, resource)) for r in rows if r["board"] == board]
        scored = [(r, o) for r, o in scored if o is not None]
        for r, (lat, amount) in scored:
            if not any(q[0] <= lat and q[1] <= amount and q != (lat, amount) for _, q in scored):
                out.append(r)
    return sorted(out, key=lambda r: (r["board"], _objective(r, resource)))


# --- running ------------------------------------------------------------------------------------


@dataclass
class Counts:
    total: int
    done: int = 0
    cached: int = 0
    failed: int = 0
    running: int = 0

    def text(self) -> str:
        return (
            f"{self.done + self.cached + self.failed}/{self.total} points: {self.done} "
            f"done, {self.cached} cached, {self.failed} failed, {self.running} running"
        )


def _cache_path(out: Path, point: Point) -> Path:
    return out / "cache" / f"{point.key}.json"


def run_sweep(
    points: list[Point],
    *,
    model: bytes,
    data: bytes | None,
    out: Path,
    tau: float = 0.02,
    synth: bool = True,
    simulate: int = 0,
    executor: str = "pool",
    jobs: int = 2,
    address: str | None = None,
    retries: int = 1,
    on_change: Callable[[Counts, dict | None], None] = lambda counts, row: None,
    prepare: Callable[[], None] = lambda: None,
) -> tuple[list[dict], dict, list[Point]]:
    """Measure every point not in ``out/cache`` (see the module docstring); returns the rows
    in ``points`` order, the per-point results by key and the keyed points. ``on_change(counts,
    row)`` hears each start (``row`` None) and each end. ``prepare()`` runs once before the
    first point is measured (checking the model, connecting to Ray), not at all when every
    point is cached."""
    from rtl_gen.artefact import atomic_write

    from .executors import execute
    from .sweep_task import run_point

    points = keyed(points, model=model, data=data, tau=tau, synth=synth, simulate=simulate)
    here = _versions(simulate)
    results: dict[str, dict] = {}
    counts = Counts(len(points))
    todo = []
    for point in points:
        cached = _cache_path(out, point)
        try:
            results[point.key] = json.loads(cached.read_text())
            counts.cached += 1
            on_change(counts, row_of(point, results[point.key]))
        except (OSError, ValueError):
            todo.append(point)
    shared = {
        "model": model,
        "data": data,
        "tau": tau,
        "synth": synth,
        "simulate": simulate,
        "work_root": str((out / "work").resolve()) if executor == "pool" else None,
    }

    def started(index):
        counts.running += 1
        on_change(counts, None)

    if todo:
        prepare()
    outcomes = (
        execute(
            run_point,
            shared,
            [p.to_json() for p in todo],
            executor=executor,
            jobs=jobs,
            address=address,
            retries=retries,
            on_start=started,
        )
        if todo
        else ()
    )
    for outcome in outcomes:
        point = todo[outcome.index]
        counts.running = max(0, counts.running - 1)
        result = (
            outcome.value
            if outcome.error is None
            else {"id": point.id, "key": point.key, "status": "failed", "reason": outcome.error}
        )
        differ = {k: v for k, v in result.get("versions", here).items() if here.get(k) != v}
        if differ:  # a node whose tools are not this machine's: its figures are not the key's
            result = {
                **result,
                "status": "failed",
                "reason": f"{result.get('host')} ran "
                + ", ".join(f"{k} {v} (here {here.get(k)})" for k, v in differ.items()),
            }
        results[point.key] = result
        if result["status"] == "failed":
            counts.failed += 1
        else:
            counts.done += 1
            atomic_write(
                _cache_path(out, point), json.dumps(result, indent=1, sort_keys=True) + "\n"
            )
        on_change(counts, row_of(point, result))
    rows = [row_of(p, results[p.key]) for p in points]
    return rows, {p.key: results[p.key] for p in points}, points


# --- writing ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "board",
    "dsp_lanes",
    "lut_lanes",
    "lut_mode",
    "split",
    "clock_mhz",
    "seeds",
    "config",
    "cycles",
    "cycles_model",
    "fmax_mhz",
    "latency_us",
    "lut4",
    "cells",
    "ff",
    "dsp",
    "ram",
    "spram",
    "lut4_est",
    "dsp_est",
    "accuracy",
    "sim",
    "status",
    "reason",
)


def csv_text(rows: list[dict]) -> str:
    seeds = sorted({int(s) for r in rows for s in (r["fmax_seeds"] or {})})
    columns = [*CSV_COLUMNS[:12], *(f"fmax_seed{s}" for s in seeds), *CSV_COLUMNS[12:]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        per = r["fmax_seeds"] or {}
        flat = {**r, **{f"fmax_seed{s}": per.get(str(s)) for s in seeds}}
        writer.writerow(["" if flat.get(c) is None else flat[c] for c in columns])
    return buf.getvalue()


def write_outputs(
    out: Path, *, rows: list[dict], points: list[Point], results: dict, meta: dict
) -> dict[str, Path]:
    """``sweep.json``, ``sweep.csv``, ``sweep.html`` and ``points/<id>.json`` (the input of
    ``nnloom generate --config``), each written atomically."""
    from rtl_gen.artefact import atomic_write

    from .sweep_page import render

    fronts = {res: [r["id"] for r in pareto(rows, res)] for res in ("lut4", "dsp")}
    doc = {
        **meta,
        "rows": rows,
        "pareto": fronts,
        "seconds": {p.id: results[p.key].get("seconds") for p in points},
    }
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "html": out / "sweep.html"}
    page_key = _page_key(rows, fronts, meta)
    doc["page_key"] = page_key
    for p in points:
        result = results[p.key]
        atomic_write(
            out / "points" / f"{p.id}.json",
            json.dumps(
                {
                    **p.to_json(),
                    "tau": meta.get("tau"),
                    "fitted": result.get("measure", {}).get("fitted"),
                    "row": row_of(p, result),
                },
                indent=2,
                sort_keys=True,
            )
            + "\n",
        )
    atomic_write(paths["json"], json.dumps(doc, indent=2, sort_keys=True) + "\n")
    atomic_write(paths["csv"], csv_text(rows))
    if _written_page_key(paths["html"]) != page_key:  # matplotlib takes seconds: only anew
        atomic_write(paths["html"], render(rows, fronts, meta, key=page_key))
    return paths


def _page_key(rows: list[dict], fronts: dict, meta: dict) -> str:
    """A hash of everything ``sweep.html`` shows (not the wall time)."""
    shown = {k: meta.get(k) for k in ("model_name", "model_sha256", "versions")}
    text = json.dumps([rows, fronts, shown], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _written_page_key(path: Path) -> str | None:
    """The key a ``sweep.html`` was rendered for (in its head), or None."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(400)
    except OSError:
        return None
    m = re.search(r"<meta name='nnloom-sweep-key' content='([0-9a-f]{64})'>", head)
    return m[1] if m else None


def load_point(spec: str | Path) -> dict:
    """A point written by a sweep: ``points/<id>.json``, or ``sweep.json#<id>`` /
    ``<sweep folder>#<id>`` (an id prefix will do)."""
    text = str(spec)
    path, _, ident = text.partition("#")
    path = Path(path)
    if path.is_dir():
        path = path / "points" / f"{ident}.json" if ident else path
        if not ident:
            raise SweepError(f"{text}: name a point, e.g. {text}#<id> from sweep.csv")
        if not path.is_file():
            matches = sorted(path.parent.glob(f"{ident}*.json"))
            if len(matches) != 1:
                raise SweepError(f"{text}: no single sweep point with id '{ident}'")
            path = matches[0]
    if not path.is_file():
        raise SweepError(f"{text}: no such sweep point file")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise SweepError(f"{path}: not a JSON sweep point ({exc})") from None
    if "rows" in doc:  # sweep.json: find the id among the points folder beside it
        if not ident:
            raise SweepError(f"{text}: name a point, e.g. {text}#<id> from sweep.csv")
        return load_point(f"{path.parent}#{ident}")
    if doc.get("engine") != "gemm" or "config" not in doc or "board" not in doc:
        raise SweepError(f"{path}: not a sweep point (written by nnloom sweep in points/)")
    return doc


def iter_boards(text: str) -> Iterable[str]:
    return _items(text, "--board")
