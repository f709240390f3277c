"""The ``nnloom`` command line: generate, sim, build, flow, doctor, example.

The console entry point is the only module that imports this one. The engines, their
``generate``/``bench`` and their own commands come from ``flows.engines``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.logging import RichHandler
from rich.table import Table

from boards.families import Resources
from frontends.errors import UsageError
from frontends.snn.graph import SNN_OPS
from frontends.vectors import load_data

from .commands import faults as _faults
from .commands import quantize as _quantize
from .commands import sweep as _sweep
from .commands import tiny as _tiny
from .commands import tiny_bench as _tiny_bench
from .commands import verify as _verify
from .commands import vit as _vit
from .commands import vit_bench as _vit_bench
from .console import console, err_console, print_wide, run_command
from .engines import (
    ENGINES,
    ModelSource,
    check_options,
    choose_engine,
    engine_names,
    get_engine,
)
from .progress import progress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Compressed neural networks to bit-exact Verilog and FPGA bitstreams.",
)
bench_app = typer.Typer(
    invoke_without_command=True,
    help="Benchmarks: print figures (resources, Fmax, cycles, accuracy).",
)
app.add_typer(bench_app, name="bench")
log = logging.getLogger("nnloom")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every step.")):
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


# --- doctor ------------------------------------------------------------------------------------


@app.command()
def doctor() -> None:
    """List every tool nnloom uses, its version, and how to install a missing one."""
    from .tools import check_tools

    table = Table(title="nnloom toolchain")
    table.add_column("tool", no_wrap=True)
    table.add_column("purpose")
    table.add_column("status", no_wrap=True)
    table.add_column("version / location", overflow="fold")
    missing = []
    for status in check_tools():
        tool = status.tool
        if status.found:
            state = "[green]found[/]"
            detail = " ".join(x for x in (status.version, status.where) if x)
        else:
            if tool.required:
                missing.append(tool)
            state = "[red]missing[/]" if tool.required else "[yellow]optional, absent[/]"
            detail = f"fix: {tool.fix}"
        table.add_row(tool.name, tool.purpose, state, detail)
    print_wide(table)
    if missing:
        for tool in missing:
            err_console.print(
                f"missing: {tool.name} ({tool.purpose}); fix: {tool.fix}",
                soft_wrap=True,
                highlight=False,
            )
        err_console.print("[bold red]error:[/] required tools are missing")
        raise typer.Exit(1)


# --- generate ----------------------------------------------------------------------------------


_NONLINEAR_HELP = (
    "gemm: element-wise functions (GELU, ...) as exact tables (table, default) or SMURF "
    "stochastic units (smurf; checked against their own golden)."
)


def _options(**values) -> dict:
    """The ``generate`` options the user gave (None: not given)."""
    return {k: v for k, v in values.items() if v is not None}


def _generate(
    model: Path,
    target: Path,
    *,
    engine: str,
    board: Optional[str],
    data: Optional[Path],
    options: dict,
):
    """Pick the engine (``auto``: the first that can run ``model``, said and why), refuse an
    option it does not take by name, and write the artefact for ``board`` (default: the
    engine's). Returns the engine and the board."""
    from boards import get_board

    if not model.exists():
        raise UsageError(f"{model}: no such file or folder")
    if board is not None:
        get_board(board)
    if engine == "auto":
        source = ModelSource(model, board or "icebreaker")
        chosen, reason, refused = choose_engine(source, options)
        if board is None and chosen.default_board != source.board:
            board = chosen.default_board
            source = ModelSource(model, board)
            ok, reason = chosen.can_run(source)
        note = "; ".join(f"not {name}: {why}" for name, why in refused)
        console.print(
            f"engine auto: [bold]{chosen.name}[/] ({reason})" + (f"; {note}" if note else ""),
            highlight=False,
            soft_wrap=True,
        )
    else:
        chosen = get_engine(engine)
        check_options(chosen, options)
    board = board or chosen.default_board
    chosen.generate(model, target, board=board, data=data, options=options)
    from sim.bench_files import finish_artefact

    finish_artefact(target, model)  # the SystemVerilog bench, VUnit script, source copy
    return chosen, board


_ENGINE_HELP = (
    "auto (the first of " + ", ".join(engine_names()) + " that can run the model, "
    "said and why) or one of them."
)
_OPTION_HELP = "Only for the engines that take it; another engine refuses it."


@app.command()
def generate(
    model: Path = typer.Argument(
        ..., help="Quantized ONNX model (NIR graph or LUT tables for the engines that take them)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Artefact folder (default out/<model name>)."
    ),
    data: Optional[Path] = typer.Option(
        None, help=".npz with 'x' (float inputs) and optionally 'y' (labels) for golden vectors."
    ),
    engine: str = typer.Option("auto", help=_ENGINE_HELP),
    board: Optional[str] = typer.Option(
        None,
        help="Board whose FPGA family the "
        "engine is built for (default: the engine's, "
        "icebreaker but for lutnet's ulx3s-85f).",
    ),
    lanes: Optional[int] = typer.Option(
        None, help="Parallel MAC lanes (dense; default 4). " + _OPTION_HELP
    ),
    random: Optional[int] = typer.Option(
        None, help="Random input vectors besides edge cases (default 32). " + _OPTION_HELP
    ),
    seed: Optional[int] = typer.Option(
        None, help="Seed of the random vectors (default 0). " + _OPTION_HELP
    ),
    protect: Optional[str] = typer.Option(
        None,
        help="Weight and parameter "
        "memories: none, parity (detects a flip) "
        "or secded (corrects one, detects two). " + _OPTION_HELP,
    ),
    nonlinear: Optional[str] = typer.Option(None, help=_NONLINEAR_HELP),
    calibrate: Optional[Path] = typer.Option(
        None, help="MODEL is float: quantize it first on this .npz's 'x' (see `nnloom quantize`)."
    ),
    config: Optional[str] = typer.Option(
        None,
        "--config",
        help="A point of `nnloom "
        "sweep` (OUT/points/<id>.json or OUT#<id>):"
        " the gemm engine with its config.",
    ),
) -> None:
    """Import MODEL, generate Verilog for BOARD, write manifest and golden vectors."""

    def body():
        from rtl_gen.artefact import Artefact

        from .commands.quantize import calibrated, keep_in_artefact

        target = out or Path("out") / model.stem
        if config is not None:
            from .commands.sweep import generate_point

            generate_point(model, target, config, data=data)
            console.print(f"wrote {target} (gemm engine, sweep point {config})")
            return
        with calibrated(model, calibrate, console) as quantized:
            chosen, built_for = _generate(
                quantized,
                target,
                engine=engine,
                board=board,
                data=data,
                options=_options(
                    lanes=lanes, random=random, seed=seed, protect=protect, nonlinear=nonlinear
                ),
            )
            if calibrate is not None:
                keep_in_artefact(quantized, target)
        art = Artefact(target)
        layers = art.manifest.get("layers")
        console.print(
            f"wrote {target} ({chosen.name} engine, {built_for}): "
            + (f"{len(layers)} layers, " if layers else "")
            + f"{len(art.vectors()['inputs'])} golden vectors",
            highlight=False,
        )

    run_command(body)


# --- inspect -----------------------------------------------------------------------------------

# Which engines take which IR op (the dense engine's own limits are checked per layer; snn:
# the ops its exact ST-BIF conversion takes, frontends.snn.graph.SNN_OPS).
_ENGINE_OPS = {
    "gemm": {"dense", "conv"},
    "snn": set(SNN_OPS),
    "smurf": {"nonlinear"},
}


# Engines that take a dense layer on a token sequence (IR attr ``tokens``): the exact ST-BIF
# graph conversion does (frontends.snn.graph); the dense engine and the gemm overlay not yet.
_SEQUENCE_ENGINES: set = {"snn"}


def _engines_for(fact, node, graph) -> str:
    names = [e for e, ops in _ENGINE_OPS.items() if fact.op in ops]
    if node.attrs.get("tokens", 1) > 1:
        names = [e for e in names if e in _SEQUENCE_ENGINES]
    wide_out = node.attrs.get("accumulator_output") and node.outputs[0] in graph.outputs
    widths = [
        graph.tensor(t).dtype.width for t in (*node.inputs, *(() if wide_out else node.outputs))
    ]
    if (
        fact.op == "dense"
        and fact.weight_bits <= 8
        and max(widths) <= 8
        and not node.attrs.get("sign")
        and node.attrs.get("rounding") == "half_up"
        and node.attrs.get("tokens", 1) == 1
    ):
        names.insert(0, "dense")
    return ", ".join(names) or "—"


def _weights_text(f) -> str:
    if f.weight_dtype is None:
        return "—"
    kind = "binary" if f.binary else "ternary" if f.ternary else f"{f.weight_bits} b used"
    return f"{f.weight_dtype} ({kind})"


_INSPECT_FORMATS = ("table", "json", "csv")
_CSV_COLUMNS = (
    "layer",
    "op",
    "source_op",
    "input_shape",
    "output_shape",
    "weights",
    "input_dtype",
    "output_dtype",
    "macs",
    "param_bytes",
    "sparsity",
    "pruned_outputs",
    "pruned_inputs",
    "engines",
)


def _inspect_csv(facts, nodes, graph) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for f in facts:
        writer.writerow(
            [
                f.name,
                f.op,
                f.source_op,
                "x".join(map(str, f.input_shape)),
                "x".join(map(str, f.output_shape)),
                _weights_text(f),
                str(f.input_dtype),
                str(f.output_dtype),
                f.macs,
                f.param_bytes,
                f"{f.sparsity:.6g}" if f.weight_dtype else "",
                len(f.pruned_outputs) if f.weight_dtype else "",
                len(f.pruned_inputs) if f.weight_dtype else "",
                " ".join(_engines_for(f, nodes[f.name], graph).split(", ")),
            ]
        )
    return buf.getvalue()


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="ONNX model (QDQ, QONNX or integer ops)."),
    fmt: str = typer.Option("table", "--format", help="table, json or csv (one row a layer)."),
    as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    """List the layers nnloom sees (op, shapes, types, MACs, bytes, sparsity, engines) and
    what is unsupported and why."""

    def body():
        import json

        from frontends.errors import ModelError
        from frontends.facts import layer_facts
        from frontends.onnx_import import import_onnx, scan_onnx

        from .commands.quantize import inspect_float

        form = "json" if as_json else fmt
        if form not in _INSPECT_FORMATS:
            raise UsageError(f"--format {fmt}: choose {', '.join(_INSPECT_FORMATS)}")
        if form != "csv" and inspect_float(model, form == "json", console):
            return
        unsupported = scan_onnx(model)
        try:
            graph = import_onnx(model)
            error = None
        except ModelError as exc:
            graph, error = None, str(exc)
        facts = layer_facts(graph) if graph is not None else []
        nodes = {n.name: n for n in graph.nodes} if graph is not None else {}
        from frontends.host import describe_host

        host = describe_host(graph) if graph is not None else []
        if form == "json":
            console.print_json(
                json.dumps(
                    {
                        "model": str(model),
                        "layers": [
                            dict(
                                f.as_dict(),
                                engines=_engines_for(f, nodes[f.name], graph).split(", "),
                            )
                            for f in facts
                        ],
                        "host": host,
                        "unsupported": [str(u) for u in unsupported],
                        "error": error,
                    }
                )
            )
        elif form == "csv":
            if error is None:
                sys.stdout.write(_inspect_csv(facts, nodes, graph))
                sys.stdout.flush()
        else:
            table = Table(title=f"nnloom inspect: {model.name}")
            for col in (
                "layer",
                "op",
                "in → out",
                "weights",
                "act in → out",
                "MACs",
                "bytes",
                "sparsity",
                "pruned out/in",
                "engines",
            ):
                table.add_column(col, overflow="fold")
            for f in facts:
                table.add_row(
                    f.name,
                    f"{f.source_op}→{f.op}",
                    f"{'×'.join(map(str, f.input_shape))} → {'×'.join(map(str, f.output_shape))}",
                    _weights_text(f),
                    f"{f.input_dtype} → {f.output_dtype}",
                    f"{f.macs:,}",
                    f"{f.param_bytes:,}",
                    f"{100 * f.sparsity:.1f} %" if f.weight_dtype else "—",
                    f"{len(f.pruned_outputs)}/{len(f.pruned_inputs)}" if f.weight_dtype else "—",
                    _engines_for(f, nodes[f.name], graph),
                )
            print_wide(table)
            if facts:
                print_wide(
                    f"{len(facts)} layers, {sum(f.macs for f in facts):,} MACs, "
                    f"{sum(f.param_bytes for f in facts):,} parameter bytes"
                )
            for line in host:
                print_wide(f"host {line}", highlight=False)
            for u in unsupported:
                print_wide(f"[yellow]unsupported:[/] {u}: no handler for this op", highlight=False)
        if error is not None:
            raise UsageError(
                error if error.startswith(str(model)) else f"{model}: cannot be imported: {error}"
            )

    run_command(body)


# --- sim ---------------------------------------------------------------------------------------


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> tuple[float | None, int]:
    mask = labels >= 0
    if not mask.any():
        return None, 0
    return float((outputs[mask].argmax(axis=1) == labels[mask]).mean()), int(mask.sum())


def _sim_progress(update, name: str):
    """``run_sim``'s progress callback that moves the bar ``update`` of ``flows.progress``."""

    def step(stage, done, total):
        text = (
            f"{name}: building the simulator"
            if stage == "building"
            else f"{name}: vectors simulated"
        )
        update(done, total, text)

    return step


def _sim(
    artefact_dir: Path,
    *,
    simulator: str,
    waves: bool,
    backpressure: bool,
    limit: int,
    seed: int = 1,
):
    from rtl_gen.artefact import Artefact
    from sim.runner import SimError, long_run_note, run_sim

    artefact = Artefact(artefact_dir)
    if note := long_run_note(artefact, limit):
        console.print(note)
    with progress(console, f"{artefact.name}: {simulator}") as update:
        result = run_sim(
            artefact,
            simulator=simulator,
            waves=waves,
            backpressure=backpressure,
            limit=limit,
            seed=seed,
            progress=_sim_progress(update, f"{artefact.name}: {simulator}"),
        )
    if not result.passed:
        details = "\n".join(result.mismatches[:20])
        raise SimError(
            f"RTL simulation of {artefact.name} does not match the golden model "
            f"({result.mismatching_elements} elements differ):\n{details}"
        )
    return artefact, result


@app.command()
def sim(
    artefact: Path = typer.Argument(..., help="Artefact folder from `nnloom generate`."),
    simulator: str = typer.Option("verilator", help="verilator or icarus."),
    waves: bool = typer.Option(False, help="Keep a waveform in sim/."),
    backpressure: bool = typer.Option(False, help="Random input gaps and output stalls."),
    limit: int = typer.Option(0, help="Simulate only the first N vectors (0: all)."),
    board: Optional[str] = typer.Option(
        None,
        help="Simulate the board top of this board instead: the host protocol on its UART pins.",
    ),
    clock: Optional[float] = typer.Option(
        None,
        "--clock",
        metavar="MHZ",
        help="With --board: the engine clock the bitstream was built for (default: the board's).",
    ),
    bench: str = typer.Option(
        "cocotb",
        help="cocotb (the Python bench), or sv: the "
        "self-checking SystemVerilog bench rtl/tb_<top>.sv alone.",
    ),
    seed: int = typer.Option(
        1, help="Seed of the stall pattern (with --backpressure or --bench sv)."
    ),
    reference: Optional[Path] = typer.Option(
        None, help="Float ONNX model: report the RTL's agreement with it too."
    ),
    torch: Optional[str] = typer.Option(
        None,
        "--torch",
        metavar="FILE.py:FACTORY",
        help="PyTorch module FACTORY() returns: report the RTL's agreement with it too.",
    ),
    vectors: Optional[int] = typer.Option(
        None,
        help="A regression instead: N seeded "
        "random inputs (and every edge code) through "
        "the golden model and the RTL (--seed).",
    ),
) -> None:
    """Simulate the Verilog against the golden vectors, bit for bit, and compare its outputs
    with the source ONNX model in onnxruntime (and --reference / --torch)."""

    def body():
        if vectors is not None:
            from .commands.verify import run_vectors

            run_vectors(
                artefact,
                vectors=vectors,
                seed=seed,
                bench=bench,
                simulator=simulator,
                console=console,
            )
            return
        if bench != "cocotb":
            from .commands.verify import run_sv

            run_sv(artefact, simulator, bench=bench, seed=seed, limit=limit, console=console)
            return
        if board:
            from boards import get_board
            from flows.board_sim import run_board_sim
            from sim.runner import SimError

            get_board(board)
            name = f"{board} board top, UART"
            with progress(console, name) as update:
                result = run_board_sim(
                    artefact,
                    board,
                    limit=limit or 4,
                    waves=waves,
                    clock_mhz=clock,
                    progress=_sim_progress(update, name),
                )
            if not result.passed:
                raise SimError(
                    f"board-level simulation on {board} does not match the golden:\n"
                    + "\n".join(result.mismatches[:20])
                )
            console.print(
                f"[green]PASS[/] {board}: {result.vectors} vectors through the UART "
                f"host link, bit-exact; results: {result.results_xml}"
            )
            memory = _board_memory_status(result)
            if memory:
                console.print(memory, highlight=False, soft_wrap=True)
            return
        from .commands.verify import prepare_frameworks, report_agreement

        frameworks = prepare_frameworks(artefact, reference, torch)
        art, result = _sim(
            artefact,
            simulator=simulator,
            waves=waves,
            backpressure=backpressure,
            limit=limit,
            seed=seed,
        )
        console.print(
            f"[green]PASS[/] RTL = golden: {result.vectors} vectors bit-exact; "
            f"{result.cycles} cycles per inference; results: {result.results_xml}"
        )
        if result.waves:
            console.print(f"waves: {result.waves}")
        report_agreement(artefact, result.outputs, frameworks, console)

    run_command(body)


# --- run, program ------------------------------------------------------------------------------


@app.command()
def run(
    artefact: Path = typer.Argument(..., help="Artefact folder whose bitstream the board runs."),
    port: str = typer.Option(..., help="Serial port of the board, e.g. /dev/ttyUSB0."),
    baud: int = typer.Option(115200, help="Baud rate of the host link."),
    limit: int = typer.Option(0, help="Only the first N golden vectors (0: all)."),
    timeout: float = typer.Option(2.0, help="Seconds to wait for each reply."),
) -> None:
    """Run the golden inputs on a programmed board and check its outputs."""

    def body():
        from .host import HostError, run_on_board

        with progress(console, f"vectors on the board at {port}") as update:
            result = run_on_board(
                artefact,
                port,
                baud=baud,
                limit=limit,
                timeout=timeout,
                progress=lambda done, total: update(done, total),
            )
        if not result.passed:
            raise HostError(
                f"the board's outputs differ from the golden in "
                f"{result.mismatching_elements} elements:\n" + "\n".join(result.mismatches)
            )
        console.print(
            f"[green]PASS[/] {result.vectors} vectors on the board equal the golden; "
            f"engine cycles {min(result.cycles)}–{max(result.cycles)}; "
            f"{result.retries} retries; {result.seconds:.1f} s"
            + (
                f" ({result.loaded_words} weight words loaded in {result.load_seconds:.1f} s)"
                if result.loaded_words
                else ""
            )
        )
        if result.memory is not None:
            console.print(
                _memory_text(
                    result.memory.protected, result.memory.corrected, result.memory.errors
                ),
                highlight=False,
                soft_wrap=True,
            )

    run_command(body)


def _memory_text(protected: bool, corrected: int, errors: int) -> str:
    if not protected:
        return "STATUS: weight memories unprotected (generate with --protect parity|secded)"
    return (
        f"STATUS: weight memories protected; {corrected} words read with a corrected "
        f"flip, {errors} with an uncorrectable error"
    )


def _board_memory_status(result) -> str | None:
    """The STATUS line of a board-level simulation (its summary's ``memory``)."""
    import json

    summary = Path(result.results_xml).parent / "summary.json"
    memory = json.loads(summary.read_text()).get("memory") if summary.is_file() else None
    return _memory_text(**memory) if memory else None


@app.command()
def program(
    artefact: Path = typer.Argument(..., help="Artefact folder with a built bitstream."),
    board: str = typer.Option("icebreaker", help="Board to program."),
    dry_run: bool = typer.Option(False, help="Print the command, do not run it."),
) -> None:
    """Load the bitstream onto a board with openFPGALoader, iceprog or dfu-util."""

    def body():
        import shlex

        from boards import get_board

        from .host import program as program_board

        get_board(board)
        command = program_board(artefact, board, dry_run=dry_run)
        console.print(("would run: " if dry_run else "programmed: ") + shlex.join(command))

    run_command(body)


# --- build -------------------------------------------------------------------------------------


def _build(artefact_dir: Path, board: str, clock: Optional[float] = None):
    from boards import get_board

    from .build import build as run_build

    spec = get_board(board)
    name = f"building {artefact_dir.name} for {spec.name}"
    with progress(console, name) as update:
        return run_build(
            artefact_dir,
            spec.name,
            clock_mhz=clock,
            progress=lambda step: update(description=f"{name}: {step}"),
        )


def _clock_help() -> str:
    from boards import BOARDS

    defaults = ", ".join(f"{name} {spec.target_hz / 1e6:g}" for name, spec in BOARDS.items())
    return f"Engine clock in MHz, made by the board's PLL (default: {defaults})."


_CLOCK_HELP = _clock_help()


@app.command()
def build(
    artefact: Path = typer.Argument(..., help="Artefact folder."),
    board: str = typer.Option(
        "icebreaker", help="icebreaker, ulx3s-85f, orangecrab-25f, tang-nano-9k."
    ),
    clock: Optional[float] = typer.Option(None, "--clock", metavar="MHZ", help=_CLOCK_HELP),
) -> None:
    """Synthesize, place and route and pack a bitstream for BOARD."""

    def body():
        from rtl_gen.artefact import Artefact

        Artefact(artefact)
        report = _build(artefact, board, clock)
        _print_build(report)

    run_command(body)


def _print_build(report):
    table = Table(title=f"{report.board} ({report.device})")
    table.add_column("resource")
    table.add_column("used", justify="right")
    table.add_column("of", justify="right")
    table.add_column("%", justify="right")
    for name, u in report.utilisation.items():
        if u["used"]:
            table.add_row(name, str(u["used"]), str(u["available"]), f"{u['percent']:.1f}")
    print_wide(table)
    console.print(
        f"Fmax {report.fmax_mhz:.2f} MHz (engine clock {report.clock_mhz:.2f} MHz "
        f"from the {report.pll['primitive']}, {report.clock_requested_mhz:g} MHz asked)"
        f"; bitstream {report.bitstream}"
    )


# --- flow --------------------------------------------------------------------------------------


def _float_accuracy(reference: Optional[Path], x, y) -> float | None:
    if reference is None or x is None or y is None:
        return None
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UsageError(
            f"{reference}: onnxruntime cannot load the reference model ({exc})"
        ) from None
    name = session.get_inputs()[0].name
    logits = np.concatenate(
        [session.run(None, {name: x[i : i + 1].astype(np.float32)})[0] for i in range(len(x))]
    )
    return float((logits.argmax(axis=1) == y).mean())


@app.command()
def flow(
    model: Path = typer.Argument(..., help="Quantized ONNX model."),
    board: str = typer.Option(
        "icebreaker", help="icebreaker, ulx3s-85f, orangecrab-25f or tang-nano-9k."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Artefact folder."),
    data: Optional[Path] = typer.Option(None, help=".npz with 'x' and 'y' (labels)."),
    reference: Optional[Path] = typer.Option(
        None, help="Float ONNX model, to report the accuracy quantization started from."
    ),
    lanes: Optional[int] = typer.Option(
        None, help="Parallel MAC lanes (dense; default 4). " + _OPTION_HELP
    ),
    protect: Optional[str] = typer.Option(
        None, help="Weight memories: none, parity or secded. " + _OPTION_HELP
    ),
    nonlinear: Optional[str] = typer.Option(None, help=_NONLINEAR_HELP),
    simulator: str = typer.Option("verilator", help="verilator or icarus."),
    limit: int = typer.Option(0, help="Simulate only the first N vectors (0: all)."),
    engine: str = typer.Option("auto", help=_ENGINE_HELP),
    clock: Optional[float] = typer.Option(None, "--clock", metavar="MHZ", help=_CLOCK_HELP),
    calibrate: Optional[Path] = typer.Option(
        None,
        help="MODEL is float: quantize it "
        "first on this .npz's 'x' (see `nnloom "
        "quantize`); MODEL is then the float "
        "reference.",
    ),
    torch: Optional[str] = typer.Option(
        None,
        "--torch",
        metavar="FILE.py:FACTORY",
        help="PyTorch module FACTORY() returns: report the RTL's agreement with it too.",
    ),
) -> None:
    """generate → sim → build, then a summary: accuracy, resources, Fmax, cycles, and the
    RTL's agreement with the model in onnxruntime (and --reference / --torch)."""

    def body():
        from .commands.quantize import calibrated

        with calibrated(model, calibrate, console) as quantized:
            target = out or Path("out") / model.stem
            _flow_body(
                quantized,
                target,
                reference if calibrate is None else (reference or model),
                calibrate is not None,
            )

    def _flow_body(model, target, reference, keep):
        from boards import get_board
        from rtl_gen.artefact import Artefact

        spec = get_board(board)
        from .build import board_clock

        board_clock(spec, clock)  # a clock the PLL cannot make fails before anything is written
        t0 = time.monotonic()
        x, y = load_data(data) if data is not None else (None, None)
        from .commands.verify import prepare_frameworks, report_agreement

        if Path(model).suffix == ".onnx":
            from sim.agreement import check_reference

            check_reference(model, reference, torch)  # before anything is written
        _generate(
            model,
            target,
            engine=engine,
            board=spec.name,
            data=data,
            options=_options(lanes=lanes, protect=protect, nonlinear=nonlinear),
        )
        frameworks = prepare_frameworks(target, reference, torch)
        vectors = Artefact(target).vectors()
        if keep:
            from .commands.quantize import keep_in_artefact

            keep_in_artefact(model, target)
        console.print(f"[bold]1/3 generate[/] {target} ({len(vectors['inputs'])} vectors)")
        art, result = _sim(
            target, simulator=simulator, waves=False, backpressure=False, limit=limit
        )
        console.print(
            f"[bold]2/3 sim[/] RTL = golden: {result.vectors} vectors bit-exact "
            f"({result.results_xml})"
        )
        report_agreement(target, result.outputs, frameworks, console)
        report = _build(target, spec.name, clock)
        console.print(f"[bold]3/3 build[/] {report.bitstream}")
        with np.load(result.outputs) as f:
            rtl_out = f["outputs"]
        from frontends.host import output_scores

        out_quant = art.manifest.get("quant", {}).get("output", {})
        golden_acc, n = _accuracy(output_scores(out_quant, vectors["outputs"]), vectors["labels"])
        rtl_acc, _ = _accuracy(output_scores(out_quant, rtl_out), vectors["labels"][: len(rtl_out)])
        float_acc = _float_accuracy(reference, x, y)
        _print_summary(
            art, report, result, float_acc, golden_acc, rtl_acc, n, time.monotonic() - t0
        )
        from .report import write_report

        html_path, _ = write_report(
            art, accuracy={"float": float_acc, "golden": golden_acc, "rtl": rtl_acc, "samples": n}
        )
        console.print(f"report: {html_path}")

    run_command(body)


@app.command()
def report(artefact: Path = typer.Argument(..., help="Artefact folder.")) -> None:
    """Write report.html (one self-contained page: accuracy, resources, Fmax, cycles, plots)
    and report.json from what the artefact folder holds."""

    def body():
        from .report import write_report

        html_path, json_path = write_report(artefact)
        console.print(f"wrote {html_path} and {json_path}")

    run_command(body)


def _pct(v):
    return "—" if v is None else f"{100 * v:.2f} %"


def _print_summary(art, report, result, float_acc, golden_acc, rtl_acc, n, seconds):
    manifest = art.manifest
    util, res = report.utilisation, Resources.from_utilisation(report.utilisation)
    cycles = manifest.get("latency_cycles")
    table = Table(title=f"nnloom flow: {art.name} on {report.board}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("float model accuracy", _pct(float_acc) + (f"  ({n} test samples)" if n else ""))
    table.add_row("integer golden accuracy", _pct(golden_acc))
    table.add_row("RTL simulation accuracy", _pct(rtl_acc))
    table.add_row("RTL vs golden", f"bit-exact on all {result.vectors} vectors")
    table.add_row("LUTs", res.of("lut"))
    table.add_row("DSPs", res.of("dsp"))
    table.add_row(
        "RAM",
        ", ".join(f"{k} {util[k]['used']}/{util[k]['available']}" for k in res.ram_by_name) or "—",
    )
    table.add_row(
        "Fmax",
        f"{report.fmax_mhz:.2f} MHz (engine clock {report.clock_mhz:.2f} MHz from the board's PLL)",
    )
    table.add_row(
        "cycles per inference",
        "—"
        if cycles is None
        else f"{cycles} ({manifest.get('macs')} MACs; "
        f"{cycles / report.clock_mhz:.1f} µs at the engine clock)",
    )
    table.add_row("bitstream", str(report.bitstream))
    table.add_row("wall time", f"{seconds:.0f} s")
    print_wide(table)


# --- example -----------------------------------------------------------------------------------


def _example_digits(out: Path) -> str:
    from frontends.examples.digits_mlp import make_digits_mlp

    made = make_digits_mlp(out)
    return (
        f"float test accuracy {100 * made.float_accuracy:.2f} %\n"
        f"quantized model {made.quantized}\nfloat model {made.float_model}\n"
        f"test data {made.test_data}"
    )


def _example_digits_qat(out: Path) -> str:
    from frontends.examples.digits_qat import make_digits_qat

    made = make_digits_qat(out)
    return (
        f"float {100 * made.float_accuracy:.2f} %, fake-quantized before fine-tuning "
        f"{100 * made.ptq_accuracy:.2f} %, after {100 * made.qat_accuracy:.2f} %, integer "
        f"golden {100 * made.golden_accuracy:.2f} %\nQONNX model {made.model}\n"
        f"test data {made.test_data}"
    )


def _example_digits_wide(out: Path) -> str:
    from frontends.examples.digits_wide import make_digits_wide

    made = make_digits_wide(out)
    return (
        f"float {100 * made.float_accuracy:.2f} %, integer golden: ternary hidden layer "
        f"{100 * made.accuracy:.2f} %, int8 {100 * made.int8_accuracy:.2f} %\n"
        f"QONNX model {made.model}\nint8 model {made.int8_model}\n"
        f"test data {made.test_data}"
    )


def _example_digits_brevitas(out: Path) -> str:
    try:
        import brevitas  # noqa: F401
    except ImportError:
        raise UsageError(
            "the digits-brevitas example needs Brevitas: pip install 'nnloom[brevitas]'"
        ) from None
    from frontends.examples.digits_brevitas import make_digits_brevitas

    made = make_digits_brevitas(out)
    return (
        f"Brevitas module {100 * made.module_accuracy:.2f} %, integer golden "
        f"{100 * made.golden_accuracy:.2f} %\nQONNX model {made.model}\n"
        f"test data {made.test_data}"
    )


# name -> (what it is, maker returning the lines to print)
EXAMPLES = {
    "digits": (
        "MLP on scikit-learn's 8x8 digits, quantized by onnxruntime (QDQ int8)",
        _example_digits,
    ),
    "digits-qat": (
        "the digits MLP fine-tuned at mixed bits (4-bit / ternary weights), QONNX",
        _example_digits_qat,
    ),
    "digits-wide": (
        "a 64-64-10 digits MLP with ternary hidden weights and its int8 twin "
        "(QAT, QONNX): the gemm benchmark network",
        _example_digits_wide,
    ),
    "digits-brevitas": (
        "a 4-bit Brevitas digits MLP exported with export_qonnx (extra 'brevitas')",
        _example_digits_brevitas,
    ),
}
EXAMPLES.update(_tiny.EXAMPLES)  # tiny-kws, tiny-ic, tiny-ad, tiny-vww and digits twins
EXAMPLES.update(_vit.EXAMPLES)  # digits-vit


@app.command()
def example(
    name: str = typer.Argument("digits", help="Example model: " + ", ".join(EXAMPLES) + "."),
    out: Path = typer.Option(Path("out/models"), "--out", "-o"),
) -> None:
    """Train (or seed) and quantize an example model into OUT: the digits models and the
    MLPerf Tiny reference networks (tiny-*); NAME lists them all."""

    def body():
        if name not in EXAMPLES:
            raise UsageError(
                f"unknown example '{name}'; available: "
                + "; ".join(f"{k} ({v[0]})" for k, v in EXAMPLES.items())
            )
        what, make = EXAMPLES[name]
        with console.status(f"training {what}…"):
            lines = make(out)
        console.print(lines)

    run_command(body)


# --- bench -------------------------------------------------------------------------------------


@bench_app.callback()
def _bench_all(
    ctx: typer.Context,
    out: Path = typer.Option(
        Path("out/bench"), "--out", "-o", help="Folder for every engine's results."
    ),
    engines: Optional[str] = typer.Option(None, help="Comma-separated engines (default: all)."),
    full: bool = typer.Option(
        False,
        "--full",
        help="The long sweeps too (every configuration of the benchmarks that have them).",
    ),
    jobs: int = typer.Option(
        2, "--jobs", "-j", min=1, help="Engines benchmarked at once, each in its own process."
    ),
    executor: str = typer.Option(
        "pool", help="pool (local processes) or ray (each engine a Ray task)."
    ),
    address: Optional[str] = typer.Option(
        None, help="With --executor ray: 'auto' or ray://host:10001."
    ),
):
    """Run every engine's benchmark (or one: `nnloom bench ENGINE`); write bench.md and
    bench.json into OUT."""
    if ctx.invoked_subcommand:
        return

    def body():
        from .bench import markdown_table, run_all

        names = [e.strip() for e in engines.split(",")] if engines else None
        with progress(console, "bench") as update:
            rows, md = run_all(
                out,
                engines=names,
                full=full,
                jobs=jobs,
                executor=executor,
                address=address,
                progress=lambda name, done, total: update(done, total, f"bench {name}"),
            )
        console.print(markdown_table(rows), soft_wrap=True)  # no wrapping inside a row
        console.print(f"wrote {md} and {md.with_suffix('.json')}")

    run_command(body)


for _engine in ENGINES:  # each engine's own commands (nnloom smurf, nnloom bench gemm...)
    if _engine.commands is not None:
        _engine.commands(app, bench_app)
_quantize.register(app, bench_app)
_faults.register(app, bench_app)
_tiny_bench.register(app, bench_app)
_vit_bench.register(app, bench_app)
_sweep.register(app, bench_app)
_verify.register(app, bench_app)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
