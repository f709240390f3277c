"""``nnloom generate MODEL --engine snn`` (ONNX or NIR) and ``nnloom bench snn``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer

from boards.families import OOC_BOARD, Resources
from frontends.errors import UsageError

if TYPE_CHECKING:
    from frontends.ir import Graph

log = logging.getLogger(__name__)

__all__ = ["register", "generate_snn", "bench_snn", "bench_spiking_graph"]


def _user_error(text: str) -> UsageError:
    return UsageError(text)


def _load_data(data):
    from frontends.vectors import load_data

    return load_data(data) if data is not None else (None, None)


def can_run_snn(path: Path, graph: Graph | None) -> tuple[bool, str]:
    """Whether the spiking engine takes the model (a NIR graph, or an ONNX graph its exact
    ST-BIF conversion takes), and why."""
    if Path(path).suffix.lower() == ".nir":
        return True, "a NIR graph (IF/LIF/CubaLIF neurons)"
    if graph is None:
        return False, "neither a NIR graph nor an ONNX model"
    from frontends.errors import ModelError
    from rtl_gen.snn.emit import is_chain
    from rtl_gen.snn.graph_plan import GraphPlan
    from rtl_gen.snn.plan import SnnPlan

    try:
        if not is_chain(graph):
            units = len(GraphPlan.from_graph(graph).drivers)
            return True, f"its {units} units convert exactly to a spiking graph"
        plan = SnnPlan.from_graph(graph)
    except ModelError as exc:
        return False, str(exc)
    return True, (f"its {len(plan.network.layers)} layers convert exactly to ST-BIF spiking layers")


def generate(
    model: Path, out: Path, *, board: str, data: Optional[Path] = None, options: dict
) -> Path:
    """The engine protocol's ``generate`` (``flows.engines``); the engine is the same on
    every board. ``options["random"]``/``["seed"]``: the ONNX path's random golden vectors,
    a NIR graph's synthetic spike samples and their seed."""
    return Path(
        generate_snn(model, out, data, random=options.get("random"), seed=options.get("seed"))
    )


def generate_snn(
    model: Path,
    out: Path,
    data: Optional[Path] = None,
    *,
    t_max: int | None = None,
    random: int | None = None,
    seed: int | None = None,
) -> Path:
    """Write the spiking engine's artefact for ``model`` (.onnx: exact ST-BIF conversion;
    .nir: IF/LIF/CubaLIF network, see ``frontends.snn.nir_import``, on ``data``'s ``x`` as spikes
    (samples, steps, inputs), else on synthetic spikes); returns the artefact path."""
    model = Path(model)
    if not model.is_file():
        raise _user_error(f"{model}: no such model file")
    if model.suffix.lower() == ".nir":
        from rtl_gen.snn.emit import write_nir_artefact

        spikes = _load_data(data)[0] if data is not None else None
        given = {k: v for k, v in (("samples", random), ("seed", seed)) if v is not None}
        return write_nir_artefact(model, out, spikes=spikes, **given)
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.snn.emit import write_from_graph

    x, y = _load_data(data)
    graph = import_onnx(model)
    vectors = golden_vectors(
        graph,
        data_x=x,
        data_y=y,
        random=32 if random is None else random,
        seed=0 if seed is None else seed,
    )
    return write_from_graph(graph, out, vectors=vectors, t_max=t_max)


def _synth(sources, top, family, out_dir) -> dict:
    from flows.synth import synthesize

    report = synthesize(sources, top, family=family, out_dir=out_dir, clock_mhz=50.0)
    res = Resources.from_utilisation(report.utilisation)
    return {
        "lut4": report.lut4,
        "ff": report.ff,
        "fmax_mhz": round(report.fmax_mhz, 2),
        "bram": res.ram,
        "dsp": res.dsp,
        "device": report.device,
        "utilisation": res.by_name,
    }


# the board whose overlay and die stand for each family (ECP5: the LFE5U-85F)
GEMM_BOARD = OOC_BOARD


def _gemm(graph, x, y, family: str, out_dir: Path, synth: bool) -> dict:
    """The heterogeneous GEMM overlay (``rtl_gen.gemm``) of ``family``'s board on ``graph``:
    cycles (model and RTL), accuracy of the program's weights and, with ``synth``, resources
    and Fmax of the same out-of-context flow."""
    from flows.commands.gemm import _accuracy, _rtl_layer_cycles
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm import BOARDS, compile_graph
    from rtl_gen.gemm.emit import TOP, create_engine
    from rtl_gen.gemm.model import schedule

    board = GEMM_BOARD[family]
    program = compile_graph(graph, BOARDS[board]["hetero"], split="auto")
    rtl_cycles, _ = _rtl_layer_cycles(program)
    fig = {
        "board": board,
        "config": program.config.describe(),
        "cycles": rtl_cycles,
        "cycles_model": schedule(program).cycles,
        "macs": program.macs(),
        "accuracy": _accuracy(program.graph, x, y),
    }
    if synth:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{TOP}.v").write_text(emit_verilog(create_engine(program, observe=False), TOP))
        fig["synth"] = _synth([out_dir / f"{TOP}.v"], TOP, family, out_dir / "synth")
    return fig


def bench_snn(
    model: Optional[Path],
    data: Optional[Path],
    out: Path,
    *,
    limit: int = 0,
    family: str = "ecp5",
    synth: bool = True,
    example: str = "mlp",
    progress: Callable[[str], None] = print,
) -> dict:
    """The figures of ``nnloom bench snn``: the spiking engine and the heterogeneous GEMM
    engine (the board of ``family``: ULX3S-85F or iCEBreaker) on the same quantized network
    (default: the digits MLP, or with ``example="cnn"`` the digits CNN, and its test set):
    cycles, time steps to silence (their distribution), synaptic operations, spikes per
    neuron, LUT4/FF/BRAM/DSP and Fmax."""
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.artefact import Artefact
    from rtl_gen.snn.emit import write_from_graph
    from sim.runner import run_sim

    out = Path(out)
    if family not in GEMM_BOARD:
        raise _user_error(f"unknown family '{family}'; choose {' or '.join(GEMM_BOARD)}")
    if model is None:
        if example not in ("mlp", "cnn"):
            raise _user_error(f"unknown example '{example}'; choose mlp or cnn")
        from frontends.examples.digits_mlp import make_digits_mlp
        from frontends.snn.examples import make_digits_cnn

        progress(f"training the digits {example.upper()} example…")
        made = (make_digits_mlp if example == "mlp" else make_digits_cnn)(out / "models")
        model, data = Path(made.quantized), Path(made.test_data)
    x, y = _load_data(data)
    graph = import_onnx(model)
    vectors = golden_vectors(graph, data_x=x, data_y=y)
    progress(f"generating the snn engine for {model.name} ({len(vectors['inputs'])} vectors)…")
    snn_dir = write_from_graph(graph, out / "snn", vectors=vectors)
    art = Artefact(snn_dir)
    t0 = time.monotonic()
    progress("simulating it with Verilator (bit-exact, cycles and steps per vector)…")
    result = run_sim(art, limit=limit)
    if not result.passed:
        raise _user_error(
            "the spiking RTL differs from the golden:\n" + "\n".join(result.mismatches[:10])
        )
    summary = json.loads((art.path / "sim" / "summary.json").read_text())
    with np.load(result.outputs) as f:
        rtl_out = f["outputs"]
    labels = art.vectors()["labels"][: len(rtl_out)]
    mask = labels >= 0
    accuracy = float((rtl_out[mask].argmax(1) == labels[mask]).mean()) if mask.any() else None
    snn_manifest = art.manifest
    figures = {
        "model": str(model),
        "vectors": result.vectors,
        "sim_seconds": round(time.monotonic() - t0, 1),
        "rtl_accuracy": accuracy,
        "labelled": int(mask.sum()),
        "snn": {
            "cycles": summary["cycles"],
            "steps": summary["steps"],
            "t_max": snn_manifest["parameters"]["t_max"],
            "synops_mean": snn_manifest["snn"]["synops_mean"],
            "spikes_per_neuron": snn_manifest["snn"]["spikes_per_neuron"],
            "memory_bits": snn_manifest["parameters"]["memory_bits"],
        },
    }
    if synth:
        progress(f"synthesizing the snn engine for {family} (yosys, nextpnr)…")
        figures["snn"]["synth"] = _synth(art.rtl_sources, art.top, family, out / "synth_snn")
    progress(
        f"compiling the gemm engine for {GEMM_BOARD[family]}"
        f"{' and synthesizing it' if synth else ''}…"
    )
    figures["gemm"] = _gemm(graph, x, y, family, out / "gemm", synth)
    (out / "bench_snn.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def bench_spiking_graph(
    model: Optional[Path],
    data: Optional[Path],
    out: Path,
    *,
    limit: int = 0,
    family: str = "ecp5",
    synth: bool = True,
    progress: Callable[[str], None] = print,
) -> dict:
    """The figures of ``nnloom bench snn --graph`` (and ``--example vit``): the whole-graph
    ST-BIF conversion (``frontends.snn.graph``, transformers included) run to silence on the
    test set against the integer QANN: mismatching codes, accuracy of both, time steps to
    silence, spikes; the graph engine's (``rtl_gen.snn.graph_plan``) modelled cycles per
    inference and per time step and, with ``synth``, its resources on ``family``."""
    from frontends import reference
    from frontends.onnx_import import import_onnx
    from frontends.snn.graph import convert_graph, run_graph
    from frontends.snn.units import StbifUnit

    out = Path(out)
    if model is None:
        from frontends.examples.digits_vit import make_digits_vit

        progress("training the digits ViT example…")
        made = make_digits_vit(out / "models")
        model, data = Path(made.quantized), Path(made.test_data)
    if data is None:
        raise _user_error(f"{model}: give --data (an .npz with 'x' and 'y') to bench it")
    x, y = _load_data(data)
    graph = import_onnx(model)
    sg = convert_graph(graph)
    codes = reference.quantize_inputs(graph, x)
    if limit:
        codes = codes[:limit]
        y = y[:limit] if y is not None else None
    progress(f"running the spiking graph of {Path(model).name} on {len(codes)} vectors…")
    t0 = time.monotonic()
    run = run_graph(sg, codes)
    seconds = time.monotonic() - t0
    env = reference.run(graph, codes)
    out_name = graph.outputs[0]
    differing = [
        n.name
        for n in graph.nodes
        if not np.array_equal(run.codes[n.outputs[0]], env[n.outputs[0]])
    ]

    def accuracy(c):
        if y is None:
            return None
        return float((reference.scores(graph, c).argmax(1) == y).mean())

    neurons = sum(int(np.prod(u.synapse.out_shape)) for u in sg.units if isinstance(u, StbifUnit))
    spikes = sum(run.spikes.values())
    steps = run.steps
    figures = {
        "model": str(model),
        "vectors": len(codes),
        "units": {
            kind: sum(type(u).__name__ == kind for u in sg.units)
            for kind in ("StbifUnit", "DifferentialUnit", "MoveUnit")
        },
        "mismatching_output_codes": int((run.codes[out_name] != env[out_name]).sum()),
        "differing_tensors": differing,
        "qann_accuracy": accuracy(env[out_name]),
        "snn_accuracy": accuracy(run.codes[out_name]),
        "silent": int(run.silent.sum()),
        "steps": {
            "mean": float(steps.mean()),
            "p99": float(np.percentile(steps, 99)),
            "min": int(steps.min()),
            "max": int(steps.max()),
            "t_max": sg.t_max,
        },
        "stbif_neurons": neurons,
        "spikes_per_neuron": float(spikes.mean() / max(neurons, 1)),
        "run_seconds": round(seconds, 1),
    }
    figures["rtl"] = _graph_rtl(graph, codes, run.steps, family, out, synth, progress)
    progress(f"compiling the gemm engine for {GEMM_BOARD[family]} on the same model…")
    figures["gemm"] = _gemm_model(graph, codes, y, family, out / "gemm", synth)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_snn_graph.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _graph_rtl(graph, codes, steps, family: str, out: Path, synth: bool, progress) -> dict:
    """The graph engine on ``graph``: cycles per inference and per time step (its exact
    model, whose time steps must equal the golden run's ``steps``) and, with ``synth``, the
    out-of-context synthesis of its Verilog; ``refused`` naming the unit it has no hardware
    for."""
    from frontends.errors import ModelError
    from rtl_gen.snn.graph_plan import GraphPlan

    try:
        plan = GraphPlan.from_graph(graph)
    except ModelError as exc:
        return {"refused": str(exc)}
    progress(f"modelling the graph engine's cycles on {len(codes)} vectors…")
    cycles, model_steps, synops = plan.costs(codes)
    if not np.array_equal(model_steps, steps):
        raise AssertionError("the graph engine's time steps differ from the golden run's")
    per_step = cycles / np.maximum(model_steps, 1)
    fig = {
        "units": len(plan.drivers),
        "synops_mean": float(synops.mean()),
        "cycles": {
            "mean": float(cycles.mean()),
            "p99": float(np.percentile(cycles, 99)),
            "max": int(cycles.max()),
        },
        "cycles_per_step": {"mean": float(per_step.mean()), "max": float(per_step.max())},
    }
    if synth:
        from rtl_gen.emit import emit_verilog
        from rtl_gen.snn.graph_emit import TOP

        rtl_dir = out / "graph_rtl"
        rtl_dir.mkdir(parents=True, exist_ok=True)
        progress("emitting the graph engine's Verilog…")
        (rtl_dir / f"{TOP}.v").write_text(emit_verilog(plan.create(), TOP))
        progress(f"synthesizing the graph engine for {family} (yosys, nextpnr)…")
        fig["synth"] = _synth([rtl_dir / f"{TOP}.v"], TOP, family, rtl_dir / "synth")
    return fig


def _gemm_model(graph, codes, y, family: str, out_dir: Path, synth: bool) -> dict:
    """The GEMM overlay of ``family``'s board on ``graph`` by its models (``rtl_gen.gemm``:
    the cycle model, exact to its RTL, and the integer golden of the graph its program
    computes): cycles, MACs, accuracy on the input ``codes`` (labels ``y``) and, with
    ``synth``, the out-of-context resources and Fmax; ``refused`` when it does not take
    the model."""
    from frontends import reference
    from frontends.errors import ModelError
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm import BOARDS, compile_graph
    from rtl_gen.gemm.emit import TOP, create_engine
    from rtl_gen.gemm.model import schedule

    board = GEMM_BOARD[family]
    try:
        program = compile_graph(graph, BOARDS[board]["hetero"], split="auto")
    except ModelError as exc:
        return {"board": board, "refused": str(exc)}
    fig = {"board": board, "cycles": schedule(program).cycles, "macs": program.macs()}
    if y is not None:
        out = reference.run(program.graph, codes)[program.graph.outputs[0]]
        scores = reference.scores(program.graph, out)
        fig["accuracy"] = float((scores.argmax(1) == y).mean())
    if synth:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{TOP}.v").write_text(emit_verilog(create_engine(program, observe=False), TOP))
        fig["synth"] = _synth([out_dir / f"{TOP}.v"], TOP, family, out_dir / "synth")
    return fig


def _graph_table(f: dict):
    from rich.table import Table

    gemm = f.get("gemm") or {}
    t = Table(title=f"nnloom bench snn --graph: {Path(f['model']).name}, {f['vectors']} vectors")
    t.add_column("")
    t.add_column("snn (ST-BIF graph engine)", justify="right")
    t.add_column(f"gemm ({gemm.get('board', '—')})", justify="right")
    u = f["units"]
    t.add_row(
        "units",
        f"{u['StbifUnit']} ST-BIF, {u['DifferentialUnit']} differential, {u['MoveUnit']} moves",
        "—",
    )
    t.add_row("SNN vs QANN output codes differing", str(f["mismatching_output_codes"]), "—")
    t.add_row("tensors differing", ", ".join(f["differing_tensors"]) or "none", "—")
    if f["qann_accuracy"] is not None:
        t.add_row(
            "accuracy",
            f"QANN {100 * f['qann_accuracy']:.2f} %, SNN golden {100 * f['snn_accuracy']:.2f} %",
            f"{100 * gemm['accuracy']:.2f} % (its program's golden)"
            if gemm.get("accuracy") is not None
            else "—",
        )
    st = f["steps"]
    t.add_row(
        "time steps to silence",
        f"{st['mean']:.1f} mean, p99 {st['p99']:.0f}, {st['min']}–{st['max']} "
        f"(bound {st['t_max']}); {f['silent']} of {f['vectors']} silent",
        "—",
    )
    t.add_row(
        "spikes per ST-BIF neuron",
        f"{f['spikes_per_neuron']:.2f} ({f['stbif_neurons']} neurons)",
        "—",
    )
    rtl = f.get("rtl") or {}
    if "refused" in rtl:
        t.add_row("graph engine RTL", rtl["refused"], "—")
    elif rtl:
        c, ps = rtl["cycles"], rtl["cycles_per_step"]
        macs = gemm.get("macs")
        t.add_row(
            "synaptic additions / MACs",
            f"{rtl['synops_mean']:.0f} additions mean",
            f"{macs} MACs" if macs else "—",
        )
        t.add_row(
            "cycles / inference (models)",
            f"{c['mean']:.0f} mean, p99 {c['p99']:.0f}, max {c['max']}",
            str(gemm.get("cycles", "—")),
        )
        t.add_row("cycles / time step", f"{ps['mean']:.0f} mean, {ps['max']:.0f} max", "—")
        syn, gsyn = rtl.get("synth"), gemm.get("synth") or {}
        if syn:
            for key, name in (
                ("lut4", "LUT4"),
                ("ff", "FF"),
                ("bram", "RAM"),
                ("dsp", "DSP"),
                ("fmax_mhz", "Fmax MHz"),
            ):
                t.add_row(f"{name} ({syn['device']})", str(syn[key]), str(gsyn.get(key, "—")))
    if "refused" in gemm:
        t.add_row("gemm engine", "—", gemm["refused"])
    return t


def _histogram_text(steps: dict) -> str:
    h = steps["histogram"]
    edges, counts = h["edges"], h["counts"]
    return ", ".join(
        f"[{lo},{hi}{']' if i == len(counts) - 1 else ')'} {c}"
        for i, (lo, hi, c) in enumerate(zip(edges, edges[1:], counts))
    )


def _table(figures: dict):
    from rich.table import Table

    snn, gemm = figures["snn"], figures["gemm"]
    t = Table(
        title=f"nnloom bench snn: {Path(figures['model']).name}, "
        f"{figures['vectors']} vectors bit-exact"
    )
    t.add_column("")
    t.add_column("snn (ST-BIF)", justify="right")
    t.add_column(f"gemm ({gemm['board']})", justify="right")
    cyc = snn["cycles"]
    t.add_row(
        "cycles / inference",
        f"{cyc['mean']:.0f} mean ({cyc['min']}–{cyc['max']})",
        f"{gemm['cycles']} (model {gemm['cycles_model']})",
    )
    ssyn, gsyn = snn.get("synth"), gemm.get("synth") or {}
    if ssyn:
        t.add_row(
            "µs / inference at Fmax",
            f"{cyc['mean'] / ssyn['fmax_mhz']:.1f} mean, {cyc['max'] / ssyn['fmax_mhz']:.1f} max",
            f"{gemm['cycles'] / gsyn['fmax_mhz']:.1f}" if gsyn else "—",
        )
    st = snn["steps"]
    t.add_row(
        "time steps to silence",
        f"{st['mean']:.1f} mean, p99 {st['p99']:.0f}, max {st['max']} (T_max {snn['t_max']})",
        "—",
    )
    t.add_row("time-step histogram", _histogram_text(st), "—")
    t.add_row("synaptic ops / MACs", f"{snn['synops_mean']:.0f} adds", f"{gemm['macs']} MACs")
    t.add_row("spikes per neuron", ", ".join(f"{s:.1f}" for s in snn["spikes_per_neuron"]), "—")
    if ssyn:
        for key, name in (
            ("lut4", "LUT4"),
            ("ff", "FF"),
            ("bram", "BRAM"),
            ("dsp", "DSP"),
            ("fmax_mhz", "Fmax MHz"),
        ):
            t.add_row(f"{name} ({ssyn['device']})", str(ssyn[key]), str(gsyn.get(key, "—")))
    if figures["rtl_accuracy"] is not None:
        t.add_row(
            "accuracy",
            f"{100 * figures['rtl_accuracy']:.2f} % RTL ({figures['labelled']} labelled)",
            f"{100 * gemm['accuracy']:.2f} % (its LUT-core weights)"
            if gemm["accuracy"] is not None
            else "—",
        )
    return t


def _bench_rows(out_dir: Path) -> list[dict]:
    """``nnloom bench``'s rows: the digits MLP on the snn engine and on the GEMM engine."""
    f = bench_snn(None, None, Path(out_dir), progress=log.info)
    snn, gemm = f["snn"], f["gemm"]
    rows = []
    for engine, fig, config, cycles, accuracy in (
        ("snn", snn, "digits MLP (ST-BIF)", snn["cycles"]["mean"], f["rtl_accuracy"]),
        ("gemm", gemm, f"digits MLP ({gemm['config']})", gemm["cycles"], gemm["accuracy"]),
    ):
        syn = fig.get("synth", {})
        row = {
            "engine": engine,
            "config": config,
            "family": "ecp5",
            "lut4": syn.get("lut4"),
            "ff": syn.get("ff"),
            "dsp": syn.get("dsp"),
            "ram": syn.get("bram"),
            "fmax_mhz": syn.get("fmax_mhz"),
            "cycles": cycles,
            "accuracy": accuracy,
        }
        if engine == "snn":
            row.update(
                cycles_max=snn["cycles"]["max"],
                steps_mean=snn["steps"]["mean"],
                steps_p99=snn["steps"]["p99"],
                steps_max=snn["steps"]["max"],
                steps_histogram=_histogram_text(snn["steps"]),
                synops=snn["synops_mean"],
            )
        rows.append(row)
    return rows


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, print_wide, run_command

    @bench_app.command("snn")
    def bench(
        model: Optional[Path] = typer.Argument(
            None, help="Quantized ONNX model (default: the digits MLP example)."
        ),
        data: Optional[Path] = typer.Option(None, help=".npz with 'x' and 'y'."),
        out: Path = typer.Option(Path("out/bench_snn"), "--out", "-o"),
        limit: int = typer.Option(0, help="Simulate only the first N vectors (0: all)."),
        family: str = typer.Option("ecp5", help="ecp5 (LFE5U-85F) or ice40 (UP5K)."),
        synth: bool = typer.Option(
            True, help="Synthesize both engines (--no-synth: cycles, steps and accuracy only)."
        ),
        example: str = typer.Option(
            "mlp", help="Without MODEL: the digits 'mlp', 'cnn' or 'vit' example."
        ),
        graph: bool = typer.Option(
            False,
            "--graph",
            help="Run the whole-graph spiking conversion (transformers too) against the "
            "QANN: exactness, steps, accuracy, the graph engine's cycles and synthesis "
            "(--example vit implies it).",
        ),
    ):
        """The spiking engine beside the heterogeneous GEMM engine on one network: cycles per
        inference, time steps to silence (distribution), synaptic operations, spikes per
        neuron, resources and Fmax."""

        def body():
            if graph or (model is None and example == "vit"):
                with console.status("benchmarking the spiking graph…") as status:
                    figures = bench_spiking_graph(
                        model,
                        data,
                        out,
                        limit=limit,
                        family=family,
                        synth=synth,
                        progress=status.update,
                    )
                print_wide(_graph_table(figures))
                print_wide(f"figures: {out / 'bench_snn_graph.json'}")
                return
            with console.status("benchmarking the snn engine…") as status:
                figures = bench_snn(
                    model,
                    data,
                    out,
                    limit=limit,
                    family=family,
                    synth=synth,
                    example=example,
                    progress=status.update,
                )
            print_wide(_table(figures))
            print_wide(f"figures: {out / 'bench_snn.json'}")

        run_command(body)
