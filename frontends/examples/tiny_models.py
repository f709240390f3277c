"""The four MLPerf Tiny reference architectures as PyTorch modules.

Layer for layer as in the reference training code (mlcommons/tiny,
``benchmark/training/*``, Keras):

- ``ds_cnn``: keyword spotting DS-CNN: Conv 10x4 stride 2 (64 channels), four
  depthwise-separable blocks (depthwise 3x3, pointwise 1x1, 64 channels), each convolution
  followed by BatchNorm and ReLU; average pool over the whole 25x5 map; Dense to 12 classes.
- ``resnet8``: image classification ResNet-8 (EEMBC ``resnet_v1_eembc``, 16/32/64 filters):
  a 3x3 stem and three residual stacks (two 3x3 convolutions each, the second and third
  stack with stride 2 and a strided 1x1 shortcut), average pool 8x8, Dense to 10 classes.
- ``fc_autoencoder``: anomaly detection: Dense 640-128-128-128-128-8-128-128-128-128-640,
  every hidden Dense followed by BatchNorm and ReLU.
- ``mobilenet_v1``: visual wake words MobileNetV1 with alpha 0.25 (8 to 256 channels) on
  96x96x3: a 3x3 stride-2 stem and 13 depthwise-separable blocks, average pool 3x3, Dense
  to 2 classes.

Keras' ``padding='same'`` pads ``total = max((out - 1) * stride + kernel - in, 0)`` with the
smaller half first; where that is asymmetric (a stride-2 3x3 on an even size, the KWS stem's
10x4 kernel) the module puts an ``nn.ZeroPad2d`` in front of the convolution, so its
arithmetic is the reference's; ``frontends.examples.tiny`` folds those pads into the ONNX
``Conv`` as Keras' ONNX exporters write them. Dropout (inference: identity) is left out and
the classifiers end at their logits (the reference's softmax does not change the class).

Every builder takes the widths and input size, so the digits-sized twins
(``frontends.examples.tiny``) are the same architecture at a smaller scale.
"""

from __future__ import annotations

from torch import nn

__all__ = ["same_pads", "conv_bn_relu", "ds_cnn", "resnet8", "fc_autoencoder", "mobilenet_v1"]


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow ``'same'`` padding of one axis: (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(
    cin: int, cout: int, kernel, stride: int, hw, *, groups: int = 1, bias: bool = True
) -> tuple[list[nn.Module], tuple[int, int]]:
    """A 'same'-padded convolution on an ``hw`` map: its modules and the output size."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    (top, bottom), (left, right) = same_pads(hw[0], kh, stride), same_pads(hw[1], kw, stride)
    mods: list[nn.Module] = []
    if top == bottom and left == right:
        pad = (top, left)
    else:
        mods.append(nn.ZeroPad2d((left, right, top, bottom)))
        pad = (0, 0)
    mods.append(
        nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=pad, groups=groups, bias=bias)
    )
    return mods, (-(-hw[0] // stride), -(-hw[1] // stride))


def conv_bn_relu(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int],
    stride: int,
    hw: tuple[int, int],
    *,
    groups: int = 1,
    relu: bool = True,
) -> tuple[nn.Sequential, tuple[int, int]]:
    mods, out_hw = _conv(cin, cout, kernel, stride, hw, groups=groups)
    mods.append(nn.BatchNorm2d(cout))
    if relu:
        mods.append(nn.ReLU())
    return nn.Sequential(*mods), out_hw


def _separable(cin: int, cout: int, stride: int, hw) -> tuple[nn.Sequential, tuple]:
    dw, hw = conv_bn_relu(cin, cin, 3, stride, hw, groups=cin)
    pw, hw = conv_bn_relu(cin, cout, 1, 1, hw)
    return nn.Sequential(dw, pw), hw


def ds_cnn(
    *,
    in_hw: tuple[int, int] = (49, 10),
    channels: int = 64,
    blocks: int = 4,
    classes: int = 12,
    stem_kernel: tuple[int, int] = (10, 4),
    stem_stride: int = 2,
) -> nn.Module:
    """KWS DS-CNN (``keras_model.py``, ``model_name == 'ds_cnn'``); input (N, 1, H, W)."""
    stem, hw = conv_bn_relu(1, channels, stem_kernel, stem_stride, in_hw)
    layers: list[nn.Module] = [stem]
    for _ in range(blocks):
        block, hw = _separable(channels, channels, 1, hw)
        layers.append(block)
    layers += [nn.AvgPool2d(hw), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    """One ResNet-8 stack: relu(shortcut(x) + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, cin: int, cout: int, stride: int, hw):
        super().__init__()
        self.a, hw_out = conv_bn_relu(cin, cout, 3, stride, hw)
        self.b, _ = conv_bn_relu(cout, cout, 3, 1, hw_out, relu=False)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        else:  # the reference's strided 1x1 Conv2d, without BatchNorm
            mods, _ = _conv(cin, cout, 1, stride, hw)
            self.shortcut = nn.Sequential(*mods)
        self.relu = nn.ReLU()
        self.out_hw = hw_out

    def forward(self, x):
        return self.relu(self.shortcut(x) + self.b(self.a(x)))


def resnet8(
    *,
    in_hw: tuple[int, int] = (32, 32),
    in_channels: int = 3,
    filters: int = 16,
    classes: int = 10,
) -> nn.Module:
    """IC ResNet-8 (``resnet_v1_eembc``, 16 filters as in the reference's pretrained model;
    the newer training script's ``conv_filters=26`` is ``filters=26``); input (N, C, H, W)."""
    stem, hw = conv_bn_relu(in_channels, filters, 3, 1, in_hw)
    layers: list[nn.Module] = [stem]
    width = filters
    for mult, stride in ((1, 1), (2, 2), (4, 2)):
        stack = _Residual(width, filters * mult, stride, hw)
        layers.append(stack)
        hw, width = stack.out_hw, filters * mult
    layers += [nn.AvgPool2d(hw), nn.Flatten(), nn.Linear(width, classes)]
    return nn.Sequential(*layers)


def fc_autoencoder(
    *, inputs: int = 640, hidden: int = 128, bottleneck: int = 8, depth: int = 4
) -> nn.Module:
    """AD FC autoencoder (``anomaly_detection/keras_model.py``); input (N, 640)."""
    widths = [inputs] + [hidden] * depth + [bottleneck] + [hidden] * depth
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    layers.append(nn.Linear(hidden, inputs))
    return nn.Sequential(*layers)


# (output channels, stride) of MobileNetV1's 13 depthwise-separable blocks at alpha 1 / 32
_MOBILENET_BLOCKS = (
    (2, 1),
    (4, 2),
    (4, 1),
    (8, 2),
    (8, 1),
    (16, 2),
    (16, 1),
    (16, 1),
    (16, 1),
    (16, 1),
    (16, 1),
    (32, 2),
    (32, 1),
)


def mobilenet_v1(
    *,
    in_hw: tuple[int, int] = (96, 96),
    in_channels: int = 3,
    base: int = 8,
    classes: int = 2,
    blocks: int = 13,
) -> nn.Module:
    """VWW MobileNetV1, alpha 0.25 (``base=8``: 8 to 256 channels; ``vww_model.py``);
    ``blocks`` < 13 keeps the first blocks (the digits twin); input (N, 3, H, W)."""
    stem, hw = conv_bn_relu(in_channels, base, 3, 2, in_hw)
    layers: list[nn.Module] = [stem]
    width = base
    for mult, stride in _MOBILENET_BLOCKS[:blocks]:
        block, hw = _separable(width, base * mult, stride, hw)
        layers.append(block)
        width = base * mult
    layers += [nn.AvgPool2d(hw), nn.Flatten(), nn.Linear(width, classes)]
    return nn.Sequential(*layers)
