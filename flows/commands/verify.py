"""Verification beyond the cocotb bench, for ``nnloom generate/flow/sim``: every artefact
gets the self-checking SystemVerilog bench and VUnit script (``sim.bench_files``) and a copy
of the user's model (``source/``, for the framework-agreement check); ``nnloom sim --bench
sv`` runs the SystemVerilog bench under Verilator or Icarus without Python in the loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rtl_gen.artefact import Artefact, atomic_write
from sim.bench_files import finish_artefact

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from sim.agreement import FrameworkOutputs

    from ..progress import Update

__all__ = [
    "run_sv",
    "prepare_frameworks",
    "report_agreement",
    "run_vectors",
    "regression_rows",
    "register",
]


def run_sv(
    artefact: Path, simulator: str, *, bench: str, seed: int, limit: int, console: Console
) -> None:
    """``nnloom sim --bench sv``: write and run ``rtl/tb_<top>.sv``; a FAIL raises SimError."""
    from frontends.errors import UsageError
    from sim.runner import SimError
    from sim.svrun import run_sv_bench

    if bench != "sv":
        raise UsageError(f"unknown bench '{bench}'; choose cocotb or sv")
    if simulator not in ("verilator", "icarus"):
        raise UsageError(f"unknown simulator '{simulator}'; choose verilator or icarus")
    art = Artefact(artefact)
    with console.status(f"{art.name}: SystemVerilog bench under {simulator}"):
        result = run_sv_bench(art, simulator=simulator, seed=seed, limit=limit)
    if not result.passed:
        raise SimError(
            f"{result.summary}\n" + "\n".join(result.mismatches[:10]) + f"\nlog: {result.log}"
        )
    console.print(
        f"[green]PASS[/] {result.summary.removeprefix('PASS ')}; log: {result.log}", highlight=False
    )


def prepare_frameworks(
    artefact: Path, reference: Path | None, torch_spec: str | None
) -> tuple[list[FrameworkOutputs], str]:
    """The frameworks' outputs for the golden inputs (``sim.agreement``), computed before the
    simulation so a reference that does not fit fails with nothing written."""
    from sim.agreement import framework_outputs

    return framework_outputs(Artefact(artefact), reference=reference, torch_spec=torch_spec)


def report_agreement(
    artefact: Path,
    rtl_outputs: Path,
    prepared: tuple[list[FrameworkOutputs], str],
    console: Console,
) -> list:
    """Print "RTL vs <framework>" lines, write ``sim/agreement.json``; raise SimError naming
    the first vector and output outside the tolerance of the user's quantized model."""
    import json

    import numpy as np

    from sim.agreement import agreements
    from sim.runner import SimError

    frameworks, note = prepared
    art = Artefact(artefact)
    if note:
        console.print(note, highlight=False, soft_wrap=True)
    if not frameworks:
        return []
    with np.load(rtl_outputs) as f:
        rtl = f["outputs"]
    output = art.manifest.get("streams", {}).get("output", {}).get("tensor") or "output"
    found = agreements(rtl, frameworks, output)
    for a in found:
        console.print(
            a.line()
            + ("" if a.judged else " (reported, not judged)")
            + (" (argmax judged too)" if a.judged and a.rule == "transformer" else ""),
            highlight=False,
            soft_wrap=True,
        )
    atomic_write(
        art.path / "sim" / "agreement.json",
        json.dumps([a.as_dict() for a in found], indent=2) + "\n",
    )
    bad = next((a for a in found if not a.passed), None)
    if bad is not None:
        raise SimError(
            f"the RTL of {art.name} equals its golden model but differs from "
            f"{bad.framework} {bad.why()}; {bad.line()}"
        )
    return found


class VectorProgress:
    """``progress(done, total)`` for long simulations: a bar with vectors/s on a terminal,
    plain lines (every tenth of the run, at most one per ``every_s`` seconds, and the last)
    otherwise."""

    def __init__(
        self, console: Console, name: str, update: Update | None = None, every_s: float = 5.0
    ):
        self.console, self.name, self.update, self.every_s = console, name, update, every_s
        self.first: tuple[float, int] | None = None
        self.last_line, self.last_done = 0.0, -1

    def __call__(self, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if self.first is None:  # the rate from the first report on: not the build
            self.first = (now, done)
        rate = (done - self.first[1]) / max(now - self.first[0], 1e-9)
        text = f"{self.name}: {done}/{total} vectors, {rate:.0f} vectors/s"
        if self.console.is_terminal and self.update is not None:
            self.update(done, total, text)
            return
        tenth = max(1, total // 10)
        if (
            done == total
            and done != self.last_done
            or (done // tenth > self.last_done // tenth and now - self.last_line >= self.every_s)
        ):
            self.console.print(text, highlight=False)
            self.last_line, self.last_done = now, done


def run_vectors(
    artefact: Path, *, vectors: int, seed: int, bench: str, simulator: str, console: Console
) -> None:
    """``nnloom sim --vectors N``: N seeded random vectors and the edge cases through the
    golden model and the RTL (``sim.regress``); a mismatch raises SimError."""
    from flows.progress import progress
    from frontends.errors import UsageError
    from sim.regress import run_regression
    from sim.runner import SimError

    if vectors < 1:
        raise UsageError(f"--vectors {vectors}: give a positive number of random vectors")
    if bench not in ("cocotb", "sv"):
        raise UsageError(f"unknown bench '{bench}'; choose cocotb or sv")
    art = Artefact(artefact)
    name = f"{art.name}: {simulator} ({bench} bench)"
    with progress(console, name) as update:
        result = run_regression(
            art,
            vectors=vectors,
            seed=seed,
            bench=bench,
            simulator=simulator,
            progress=VectorProgress(console, name, update),
        )
    if not result.passed:
        raise SimError(
            f"regression of {art.name}: {result.mismatching_elements} output "
            f"elements differ from the golden over {result.vectors} vectors:\n"
            + "\n".join(result.mismatches[:20])
        )
    console.print(
        f"[green]PASS[/] {result.vectors} vectors ({vectors} random, seed {seed}, "
        f"and the edge cases) bit-exact in {result.seconds:.0f} s "
        f"({result.rate:.0f} vectors/s); {art.path / 'sim' / 'regress'}",
        highlight=False,
    )


REGRESSION_VECTORS = 10_000


def _regression_designs(out_dir: Path, vectors: int, seed: int):
    """(engine, description, artefact folder) of each engine's regression design, with
    ``vectors`` random vectors (and the edge cases) as golden vectors."""
    import numpy as np

    from flows.engines import get_engine
    from frontends.examples.digits_mlp import make_digits_mlp

    made = make_digits_mlp(out_dir / "models")
    for engine in ("dense", "gemm", "snn"):
        target = out_dir / engine
        get_engine(engine).generate(
            made.quantized,
            target,
            board="icebreaker",
            data=None,
            options={"random": vectors, "seed": seed},
        )
        finish_artefact(target, made.quantized)
        yield engine, f"digits MLP ({made.quantized.name})", target

    import itertools

    from rtl_gen.smurf import design, write_smurf_artefact

    plan, fit = design(["sigmoid(4*(x-y))", "sigmoid(4*(y-x))"], radix=[4, 4], length=256)
    top = (1 << plan.input_bits) - 1
    rng = np.random.default_rng(seed)
    edges = np.array(list(itertools.product((0, 1, top // 2, top - 1, top), repeat=plan.m)))
    codes = np.concatenate([edges, rng.integers(0, top + 1, (vectors, plan.m))])
    write_smurf_artefact(plan, out_dir / "smurf", fit=fit, codes=codes)
    yield "smurf", "sigmoid(4*(x-y)), sigmoid(4*(y-x)), L=256", out_dir / "smurf"

    from frontends.lutnet.srlut import SrlutPlan
    from rtl_gen.lutnet.artefact import write_srlut_artefact

    levels = (256 >> 6) + 1
    srlut = SrlutPlan("S", 6, 4, rng.integers(-128, 128, (levels**4, 16)).astype(np.int8))
    frames = rng.integers(0, 256, (vectors, 6, 7), dtype=np.uint8)
    frames[0], frames[1] = 0, 255
    write_srlut_artefact(srlut, out_dir / "lutnet", width=7, height=6, frames=frames)
    yield "lutnet", "SR-LUT-S x4, seeded random 6-bit table, 6x7 frames", out_dir / "lutnet"


def regression_rows(
    out_dir: Path,
    *,
    vectors: int = REGRESSION_VECTORS,
    seed: int = 1,
    simulator: str = "verilator",
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """``nnloom bench regress``: every engine's design on ``vectors`` seeded random vectors
    (and the edge cases), golden against RTL with the SystemVerilog bench: one row each with
    the vectors run and the mismatching output words."""
    import time

    from sim.bench_files import write_bench_files
    from sim.svrun import run_sv_bench

    rows = []
    for engine, what, folder in _regression_designs(Path(out_dir), vectors, seed):
        art = Artefact(folder)
        write_bench_files(art)
        n = len(art.vectors()["inputs"])
        start = time.monotonic()
        result = run_sv_bench(
            art,
            simulator=simulator,
            seed=seed,
            rewrite=False,
            quick=False,
            progress=None
            if progress is None
            else (lambda done, e=engine, n=n: progress(e, done, n)),
        )
        seconds = time.monotonic() - start
        rows.append(
            {
                "engine": engine,
                "config": "regression",
                "family": None,
                "design": what,
                "vectors": n,
                "mismatches": result.mismatching_words,
                "verdict": "PASS" if result.passed else result.summary,
                "simulator": f"{simulator} (SystemVerilog bench, seed {seed})",
                "seconds": round(seconds, 1),
                "vectors_per_s": round(n / seconds, 1),
            }
        )
    return rows


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """``nnloom bench regress`` and its rows in ``nnloom bench``."""
    import typer

    from flows.bench_table import markdown_table
    from flows.console import console, run_command
    from flows.progress import progress

    @bench_app.command("regress")
    def bench_regress(
        out: Path = typer.Option(Path("out/bench/regress"), "--out", "-o"),
        vectors: int = typer.Option(
            REGRESSION_VECTORS, help="Random vectors per engine (besides the edge cases)."
        ),
        seed: int = typer.Option(1, help="Seed of the vectors and stalls."),
        simulator: str = typer.Option("verilator", help="verilator or icarus."),
    ):
        """Every engine (dense, gemm, snn, smurf, lutnet) on VECTORS seeded random vectors,
        golden against RTL: vectors run and mismatches per engine."""

        def body():
            with progress(console, "bench regress") as update:
                rows = regression_rows(
                    out,
                    vectors=vectors,
                    seed=seed,
                    simulator=simulator,
                    progress=lambda e, done, total: update(done, total, f"regression {e}"),
                )
            console.print(markdown_table(rows), soft_wrap=True)
            bad = [r for r in rows if r["mismatches"] != 0]
            if bad:
                from sim.runner import SimError

                raise SimError(
                    "regression mismatches: "
                    + "; ".join(f"{r['engine']}: {r['verdict']}" for r in bad)
                )

        run_command(body)
