"""Brevitas variants of the KWS DS-CNN and the IC ResNet-8 for the GEMM overlay's LUT core:
``nnloom example tiny-kws-ternary | tiny-ic-ternary`` (and their digits twins
``tiny-kws-digits-ternary | tiny-ic-digits-ternary``, where accuracy is measured), and
``tiny-ic-int4``: the ResNet-8 with 4-bit per-channel weights in every layer (narrow range,
-7..7), the variant whose weights fit the iCEBreaker's SPRAM.

The same layers as ``tiny_models`` in Brevitas (needs the extra ``brevitas``): 8-bit signed
input, the first convolution and the classifier with 8-bit per-channel weights, every other
convolution but the DS-CNN's depthwise ones (8-bit: 7 % of its MACs, and ternary there cost
the digits twin 5 points) with **ternary** per-channel weights (2-bit narrow range: -1, 0, +1, what
the
boards' LUT lanes multiply by), BatchNorm after each convolution (folded by the importer),
8-bit unsigned ReLU activations, ``Int32Bias`` biases; residual branches are requantized to
8 bits before their Add. Quantization-aware training from scratch on the same data as the
int8 example (synthetic for the full-size models, scikit-learn digits for the twins), a few
epochs, single-threaded and seeded; exported with Brevitas ``export_qonnx`` (TorchScript)
with the asymmetric 'same' pads folded into the Conv. Writes ``<name>.onnx`` (QONNX) and
``<name>_test.npz``, and returns the module's and the imported integer golden's accuracy.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._training import module_accuracy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TinyBrevitas", "make_tiny_brevitas", "VARIANTS"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TinyBrevitas:
    name: str
    model: Path
    test_data: Path
    module_accuracy: float
    golden_accuracy: float
    synthetic: bool


def _quant():
    import brevitas.nn as qnn
    from brevitas.quant import (
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int32Bias,
        Uint8ActPerTensorFloat,
    )

    return qnn, Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias, Uint8ActPerTensorFloat


def _qconv(cin, cout, kernel, stride, hw, *, bits, groups=1, relu=True):
    """A 'same'-padded quantized convolution + BatchNorm (+ 8-bit ReLU): modules, out size."""
    from torch import nn

    from .tiny_models import same_pads

    qnn, _, wq, bq, uq = _quant()
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    (top, bottom), (left, right) = same_pads(hw[0], kh, stride), same_pads(hw[1], kw, stride)
    mods = []
    if top == bottom and left == right:
        pad = (top, left)
    else:
        mods.append(nn.ZeroPad2d((left, right, top, bottom)))
        pad = (0, 0)
    mods += [
        qnn.QuantConv2d(
            cin,
            cout,
            (kh, kw),
            stride=stride,
            padding=pad,
            groups=groups,
            weight_quant=wq,
            weight_bit_width=bits,
            bias_quant=bq,
        ),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        mods.append(qnn.QuantReLU(act_quant=uq, bit_width=8, return_quant_tensor=True))
    return nn.Sequential(*mods), (-(-hw[0] // stride), -(-hw[1] // stride))


def _head(width, classes, hw, bits=8):
    from torch import nn

    qnn, sq, wq, bq, _ = _quant()
    return [
        nn.AvgPool2d(hw),
        qnn.QuantIdentity(act_quant=sq, return_quant_tensor=True),
        nn.Flatten(),
        qnn.QuantLinear(
            width,
            classes,
            bias=True,
            weight_quant=wq,
            weight_bit_width=bits,
            bias_quant=bq,
            output_quant=sq,
        ),
    ]


def ds_cnn_ternary(
    *,
    in_hw: tuple[int, int] = (49, 10),
    channels: int = 64,
    blocks: int = 4,
    classes: int = 12,
    stem_kernel: int | tuple[int, int] = (10, 4),
    stem_stride: int = 2,
    bits: int = 2,
) -> nn.Sequential:
    from torch import nn

    qnn, sq, *_ = _quant()
    stem, hw = _qconv(1, channels, stem_kernel, stem_stride, in_hw, bits=8)
    layers = [qnn.QuantIdentity(act_quant=sq, return_quant_tensor=True), stem]
    for _ in range(blocks):
        dw, hw = _qconv(channels, channels, 3, 1, hw, bits=8, groups=channels)
        pw, hw = _qconv(channels, channels, 1, 1, hw, bits=bits)
        layers += [dw, pw]
    return nn.Sequential(*layers, *_head(channels, classes, hw))


def resnet8_ternary(
    *,
    in_hw: tuple[int, int] = (32, 32),
    in_channels: int = 3,
    filters: int = 16,
    classes: int = 10,
    bits: int = 2,
    edge_bits: int = 8,
) -> nn.Sequential:
    """ResNet-8: ``bits``-bit inner convolutions, ``edge_bits``-bit stem and classifier."""
    from torch import nn

    qnn, sq, *_ = _quant()

    class Residual(nn.Module):
        def __init__(self, cin, cout, stride, hw):
            super().__init__()
            self.a, hw_out = _qconv(cin, cout, 3, stride, hw, bits=bits)
            self.b, _ = _qconv(cout, cout, 3, 1, hw_out, bits=bits, relu=False)
            self.shortcut = None
            if not (stride == 1 and cin == cout):
                self.shortcut, _ = _qconv(cin, cout, 1, stride, hw, bits=bits, relu=False)
                del self.shortcut[-1]  # the reference's shortcut has no BatchNorm
            self.qa = qnn.QuantIdentity(act_quant=sq, return_quant_tensor=False)
            self.qb = qnn.QuantIdentity(act_quant=sq, return_quant_tensor=False)
            self.relu = qnn.QuantReLU(bit_width=8, return_quant_tensor=True)
            self.out_hw = hw_out

        def forward(self, x):
            s = self.shortcut(x) if self.shortcut is not None else x
            return self.relu(self.qa(s) + self.qb(self.b(self.a(x))))

    stem, hw = _qconv(in_channels, filters, 3, 1, in_hw, bits=edge_bits)
    layers = [qnn.QuantIdentity(act_quant=sq, return_quant_tensor=True), stem]
    width = filters
    for mult, stride in ((1, 1), (2, 2), (4, 2)):
        stack = Residual(width, filters * mult, stride, hw)
        layers.append(stack)
        hw, width = stack.out_hw, filters * mult
    return nn.Sequential(*layers, *_head(width, classes, hw, edge_bits))


# name -> (builder, its kwargs, base example (None: a digits twin), epochs)
VARIANTS = {
    "tiny_kws_ternary": (ds_cnn_ternary, {}, "tiny_kws", 4),
    "tiny_ic_ternary": (resnet8_ternary, {}, "tiny_ic", 4),
    # every weight 4-bit: the ResNet-8 whose weights fit the iCEBreaker's SPRAM
    "tiny_ic_int4": (resnet8_ternary, dict(bits=4, edge_bits=4), "tiny_ic", 4),
    "tiny_kws_digits_ternary": (
        ds_cnn_ternary,
        dict(in_hw=(8, 8), channels=32, classes=10, stem_kernel=(3, 3), stem_stride=1),
        None,
        20,  # 10 epochs: 96.67 %, 1.48 points below the int8 twin; 20: 97.78 %
    ),
    "tiny_ic_digits_ternary": (
        resnet8_ternary,
        dict(in_hw=(8, 8), in_channels=1, filters=8),
        None,
        10,
    ),
}


def make_tiny_brevitas(
    name: str, out_dir: str | Path, *, seed: int = 0, epochs: int | None = None
) -> TinyBrevitas:
    """Train (QAT), export and import the Brevitas variant ``name`` (see ``VARIANTS``)."""
    import tempfile

    import onnx
    import torch
    from brevitas.export import export_qonnx

    from .. import reference
    from .._atomic import savez_atomic, write_bytes_atomic
    from ..onnx_import import import_onnx
    from .tiny import SPECS, _data, _train, fold_pads

    build, kwargs, base, default_epochs = VARIANTS[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if base is not None:
        spec = SPECS[base]
        x_tr, y_tr, x_te, y_te = _data(spec, seed)
        shape, synthetic = spec.input_shape, True
    else:
        from .digits_mlp import load_digits_split

        x_tr, x_te, y_tr, y_te = load_digits_split(seed)
        x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
        shape, synthetic = (1, 8, 8), False
    torch.manual_seed(seed)
    model = build(**kwargs)
    model = _train(model, x_tr, y_tr, epochs=epochs or default_epochs, lr=3e-3, seed=seed)
    module_acc = module_accuracy(model, x_te, y_te)
    path = out_dir / f"{name}.onnx"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export.") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_qonnx(model, torch.zeros(1, *shape), str(raw), dynamo=False)
        proto = onnx.load(str(raw))
        proto.producer_version = ""
        fold_pads(proto)
        write_bytes_atomic(path, proto.SerializeToString())
    graph = import_onnx(path)
    golden = reference.predict(graph, x_te).reshape(len(x_te), -1)
    golden_acc = float((golden.argmax(1) == y_te).mean())
    data_path = savez_atomic(out_dir / f"{name}_test.npz", x=x_te, y=y_te)
    log.info("%s: Brevitas module %.4f, integer golden %.4f", name, module_acc, golden_acc)
    return TinyBrevitas(name, path, data_path, module_acc, golden_acc, synthetic)


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    print(make_tiny_brevitas(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "out/models"))
