"""``nnloom bench protect``: what parity and SECDED on the memories cost (``rtl_gen.ecc``,
``rtl_gen.gemm.protect``): the digits MLP on the GEMM overlay (the demo design) per
protection and FPGA family, synthesized, placed and routed out of context like ``nnloom
bench gemm`` (no perf counters): LUT4, FF, block RAMs, Fmax (the median of the placer seeds),
cycles, and each figure against the unprotected design. ``full`` adds the dense engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

__all__ = ["protection_rows", "register", "BOARDS_BY_FAMILY"]

# the board whose overlay config each family's rows use (the demo design is the iCEBreaker's)
BOARDS_BY_FAMILY = {"ice40": "icebreaker", "ecp5": "ulx3s-85f"}
PROTECTIONS = ("none", "parity", "secded")


def _synth(sources, top, family, clock, out_dir, seeds) -> dict:
    from boards.families import Resources
    from flows.build import BuildError
    from flows.synth import synthesize

    try:
        rep = synthesize(
            sources, top, family=family, clock_mhz=clock, out_dir=out_dir, seeds=tuple(seeds)
        )
    except BuildError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "ERROR" in ln]
        return {"error": (lines or [str(exc).splitlines()[0]])[0]}
    res = Resources.from_utilisation(rep.utilisation)
    return {
        "lut4": rep.lut4,
        "ff": rep.ff,
        "ram": res.ram + res.spram,
        "fmax_mhz": rep.fmax_mhz,
        "fmax_seeds": dict(rep.fmax_seeds),
    }


def _relative(rows: list[dict]) -> None:
    """Each row's LUT4 and Fmax against the unprotected row of its engine and family."""
    base = {(r["engine"], r["family"]): r for r in rows if r["protect"] == "none"}
    for r in rows:
        b = base.get((r["engine"], r["family"]))
        if b and r.get("lut4") and b.get("lut4"):
            r["lut4_vs_none"] = r["lut4"] / b["lut4"] - 1
        if b and r.get("fmax_mhz") and b.get("fmax_mhz"):
            r["fmax_vs_none"] = r["fmax_mhz"] / b["fmax_mhz"] - 1


def protection_rows(
    out_dir: Path,
    *,
    full: bool = False,
    families: tuple[str, ...] = ("ice40", "ecp5"),
    seeds: tuple[int, ...] | None = None,
    onnx: Path | None = None,
    protections: tuple[str, ...] = PROTECTIONS,
    progress: Callable[[int, int, str], None] = lambda done, total, text: None,
) -> list[dict]:
    """One row per engine, family and protection (see the module docstring); seeds 1-3
    with ``full``, else seed 1. ``onnx``: a quantized ONNX model instead of the digits
    MLP (made and trained in ``out_dir``). ``protections``: the rows to measure (the
    figures against none need its row)."""
    from dataclasses import replace

    from flows.commands.gemm import drop_idle_core
    from frontends.examples.digits_mlp import make_digits_mlp
    from frontends.onnx_import import import_onnx
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm import compile_graph, model
    from rtl_gen.gemm.config import BOARDS
    from rtl_gen.gemm.emit import TOP, create_engine, sim_models

    seeds = seeds or ((1, 2, 3) if full else (1,))
    out_dir = Path(out_dir)
    graph = import_onnx(onnx or make_digits_mlp(out_dir / "model").quantized)
    jobs = [("gemm", f, p) for f in families for p in protections]
    if full:
        jobs += [("dense", f, p) for f in families for p in protections]
    rows = []
    for done, (engine, family, protect) in enumerate(jobs):
        progress(done, len(jobs), f"{engine} {protect} on {family}")
        work = out_dir / engine / family / protect
        work.mkdir(parents=True, exist_ok=True)
        row = {"engine": engine, "config": f"digits MLP, {protect}", "family": family}
        row["protect"] = protect
        if engine == "gemm":
            board = BOARDS_BY_FAMILY[family]
            config = replace(BOARDS[board]["hetero"], protect=protect)
            program = drop_idle_core(graph, compile_graph(graph, config))
            verilog = work / f"{TOP}.v"
            verilog.write_text(emit_verilog(create_engine(program, observe=False), TOP))
            sources, top = [verilog], TOP
            for name, text in sim_models(program).items():  # skipped by synthesis
                (work / name).write_text(text)
            row["cycles"] = model.schedule(program).cycles
            clock = BOARDS[board]["clock_mhz"]
        else:
            from rtl_gen.dense import DenseEngine, DensePlan

            plan = DensePlan.from_graph(graph, lanes=4, protect=protect)
            verilog = work / "nnloom_dense.v"
            verilog.write_text(emit_verilog(DenseEngine(plan), "nnloom_dense"))
            sources, top = [verilog], "nnloom_dense"
            row["cycles"] = plan.cycles()
            clock = 12.0 if family == "ice40" else 25.0
        row.update(_synth(sources, top, family, clock, work / "synth", seeds))
        rows.append(row)
    progress(len(jobs), len(jobs), "done")
    _relative(rows)
    return rows


def _protections(text: str) -> tuple[str, ...]:
    from frontends.errors import UsageError

    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PROTECTIONS]
    if unknown or not chosen:
        raise UsageError(f"--protect {text}: expected a list of {', '.join(PROTECTIONS)}")
    return chosen


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @bench_app.command("protect")
    def bench_protect(
        out: Path = typer.Option(Path("out/bench/protect"), "--out", "-o"),
        full: bool = typer.Option(
            False, "--full", help="Placer seeds 1-3 (median Fmax) and the dense engine too."
        ),
        protect: str = typer.Option(
            ",".join(PROTECTIONS), "--protect", help="The protections to measure, e.g. none,secded."
        ),
    ):
        """Cost of --protect parity|secded: LUT4, FF, RAM, Fmax, cycles per option, on the
        GEMM overlay's digits MLP (the demo design) for iCE40 and ECP5."""

        def body():
            from flows.bench_table import markdown_table
            from flows.progress import progress

            with progress(console, "bench protect") as update:
                rows = protection_rows(
                    out,
                    full=full,
                    protections=_protections(protect),
                    progress=lambda done, total, text: update(done, total, f"protect: {text}"),
                )
            console.print(markdown_table(rows), soft_wrap=True)

        run_command(body)
