"""Float ONNX models into QDQ models nnloom imports: onnxruntime's static quantization.

``quantize_model(model, out, x)`` runs ``onnxruntime.quantization.quant_pre_process`` (shape
inference, BatchNorm and constant folding; skipped with a note when it fails) and then
``quantize_static`` in QDQ format on the calibration inputs ``x``: int8 weights (per output
channel by default), int8 or uint8 activations, MinMax, Percentile or Entropy calibration,
int32 biases at the scale input x weight. ``float_model_layers`` lists a float model's nodes
for ``nnloom inspect``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelError
from .vectors import check_data

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = [
    "QuantizeSettings",
    "quantize_model",
    "is_float_model",
    "float_model_layers",
    "CALIBRATIONS",
    "ACTIVATIONS",
    "QUANTIZE_HINT",
]

log = logging.getLogger(__name__)

CALIBRATIONS = ("minmax", "percentile", "entropy")
ACTIVATIONS = ("int8", "uint8")
QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearMatMul",
    "QLinearConv",
    "MatMulInteger",
    "ConvInteger",
    "Quant",
    "BipolarQuant",
    "Trunc",
    "IntQuant",
    "QLinearAdd",
    "DynamicQuantizeLinear",
}
QUANTIZE_HINT = (
    "nnloom quantize {model} --data calib.npz -o {stem}_qdq.onnx (or --calibrate "
    "calib.npz on generate/flow); calib.npz holds 'x', a few hundred typical "
    "float inputs"
)


@dataclass(frozen=True)
class QuantizeSettings:
    """What ``quantize_model`` did (printed by ``nnloom quantize``)."""

    activations: str = "int8"
    per_channel: bool = True
    calibration: str = "minmax"
    percentile: float = 99.999
    samples: int = 0
    preprocessed: bool = True

    def describe(self) -> str:
        cal = self.calibration + (
            f" ({self.percentile} %)" if self.calibration == "percentile" else ""
        )
        return (
            f"onnxruntime quantize_static, QDQ: {self.activations} activations "
            f"(asymmetric), int8 weights {'per channel' if self.per_channel else 'per tensor'}"
            f" (symmetric), int32 biases, {cal} calibration on {self.samples} samples"
            f"{'' if self.preprocessed else ', without quant_pre_process'}"
        )


def is_float_model(model: ModelProto) -> bool:
    """True when no node of the ONNX ``model`` quantizes anything."""
    return not any(n.op_type in QUANTIZED_OPS for n in model.graph.node)


def float_model_layers(model: ModelProto) -> list[dict]:
    """Each node of a float model: name, op, output shape (shape inference), parameters."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    shapes = {}
    for v in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in v.type.tensor_type.shape.dim
        ]
        shapes[v.name] = dims
    sizes = {t.name: int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer}
    out = []
    for i, n in enumerate(model.graph.node):
        out.append(
            {
                "name": n.name or n.output[0] or f"node{i}",
                "op": n.op_type,
                "output_shape": shapes.get(n.output[0], []) if n.output else [],
                "params": sum(sizes.get(x, 0) for x in n.input),
            }
        )
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _input_shape(model, x: np.ndarray, where: str):
    """The model's single float input: name and the per-sample shape the rows of x take."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(
            f"{where}: the model has {len(inputs)} graph inputs; nnloom quantizes models with one"
        )
    inp = inputs[0]
    if inp.type.tensor_type.elem_type not in (1, 10, 11):  # float, float16, double
        raise ModelError(f"{where}: graph input '{inp.name}' is not a float tensor")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
    sample = tuple(dims[1:])
    size = int(np.prod(x.shape[1:]))
    if sample and all(d > 0 for d in sample):
        if int(np.prod(sample)) != size:
            raise ModelError(
                f"{where}: x has shape {x.shape}, but graph input '{inp.name}' "
                f"takes {tuple(dims)} ({int(np.prod(sample))} values per sample)"
            )
        return inp.name, sample
    return inp.name, tuple(x.shape[1:])


def quantize_model(
    model: str | Path,
    out: str | Path,
    x: np.ndarray,
    *,
    activations: str = "int8",
    per_channel: bool = True,
    calibration: str = "minmax",
    samples: int = 512,
    percentile: float = 99.999,
    data_name: str = "data",
) -> QuantizeSettings:
    """Quantize the float ONNX ``model`` on calibration inputs ``x`` into ``out`` (QDQ;
    written atomically); returns the settings used."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    from .onnx_import import load_onnx

    model, out = Path(model), Path(out)
    if activations not in ACTIVATIONS:
        raise ModelError(f"activations '{activations}': expected one of {', '.join(ACTIVATIONS)}")
    if calibration not in CALIBRATIONS:
        raise ModelError(f"calibration '{calibration}': expected one of {', '.join(CALIBRATIONS)}")
    if samples < 1:
        raise ModelError(f"samples must be at least 1, got {samples}")
    if not 0 < percentile <= 100:
        raise ModelError(f"percentile must lie in (0, 100], got {percentile}")
    proto = load_onnx(model)
    if not is_float_model(proto):
        raise ModelError(
            f"{model}: already quantized (it has "
            f"{next(n.op_type for n in proto.graph.node if n.op_type in QUANTIZED_OPS)}"
            f" nodes); nnloom imports it as it is"
        )
    x, _ = check_data(x, None, data_name)
    name, sample = _input_shape(proto, x, str(model))
    rows = np.asarray(x[:samples], dtype=np.float32).reshape((-1, 1) + sample)
    feeds = iter([{name: r} for r in rows])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[calibration]
    extra = {"CalibPercentile": percentile} if calibration == "percentile" else {}
    with tempfile.TemporaryDirectory(prefix="nnloom-quantize-") as tmp:
        source = Path(tmp) / "pre.onnx"
        preprocessed = True
        try:
            quant_pre_process(str(model), str(source), skip_symbolic_shape=True)
        except Exception as exc:
            preprocessed = False
            log.warning(
                "%s: onnxruntime quant_pre_process failed (%s); quantizing the model as it is",
                model,
                _first_line(exc),
            )
            source = model
        target = Path(tmp) / "out.onnx"
        try:
            quantize_static(
                str(source),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                calibrate_method=method,
                extra_options=extra,
            )
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{model}: onnxruntime quantize_static failed "
                f"({type(exc).__name__}: {_first_line(exc)})"
            ) from None
        onnx.checker.check_model(str(target))
        from ._atomic import write_bytes_atomic

        write_bytes_atomic(out, target.read_bytes())
    return QuantizeSettings(
        activations, per_channel, calibration, percentile, int(len(rows)), preprocessed
    )
