"""A 4-bit Brevitas MLP on scikit-learn's digits, exported with Brevitas ``export_qonnx``.

Needs the optional extra ``brevitas`` (``pip install -e .[brevitas]``).
``make_digits_brevitas(out_dir)`` trains (quantization-aware, from scratch) a 64-32-10 MLP
with 8-bit unsigned inputs, 4-bit per-channel weights, 4-bit ReLU activations and
``Int32Bias`` biases (so the integer hardware is bit-exact with the module), exports it with
torch's TorchScript exporter and writes:

- ``digits_brevitas.onnx`` -- the QONNX model (``nnloom flow digits_brevitas.onnx``),
- ``digits_test.npz`` -- the held-out split: ``x`` (float32, N x 64) and ``y`` (labels).

Run it: ``python -m frontends.examples.digits_brevitas out/models``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from ._training import fit, module_accuracy

__all__ = ["DigitsBrevitas", "make_digits_brevitas"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigitsBrevitas:
    model: Path
    test_data: Path
    module_accuracy: float
    golden_accuracy: float


def _module(hidden: int, weight_bits: int, act_bits: int):
    import brevitas.nn as qnn
    from brevitas.quant import (
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int32Bias,
        Uint8ActPerTensorFloat,
    )
    from torch import nn

    return nn.Sequential(
        qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(
            64,
            hidden,
            bias=True,
            weight_quant=Int8WeightPerChannelFloat,
            weight_bit_width=weight_bits,
            bias_quant=Int32Bias,
        ),
        qnn.QuantReLU(bit_width=act_bits, return_quant_tensor=True),
        qnn.QuantLinear(
            hidden,
            10,
            bias=True,
            weight_quant=Int8WeightPerChannelFloat,
            weight_bit_width=weight_bits,
            bias_quant=Int32Bias,
            output_quant=Int8ActPerTensorFloat,
        ),
    )


def make_digits_brevitas(
    out_dir: str | Path,
    *,
    hidden: int = 32,
    weight_bits: int = 4,
    act_bits: int = 4,
    epochs: int = 40,
    seed: int = 0,
) -> DigitsBrevitas:
    import torch
    from brevitas.export import export_qonnx

    from .. import reference
    from .._atomic import savez_atomic, write_bytes_atomic
    from ..onnx_import import import_onnx
    from .digits_mlp import load_digits_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    torch.manual_seed(seed)
    model = _module(hidden, weight_bits, act_bits)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    fit(model, x_train, y_train, opt, epochs=epochs, seed=seed)
    model.eval()
    module_acc = module_accuracy(model, x_test, y_test)

    path = out_dir / "digits_brevitas.onnx"
    tmp = out_dir / ".digits_brevitas.export.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.zeros(1, 64), str(tmp), dynamo=False)
    write_bytes_atomic(path, tmp.read_bytes())
    tmp.unlink()
    graph = import_onnx(path)
    golden_acc = float((reference.predict(graph, x_test).argmax(1) == y_test).mean())
    data_path = savez_atomic(out_dir / "digits_test.npz", x=x_test, y=y_test)
    log.info(
        "digits Brevitas w%d/a%d: module %.4f, golden %.4f",
        weight_bits,
        act_bits,
        module_acc,
        golden_acc,
    )
    return DigitsBrevitas(path, data_path, module_acc, golden_acc)


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    made = make_digits_brevitas(sys.argv[1] if len(sys.argv) > 1 else "out/models")
    print(
        f"Brevitas module {100 * made.module_accuracy:.2f} %, integer golden "
        f"{100 * made.golden_accuracy:.2f} %\nmodel {made.model}\ntest data {made.test_data}"
    )
