"""``nnloom generate --engine gemm`` and ``nnloom bench gemm`` (the heterogeneous DSP+LUT
GEMM overlay, ``rtl_gen.gemm``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer

from boards.families import Resources
from frontends.errors import UsageError

if TYPE_CHECKING:
    from frontends.ir import Graph
    from rtl_gen.gemm.config import GemmConfig
    from rtl_gen.gemm.program import Program
    from rtl_gen.gemm.split import SplitSpec

log = logging.getLogger(__name__)

__all__ = [
    "register",
    "generate_gemm",
    "bench_rows",
    "bench_model",
    "drop_idle_core",
    "measure_config",
]

BENCH_BOARDS = ("icebreaker", "ulx3s-85f")
# placer seeds per placed configuration: the UP5K's Fmax spreads over ~37-47 MHz between
# seeds of one netlist at 84 % of its cells, so the benchmark reports the median of three
BENCH_SEEDS = (1, 2, 3)


def _user_error(text: str) -> UsageError:
    return UsageError(text)


def _load_npz(data: Optional[Path]):
    if data is None:
        return None, None
    from frontends.vectors import load_data

    return load_data(data)


def can_run_gemm(graph: Graph, board: str) -> tuple[bool, str]:
    """Whether ``board``'s heterogeneous overlay takes every layer of ``graph`` (the
    compiler's own check), and why."""
    from frontends.errors import NnloomError
    from rtl_gen.gemm import compile_graph
    from rtl_gen.gemm.config import board_configs

    try:
        program = compile_graph(graph, board_configs(board)["hetero"], split="auto")
    except NnloomError as exc:
        return False, str(exc)
    ops = sorted({l.source_op or l.op for l in program.layers})
    return True, (
        f"the {board} overlay runs all {len(program.layers)} layers "
        f"({', '.join(ops)}) in {len(program.instrs)} instructions"
    )


def generate(
    model: Path, out: Path, *, board: str, data: Optional[Path] = None, options: dict
) -> Path:
    """The engine protocol's ``generate`` (``flows.engines``): ``generate_gemm`` for
    ``board`` with ``options["random"]``/``["seed"]`` for the golden vectors."""
    generate_gemm(
        model,
        out,
        data,
        board=board,
        random=options.get("random", 32),
        seed=options.get("seed", 0),
        protect=options.get("protect", "none"),
        nonlinear=options.get("nonlinear", "table"),
    )
    return Path(out)


def generate_gemm(
    model: Path,
    out: Path,
    data: Optional[Path] = None,
    *,
    board: str = "icebreaker",
    split: SplitSpec = "auto",
    tau: float = 0.02,
    random: int = 32,
    seed: int = 0,
    protect: str = "none",
    nonlinear: str = "table",
) -> Program:
    """Compile ``model`` for ``board``'s heterogeneous config, its instruction, weight and
    parameter memories coded by ``protect`` (``rtl_gen.gemm.protect``), its element-wise
    functions as tables or SMURF units (``nonlinear``, ``rtl_gen.gemm.tables``), and write
    the artefact (memories initialised with the program). Returns the program."""
    from dataclasses import replace

    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.gemm import compile_graph
    from rtl_gen.gemm.config import board_configs
    from rtl_gen.gemm.emit import write_gemm_artefact

    config = replace(board_configs(board)["hetero"], protect=protect)
    x, y = _load_npz(data)
    graph = import_onnx(model)
    if nonlinear not in ("table", "smurf"):
        raise _user_error(f"--nonlinear {nonlinear}: choose table or smurf")
    from rtl_gen.gemm.compiler import compile_nonlinear

    def compile_both(g, cfg, **kw):
        return drop_idle_core(g, compile_graph(g, cfg, **kw), **kw)

    from sim.layer_agreement import is_transformer

    if split == "auto" and is_transformer(graph):
        # judged layer by layer too (sim.layer_agreement): its golden must be
        # the model's own, not the LUT core's approximated weights (3 channels of the
        # digits ViT's embedding on ternary lanes left 43 % of its logits within one code)
        split = 0.0

    program = compile_nonlinear(
        graph, config, nonlinear=nonlinear, compile=compile_both, split=split, tau=tau
    )
    vectors = golden_vectors(program.graph, data_x=x, data_y=y, random=random, seed=seed)
    extra = {"board_config": board, "nonlinear": nonlinear}
    if program.smurf:
        extra["smurf_units"] = [
            {"node": u.node, "length": u.plan.length, "fit_rmse": u.rmse} for u in program.smurf
        ]
    write_gemm_artefact(program, out, vectors=vectors, extra=extra)
    return program


# A LUT core the automatic split keeps must save this share of the DSP-only cycles: the int8
# ResNet-8 put half of its average pool on 64 ternary lanes for 0.2 % of its cycles, and those
# lanes' logic counted against its MAC utilisation (3x3 convolutions 18 % instead of 91 %).
MIN_LUT_GAIN = 0.05


def drop_idle_core(
    graph: Graph, program: Program, *, split: SplitSpec = "auto", tau: float = 0.02
) -> Program:
    """``program`` recompiled without a core none of its layers uses (a network whose
    channels all miss the LUT core's precision, e.g. the int8 digits MLP on ternary LUT
    lanes, gets the DSP-only overlay: the same cycles, without the idle lanes' logic), and,
    under the automatic split, without a LUT core that saves less than ``MIN_LUT_GAIN`` of
    the DSP-only overlay's cycles."""
    from dataclasses import replace

    from rtl_gen.gemm import compile_graph

    cfg = program.config
    used = {
        "dsp": any(l.n_dsp for l in program.layers),
        "lut": any(l.n_lut for l in program.layers),
    }
    if cfg.dsp_lanes and cfg.lut_lanes and not used["lut"]:
        log.info("no layer uses the LUT core: building the DSP-only overlay")
        return compile_graph(graph, replace(cfg, lut_lanes=0), split=split, tau=tau)
    if cfg.dsp_lanes and cfg.lut_lanes and not used["dsp"]:
        log.info("no layer uses the DSP core: building the LUT-only overlay")
        return compile_graph(graph, replace(cfg, dsp_lanes=0, dsp_pack=False), split=split, tau=tau)
    if cfg.dsp_lanes and cfg.lut_lanes and split == "auto":
        from rtl_gen.gemm.model import schedule

        dsp = compile_graph(graph, replace(cfg, lut_lanes=0), split=split, tau=tau)
        if schedule(program).cycles > (1 - MIN_LUT_GAIN) * schedule(dsp).cycles:
            log.info("the LUT core saves under %.0f %% of the cycles: DSP-only", 100 * MIN_LUT_GAIN)
            return dsp
    return program


# --- bench -------------------------------------------------------------------------------------


def _accuracy(graph, x, y) -> float | None:
    from frontends.reference import quantize_inputs, run

    if x is None or y is None:
        return None
    codes = quantize_inputs(graph, x)
    out = run(graph, codes)[graph.outputs[0]].reshape(len(x), -1)
    return float((out.argmax(axis=1) == y).mean())


def _rtl_layer_cycles(program) -> tuple[int, list[int]]:
    """Run one inference of the engine in Amaranth's simulator; the cycle counter and the
    cycles between the first fetches of each layer's instructions."""
    from amaranth.sim import Simulator

    from rtl_gen.gemm.emit import create_engine

    dut = create_engine(program, primitives=False)
    x = np.zeros(program.n_in, np.int64) + max(program.in_dtype.min, 0)
    trace = []
    result = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        sent, got = 0, 0
        while got < program.n_out:
            ctx.set(dut.i.payload, {"data": int(x[min(sent, len(x) - 1)]), "last": 0})
            _, _, pc, iv, ir, ov = await ctx.tick().sample(
                dut.pc, dut.i.valid, dut.i.ready, dut.o.valid
            )
            trace.append(pc)
            if iv and ir:
                sent += 1
                if sent == len(x):
                    ctx.set(dut.i.valid, 0)
            got += int(ov)
        await ctx.tick()
        result["cycles"] = ctx.get(dut.cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    first = {}
    for cycle, pc in enumerate(trace):
        first.setdefault(pc, cycle)
    return result["cycles"], [first[l.last] - first[l.first] for l in program.layers]


def measure_config(
    graph: Graph,
    config: GemmConfig,
    *,
    family: str,
    clock_mhz: float,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    work: Path | None = None,
    synth: bool = True,
    seeds: tuple[int, ...] = BENCH_SEEDS,
    split: SplitSpec = "auto",
    tau: float = 0.02,
) -> tuple[Program, dict]:
    """One overlay configuration of ``graph``, as ``nnloom bench gemm`` and ``nnloom sweep``
    both measure it: the compiled program and its row (config, cycles from the model and
    from Amaranth's simulation, per layer, MACs, utilisation, accuracy on ``x``/``y``).
    With ``synth`` the engine's Verilog is synthesized, placed and routed in ``work`` at
    ``clock_mhz``, once per placer seed: resources, Fmax (the median; each seed's in
    ``fmax_seeds``), latency and GMAC/s; a design the tools reject gets ``error`` instead."""
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm import compile_graph
    from rtl_gen.gemm.emit import TOP, create_engine
    from rtl_gen.gemm.model import schedule

    program = compile_graph(graph, config, split=split, tau=tau)
    sched = schedule(program)
    rtl_cycles, rtl_layers = _rtl_layer_cycles(program)
    cfg = program.config
    row = {
        "config": cfg.describe(),
        "cycles_model": sched.cycles,
        "cycles_rtl": rtl_cycles,
        "macs": program.macs(),
        "peak_mac_per_cycle": cfg.dsp_lanes + cfg.lut_lanes,
        "layers": [
            {
                "name": l.name,
                "n_dsp": l.n_dsp,
                "n_lut": l.n_lut,
                "lut_wbits": l.lut_wbits,
                "model": l.model_cycles,
                "rtl": r,
            }
            for l, r in zip(program.layers, rtl_layers)
        ],
        "accuracy": _accuracy(program.graph, x, y),
        "perf": {"busy": sched.busy, "wait": sched.wait},
    }
    row["utilisation"] = row["macs"] / (rtl_cycles * row["peak_mac_per_cycle"])
    if not synth:
        return program, row
    from flows.build import BuildError
    from flows.synth import synthesize

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{TOP}.v").write_text(emit_verilog(create_engine(program, observe=False), TOP))
    try:
        rep = synthesize(
            [work / f"{TOP}.v"],
            TOP,
            family=family,
            out_dir=work / "synth",
            clock_mhz=clock_mhz,
            seeds=tuple(seeds),
        )
    except BuildError as exc:  # e.g. nextpnr finds no legal placement: say so
        lines = [ln.strip() for ln in str(exc).splitlines() if "ERROR" in ln]
        row["error"] = (lines or [str(exc).splitlines()[0]])[0]
        return program, row
    res = Resources.from_utilisation(rep.utilisation)
    row.update(
        lut4=rep.lut4,
        ff=rep.ff,
        fmax_mhz=rep.fmax_mhz,
        fmax_seeds=dict(rep.fmax_seeds),
        ebr=res.ram,
        spram=res.spram,
        dsp=res.dsp,
        cells=res.lut,
        io_wrapper=rep.io_wrapper,
        netlist_sha256=rep.netlist_sha256,
    )
    f = rep.fmax_mhz
    row["latency_us"] = rtl_cycles / f if f else None
    row["gmacs"] = row["macs"] / (rtl_cycles / f) / 1e3 if f else None
    return program, row


def bench_rows(
    graph: Graph,
    x: np.ndarray | None,
    y: np.ndarray | None,
    *,
    boards: Iterable[str] = BENCH_BOARDS,
    out_dir: Path,
    tau: float = 0.02,
    synth: bool = True,
    progress: Callable[[str], None] | None = None,
    synth_kinds: Container[str] = ("dsp", "lut", "hetero"),
    int8_graph: Graph | None = None,
    seeds: tuple[int, ...] = BENCH_SEEDS,
) -> dict:
    """Per board and configuration (DSP-only, LUT-only, heterogeneous): resources, Fmax,
    cycles (model and RTL, per layer), latency, GMAC/s, utilisation, accuracy
    (``measure_config``). With ``synth``, the configurations in ``synth_kinds`` are placed
    and routed, once per placer seed in ``seeds``: Fmax is the median, latency and GMAC/s
    use it. ``int8_graph``: the same network at int8, whose accuracy is the reference
    (default: ``graph``'s own)."""
    from rtl_gen.gemm import BOARDS

    model_acc = _accuracy(graph, x, y)
    int8_acc = _accuracy(int8_graph, x, y) if int8_graph is not None else model_acc
    report = {
        "model": graph.name,
        "model_accuracy": model_acc,
        "int8_accuracy": int8_acc,
        "boards": {},
    }
    for board in boards:
        spec = BOARDS[board]
        rows = {}
        for kind in ("dsp", "lut", "hetero"):
            if progress:
                progress(f"{board}: {kind} config")
            _, rows[kind] = measure_config(
                graph,
                spec[kind],
                family=spec["family"],
                clock_mhz=spec["clock_mhz"],
                x=x,
                y=y,
                work=out_dir / board / kind,
                synth=synth and kind in synth_kinds,
                seeds=seeds,
                split="auto",
                tau=tau,
            )
        if "fmax_mhz" in rows["hetero"]:
            d, h = rows["dsp"], rows["hetero"]
            rows["speedup_cycles"] = d["cycles_rtl"] / h["cycles_rtl"]
            if d.get("latency_us") and h.get("latency_us"):
                rows["speedup_latency"] = d["latency_us"] / h["latency_us"]
        else:
            rows["speedup_cycles"] = rows["dsp"]["cycles_rtl"] / rows["hetero"]["cycles_rtl"]
        report["boards"][board] = rows
    return report


def bench_model(
    out_dir: Path,
) -> tuple[Graph, Graph, np.ndarray | None, np.ndarray | None]:
    """The benchmark network: the ``digits-wide`` example (64-64-10, ternary hidden
    weights) and its int8 twin; returns ``(graph, int8 graph, x, y)``."""
    from frontends.examples.digits_wide import make_digits_wide
    from frontends.onnx_import import import_onnx

    made = make_digits_wide(Path(out_dir))
    x, y = _load_npz(made.test_data)
    return import_onnx(made.model), import_onnx(made.int8_model), x, y


def bench_all_rows(out_dir: Path, *, full: bool = False) -> list[dict]:
    """``nnloom bench`` (all engines): the digits-wide example on each board's DSP-only,
    LUT-only and heterogeneous overlays as flat rows. DSP-only and heterogeneous are placed
    and routed (the speedup's two ends); LUT-only too with ``full``."""
    from rtl_gen.gemm import BOARDS

    graph, int8_graph, x, y = bench_model(Path(out_dir) / "models")
    kinds = ("dsp", "lut", "hetero") if full else ("dsp", "hetero")
    report = bench_rows(
        graph, x, y, out_dir=Path(out_dir), synth_kinds=kinds, int8_graph=int8_graph
    )
    rows = []
    for board, configs in report["boards"].items():
        for kind in ("dsp", "lut", "hetero"):
            r = configs[kind]
            rows.append(
                {
                    "engine": "gemm",
                    "config": f"{board} {kind}: {r['config']}",
                    "family": BOARDS[board]["family"],
                    "lut4": r.get("lut4"),
                    "ff": r.get("ff"),
                    "dsp": r.get("dsp"),
                    "ram": r.get("ebr"),
                    "fmax_mhz": r.get("fmax_mhz"),
                    "cycles": r["cycles_rtl"],
                    "cycles_model": r["cycles_model"],
                    "latency_us": r.get("latency_us"),
                    "accuracy": r["accuracy"],
                    "error": r.get("error"),
                    "speedup": configs.get("speedup_latency", configs.get("speedup_cycles"))
                    if kind == "hetero"
                    else None,
                }
            )
    return rows


SWEEP_GRID = {
    "ice40": ((0, 2, 4, 6), (0, 4, 8, 12, 16), 8, 4500),
    "ecp5": ((0, 8, 16, 32, 64), (0, 16, 32, 64, 128), 156, 70000),
}


def _sweep(graph, board, x, y, tau):
    from dataclasses import asdict

    from rtl_gen.gemm import BOARDS
    from rtl_gen.gemm.cost import sweep

    family = BOARDS[board]["family"]
    dsp, lut, dsp_limit, lut_limit = SWEEP_GRID[family]
    points = sweep(
        graph,
        family=family,
        dsp_options=dsp,
        lut_options=lut,
        x=x,
        y=y,
        tau=tau,
        dsp_limit=dsp_limit,
        lut4_limit=lut_limit,
    )
    return [asdict(p) for p in points]


def _fmt(v, spec=""):
    if v is None:
        return "—"
    return format(v, spec) if spec else str(v)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @bench_app.command("gemm")
    def bench_gemm(
        model: Optional[Path] = typer.Argument(
            None,
            help="Quantized ONNX model (default: the "
            "digits-wide example, 64-64-10 with ternary "
            "hidden weights, trained on the way).",
        ),
        data: Optional[Path] = typer.Option(None, help=".npz with 'x' and 'y' for accuracy."),
        int8_model: Optional[Path] = typer.Option(
            None,
            "--int8-model",
            help="The same network at int8: its accuracy is the reference (default: MODEL's own).",
        ),
        boards: str = typer.Option(",".join(BENCH_BOARDS), help="Comma-separated boards."),
        out: Path = typer.Option(
            Path("out/bench/gemm"), "--out", "-o", help="Work folder (synthesis runs, report.json)."
        ),
        tau: float = typer.Option(0.02, help="LUT-precision error budget per channel."),
        synth: bool = typer.Option(
            True, help="Synthesize (resources, Fmax); --no-synth prints cycles and accuracy only."
        ),
        place: str = typer.Option(
            "dsp,lut,hetero",
            help="Comma-separated configurations to "
            "synthesize and place (dsp, lut, hetero); the others get "
            "cycles and accuracy only.",
        ),
        sweep: bool = typer.Option(
            False,
            help="Also sweep core sizes per board (modelled "
            "cycles, estimated LUT4, accuracy) and print the Pareto "
            "set.",
        ),
        seeds: str = typer.Option(
            ",".join(map(str, BENCH_SEEDS)),
            help="Comma-separated nextpnr placer seeds; Fmax is their median.",
        ),
    ):
        """DSP-only, LUT-only and heterogeneous overlays per board: resources, Fmax, cycles
        (model vs RTL), latency, GMAC/s, utilisation, accuracy, speedup."""

        def body():
            from frontends.onnx_import import import_onnx
            from rtl_gen.gemm import BOARDS

            names = [b.strip() for b in boards.split(",") if b.strip()]
            kinds = tuple(k.strip() for k in place.split(",") if k.strip())
            for kind in kinds:
                if kind not in ("dsp", "lut", "hetero"):
                    raise _user_error(
                        f"unknown configuration '{kind}' in --place; choose from dsp, lut, hetero"
                    )
            for name in names:
                if name not in BOARDS:
                    raise _user_error(f"unknown board '{name}'; choose from {', '.join(BOARDS)}")
            try:
                seed_list = tuple(int(v) for v in seeds.split(",") if v.strip())
            except ValueError:
                seed_list = ()
            if not seed_list or min(seed_list) < 0:
                raise _user_error(
                    f"--seeds '{seeds}': give placer seeds as non-negative "
                    f"integers separated by commas, e.g. 1,2,3"
                )
            int8_graph = None
            if model is None:
                with console.status("training the digits-wide example…"):
                    graph, int8_graph, x, y = bench_model(out / "models")
                if data is not None:
                    x, y = _load_npz(data)
            else:
                x, y = _load_npz(data)
                graph = import_onnx(model)
                if int8_model is not None:
                    int8_graph = import_onnx(int8_model)
            t0 = time.monotonic()
            with console.status("benchmarking…") as status:
                report = bench_rows(
                    graph,
                    x,
                    y,
                    boards=names,
                    out_dir=out,
                    tau=tau,
                    synth=synth,
                    progress=status.update,
                    int8_graph=int8_graph,
                    synth_kinds=kinds,
                    seeds=seed_list,
                )
            if sweep:
                report["sweep"] = {b: _sweep(graph, b, x, y, tau) for b in names}
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
            _print(console, report)
            console.print(f"report: {out / 'report.json'} ({time.monotonic() - t0:.0f} s)")

        run_command(body)


def _print(console, report):
    from rich.table import Table

    acc8 = report["int8_accuracy"]
    acc = report.get("model_accuracy", acc8)
    for board, points in report.get("sweep", {}).items():
        table = Table(
            title=f"core-size sweep on {board}: Pareto set (cycles exact, LUT4 "
            f"estimated by rtl_gen.gemm.cost)"
        )
        for col in ("DSP lanes", "LUT lanes", "cycles", "LUT4 est.", "DSP", "BRAM", "accuracy %"):
            table.add_column(col, justify="right")
        for p in sorted((p for p in points if p["pareto"]), key=lambda p: p["cycles"]):
            table.add_row(
                str(p["dsp_lanes"]),
                str(p["lut_lanes"]),
                str(p["cycles"]),
                str(p["lut4"]),
                str(p["dsp"]),
                str(p["bram"]),
                _fmt(p["accuracy"] and 100 * p["accuracy"], ".2f"),
            )
        from flows.console import print_wide

        print_wide(table)
    for board, rows in report["boards"].items():
        table = Table(
            title=f"gemm overlay on {board} — {report['model']} (golden "
            f"{_fmt(acc and 100 * acc, '.2f')} %, int8 model "
            f"{_fmt(acc8 and 100 * acc8, '.2f')} %)"
        )
        for col in (
            "config",
            "LUT4",
            "FF",
            "EBR",
            "SPRAM",
            "DSP",
            "Fmax MHz",
            "cycles model",
            "cycles RTL",
            "latency µs",
            "GMAC/s",
            "util %",
            "accuracy %",
        ):
            table.add_column(col, justify="right" if col != "config" else "left")
        for kind in ("dsp", "lut", "hetero"):
            r = rows[kind]
            table.add_row(
                f"{kind}: {r['config']}",
                _fmt(r.get("lut4")),
                _fmt(r.get("ff")),
                _fmt(r.get("ebr")),
                _fmt(r.get("spram")),
                _fmt(r.get("dsp")),
                _fmt(r.get("fmax_mhz"), ".1f"),
                _fmt(r["cycles_model"]),
                _fmt(r["cycles_rtl"]),
                _fmt(r.get("latency_us"), ".2f"),
                _fmt(r.get("gmacs"), ".3f"),
                _fmt(100 * r["utilisation"], ".1f"),
                _fmt(r["accuracy"] and 100 * r["accuracy"], ".2f"),
            )
        from flows.console import print_wide

        print_wide(table)
        for kind in ("dsp", "lut", "hetero"):
            if rows[kind].get("error"):
                console.print(f"{kind}: not placed on {board}: {rows[kind]['error']}")
        spread = {
            k: rows[k]["fmax_seeds"]
            for k in ("dsp", "lut", "hetero")
            if len(rows[k].get("fmax_seeds", {})) > 1
        }
        if spread:
            console.print(
                "Fmax is the median over placer seeds; per seed: "
                + "; ".join(
                    f"{k} " + ", ".join(f"{s}: {f:.1f}" for s, f in per.items())
                    for k, per in spread.items()
                )
            )
        for kind in ("dsp", "lut", "hetero"):
            r = rows[kind]
            total = sum(l["model"] for l in r["layers"])
            worst = max(abs(l["rtl"] - l["model"]) / l["model"] for l in r["layers"])
            console.print(
                f"{kind}: RTL vs model cycles: network {r['cycles_rtl']} vs "
                f"{r['cycles_model']} "
                f"({100 * (r['cycles_rtl'] - r['cycles_model']) / r['cycles_model']:+.1f}"
                f" %), worst layer {100 * worst:.1f} % (layers sum {total})"
            )
        layer_text = "; ".join(
            f"{l['name']} {l['n_dsp']}D+{l['n_lut']}L"
            + (f"@{l['lut_wbits']}b" if l.get("lut_wbits") else "")
            + f" model {l['model']} rtl {l['rtl']}"
            for l in rows["hetero"]["layers"]
        )
        console.print(f"hetero layers: {layer_text}")
        console.print(
            f"hetero / DSP-only speedup: {rows['speedup_cycles']:.2f}x in cycles"
            + (
                f", {rows['speedup_latency']:.2f}x in latency at Fmax"
                if "speedup_latency" in rows
                else ""
            )
        )
