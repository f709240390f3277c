"""Small IR graphs for the GEMM tests, built directly (no ONNX): chains of dense layers with
chosen sizes, weights and quantization, so odd shapes and saturation are easy to make."""

from __future__ import annotations

import numpy as np

from frontends.ir import Graph, IntType, Node, QuantParams, Tensor


def _tensor(name, size, dtype, zp=0):
    return Tensor(name, (size,), dtype, QuantParams(np.float32(0.05), np.int64(zp)))


def dense_chain(
    sizes,
    *,
    seed=0,
    in_dtype=IntType(8, False),
    in_zp=0,
    weight_max=127,
    relu=True,
    shift=18,
    mult_bits=14,
    weights=None,
    name="chain",
) -> Graph:
    """``len(sizes) - 1`` dense layers; hidden layers ReLU (uint8), the last int8."""
    rng = np.random.default_rng(seed)
    tensors = {"x": _tensor("x", sizes[0], in_dtype, in_zp)}
    nodes = []
    prev, zp_prev = "x", in_zp
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        out_dtype = IntType(8, True) if last else IntType(8, False)
        out_zp = 3 if last else 0
        w = weights[i] if weights is not None else rng.integers(-weight_max, weight_max + 1, (b, a))
        bias = rng.integers(-2000, 2000, b)
        mult = rng.integers(1 << (mult_bits - 1), 1 << mult_bits, b)
        lo, hi = (out_dtype.min, out_dtype.max) if (last or not relu) else (0, 255)
        y = f"y{i}"
        tensors[y] = _tensor(y, b, out_dtype, out_zp)
        nodes.append(
            Node(
                f"fc{i}",
                "dense",
                (prev,),
                (y,),
                attrs={
                    "input_zero_point": zp_prev,
                    "output_zero_point": out_zp,
                    "shift": shift,
                    "lo": lo,
                    "hi": hi,
                },
                weights={
                    "weight": np.asarray(w, np.int64),
                    "bias": bias.astype(np.int64),
                    "multiplier": mult.astype(np.int64),
                },
                source_op="Gemm",
            )
        )
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
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 8, 8),),
        str(float_path),
        input_names=["x"],
        output_names=["y"],
        dynamo=False,
        opset_version=17,
    )
    rng = np.random.default_rng(seed)
    feeds = iter([{"x": rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)} for _ in range(32)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    quantize_static(
        str(float_path),
        str(path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
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


def conv_net(
    in_shape, layers, *, seed=0, residual=None, head=None, name="convs", weight_max=127
) -> Graph:
    """A chain of convolutions built directly in the IR (no ONNX), for window edge cases:
    ``layers`` are dicts of ``cout``, ``kernel`` (kh, kw), and optionally ``stride``,
    ``pads`` (top, left, bottom, right), ``dilation``, ``group``; uint8 ReLU activations
    (zero point 3 on the input, so padding differs from 0), int8 weights. ``residual``
    (i, j): layer j's output is added to layer i's (same shape) and the chain continues
    from the sum. ``head``: a dense layer of that many outputs on the flattened result.
    ``weight_max``: the convolutions' weights are in ``[-weight_max, weight_max]`` (1:
    ternary, what the LUT core holds exactly)."""
    from frontends.im2col import Window, conv_im2col

    rng = np.random.default_rng(seed)
    bias_max = 3000 if weight_max > 7 else 300
    q = QuantParams(np.float32(0.05), np.int64(0))
    u8 = IntType(8, False)
    tensors = {"x": Tensor("x", tuple(in_shape), u8, QuantParams(np.float32(0.05), np.int64(3)))}
    nodes, prev, zp, shape, outs = [], "x", 3, tuple(in_shape), []
    for i, spec in enumerate(layers):
        c, h, w = shape
        kh, kw = spec["kernel"]
        stride, dil = spec.get("stride", (1, 1)), spec.get("dilation", (1, 1))
        pads, group = spec.get("pads", (0, 0, 0, 0)), spec.get("group", 1)
        win = Window((h, w), (kh, kw), stride, pads, dil)
        oh, ow = win.out_hw
        cout = spec["cout"]
        weight = rng.integers(-weight_max, weight_max + 1, (cout, c // group, kh, kw))
        y = f"c{i}"
        tensors[y] = Tensor(y, (cout, oh, ow), u8, q)
        k = (c // group) * kh * kw
        nodes.append(
            Node(
                f"conv{i}",
                "conv",
                (prev,),
                (y,),
                attrs={
                    "input_zero_point": zp,
                    "output_zero_point": 0,
                    "shift": (12 if weight_max > 7 else 8) + int(np.log2(k)),
                    "lo": 0,
                    "hi": 255,
                    "input_shape": shape,
                    "output_shape": (cout, oh, ow),
                    "kernel_shape": (kh, kw),
                    "strides": tuple(stride),
                    "pads": tuple(pads),
                    "dilations": tuple(dil),
                    "group": group,
                },
                weights={
                    "weight": weight.astype(np.int64),
                    "bias": rng.integers(-bias_max, bias_max, cout).astype(np.int64),
                    "multiplier": rng.integers(1 << 11, 1 << 12, cout).astype(np.int64),
                    "im2col": conv_im2col(win, c, group),
                },
                source_op="Conv",
            )
        )
        prev, zp, shape = y, 0, (cout, oh, ow)
        outs.append(y)
        if residual and i == residual[1]:
            a = outs[residual[0]]
            tensors["sum"] = Tensor("sum", shape, u8, q)
            nodes.append(
                Node(
                    "add",
                    "add",
                    (a, y),
                    ("sum",),
                    attrs={
                        "input_zero_points": (0, 0),
                        "output_zero_point": 0,
                        "shift": 13,
                        "lo": 0,
                        "hi": 255,
                        "input_shape": shape,
                    },
                    weights={"multiplier": np.array([5000, 3000], np.int64)},
                    source_op="Add",
                )
            )
            prev = "sum"
    if head:
        size = int(np.prod(shape))
        tensors["logits"] = Tensor("logits", (head,), IntType(8, True), q)
        nodes.append(
            Node(
                "head",
                "dense",
                (prev,),
                ("logits",),
                attrs={
                    "input_zero_point": 0,
                    "output_zero_point": 0,
                    "shift": 16,
                    "lo": -128,
                    "hi": 127,
                },
                weights={
                    "weight": rng.integers(-127, 128, (head, size)).astype(np.int64),
                    "bias": rng.integers(-2000, 2000, head).astype(np.int64),
                    "multiplier": rng.integers(1 << 11, 1 << 12, head).astype(np.int64),
                },
                source_op="Gemm",
            )
        )
        prev = "logits"
    return Graph(name, tensors, tuple(nodes), ("x",), (prev,))


def window_cases() -> Graph:
    """Every window feature in one small net: a stride-2 3x3 conv with asymmetric padding,
    a dilated 3x3 (dilation 2, pad 2), a depthwise 3x3 with stride (2, 1), a grouped 3x3
    (2 groups of 4 channels), a 1x5 conv (a 1-D kernel on a plane), a 1x1, and a residual
    add of the 1x1's output to the dilated conv's, then a dense head."""
    return conv_net(
        (3, 11, 9),
        [
            dict(cout=8, kernel=(3, 3), stride=(2, 2), pads=(1, 0, 1, 2)),
            dict(cout=8, kernel=(3, 3), dilation=(2, 2), pads=(2, 2, 2, 2)),
            dict(cout=8, kernel=(3, 3), stride=(2, 1), pads=(1, 1, 1, 1), group=8),
            dict(cout=8, kernel=(3, 3), pads=(1, 1, 1, 1), group=2),
            dict(cout=8, kernel=(1, 5), pads=(0, 2, 0, 2)),
            dict(cout=8, kernel=(1, 1)),
        ],
        residual=(3, 5),
        head=5,
        seed=11,
        name="windows",
    )
