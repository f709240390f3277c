"""The dense engine's commands: ``nnloom generate --engine dense`` and ``nnloom bench dense``
(fully connected layers one after the other on ``lanes`` int8 MACs, ``rtl_gen.dense``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from boards.families import Resources
from frontends.errors import UsageError

if TYPE_CHECKING:
    from frontends.ir import Graph

__all__ = ["generate_dense", "can_run_dense", "bench_dense", "register"]


def can_run_dense(graph: Graph) -> tuple[bool, str]:
    """Whether the dense engine takes every layer of ``graph``, and why (its own check)."""
    from frontends.errors import ModelError
    from rtl_gen.dense import DensePlan

    try:
        plan = DensePlan.from_graph(graph, lanes=1)
    except ModelError as exc:
        return False, str(exc)
    return True, f"a chain of {len(plan.layers)} fully connected int8 layers"


def generate_dense(
    model: Path, out: Path, *, board: str, data: Path | None = None, options: dict
) -> Path:
    """Import ``model``, plan it on ``options["lanes"]`` MAC lanes (default 4) and write the
    artefact with golden vectors (``options["random"]``/``["seed"]``, default 32/0). The
    engine is the same on every board."""
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors, load_data
    from rtl_gen.dense import DensePlan
    from rtl_gen.dense.artefact import write_dense_artefact

    lanes = options.get("lanes", 4)
    if lanes < 1:
        raise UsageError(f"--lanes {lanes}: the dense engine needs at least 1 MAC lane")
    x, y = load_data(data) if data is not None else (None, None)
    graph = import_onnx(model)
    # the engine takes the model (and the protection exists): before the vectors
    DensePlan.from_graph(graph, lanes=lanes, protect=options.get("protect", "none"))
    vectors = golden_vectors(
        graph, data_x=x, data_y=y, random=options.get("random", 32), seed=options.get("seed", 0)
    )
    return write_dense_artefact(
        graph, out, vectors=vectors, lanes=lanes, protect=options.get("protect", "none")
    )


DENSE_LANES = (1, 4)
DENSE_LANES_FULL = (1, 2, 4, 8)


def bench_dense(
    out_dir: Path,
    *,
    full: bool = False,
    lanes: tuple[int, ...] | None = None,
    families: tuple[str, ...] = ("ice40", "ecp5"),
    progress: Callable[[int, int, str], None] = lambda done, total, text: None,
) -> list[dict]:
    """The dense engine on the digits MLP: resources, Fmax and latency per lane count
    (``DENSE_LANES``, or ``DENSE_LANES_FULL`` with ``full``), out of context on each family.
    ``progress(done, total, text)`` hears each synthesis as it starts."""
    lanes = lanes or (DENSE_LANES_FULL if full else DENSE_LANES)
    import numpy as np

    from flows.build import BuildError
    from flows.synth import synthesize
    from frontends.examples.digits_mlp import make_digits_mlp
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.artefact import Artefact
    from rtl_gen.dense.artefact import write_dense_artefact

    made = make_digits_mlp(out_dir / "model")
    graph = import_onnx(made.quantized)
    with np.load(made.test_data) as f:
        x, y = f["x"], f["y"]
    vectors = golden_vectors(graph, data_x=x, data_y=y, random=0)
    labelled = vectors["labels"] >= 0  # edge-case vectors carry no label
    accuracy = float((vectors["outputs"].argmax(1) == vectors["labels"])[labelled].mean())
    rows = []
    for i, n in enumerate(lanes):
        art = Artefact(write_dense_artefact(graph, out_dir / f"lanes{n}", vectors=vectors, lanes=n))
        cycles, macs = art.manifest["latency_cycles"], art.manifest["macs"]
        for j, family in enumerate(families):
            progress(i * len(families) + j, len(lanes) * len(families), f"{n} lanes on {family}")
            clock = 12.0 if family == "ice40" else 25.0
            row = {"engine": "dense", "config": f"digits MLP, {n} lanes", "family": family}
            try:
                rep = synthesize(
                    art.rtl_sources,
                    art.top,
                    family=family,
                    clock_mhz=clock,
                    out_dir=art.path / "synth" / family,
                )
            except BuildError as exc:  # e.g. more multipliers than the device has
                reason = [l for l in str(exc).splitlines() if "ERROR" in l] or [str(exc)]
                rows.append({**row, "cycles": cycles, "error": reason[0].strip()})
                continue
            res = Resources.from_utilisation(rep.utilisation)
            dsp = res.dsp if res.present("dsp") else None
            ram = res.ram + res.spram
            latency_us = cycles / rep.fmax_mhz if rep.fmax_mhz else None
            rows.append(
                {
                    **row,
                    "lut4": rep.lut4,
                    "ff": rep.ff,
                    "dsp": dsp,
                    "ram": ram,
                    "fmax_mhz": rep.fmax_mhz,
                    "cycles": cycles,
                    "latency_us": latency_us,
                    "gmac_s": macs / latency_us / 1e3 if latency_us else None,
                    "accuracy": accuracy,
                }
            )
    return rows


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @bench_app.command("dense")
    def bench_dense_command(
        out: Path = typer.Option(Path("out/bench/dense"), "--out", "-o"),
        full: bool = typer.Option(
            False, "--full", help="Every lane count (1, 2, 4, 8), not just 1 and 4."
        ),
    ):
        """The dense engine on the digits MLP: LUT4/FF/DSP/RAM, Fmax, cycles per lane count."""

        def body():
            from flows.bench_table import markdown_table
            from flows.progress import progress

            with progress(console, "bench dense") as update:
                rows = bench_dense(
                    out,
                    full=full,
                    progress=lambda done, total, text: update(done, total, f"bench dense: {text}"),
                )
            console.print(markdown_table(rows), soft_wrap=True)

        run_command(body)
