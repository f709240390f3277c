"""Small IR graphs for the GEMM tests, built directly (no ONNX): chains of dense layers with
chosen sizes, weights and quantization, so odd shapes and saturation are easy to make."""

from __future__ import annotations

import numpy as np

from frontends.ir import Graph, IntType, Node, QuantParams, Tensor


def _tensor(name, size, dtype, zp=0):
    return Tensor(name, (size,), dtype, QuantParams(np.float32(0.05), np.int64(zp)))


def dense_chain(sizes, *, seed=0, in_dtype=IntType(8, False), in_zp=0, weight_max=127,
                relu=True, shift=18, mult_bits=14, weights=None, name="chain") -> Graph:
    """``len(sizes) - 1`` dense layers; hidden layers ReLU (uint8), the last int8."""
    rng = np.random.default_rng(seed)
    tensors = {"x": _tensor("x", sizes[0], in_dtype, in_zp)}
    nodes = []
    prev, zp_prev = "x", in_zp
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        out_dtype = IntType(8, True) if last else IntType(8, False)
        out_zp = 3 if last else 0
        w = weights[i] if weights is not None else rng.integers(-weight_max, weight_max + 1,
                                                                (b, a))
        bias = rng.integers(-2000, 2000, b)
        mult = rng.integers(1 << (mult_bits - 1), 1 << mult_bits, b)
        lo, hi = (out_dtype.min, out_dtype.max) if (last or not relu) else (0, 255)
        y = f"y{i}"
        tensors[y] = _tensor(y, b, out_dtype, out_zp)
        nodes.append(Node(f"fc{i}", "dense", (prev,), (y,),
                          attrs={"input_zero_point": zp_prev, "output_zero_point": out_zp,
                                 "shift": shift, "lo": lo, "hi": hi},
                          weights={"weight": np.asarray(w, np.int64),
                                   "bias": bias.astype(np.int64),
                                   "multiplier": mult.astype(np.int64)},
                          source_op="Gemm"))
        prev, zp_prev = y, out_zp
    return Graph(name, tensors, tuple(nodes), ("x",), (prev,))


def saturating_chain() -> Graph:
    """Weights at the int8 extremes, so all-max/all-min inputs drive the accumulators to
    the edges of their derived range and the requantizer into its clamps."""
    w0 = np.full((6, 37), 127, np.int64)
    w0[1] = -128
    w0[2, ::2] = -128
    w0[3] = np.where(np.arange(37) % 3 == 0, 127, -128)
    w1 = np.full((5, 6), -128, np.int64)
    w1[0] = 127
    return dense_chain((37, 6, 5), weights=[w0, w1], shift=12, seed=7, name="saturate")


def _quantized_qdq(model, path, *, seed):
    """``model`` (an 8x8 one-channel image in) exported with the TorchScript exporter and
    quantized by onnxruntime to QDQ (u8 activations, s8 weights), calibrated on 32 uniform
    random images; returns ``path``."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    float_path = path.with_name(path.stem + "_float.onnx")
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(float_path), input_names=["x"],
                      output_names=["y"], dynamo=False, opset_version=17)
    rng = np.random.default_rng(seed)
    feeds = iter([{"x": rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)}
                  for _ in range(32)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path


def qdq_cnn(path, *, seed=0):
    """A QDQ CNN (uint8 activations, int8 weights) with every GEMM-shaped op the overlay
    lowers: 3x3 conv (pad 1), depthwise 3x3, pointwise 1x1, a residual Add, a strided 3x3
    conv, GlobalAveragePool and a Linear head, on an 8x8 one-channel image."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pw = nn.Conv2d(8, 8, 1)
            self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
            self.fc = nn.Linear(12, 10)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = torch.relu(x + self.pw(torch.relu(self.dw(x))))
            x = torch.relu(self.down(x))
            return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    torch.manual_seed(seed)
    return _quantized_qdq(Net().eval(), path, seed=seed)


def qdq_pool_cat(path, *, seed=0):
    """A QDQ CNN with the ops the post unit runs besides add: a 2x2 max pool, a concat of
    two branches along channels, a padded 3x3 stride-1 max pool (border windows hold
    padding), then GlobalAveragePool and a Linear head, on an 8x8 one-channel image."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.branch = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.stem(x)), 2)
            x = torch.cat([x, torch.relu(self.branch(x))], dim=1)
            x = nn.functional.max_pool2d(x, 3, stride=1, padding=1)
            return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    torch.manual_seed(seed)
    return _quantized_qdq(Net().eval(), path, seed=seed)
