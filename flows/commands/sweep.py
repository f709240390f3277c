"""``nnloom sweep MODEL --board B ...``: the gemm overlay's design space, every point placed
and routed (``flows.sweep``), on a local process pool or a Ray cluster."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from rtl_gen.gemm import Program

__all__ = ["register", "generate_point"]


def generate_point(
    model: Path, out: Path, point: str | Path, data: Optional[Path] = None
) -> Program:
    """``nnloom generate --config POINT``: the artefact of one ``nnloom sweep`` point
    (``points/<id>.json``, or ``<sweep folder>#<id>``): ``model`` compiled for that point's
    config, split and tau, exactly as the sweep measured it. Returns the program."""
    from flows.commands.gemm import _load_npz
    from flows.sweep import load_point
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.gemm import GemmConfig, compile_graph
    from rtl_gen.gemm.emit import write_gemm_artefact

    spec = load_point(point)
    x, y = _load_npz(data)
    graph = import_onnx(model)
    program = compile_graph(
        graph, GemmConfig(**spec["config"]), split=spec["split"], tau=spec.get("tau") or 0.02
    )
    vectors = golden_vectors(program.graph, data_x=x, data_y=y)
    write_gemm_artefact(
        program,
        out,
        vectors=vectors,
        extra={"board_config": spec["board"], "sweep_point": spec["id"]},
    )
    return program


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command
    from flows.sweep import SweepError

    @app.command()
    def sweep(
        model: Path = typer.Argument(..., help="Quantized ONNX model."),
        board: str = typer.Option(..., help="Board(s), comma-separated: icebreaker, ulx3s-85f."),
        dsp_lanes: Optional[str] = typer.Option(
            None, "--dsp-lanes", help="DSP lanes per point, e.g. 4,8,12 (default: the board's)."
        ),
        lut_lanes: Optional[str] = typer.Option(
            None, "--lut-lanes", help="LUT lanes, e.g. 0,16,32 (default: the board's)."
        ),
        lut_mode: Optional[str] = typer.Option(
            None, "--lut-mode", help="LUT-core modes: ternary, int2, int3, int4, bitserial."
        ),
        split: Optional[str] = typer.Option(
            None, help="LUT-core share of each layer: auto or ratios in [0, 1], e.g. auto,0.25,0.5."
        ),
        clock: Optional[str] = typer.Option(
            None,
            "--clock",
            metavar="MHZ",
            help="Clocks to place and route at (default: the board's).",
        ),
        seeds: str = typer.Option(
            "1", help="nextpnr placer seeds of every point, e.g. 1-3; Fmax is their median."
        ),
        simulate: int = typer.Option(
            0,
            help="Also simulate each point in Verilator on the first N golden vectors, bit-exact.",
        ),
        data: Optional[Path] = typer.Option(None, help=".npz with 'x' and 'y' for accuracy."),
        tau: float = typer.Option(0.02, help="LUT-precision error budget per channel."),
        synth: bool = typer.Option(
            True, help="--no-synth: cycles, accuracy and estimated resources only."
        ),
        executor: str = typer.Option("pool", help="pool (local processes) or ray."),
        address: Optional[str] = typer.Option(
            None,
            help="With --executor ray: 'auto' (the "
            "cluster of `ray start --head` here) or "
            "ray://host:10001; default a local Ray.",
        ),
        jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Pool: points at once."),
        retries: int = typer.Option(1, min=0, help="Reruns of a point whose worker died."),
        out: Path = typer.Option(
            Path("out/sweep"),
            "--out",
            "-o",
            help="Output folder (sweep.json, .csv, .html, points/, cache/).",
        ),
    ):
        """Compile, model, synthesize, place and route (and simulate) every point of a grid of
        gemm overlay configs; cached by content in OUT; prints the Pareto sets and writes
        sweep.json, sweep.csv and sweep.html."""

        def body():
            from flows import sweep as sw
            from flows.executors import EXECUTORS, connect_ray

            boards = list(sw.iter_boards(board))
            points = sw.make_points(
                boards,
                dsp_lanes=None if dsp_lanes is None else sw.parse_ints(dsp_lanes, "--dsp-lanes"),
                lut_lanes=None if lut_lanes is None else sw.parse_ints(lut_lanes, "--lut-lanes"),
                lut_modes=None if lut_mode is None else sw.parse_modes(lut_mode),
                splits=None if split is None else sw.parse_splits(split),
                clocks=None if clock is None else sw.parse_clocks(clock),
                seeds=sw.parse_seeds(seeds),
            )
            if executor not in EXECUTORS:
                raise SweepError(f"--executor '{executor}': choose from {', '.join(EXECUTORS)}")
            if address and executor != "ray":
                raise SweepError("--address is for --executor ray")
            if simulate < 0:
                raise SweepError(f"--simulate {simulate}: give a number of vectors >= 0")
            if not model.is_file():
                raise SweepError(f"{model}: no such model file")
            model_bytes = model.read_bytes()
            data_bytes = None
            if data is not None:
                if not data.is_file():
                    raise SweepError(f"{data}: no such data file")
                data_bytes = data.read_bytes()

            def prepare():  # before the first point runs; a cached rerun needs neither
                from frontends.onnx_import import import_onnx

                import_onnx(model)  # a model the engine cannot take fails here, once
                if executor == "ray":
                    connect_ray(address)

            t0 = time.monotonic()
            try:
                with _Progress(console, len(points)) as progress:
                    rows, results, keyed = sw.run_sweep(
                        points,
                        model=model_bytes,
                        data=data_bytes,
                        out=out,
                        tau=tau,
                        synth=synth,
                        simulate=simulate,
                        executor=executor,
                        jobs=jobs,
                        address=address,
                        retries=retries,
                        on_change=progress.change,
                        prepare=prepare,
                    )
            except KeyboardInterrupt:
                done = progress.counts.done if progress.counts else 0
                console.print(
                    f"interrupted: {done} new points are in {out / 'cache'}; "
                    f"the same command resumes from there"
                )
                raise typer.Exit(130) from None
            wall = time.monotonic() - t0
            meta = {
                "model": str(model),
                "model_name": model.stem,  # as import_onnx names the graph
                "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
                "boards": boards,
                "tau": tau,
                "synth": synth,
                "simulate": simulate,
                "executor": executor,
                "versions": sw._versions(simulate),
                "wall_seconds": round(wall, 1),
            }
            paths = sw.write_outputs(out, rows=rows, points=keyed, results=results, meta=meta)
            _print(console, rows, synth)
            counts = progress.counts
            console.print(
                f"{counts.text() if counts else ''} in {wall:.1f} s; wrote "
                f"{paths['json']}, {paths['csv'].name}, {paths['html'].name}; "
                f"a point's config: {out / 'points'}/<id>.json"
            )

        run_command(body)


class _Progress:
    """A rich bar (points done/cached/failed/running) on a terminal; one plain line per
    finished point otherwise."""

    def __init__(self, console, total: int):
        self.console, self.total, self.counts = console, total, None
        self.bar = None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False

    def change(self, counts, row):
        self.counts = counts
        if self.bar is not None:
            self.bar.update(
                self.task,
                completed=counts.done + counts.cached + counts.failed,
                description=f"{counts.done} done, {counts.cached} cached, "
                f"{counts.failed} failed, {counts.running} running",
            )
        elif row is not None:
            figures = f"{row['cycles']} cycles" if row["cycles"] is not None else ""
            if row["fmax_mhz"]:
                figures += f", {row['fmax_mhz']:.1f} MHz, {row['lut4']} LUT4, {row['dsp']} DSP"
            self.console.print(
                f"[{counts.done + counts.cached + counts.failed}/"
                f"{counts.total}] {row['id']} {row['board']} "
                f"{row['dsp_lanes']}D+{row['lut_lanes']}L {row['lut_mode']} "
                f"split {row['split']} @{row['clock_mhz']:g} MHz: "
                f"{row['status']}"
                + (f" ({row['reason']})" if row["reason"] else "")
                + (f"; {figures}" if figures else ""),
                highlight=False,
                soft_wrap=True,
            )


def _print(console, rows, synth: bool):
    from rich.table import Table

    from flows.sweep import pareto

    def fmt(v, spec=""):
        return "—" if v is None else format(v, spec)

    for resource, label in (("lut4", "LUT4"), ("dsp", "DSP")):
        front = pareto(rows, resource)
        est = "" if synth else " (estimated)"
        table = Table(title=f"Pareto set: latency vs {label}{est}")
        for col in (
            "id",
            "board",
            "lanes",
            "mode",
            "split",
            "MHz",
            "cycles",
            "Fmax",
            "µs",
            label,
            "acc. %",
        ):
            table.add_column(
                col,
                justify="left" if col in ("id", "board", "mode") else "right",
                no_wrap=col in ("id", "board"),
            )
        for r in front:
            amount = r[resource] if r[resource] is not None else r.get(f"{resource}_est")
            latency = (
                r["latency_us"] if r["latency_us"] is not None else r["cycles"] / r["clock_mhz"]
            )
            table.add_row(
                r["id"][:6],
                r["board"],
                f"{r['dsp_lanes']}D+{r['lut_lanes']}L",
                r["lut_mode"],
                str(r["split"]),
                f"{r['clock_mhz']:g}",
                str(r["cycles"]),
                fmt(r["fmax_mhz"], ".1f"),
                f"{latency:.2f}",
                str(amount),
                fmt(r["accuracy"] and 100 * r["accuracy"], ".2f"),
            )
        from flows.console import print_wide

        print_wide(table)
    bad = [r for r in rows if r["status"] not in ("ok",)]
    for r in bad:
        console.print(
            f"{r['id']} {r['board']} {r['dsp_lanes']}D+{r['lut_lanes']}L "
            f"{r['lut_mode']}: {r['status']}: {r['reason']}",
            highlight=False,
            soft_wrap=True,
        )
