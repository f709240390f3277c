"""The digits MLP fine-tuned at mixed bits with ``frontends.compress.qat``.

``make_digits_qat(out_dir, bits=...)`` trains the float 64-32-10 MLP of ``digits_mlp`` (same
split, same seed), wraps it in fake-quantized layers with the chosen bits per layer (default:
4-bit weights and 4-bit activations in the hidden layer, ternary weights and 8-bit logits in
the classifier), calibrates the activation scales on the training split, fine-tunes with
straight-through rounding, exports QONNX and imports it. It writes:

- ``digits_qat.onnx`` -- the QONNX model nnloom compiles (``nnloom flow digits_qat.onnx``),
- ``digits_test.npz`` -- the held-out split: ``x`` (float32, N x 64) and ``y`` (labels),

and returns the test accuracies of the float model, the fake-quantized model before (PTQ) and
after (QAT) fine-tuning, and the integer golden model of the imported graph.

Run it: ``python -m frontends.examples.digits_qat out/models``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._training import module_accuracy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..compress.qat import LayerBits

__all__ = ["DigitsQat", "make_digits_qat"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigitsQat:
    model: Path
    test_data: Path
    bits: tuple
    float_accuracy: float
    ptq_accuracy: float
    qat_accuracy: float
    golden_accuracy: float


def _default_bits():
    from ..compress.qat import LayerBits

    return (LayerBits(weight=4, act=4), LayerBits(weight=2, act=8))


def make_digits_qat(
    out_dir: str | Path,
    *,
    bits: Sequence[LayerBits] | None = None,
    epochs: int = 15,
    float_epochs: int = 60,
) -> DigitsQat:
    from .. import reference
    from .._atomic import savez_atomic
    from ..compress.qat import QatNet, accuracy, export_qonnx, finetune
    from ..onnx_import import import_onnx
    from .digits_mlp import _train, load_digits_split

    bits = tuple(bits) if bits is not None else _default_bits()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = _train(x_train, y_train, epochs=float_epochs)
    float_acc = module_accuracy(model, x_test, y_test)

    net = QatNet.from_float(model, bits, input_bits=8, input_signed=False)
    net.calibrate(x_train)
    ptq_acc = accuracy(net, x_test, y_test)
    finetune(net, x_train, y_train, epochs=epochs, lr=1e-3)
    qat_acc = accuracy(net, x_test, y_test)

    path = export_qonnx(net, out_dir / "digits_qat.onnx", (64,))
    graph = import_onnx(path)
    golden = reference.predict(graph, x_test)
    golden_acc = float((golden.argmax(1) == y_test).mean())
    data_path = out_dir / "digits_test.npz"
    savez_atomic(data_path, x=x_test, y=y_test)
    log.info(
        "digits QAT %s: float %.4f, PTQ %.4f, QAT %.4f, golden %.4f",
        bits,
        float_acc,
        ptq_acc,
        qat_acc,
        golden_acc,
    )
    return DigitsQat(path, data_path, bits, float_acc, ptq_acc, qat_acc, golden_acc)


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    made = make_digits_qat(sys.argv[1] if len(sys.argv) > 1 else "out/models")
    print(
        f"bits per layer: {', '.join(f'w{b.weight}/a{b.act}' for b in made.bits)}\n"
        f"float {100 * made.float_accuracy:.2f} %, PTQ {100 * made.ptq_accuracy:.2f} %, "
        f"QAT {100 * made.qat_accuracy:.2f} %, integer golden "
        f"{100 * made.golden_accuracy:.2f} %\nmodel {made.model}\ntest data {made.test_data}"
    )
