"""ONNX Pad (constant zero, as torch exports ``nn.ZeroPad2d``/``F.pad``) inside a quantized
graph: onnxruntime ``quantize_static`` quantizes the pad value too (Q/DQ of a constant 0);
the importer folds the Pad into the next Conv's or pool's own padding.

Reference: onnxruntime unfused, node by node from its own input codes (tests/models.py):
at most one code apart, in under 1 % of the elements (requantization rounding, as in
test_qdq_models). A Pad before a MaxPool is exact only on a non-negative input (after a
ReLU: the padded zeros never exceed a real element) with less padding than the kernel;
anything else is refused by name."""

import numpy as np
import pytest
import torch
from models import per_node_errors, torch_qdq
from torch import nn

from frontends import reference
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx


class PadNet(nn.Module):
    """conv+ReLU, asymmetric ZeroPad2d, conv+ReLU (``relu``), ZeroPad2d(1), a pool, Linear."""

    def __init__(self, pool: nn.Module, relu: bool = True):
        super().__init__()
        torch.manual_seed(3)
        self.c1 = nn.Conv2d(1, 4, 3)
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))
        self.c2 = nn.Conv2d(4, 4, 3)
        self.p2 = nn.ZeroPad2d(1)
        self.pool, self.relu = pool, relu
        with torch.no_grad():
            n = self.features(torch.zeros(1, 1, 8, 8)).shape[1]
        self.fc = nn.Linear(n, 10)

    def features(self, x):
        x = self.c2(self.pad(torch.relu(self.c1(x))))
        x = torch.relu(x) if self.relu else x
        return torch.flatten(self.pool(self.p2(x)), 1)

    def forward(self, x):
        return self.fc(self.features(x))


POOLS = {"avg": lambda: nn.AvgPool2d(3, stride=2), "max": lambda: nn.MaxPool2d(2)}


@pytest.mark.parametrize(
    "dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"]
)
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_zero_pads_fold_and_agree_with_onnxruntime(tmp_path, pool, dynamo):
    path = torch_qdq(PadNet(POOLS[pool]()), (1, 8, 8), tmp_path / "pad.onnx", dynamo=dynamo)
    graph = import_onnx(path)
    ops = [n.op for n in graph.nodes]
    assert ops == ["conv", "conv", f"{pool}pool", "dense"]
    convs = [n for n in graph.nodes if n.op == "conv"]
    assert tuple(convs[1].attrs["pads"]) == (0, 1, 1, 2)  # (top, left, bottom, right)
    pooled = graph.nodes[2]
    assert tuple(pooled.attrs["pads"]) == (1, 1, 1, 1)
    x = np.random.default_rng(1).uniform(-1, 1, (48, 1, 8, 8)).astype(np.float32)
    for name, (op, worst, frac) in per_node_errors(graph, path, x, tmp_path).items():
        assert worst <= 1 and frac < 0.01, (name, op, worst, frac)
    assert reference.predict(graph, x).shape == (48, 10)


def test_zero_pad_before_maxpool_of_a_signed_input_is_refused(tmp_path):
    path = torch_qdq(PadNet(nn.MaxPool2d(2), relu=False), (1, 8, 8), tmp_path / "p.onnx")
    with pytest.raises(ModelError, match=r"MaxPool.*non-negative input"):
        import_onnx(path)


def test_zero_pad_as_wide_as_the_maxpool_kernel_is_refused(tmp_path):
    model = PadNet(nn.MaxPool2d(2))
    model.p2 = nn.ZeroPad2d((2, 0, 0, 0))
    with torch.no_grad():
        model.fc = nn.Linear(model.features(torch.zeros(1, 1, 8, 8)).shape[1], 10)
    path = torch_qdq(model, (1, 8, 8), tmp_path / "p.onnx")
    with pytest.raises(ModelError, match=r"padding only"):
        import_onnx(path)
