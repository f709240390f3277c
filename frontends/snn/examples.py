"""A small CNN on scikit-learn's 8x8 digits, quantized like the digits MLP example (QDQ, int8):
``Conv2d(1, 4, 3, stride 2, padding 1) - ReLU - Linear(64, 10)``, for the spiking engine's
CNN benchmark (input 1x8x8). ``make_digits_cnn(out_dir)`` writes ``digits_cnn.onnx``,
``digits_cnn_float.onnx`` and ``digits_test.npz`` (x: N x 64 floats, y: labels)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

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
    xt, yt = torch.from_numpy(x.reshape(-1, 1, 8, 8)), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def make_digits_cnn(out_dir: str | Path) -> DigitsMlp:
    import onnx
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = _train(x_train, y_train)
    with torch.no_grad():
        float_acc = float(
            (
                model(torch.from_numpy(x_test.reshape(-1, 1, 8, 8))).argmax(1).numpy() == y_test
            ).mean()
        )
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
    feeds = iter([{"x": x_train[i : i + 1].reshape(1, 1, 8, 8)} for i in range(len(x_train))])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    quant_path = out_dir / "digits_cnn.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(float_path),
            str(quant_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
        )
    finally:
        root.setLevel(level)
    data_path = out_dir / "digits_test.npz"
    np.savez(data_path, x=x_test, y=y_test)
    return DigitsMlp(quant_path, float_path, data_path, float_acc)
