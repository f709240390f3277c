"""``nnloom bench vit``: the digits ViT (``frontends.examples.digits_vit``) on the GEMM
overlay, its element-wise functions as exact tables and as SMURF units.

Per nonlinear choice and board (the board's DSP-only config: the int8 ViT has no layer the
ternary LUT core takes): accuracy of the float model, of onnxruntime on the QDQ model, of
the integer golden of the design (the SMURF golden with SMURF units) and, with ``--rtl N``,
of the Verilog under Verilator on the first N test vectors (bit-exact against that golden);
cycles per inference from the overlay's cycle model (the RTL matches it per layer) split
into matrix (dense layers), attention (the matmuls), LayerNorm/Softmax, GELU and the rest
(adds, requantizations, copies, input and output); with synthesis LUT4, FF, DSP, block RAM
and Fmax of the whole engine, and LUT4 of its nonlinear units synthesized alone (the table
unit or the SMURF units, the softmax row unit, the LayerNorm unit; as the engine has them:
their products go to the post unit's shared requantizer). A board whose memories
cannot hold the model gets the compiler's refusal, which names the memory.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer

if TYPE_CHECKING:
    from rtl_gen.gemm.program import Program

log = logging.getLogger(__name__)

__all__ = ["register", "bench_vit", "cycle_split", "VIT_BOARDS", "MODES"]

VIT_BOARDS = ("ulx3s-85f", "icebreaker")
MODES = ("table", "smurf")
FAMILY = {"ulx3s-85f": "ecp5", "icebreaker": "ice40"}


def cycle_split(program: Program) -> dict[str, int]:
    """Modelled cycles per inference by kind of work (the layers' cycles; ``other``: the
    rest of the program: input, output, adds, requantizations and copies)."""
    split = {"matrix": 0, "attention": 0, "layernorm_softmax": 0, "gelu": 0, "other": 0}
    for layer in program.layers:
        if layer.op in ("dense", "conv", "avgpool"):
            kind = "matrix"
        elif layer.op == "matmul":
            kind = "attention"
        elif layer.op == "layernorm" or (layer.op == "nonlinear" and layer.k > 1):
            kind = "layernorm_softmax"  # (a softmax layer's k is its row length)
        elif layer.op == "nonlinear":
            kind = "gelu"
        else:
            kind = "other"
        split[kind] += layer.model_cycles
    from rtl_gen.gemm.model import schedule

    split["other"] += schedule(program).cycles - sum(split.values())
    return split


def _accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(scores).reshape(len(y), -1).argmax(1) == y).mean())


def _unit_luts(program, family: str, work: Path) -> dict:
    """LUT4 of the engine's nonlinear units synthesized alone (no placement)."""
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm.codes import abits
    from rtl_gen.gemm.rowwise import NormUnit, RowUnit
    from rtl_gen.gemm.tables import TableUnit

    from ..synth import synthesize

    cfg = program.config
    act_ab, idx_ab, p_ab = abits(cfg.act_depth), abits(cfg.idx_depth), abits(cfg.param_depth)
    units = {}
    if program.smurf:
        units["smurf"] = TableUnit(act_abits=act_ab, smurf=program.smurf)
    elif cfg.tab_depth:
        units["table"] = TableUnit(act_abits=act_ab, tab_abits=abits(cfg.tab_depth))
    if cfg.etab_depth:
        units["softmax"] = RowUnit(
            act_abits=act_ab,
            idx_abits=idx_ab,
            p_abits=p_ab,
            etab_abits=abits(cfg.etab_depth),
            qbits=max(1, cfg.row_bits),
            shared_requant=True,  # as the engine builds it: the post unit requantizes
        )
    if cfg.norm:
        units["layernorm"] = NormUnit(
            act_abits=act_ab,
            idx_abits=idx_ab,
            p_abits=p_ab,
            bias_bits=cfg.bias_bits,
            mult_bits=cfg.mult_bits,
            shared_requant=True,
        )
    out = {}
    for name, unit in units.items():
        folder = work / f"unit-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        top = f"vit_{name}"
        (folder / f"{top}.v").write_text(emit_verilog(unit, top))
        try:
            rep = synthesize([folder / f"{top}.v"], top, family=family, out_dir=folder / "work")
            out[name] = {"lut4": rep.lut4, "dsp": rep.resources.dsp}
        except Exception as exc:  # a tool failure is a row, not a traceback
            out[name] = {"error": str(exc).splitlines()[0]}
    return out


def bench_vit(
    out: Path,
    *,
    synth: bool = True,
    rtl: int = 0,
    boards: tuple[str, ...] = VIT_BOARDS,
    modes: tuple[str, ...] = MODES,
    seeds: tuple[int, ...] = (1,),
) -> list[dict]:
    """One row per nonlinear choice x board (see the module docstring); writes
    ``vit.json`` and ``vit.md`` into ``out``."""
    from frontends import reference
    from frontends.errors import NnloomError
    from frontends.examples.digits_vit import make_digits_vit, ort_outputs
    from frontends.onnx_import import import_onnx
    from frontends.vectors import load_data
    from rtl_gen.gemm.compiler import compile_nonlinear
    from rtl_gen.gemm.config import board_configs

    out = Path(out)
    models = out / "models"
    quantized, float_model = models / "digits_vit.onnx", models / "digits_vit_float.onnx"
    test = models / "digits_test.npz"
    if not (quantized.exists() and float_model.exists() and test.exists()):
        make_digits_vit(models)
    x, y = load_data(test)
    graph = import_onnx(quantized)
    float_acc = _accuracy(ort_outputs(float_model, x), y)
    ort_acc = _accuracy(ort_outputs(quantized, x), y)
    rows = []
    for mode in modes:
        for board in boards:
            row = {"nonlinear": mode, "board": board, "float": float_acc, "ort_qdq": ort_acc}
            rows.append(row)
            t0 = time.monotonic()
            try:
                program = compile_nonlinear(graph, board_configs(board)["dsp"], nonlinear=mode)
            except NnloomError as exc:
                row["error"] = str(exc)
                continue
            codes = reference.quantize_inputs(program.graph, x)
            golden = reference.run(program.graph, codes)[program.graph.outputs[0]]
            row["golden"] = _accuracy(reference.scores(program.graph, golden), y)
            row["cycles"] = cycle_split(program)
            row["cycles_total"] = sum(row["cycles"].values())
            if program.smurf:
                row["smurf"] = {
                    "units": len(program.smurf),
                    "length": program.smurf[0].plan.length,
                    "cycles_per_element": program.config.smurf_cycles,
                    "fit_rmse": [round(u.rmse, 5) for u in program.smurf],
                }
            if rtl:
                row["rtl"] = _rtl_accuracy(program, x[:rtl], y[:rtl], out / f"rtl-{mode}-{board}")
            if synth:
                row.update(_synth_row(program, board, out / f"synth-{mode}-{board}", seeds))
            row["seconds"] = round(time.monotonic() - t0, 1)
    (out / "vit.json").write_text(json.dumps(rows, indent=1))
    (out / "vit.md").write_text(markdown(rows))
    return rows


def _rtl_accuracy(program, x, y, work: Path) -> dict:
    from frontends.vectors import golden_vectors
    from rtl_gen.gemm.emit import write_gemm_artefact
    from sim.runner import run_sim

    vectors = golden_vectors(program.graph, data_x=x, data_y=y, random=0)
    art = write_gemm_artefact(program, work / "art", vectors=vectors)
    result = run_sim(art, build_root=work / "build")
    outputs = np.load(art / "sim" / "outputs.npz")["outputs"]
    data = np.asarray(vectors["source"]) == 2  # the test vectors (after the edge cases)
    got = np.asarray(outputs).reshape(len(data), -1)[data]
    from frontends import reference

    scores = reference.scores(program.graph, got)
    return {
        "vectors": len(x),
        "bit_exact": bool(result.passed),
        "accuracy": _accuracy(scores, y),
    }


def _synth_row(program, board: str, work: Path, seeds) -> dict:
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm.config import BOARDS
    from rtl_gen.gemm.emit import TOP, create_engine, sim_models

    from ..synth import synthesize

    work.mkdir(parents=True, exist_ok=True)
    family = FAMILY[board]
    sources = [work / f"{TOP}.v"]
    sources[0].write_text(emit_verilog(create_engine(program, observe=False), TOP))
    for name, text in sim_models(program).items():
        (work / name).write_text(text)
        sources.append(work / name)
    try:
        rep = synthesize(
            sources,
            TOP,
            family=family,
            out_dir=work / "engine",
            clock_mhz=max(100.0, BOARDS[board]["clock_mhz"]),
            seeds=tuple(seeds),
        )
    except Exception as exc:
        return {"synth_error": str(exc).splitlines()[0]}
    row = {
        "lut4": rep.lut4,
        "ff": rep.ff,
        "dsp": rep.resources.dsp,
        "ram": rep.resources.ram,
        "fmax_mhz": rep.fmax_mhz,
    }
    units = _unit_luts(program, family, work)
    row["nonlinear_units"] = units
    lut = sum(u.get("lut4", 0) for u in units.values())
    row["nonlinear_lut4_share"] = round(lut / rep.lut4, 4) if rep.lut4 else None
    return row


def markdown(rows: list[dict]) -> str:
    head = (
        "| nonlinear | board | float | ORT QDQ | golden | RTL | cycles | matrix | attention "
        "| LN/softmax | GELU | other | LUT4 | DSP | RAM | Fmax | nonlinear LUT4 |\n"
        + "| --- " * 17
        + "|\n"
    )
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['nonlinear']} | {r['board']} | {r['error']} |" + " |" * 15)
            continue
        c = r["cycles"]
        rtl = r.get("rtl", {})
        units = r.get("nonlinear_units", {})
        nl = sum(u.get("lut4", 0) for u in units.values())
        share = r.get("nonlinear_lut4_share")
        lines.append(
            "| "
            + " | ".join(
                str(v)
                for v in (
                    r["nonlinear"],
                    r["board"],
                    f"{100 * r['float']:.2f} %",
                    f"{100 * r['ort_qdq']:.2f} %",
                    f"{100 * r['golden']:.2f} %",
                    f"{100 * rtl['accuracy']:.2f} % ({rtl['vectors']})" if rtl else "-",
                    f"{r['cycles_total']:,}",
                    f"{c['matrix']:,}",
                    f"{c['attention']:,}",
                    f"{c['layernorm_softmax']:,}",
                    f"{c['gelu']:,}",
                    f"{c['other']:,}",
                    r.get("lut4", r.get("synth_error", "-")),
                    r.get("dsp", "-"),
                    r.get("ram", "-"),
                    f"{r['fmax_mhz']:.1f} MHz" if r.get("fmax_mhz") else "-",
                    f"{nl} ({100 * share:.1f} %)" if share is not None else "-",
                )
            )
            + " |"
        )
    return head + "\n".join(lines) + "\n"


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @bench_app.command("vit")
    def bench_vit_command(
        out: Path = typer.Option(
            Path("out/bench/vit"),
            "--out",
            "-o",
            help="Work folder: the example (models/, reused when present), the synthesis "
            "runs, vit.json and vit.md.",
        ),
        synth: bool = typer.Option(
            True, help="Synthesize and place (resources, Fmax); --no-synth: cycles, accuracy."
        ),
        rtl: int = typer.Option(
            0, help="Simulate the Verilog on the first N test vectors (RTL accuracy)."
        ),
        boards: Optional[str] = typer.Option(None, help="Comma-separated subset of boards."),
        nonlinear: Optional[str] = typer.Option(None, help="table, smurf or both (default)."),
    ):
        """The digits ViT with exact tables and with SMURF units: float / onnxruntime /
        golden / RTL accuracy, cycles split by kind of work, resources, Fmax."""

        def body():
            rows = bench_vit(
                out,
                synth=synth,
                rtl=rtl,
                boards=tuple(boards.split(",")) if boards else VIT_BOARDS,
                modes=tuple(nonlinear.split(",")) if nonlinear else MODES,
            )
            console.print(markdown(rows), highlight=False, soft_wrap=True)

        run_command(body)
