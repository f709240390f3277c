"""``nnloom faults DIR``: bit flips in an artefact's weight memories (``flows.faults``):
accuracy against flip count for none/parity/SECDED, a targeted attack's flip count, and the
RTL checked on a flipped image."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register"]


def _counts(text: str) -> list[int]:
    from frontends.errors import UsageError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--flips {text}: expected whole numbers, e.g. 10,50,200") from None
    if not values:
        raise UsageError("--flips: give at least one flip count")
    return values


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    from . import protect_bench

    protect_bench.register(app, bench_app)  # nnloom bench protect: what protection costs

    @app.command()
    def faults(
        artefact: Path = typer.Argument(..., help="Artefact folder (dense or gemm engine)."),
        flips: str = typer.Option(
            "1,10,100",
            help="Flip counts, comma-separated (random); "
            "the most flips the attack may use (targeted).",
        ),
        mode: str = typer.Option("random", help="random or targeted (T-BFA-style bit search)."),
        trials: int = typer.Option(20, min=1, help="Random draws per flip count."),
        spread: str = typer.Option(
            "word", help="word: at most one flip per memory word; any: bits drawn anywhere."
        ),
        seed: int = typer.Option(0, help="Seed of the random draws."),
        source: int = typer.Option(0, help="Targeted: the class whose samples are attacked."),
        target: int = typer.Option(1, help="Targeted: the class they should become."),
        success: float = typer.Option(0.9, help="Targeted: stop at this attack success rate."),
        memory: str = typer.Option(
            "all",
            help="Memories to flip bits in, comma-separated (gemm: imem, wd, wl, params; "
            "dense: weights, params), or all.",
        ),
        rtl: int = typer.Option(
            0,
            help="Also simulate the RTL with one draw of the largest "
            "flip count on this many golden vectors.",
        ),
    ):
        """Flip bits in the weight and parameter memories (the words the bitstream
        initialises) and report accuracy, detections and corrections; the artefact itself
        is not changed (faults.json, beside its manifest, keeps the last run of each mode for
        report.html)."""

        def body():
            from rich import box
            from rich.table import Table

            from flows import faults as fl
            from frontends.errors import UsageError

            if mode not in fl.MODES:
                raise UsageError(f"--mode {mode}: choose random or targeted")
            if spread not in fl.SPREADS:
                raise UsageError(f"--spread {spread}: choose word or any")
            counts = _counts(flips)
            design = fl.load_design(artefact)
            if memory != "all":
                design.restrict([m.strip() for m in memory.split(",") if m.strip()])
            fl.check_size(design, counts, spread)
            own = design.protect
            report: dict = {
                "artefact": str(design.artefact.path),
                "protect": own,
                "weight_data_bits": design.weight_data_bits,
                "memory_bits": design.memory_bits,
                "mode": mode,
            }
            if mode == "random":
                protections = tuple(dict.fromkeys((own, "none", "parity", "secded")))
                with console.status("fault campaign"):
                    rows = fl.campaign(
                        design,
                        counts,
                        trials=trials,
                        spread=spread,
                        seed=seed,
                        protections=protections,
                    )
                table = Table(
                    box=box.SIMPLE_HEAD,
                    collapse_padding=True,
                    pad_edge=False,
                    show_edge=False,
                    title=f"{design.artefact.name}: random flips ({spread}), "
                    f"{trials} trials each, in {', '.join(design.memories)}; golden accuracy "
                    f"{100 * (fl._accuracy(design.golden, design.labels) or 0):.2f} %; "
                    f"* this design; changed: trials and vectors; detected, silent (changed, "
                    f"no error reported), no answer (a flipped instruction changed the "
                    f"streams: a host times out): trials; corr.: words per inference",
                )
                # short headers: the table must fit an 80-column terminal
                for col in (
                    "protect",
                    "flips",
                    "% bits",
                    "acc. avg/min",
                    "changed",
                    "det.",
                    "silent",
                    "no ans.",
                    "corr.",
                ):
                    table.add_column(col, no_wrap=True)
                for r in rows:
                    acc = (
                        "—"
                        if r.accuracy_mean is None
                        else f"{100 * r.accuracy_mean:.2f}/{100 * r.accuracy_min:.2f} %"
                    )
                    bits = design.weight_data_bits or design.memory_bits
                    table.add_row(
                        r.protect + (" *" if r.protect == own else ""),
                        str(r.flips),
                        f"{100 * r.flips / bits:.3f}",
                        acc,
                        f"{r.trials_changed}/{r.trials} {100 * r.vectors_changed:.0f} %",
                        f"{r.trials_detected}",
                        f"{r.trials_silent}",
                        f"{r.trials_undefined}",
                        f"{r.corrected_mean:.1f}",
                    )
                from flows.console import print_wide

                print_wide(table)
                report["spread"], report["trials"] = spread, trials
                report["rows"] = [r.as_dict() for r in rows]
                picks = None
                if rtl:
                    import numpy as np

                    rng = np.random.default_rng([seed, max(counts), 1])
                    picks = fl._random_picks(design, design.plan, max(counts), spread, rng)
                    picks = fl.modelled_picks(design, picks)
            else:
                with console.status("targeted bit search"):
                    res = fl.targeted_attack(
                        design, source=source, target=target, max_flips=max(counts), success=success
                    )
                need = res.flips_to(success)
                console.print(
                    f"targeted attack {res.source} → {res.target} on {res.samples} samples: "
                    + (
                        f"{100 * success:.0f} % success after {need} flips"
                        if need
                        else f"{100 * (res.success[-1] if res.success else 0):.1f} % success after "
                        f"{len(res.flips)} flips (target {100 * success:.0f} % not reached)"
                    )
                    + (
                        f"; accuracy then {100 * res.accuracy[-1]:.2f} %"
                        if res.accuracy and res.accuracy[-1] is not None
                        else ""
                    ),
                    highlight=False,
                )
                for protect, what in res.protected.items():
                    first = what["first_detected_flip"]
                    console.print(
                        f"  with {protect}: "
                        + (f"detected at flip {first}" if first else "never detected")
                        + f", success after all flips "
                        f"{100 * what['success_after_all']:.1f} %",
                        highlight=False,
                    )
                report.update(
                    source=res.source,
                    target=res.target,
                    samples=res.samples,
                    flips=[list(f) for f in res.flips],
                    success=res.success,
                    accuracy=res.accuracy,
                    flips_to_success=need,
                    protected=res.protected,
                )
                picks = res.flips if rtl else None
            if rtl and picks:
                with console.status("RTL on the flipped image"):
                    n, bad = fl.check_rtl(design, picks, vectors=rtl)
                console.print(
                    f"RTL with {len(picks)} flipped bits = flipped golden: {n} "
                    f"vectors, {bad} mismatches",
                    highlight=False,
                )
                report["rtl"] = {"flips": len(picks), "vectors": n, "mismatches": bad}
                if bad:
                    from sim.runner import SimError

                    raise SimError(
                        f"the RTL with flipped memories differs from the golden "
                        f"of the same flips on {bad} outputs"
                    )
            # one entry a mode: report.html plots the last campaign and the last attack
            path = design.artefact.path / "faults.json"
            previous = json.loads(path.read_text()) if path.is_file() else {}
            kept = {m: previous[m] for m in fl.MODES if isinstance(previous.get(m), dict)}
            design.artefact.write_json("faults.json", {**kept, mode: report})

        run_command(body)
