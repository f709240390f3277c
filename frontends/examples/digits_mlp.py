"""A small MLP on scikit-learn's bundled 8x8 digits, quantized by onnxruntime (QDQ, int8).

``make_digits_mlp(out_dir)`` trains the float model in PyTorch (a few seconds on a CPU),
exports it with ``torch.onnx``, quantizes it with ``onnxruntime.quantization.quantize_static``
(static QDQ, int8 activations and weights, calibrated on the training split) and writes:

- ``digits_mlp_float.onnx`` — the float model,
- ``digits_mlp.onnx`` — the quantized model nnloom compiles,
- ``digits_test.npz`` — the held-out test split: ``x`` (float32, N x 64) and ``y`` (labels).

Everything is seeded, so the same call writes the same models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._training import fit, module_accuracy, quantize_qdq

__all__ = ["DigitsMlp", "make_digits_mlp", "load_digits_split"]

log = logging.getLogger(__name__)

HIDDEN = (32,)
SEED = 0


@dataclass(frozen=True)
class DigitsMlp:
    quantized: Path
    float_model: Path
    test_data: Path
    float_accuracy: float


def load_digits_split(seed: int = SEED) -> list[np.ndarray]:
    """Digits scaled to [0, 1], split 70/30 with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)


def _train(x, y, hidden=HIDDEN, epochs=60, seed=SEED):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    width = x.shape[1]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return fit(model, x, y, opt, epochs=epochs, seed=seed).eval()


def make_digits_mlp(out_dir: str | Path) -> DigitsMlp:
    import onnx
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = _train(x_train, y_train)
    float_acc = module_accuracy(model, x_test, y_test)

    float_path = out_dir / "digits_mlp_float.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 64),),
        str(float_path),
        input_names=["x"],
        output_names=["logits"],
        dynamo=False,
        opset_version=17,
    )
    # Clear the exporter's producer version so the file does not change with torch.
    proto = onnx.load(str(float_path))
    proto.producer_version = ""
    onnx.save(proto, str(float_path))

    quant_path = out_dir / "digits_mlp.onnx"
    quantize_qdq(float_path, quant_path, x_train, per_channel=False)
    data_path = out_dir / "digits_test.npz"
    np.savez(data_path, x=x_test, y=y_test)
    log.info("digits MLP: float test accuracy %.4f", float_acc)
    return DigitsMlp(quant_path, float_path, data_path, float_acc)


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    print(make_digits_mlp(sys.argv[1] if len(sys.argv) > 1 else "out/models"))
