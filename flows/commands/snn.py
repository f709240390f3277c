"""``nnloom generate MODEL --engine snn`` (ONNX or NIR) and ``nnloom bench snn``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

log = logging.getLogger(__name__)

__all__ = ["register", "generate_snn", "bench_snn"]


def _user_error(text: str):
    from flows.cli import UserError
    return UserError(text)


def _load_data(data):
    from flows.cli import _load_data as load
    return load(Path(data)) if data is not None else (None, None)


def generate_snn(model: Path, out: Path, data=None, *, t_max: int | None = None,
                 random: int = 32, seed: int = 0):
    """Write the spiking engine's artefact for ``model`` (.onnx: exact ST-BIF conversion;
    .nir: IF/LIF network, see ``frontends.snn.nir_import``); returns the artefact path."""
    model = Path(model)
    if not model.is_file():
        raise _user_error(f"{model}: no such model file")
    if model.suffix.lower() == ".nir":
        from rtl_gen.snn.emit import write_nir_artefact
        return write_nir_artefact(model, out)
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.snn.emit import write_from_graph

    x, y = _load_data(data)
    graph = import_onnx(model)
    vectors = golden_vectors(graph, data_x=x, data_y=y, random=random, seed=seed)
    return write_from_graph(graph, out, vectors=vectors, t_max=t_max)


def _synth(sources, top, family, out_dir) -> dict:
    from flows.synth import synthesize
    report = synthesize(sources, top, family=family, out_dir=out_dir, clock_mhz=50.0)
    used = {k: v["used"] for k, v in report.utilisation.items()}
    return {"lut4": report.lut4, "ff": report.ff, "fmax_mhz": round(report.fmax_mhz, 2),
            "bram": used.get("DP16KD", 0) + used.get("ICESTORM_RAM", 0),
            "dsp": used.get("MULT18X18D", 0) + used.get("ICESTORM_DSP", 0),
            "device": report.device, "utilisation": used}


def bench_snn(model: Optional[Path], data: Optional[Path], out: Path, *, limit: int = 0,
              family: str = "ecp5", synth: bool = True, example: str = "mlp",
              progress=print) -> dict:
    """The figures of ``nnloom bench snn``: the spiking engine and the dense engine on the
    same quantized network (default: the digits MLP, or with ``example="cnn"`` the digits
    CNN, and its test set). The dense engine runs dense layers only: for a CNN its column is
    left out."""
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors
    from rtl_gen.artefact import Artefact
    from rtl_gen.dense import DensePlan
    from rtl_gen.emit import write_artefact
    from rtl_gen.snn.emit import write_from_graph
    from sim.runner import run_sim

    out = Path(out)
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
        raise _user_error("the spiking RTL differs from the golden:\n"
                          + "\n".join(result.mismatches[:10]))
    summary = json.loads((art.path / "sim" / "summary.json").read_text())
    with np.load(result.outputs) as f:
        rtl_out = f["outputs"]
    labels = art.vectors()["labels"][:len(rtl_out)]
    mask = labels >= 0
    accuracy = float((rtl_out[mask].argmax(1) == labels[mask]).mean()) if mask.any() else None
    snn_manifest = art.manifest
    dense_ok = all(n.op == "dense" for n in graph.nodes)
    if dense_ok:
        dense_plan = DensePlan.from_graph(graph)
        dense_dir = write_artefact(graph, out / "dense", vectors=vectors)
    figures = {
        "model": str(model),
        "vectors": result.vectors, "sim_seconds": round(time.monotonic() - t0, 1),
        "rtl_accuracy": accuracy, "labelled": int(mask.sum()),
        "snn": {"cycles": summary["cycles"], "steps": summary["steps"],
                "t_max": snn_manifest["parameters"]["t_max"],
                "synops_mean": snn_manifest["snn"]["synops_mean"],
                "spikes_per_neuron": snn_manifest["snn"]["spikes_per_neuron"],
                "memory_bits": snn_manifest["parameters"]["memory_bits"]},
        "dense": {"cycles": dense_plan.cycles(), "macs": dense_plan.macs(),
                  "lanes": dense_plan.lanes} if dense_ok else
                 {"cycles": None, "macs": int(sum(l["macs"] for l in snn_manifest["layers"])),
                  "lanes": None},
    }
    if synth:
        progress(f"synthesizing both engines for {family} (yosys, nextpnr)…")
        figures["snn"]["synth"] = _synth(art.rtl_sources, art.top, family, out / "synth_snn")
        if dense_ok:
            dense_art = Artefact(dense_dir)
            figures["dense"]["synth"] = _synth(dense_art.rtl_sources, dense_art.top, family,
                                               out / "synth_dense")
    (out / "bench_snn.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _table(figures: dict):
    from rich.table import Table
    snn, dense = figures["snn"], figures["dense"]
    t = Table(title=f"nnloom bench snn: {Path(figures['model']).name}, "
                    f"{figures['vectors']} vectors bit-exact")
    t.add_column("")
    t.add_column("snn (ST-BIF)", justify="right")
    t.add_column("dense", justify="right")
    cyc = snn["cycles"]
    t.add_row("cycles / inference", f"{cyc['mean']:.0f} mean ({cyc['min']}–{cyc['max']})",
              str(dense["cycles"] or "— (conv)"))
    ssyn, dsyn = snn.get("synth"), dense.get("synth") or {}
    if ssyn:
        t.add_row("µs / inference at Fmax",
                  f"{cyc['mean'] / ssyn['fmax_mhz']:.1f} mean, {cyc['max'] / ssyn['fmax_mhz']:.1f}"
                  f" max", f"{dense['cycles'] / dsyn['fmax_mhz']:.1f}" if dsyn else "—")
    st = snn["steps"]
    t.add_row("time steps to silence", f"{st['mean']:.1f} mean, p99 {st['p99']:.0f}, "
              f"max {st['max']} (T_max {snn['t_max']})", "—")
    t.add_row("synaptic ops / MACs", f"{snn['synops_mean']:.0f} adds", f"{dense['macs']} MACs")
    t.add_row("spikes per neuron", ", ".join(f"{s:.1f}" for s in snn["spikes_per_neuron"]),
              "—")
    if ssyn:
        for key, name in (("lut4", "LUT4"), ("ff", "FF"), ("bram", "BRAM"), ("dsp", "DSP"),
                          ("fmax_mhz", "Fmax MHz")):
            t.add_row(f"{name} ({ssyn['device']})", str(ssyn[key]), str(dsyn.get(key, "—")))
    if figures["rtl_accuracy"] is not None:
        t.add_row("RTL accuracy", f"{100 * figures['rtl_accuracy']:.2f} % "
                  f"({figures['labelled']} labelled)", "same codes")
    return t


def _bench_rows(out_dir: Path) -> list[dict]:
    """``nnloom bench``'s rows: the digits MLP on the snn engine and on the dense engine."""
    f = bench_snn(None, None, Path(out_dir), progress=log.info)
    rows = []
    for engine in ("snn", "dense"):
        fig = f[engine]
        if fig["cycles"] is None:
            continue
        syn = fig.get("synth", {})
        cycles = fig["cycles"]["mean"] if engine == "snn" else fig["cycles"]
        row = {"engine": engine, "config": "digits MLP" + (" (ST-BIF)" if engine == "snn" else
                                                            f" ({fig['lanes']} lanes)"),
               "family": "ecp5", "lut4": syn.get("lut4"), "ff": syn.get("ff"),
               "dsp": syn.get("dsp"), "ram": syn.get("bram"), "fmax_mhz": syn.get("fmax_mhz"),
               "cycles": cycles, "accuracy": f["rtl_accuracy"]}
        if engine == "snn":
            row.update(cycles_max=fig["cycles"]["max"], steps_mean=fig["steps"]["mean"],
                       steps_max=fig["steps"]["max"], synops=fig["synops_mean"])
        rows.append(row)
    return rows


def register(app: typer.Typer, bench_app: typer.Typer):
    from flows.cli import GENERATORS, console, run_command

    GENERATORS["snn"] = generate_snn
    from flows.bench import BENCHES
    BENCHES["snn"] = _bench_rows

    @bench_app.command("snn")
    def bench(model: Optional[Path] = typer.Argument(None, help="Quantized ONNX model "
                                                     "(default: the digits MLP example)."),
              data: Optional[Path] = typer.Option(None, help=".npz with 'x' and 'y'."),
              out: Path = typer.Option(Path("out/bench_snn"), "--out", "-o"),
              limit: int = typer.Option(0, help="Simulate only the first N vectors (0: all)."),
              family: str = typer.Option("ecp5", help="ecp5 (LFE5U-85F) or ice40 (UP5K)."),
              synth: bool = typer.Option(True, help="Synthesize both engines."),
              example: str = typer.Option("mlp", help="Without MODEL: the digits 'mlp' or "
                                          "'cnn' example.")):
        """The spiking engine beside the dense engine on one network: cycles per inference,
        time steps, synaptic operations, spikes per neuron, resources and Fmax."""
        def body():
            with console.status("benchmarking the snn engine…") as status:
                figures = bench_snn(model, data, out, limit=limit, family=family,
                                    synth=synth, example=example, progress=status.update)
            console.print(_table(figures))
            console.print(f"figures: {out / 'bench_snn.json'}")
        run_command(body)
