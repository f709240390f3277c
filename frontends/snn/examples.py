"""A small CNN on scikit-learn's 8x8 digits, quantized like the digits MLP example (QDQ, int8):
``Conv2d(1, 4, 3, stride 2, padding 1) - ReLU - Linear(64, 10)``, for the spiking engine's
CNN benchmark (input 1x8x8). ``make_digits_cnn(out_dir)`` writes ``digits_cnn.onnx``,
``digits_cnn_float.onnx`` and ``digits_test.npz`` (x: N x 64 floats, y: labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from frontends.examples._training import fit, module_accuracy, quantize_qdq
from frontends.examples.digits_mlp import DigitsMlp, load_digits_split

__all__ = ["make_digits_cnn"]


def _train(x, y, epochs=40, seed=0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return fit(model, x.reshape(-1, 1, 8, 8), y, opt, epochs=epochs, seed=seed).eval()


def make_digits_cnn(out_dir: str | Path) -> DigitsMlp:
    import onnx
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = _train(x_train, y_train)
    float_acc = module_accuracy(model, x_test.reshape(-1, 1, 8, 8), y_test)
    float_path = out_dir / "digits_cnn_float.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 8, 8),),
        str(float_path),
        input_names=["x"],
        output_names=["logits"],
        dynamo=False,
        opset_version=17,
    )
    proto = onnx.load(str(float_path))
    proto.producer_version = ""
    onnx.save(proto, str(float_path))
    quant_path = out_dir / "digits_cnn.onnx"
    quantize_qdq(float_path, quant_path, x_train.reshape(-1, 1, 8, 8), per_channel=False)
    data_path = out_dir / "digits_test.npz"
    np.savez(data_path, x=x_test, y=y_test)
    return DigitsMlp(quant_path, float_path, data_path, float_acc)
