"""``nnloom quantize``: a float ONNX model into a QDQ model (onnxruntime static quantization,
``frontends.quantize``), and ``calibrated``, the same on the way into ``generate``/``flow``
(``--calibrate calib.npz``)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from frontends.quantize import QuantizeSettings

__all__ = ["register", "calibrated", "run_quantize"]


def run_quantize(
    model: Path,
    out: Path,
    data: Path,
    *,
    activations: str = "int8",
    per_channel: bool = True,
    calibration: str = "minmax",
    samples: int = 512,
    percentile: float = 99.999,
) -> QuantizeSettings:
    """Quantize ``model`` on ``data``'s ``x`` into ``out``; onnxruntime's own progress prints
    are kept off the terminal. Returns the settings used."""
    from frontends.quantize import quantize_model
    from frontends.vectors import load_data

    x, _ = load_data(data)
    with contextlib.redirect_stdout(io.StringIO()):
        return quantize_model(
            model,
            out,
            x,
            activations=activations,
            per_channel=per_channel,
            calibration=calibration,
            samples=samples,
            percentile=percentile,
            data_name=str(data),
        )


@contextlib.contextmanager
def calibrated(
    model: Path, calibrate: Optional[Path], console: Console | None = None
) -> Iterator[Path]:
    """``model`` itself, or (``calibrate`` given) its QDQ quantization in a temporary folder
    under the same file name (so the design keeps its name), removed afterwards."""
    if calibrate is None:
        yield model
        return
    with tempfile.TemporaryDirectory(prefix="nnloom-calibrate-") as tmp:
        target = Path(tmp) / Path(model).name
        settings = run_quantize(model, target, calibrate)
        if console is not None:
            console.print(
                f"quantized {model} on {calibrate}: {settings.describe()}", highlight=False
            )
        yield target


def keep_in_artefact(quantized: Path, artefact: Path) -> Path | None:
    """Copy the quantized model the artefact was generated from into it (model_qdq.onnx)."""
    from rtl_gen.artefact import atomic_write

    if not Path(artefact).is_dir():
        return None
    path = Path(artefact) / "model_qdq.onnx"
    atomic_write(path, Path(quantized).read_bytes())
    return path


def inspect_float(model: Path, as_json: bool, console: Console) -> bool:
    """``nnloom inspect`` of a float model (no quantizer anywhere): its layers and how to
    quantize it; False (nothing printed) for a quantized model."""
    import json

    from rich.table import Table

    from frontends.onnx_import import load_onnx
    from frontends.quantize import QUANTIZE_HINT, float_model_layers, is_float_model

    proto = load_onnx(model)
    if not is_float_model(proto):
        return False
    layers = float_model_layers(proto)
    hint = QUANTIZE_HINT.format(model=model, stem=Path(model).with_suffix(""))
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "model": str(model),
                    "float": True,
                    "layers": layers,
                    "needs_quantization": hint,
                    "error": None,
                }
            )
        )
        return True
    table = Table(title=f"nnloom inspect: {Path(model).name} (float)")
    for col in ("layer", "op", "output shape", "parameters"):
        table.add_column(col, overflow="fold")
    for layer in layers:
        table.add_row(
            layer["name"],
            layer["op"],
            "×".join(map(str, layer["output_shape"])) or "?",
            f"{layer['params']:,}" if layer["params"] else "—",
        )
    from flows.console import print_wide

    print_wide(table)
    console.print(
        f"{len(layers)} nodes, {sum(l['params'] for l in layers):,} parameters; a "
        f"float model: nnloom needs it quantized: {hint}",
        highlight=False,
    )
    return True


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    from flows.console import console, run_command

    @app.command()
    def quantize(
        model: Path = typer.Argument(..., help="Float ONNX model."),
        data: Path = typer.Option(
            ...,
            "--data",
            help=".npz whose 'x' holds calibration inputs (float, one sample per row).",
        ),
        out: Optional[Path] = typer.Option(
            None, "--out", "-o", help="Quantized model (default MODEL_qdq.onnx)."
        ),
        activations: str = typer.Option("int8", help="Activation type: int8 or uint8."),
        per_channel: bool = typer.Option(
            True,
            "--per-channel/--per-tensor",
            help="Weight scales per output channel or one per tensor.",
        ),
        calibration: str = typer.Option(
            "minmax", help="Calibration: minmax, percentile or entropy."
        ),
        percentile: float = typer.Option(
            99.999, help="With --calibration percentile: the percentile kept."
        ),
        samples: int = typer.Option(512, help="Calibration samples used (the first N rows of x)."),
    ):
        """Quantize a float ONNX model with onnxruntime (static, QDQ) so nnloom can import
        it; prints the settings it used."""

        def body():
            target = out or model.with_name(model.stem + "_qdq.onnx")
            settings = run_quantize(
                model,
                target,
                data,
                activations=activations,
                per_channel=per_channel,
                calibration=calibration,
                samples=samples,
                percentile=percentile,
            )
            console.print(f"wrote {target}: {settings.describe()}", highlight=False)

        run_command(body)
