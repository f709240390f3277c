"""Small quantized ONNX models made inside the tests (nothing is checked in)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def qdq_mlp(path: Path, *, sizes=(16, 12, 5), per_channel=False, activation="int8",
            seed=0, calibration=64) -> Path:
    """A random-weight MLP (Linear-ReLU-...-Linear) quantized by onnxruntime quantize_static."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    model = nn.Sequential(*layers).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    float_path = path.with_name(path.stem + "_float.onnx")
    torch.onnx.export(model, (torch.zeros(1, sizes[0]),), str(float_path), input_names=["x"],
                      output_names=["y"], dynamo=False, opset_version=17)
    rng = np.random.default_rng(seed)
    feeds = iter([{"x": rng.uniform(-1, 1, (1, sizes[0])).astype(np.float32)}
                  for _ in range(calibration)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    act = QuantType.QInt8 if activation == "int8" else QuantType.QUInt8
    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=per_channel)
    return path
