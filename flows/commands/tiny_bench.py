"""``nnloom bench tiny``: the MLPerf Tiny examples on the GEMM overlay, one row per model x
board x configuration, beside CFU-Playground's published keyword-spotting figure.

Rows: KWS and IC on the iCEBreaker (UP5K); all four on the ULX3S-85F; the Brevitas ternary
variants of KWS and IC (``frontends.examples.tiny_brevitas``: what the LUT core multiplies)
on both; with ``twins`` the digits-sized twins (int8 and ternary) on both boards too (real
data: their accuracy is measured). Each row is
compiled for the board's DSP-only and heterogeneous (DSP + ternary LUT core) config; a
heterogeneous config none of whose layers uses the LUT core is reported as such. A row the
hardware cannot run yet carries the one-line reason (importer, compiler or place-and-route),
never a traceback.

Figures: cycles per inference (the overlay's cycle model, which the RTL matches exactly;
with ``rtl`` also counted in Amaranth's simulator), MAC utilisation per layer type (MACs /
(cycles x lanes), lanes = the config's DSP + LUT lanes); with ``synth`` the row's bitstream
(``nnloom build``: the engine on the board's top with its host link, and the weight loader
where its weights are written at run time) built once per nextpnr seed: Fmax (median),
latency and inferences/s at that Fmax, LC/LUT4, FF, DSP, EBR/DP16KD, SPRAM; and the
integer golden's accuracy on the example's test split (synthetic data for the full-size
models, scikit-learn digits for the twins).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer

if TYPE_CHECKING:
    from rich.console import Console

    from frontends.ir import Graph
    from rtl_gen.gemm.program import LayerInfo

log = logging.getLogger(__name__)

__all__ = [
    "register",
    "bench_tiny",
    "CFU_KWS_CYCLES",
    "TINY_BOARDS",
    "TWIN_BOARDS",
    "layer_kind",
    "print_report",
    "markdown",
]

# CFU-Playground's KWS accelerator on the iCE40 UP5K (its published figure): 24,601 ticks of
# 1,024 cycles per inference
CFU_KWS_CYCLES = 24_601 * 1_024

_BOTH = ("icebreaker", "ulx3s-85f")
TINY_BOARDS = {
    "tiny_kws": _BOTH,
    "tiny_kws_ternary": _BOTH,
    "tiny_ic": _BOTH,
    "tiny_ic_ternary": _BOTH,
    "tiny_ic_int4": _BOTH,  # the ResNet-8 whose weights fit the iCEBreaker's SPRAM
    "tiny_ad": ("ulx3s-85f",),
    "tiny_vww": ("ulx3s-85f",),
}
TWIN_BOARDS = {
    "tiny_kws_digits": _BOTH,
    "tiny_kws_digits_ternary": _BOTH,
    "tiny_ic_digits": _BOTH,
    "tiny_ic_digits_ternary": _BOTH,
    "tiny_vww_digits": _BOTH,
}
KINDS = ("dsp", "hetero")
SEEDS = (1, 2, 3)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    errors = [ln.strip() for ln in text if "ERROR" in ln]
    return (errors or text or [type(exc).__name__])[0]


def _example(name: str, models: Path):
    """The example's (quantized model, test data): reused when both files are there (the
    examples are deterministic), made otherwise."""
    from frontends.examples.tiny import make_tiny, make_tiny_twin

    model, data = models / f"{name}.onnx", models / f"{name}_test.npz"
    if not (model.is_file() and data.is_file()):
        if name.endswith(("_ternary", "_int4")):
            from frontends.examples.tiny_brevitas import make_tiny_brevitas

            make_tiny_brevitas(name, models)
        elif name.endswith("_digits"):
            make_tiny_twin(name[len("tiny_") : -len("_digits")], models)
        else:
            make_tiny(name, models)
    return model, data


def layer_kind(layer: LayerInfo, graph: Graph) -> str:
    """``dense``, ``depthwise KxK``, ``conv KxK`` (1x1: pointwise), or the layer's IR op
    (``avgpool``, ``add``...)."""
    op = getattr(layer, "op", "?")
    if op != "conv":
        return op
    node = next((n for n in graph.nodes if n.name == layer.name), None)
    kernel = node.attrs.get("kernel_shape") if node is not None else None
    size = f" {kernel[0]}x{kernel[1]}" if kernel is not None and len(kernel) == 2 else ""
    return ("depthwise" if getattr(layer, "groups", 1) > 1 else "conv") + size


def _utilisation(program, cycles_of: Callable) -> dict:
    lanes = program.config.dsp_lanes + program.config.lut_lanes
    per: dict[str, list[int]] = {}
    for layer in program.layers:
        kind = layer_kind(layer, program.source)
        macs, cycles = per.setdefault(kind, [0, 0])
        per[kind] = [macs + layer.macs, cycles + cycles_of(layer)]
    return {k: (m / (c * lanes) if c else None) for k, (m, c) in per.items() if m}


def _accuracy(graph, x, y) -> float | None:
    from frontends.reference import predict

    if y is None:
        return None
    return float((predict(graph, x).reshape(len(x), -1).argmax(1) == y).mean())


def _yosys_cells(report: Path) -> dict[str, int]:
    """Cell counts of the last ``stat`` in Yosys' log of a board build."""
    text = report.read_text(errors="replace") if report.is_file() else ""
    block = text.rsplit("Printing statistics", 1)[-1].split("=== design hierarchy ===")[0]
    return {
        name: int(count)
        for count, name in re.findall(r"^\s+(\d+)\s+(\$?\w+)\s*$", block, re.MULTILINE)
    }


def _synth(program, board: str, work: Path, seeds) -> dict:
    """The row's bitstream: its artefact on ``board``'s top (host link, and the ``LOAD``
    path when its weights are written at run time), built once per nextpnr seed; the
    resources of the first build, Fmax (of the engine's clock domain) of each."""
    from flows.build import BuildError, build
    from frontends.vectors import golden_vectors
    from rtl_gen.artefact import Artefact
    from rtl_gen.gemm.emit import write_gemm_artefact

    vectors = {k: v[:1] for k, v in golden_vectors(program.graph, random=1).items()}
    art = Artefact(write_gemm_artefact(program, work / "artefact", vectors=vectors))
    fmax, first = {}, None
    for seed in seeds:
        try:
            rep = build(art, board, seed=seed)
            report = rep.to_json()
        except BuildError as exc:  # a missed clock still places: its report has the Fmax
            path = art.path / "build" / board / "report.json"
            if "timing missed" not in str(exc) or not path.is_file():
                raise
            report = json.loads(path.read_text())
        fmax[seed] = report["fmax_mhz"]
        if first is None:
            first = report
            cells = _yosys_cells(art.path / "build" / board / "top.rpt")
    util = first["utilisation"]

    def used(*names):
        return sum(util[n]["used"] for n in names if n in util)

    return {
        "bitstream": True,
        "lut4": sum(v for k, v in cells.items() if k in ("SB_LUT4", "LUT4")),
        "ff": sum(v for k, v in cells.items() if "DFF" in k or k == "TRELLIS_FF"),
        "fmax_mhz": float(np.median(list(fmax.values()))),
        "fmax_seeds": {str(k): v for k, v in fmax.items()},
        "dsp": used("ICESTORM_DSP", "MULT18X18D"),
        "ebr": used("ICESTORM_RAM", "DP16KD"),
        "spram": used("ICESTORM_SPRAM"),
        "cells": used("ICESTORM_LC", "TRELLIS_COMB"),
        "clock_mhz": first["clock_mhz"],
    }


def _row(
    name: str, board: str, kind: str, graph, x, y, *, synth: bool, seeds, rtl: bool, work: Path
) -> dict:
    """One model x board x configuration; ``error`` is set (and the figures after it left
    out) where the hardware cannot run it."""
    from dataclasses import replace

    from flows.commands.gemm import MIN_LUT_GAIN, drop_idle_core
    from rtl_gen.gemm import BOARDS, compile_graph
    from rtl_gen.gemm.model import schedule

    row: dict = {"model": name, "board": board, "kind": kind}
    try:
        cfg = BOARDS[board][kind]
        program = compile_graph(graph, cfg, split="auto")
        if kind == "hetero" and not any(l.n_lut for l in program.layers):
            row["error"] = (
                "no layer uses the LUT core (its weights do not fit the ternary "
                "lanes within the error budget): the DSP-only row is this model's"
            )
            return row
        if kind == "hetero" and not drop_idle_core(graph, program).config.lut_lanes:
            row["error"] = (
                f"the LUT core saves under {100 * MIN_LUT_GAIN:.0f} % of the DSP-only "
                f"cycles: `nnloom generate` builds the DSP-only overlay, this model's row"
            )
            return row
        if kind == "dsp" and cfg.lut_lanes:
            program = compile_graph(graph, replace(cfg, lut_lanes=0), split="auto")
        row["config"] = program.config.describe()
        _ = program.words  # every instruction encodes: an ISA field overflow stops the row here
        row["macs"] = program.macs()
        row["cycles_model"] = schedule(program).cycles
        if rtl:
            from flows.commands.gemm import _rtl_layer_cycles

            row["cycles_rtl"], per_layer = _rtl_layer_cycles(program)
            rtl_of = dict(zip((l.name for l in program.layers), per_layer))
            row["utilisation"] = _utilisation(program, lambda l: rtl_of[l.name])
        else:
            row["utilisation"] = _utilisation(program, lambda l: l.model_cycles)
        cycles = row.get("cycles_rtl", row["cycles_model"])
        lanes = program.config.dsp_lanes + program.config.lut_lanes
        row["utilisation_total"] = row["macs"] / (cycles * lanes)
        row["accuracy"] = _accuracy(program.graph, x, y)
        if synth:
            row.update(_synth(program, board, work / name / board / kind, seeds))
            f = row["fmax_mhz"]
            if f:
                row["latency_us"] = cycles / f
                row["inferences_s"] = f * 1e6 / cycles
    except Exception as exc:  # a row the hardware cannot do yet: its reason, not a traceback
        log.info("bench tiny %s %s %s: %s", name, board, kind, exc, exc_info=True)
        row["error"] = _one_line(exc)
    return row


def bench_tiny(
    out_dir: Path,
    *,
    synth: bool = False,
    seeds: tuple[int, ...] = SEEDS,
    twins: bool = True,
    rtl: bool = False,
    models: Optional[list[str]] = None,
    boards: Optional[list[str]] = None,
    kinds: tuple = KINDS,
    progress: Optional[Callable[[str], None]] = None,
) -> dict:
    """Every row (see the module docstring); also writes ``tiny.json`` and ``tiny.md`` into
    ``out_dir``, after each row."""
    from frontends.onnx_import import import_onnx
    from rtl_gen.artefact import atomic_write

    out_dir = Path(out_dir)
    plan = {**TINY_BOARDS, **(TWIN_BOARDS if twins else {})}
    if models:
        unknown = [m for m in models if m not in plan]
        if unknown:
            from frontends.errors import UsageError

            raise UsageError(f"unknown model {', '.join(unknown)}; choose from {', '.join(plan)}")
        plan = {m: plan[m] for m in models}
    if boards:
        plan = {m: tuple(b for b in bs if b in boards) for m, bs in plan.items()}
    rows: list[dict] = []
    start = time.monotonic()

    def save():  # after every row, so a long run interrupted keeps what it measured
        report = {
            "rows": rows,
            "cfu_playground_kws_cycles": CFU_KWS_CYCLES,
            "synth": synth,
            "seeds": list(seeds),
            "seconds": round(time.monotonic() - start, 1),
        }
        atomic_write(out_dir / "tiny.json", json.dumps(report, indent=2, default=float) + "\n")
        atomic_write(out_dir / "tiny.md", markdown(report))
        return report

    for name, boards_of in plan.items():
        if progress:
            progress(f"{name}: example")
        try:
            model, data = _example(name, out_dir / "models")
            with np.load(data) as f:
                x, y = f["x"], (f["y"] if "y" in f.files else None)
            graph = import_onnx(model)
        except Exception as exc:
            rows += [
                {"model": name, "board": b, "kind": k, "error": _one_line(exc)}
                for b in boards_of
                for k in kinds
            ]
            save()
            continue
        for board in boards_of:
            for kind in kinds:
                if progress:
                    progress(f"{name}: {board} {kind}")
                rows.append(
                    _row(
                        name,
                        board,
                        kind,
                        graph,
                        x,
                        y,
                        synth=synth,
                        seeds=seeds,
                        rtl=rtl,
                        work=out_dir,
                    )
                )
                save()
    return save()


def _fmt(v, spec="") -> str:
    if v is None:
        return "—"
    return format(v, spec) if spec else str(v)


def _util_text(util: dict | None) -> str:
    if not util:
        return "—"
    return ", ".join(f"{k} {_fmt(v and 100 * v, '.0f')} %" for k, v in util.items())


COLUMNS = (
    "model",
    "board",
    "config",
    "cycles",
    "Fmax MHz (seeds)",
    "latency µs",
    "inf/s",
    "MAC util per layer type",
    "LC/LUT4",
    "FF",
    "DSP",
    "EBR/DP16KD",
    "SPRAM",
    "accuracy %",
    "vs CFU-Playground",
)


def _cells(row: dict, cfu: int) -> list[str]:
    if "error" in row:
        return [row["model"], row["board"], row["kind"], f"stops: {row['error']}"] + [""] * (
            len(COLUMNS) - 4
        )
    cycles = row.get("cycles_rtl", row["cycles_model"])
    seeds = row.get("fmax_seeds") or {}
    fmax = _fmt(row.get("fmax_mhz"), ".1f")
    if len(seeds) > 1:
        fmax += f" ({min(seeds.values()):.1f}–{max(seeds.values()):.1f})"
    kws = row["model"] == "tiny_kws"
    same_chip = row["board"] == "icebreaker"
    return [
        row["model"],
        row["board"],
        f"{row['kind']}: {row['config']}",
        f"{cycles:,}" + (" RTL" if "cycles_rtl" in row else " model"),
        fmax,
        _fmt(row.get("latency_us"), ",.1f"),
        _fmt(row.get("inferences_s"), ",.0f"),
        _util_text(row.get("utilisation")),
        _fmt(row.get("cells") or row.get("lut4")),
        _fmt(row.get("ff")),
        _fmt(row.get("dsp")),
        _fmt(row.get("ebr")),
        _fmt(row.get("spram")),
        _fmt(row["accuracy"] and 100 * row["accuracy"], ".2f"),
        (f"{cfu / cycles:.1f}x fewer cycles" + ("" if same_chip else f" (on {row['board']})"))
        if kws
        else "",
    ]


def _cycles(row: dict) -> int:
    return row.get("cycles_rtl", row["cycles_model"])


def markdown(report: dict) -> str:
    cfu = report["cfu_playground_kws_cycles"]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        "| " + " | ".join(c.replace("|", "\\|") for c in _cells(r, cfu)) + " |"
        for r in report["rows"]
    ]
    pairs: dict = {}
    for r in report["rows"]:
        if "error" not in r:
            pairs.setdefault((r["model"], r["board"]), {})[r["kind"]] = r
    speedups = []
    for (model, board), kinds in pairs.items():
        if "dsp" in kinds and "hetero" in kinds:
            d, h = kinds["dsp"], kinds["hetero"]
            text = f"{model} on {board} {_cycles(d) / _cycles(h):.2f}x in cycles"
            if d.get("latency_us") and h.get("latency_us"):
                text += f", {d['latency_us'] / h['latency_us']:.2f}x in latency"
            speedups.append(text)
    if speedups:
        lines.append("\nHeterogeneous / DSP-only: " + "; ".join(speedups) + ".")
    lines.append(
        "\nAccuracy: the integer golden of the compiled program on the example's test "
        "split: synthetic data for the full-size models, scikit-learn's digits for "
        "the *_digits twins."
    )
    lines.append(
        "\nMAC utilisation per layer type: the type's MACs / (its layers' cycles x "
        "the config's lanes); a layer's cycles are its instructions' span, and "
        "streamed layers overlap the previous one, so a short dense layer can show "
        "over 100 %."
    )
    lines.append(
        f"\nCFU-Playground KWS on the iCE40 UP5K (published): 24,601 ticks x 1,024 "
        f"cycles = {cfu:,} cycles per inference."
    )
    return "\n".join(lines) + "\n"


def print_report(console: Console, report: dict) -> None:
    cfu = report["cfu_playground_kws_cycles"]
    console.print(markdown(report), soft_wrap=True, markup=False, highlight=False)
    kws = [
        r
        for r in report["rows"]
        if r["model"] == "tiny_kws" and r["board"] == "icebreaker" and "error" not in r
    ]
    for r in kws:
        cycles = r.get("cycles_rtl", r["cycles_model"])
        console.print(
            f"tiny_kws {r['kind']} on the iCEBreaker: {cycles:,} cycles, "
            f"{cfu / cycles:.1f}x fewer than CFU-Playground's {cfu:,}"
        )
    if not kws:
        console.print(
            "tiny_kws on the iCEBreaker: does not run yet (see its rows), no ratio "
            "to CFU-Playground"
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @bench_app.command("tiny")
    def bench_tiny_command(
        out: Path = typer.Option(
            Path("out/bench/tiny"),
            "--out",
            "-o",
            help="Work folder: "
            "the example models (models/, reused when present), the "
            "synthesis runs, tiny.json and tiny.md.",
        ),
        synth: bool = typer.Option(
            False,
            help="Build each row's bitstream once per seed (resources, Fmax, latency; "
            "tens of minutes a row); default: cycles, utilisation and accuracy only.",
        ),
        seeds: str = typer.Option(
            ",".join(map(str, SEEDS)),
            help="Comma-separated nextpnr placer seeds; Fmax is their median.",
        ),
        twins: bool = typer.Option(
            True, help="The digits-sized twins too (accuracy on real data)."
        ),
        rtl: bool = typer.Option(
            False,
            "--rtl",
            help="Count cycles in Amaranth's simulator too (slow on the full-size models).",
        ),
        models: Optional[str] = typer.Option(
            None, help="Comma-separated subset, e.g. tiny_kws,tiny_ic_digits."
        ),
        boards: Optional[str] = typer.Option(
            None, help="Comma-separated boards, e.g. icebreaker (default: every row's)."
        ),
        configs: str = typer.Option(
            ",".join(KINDS), "--configs", help="Comma-separated configurations: dsp, hetero."
        ),
    ):
        """MLPerf Tiny models x boards x (DSP-only, heterogeneous): cycles, Fmax, latency,
        inferences/s, MAC utilisation per layer type, resources, accuracy, and the ratio to
        CFU-Playground's KWS on the UP5K."""

        def body():
            from frontends.errors import UsageError

            try:
                seed_list = tuple(int(v) for v in seeds.split(",") if v.strip())
            except ValueError:
                seed_list = ()
            if not seed_list or min(seed_list) < 0:
                raise UsageError(
                    f"--seeds '{seeds}': give placer seeds as non-negative "
                    f"integers separated by commas, e.g. 1,2,3"
                )
            names = [m.strip() for m in models.split(",")] if models else None
            board_list = [b.strip() for b in boards.split(",")] if boards else None
            kind_list = tuple(k.strip() for k in configs.split(",") if k.strip())
            bad = [b for b in board_list or [] if b not in TINY_BOARDS["tiny_kws"]]
            bad += [k for k in kind_list if k not in KINDS]
            if bad or not kind_list:
                raise UsageError(
                    f"unknown board or configuration {', '.join(bad) or configs!r}; boards: "
                    f"{', '.join(TINY_BOARDS['tiny_kws'])}; configurations: {', '.join(KINDS)}"
                )
            with console.status("bench tiny…") as status:
                report = bench_tiny(
                    out,
                    synth=synth,
                    seeds=seed_list,
                    twins=twins,
                    rtl=rtl,
                    models=names,
                    boards=board_list,
                    kinds=kind_list,
                    progress=status.update,
                )
            print_report(console, report)
            console.print(
                f"wrote {out / 'tiny.md'} and {out / 'tiny.json'} ({report['seconds']:.0f} s)"
            )

        run_command(body)
