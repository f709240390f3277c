"""ONNX pattern net → SR-LUT table, on the sampling grid (onnxruntime)."""

from itertools import product

import numpy as np
import pytest
import torch

from frontends.lutnet.srlut import TableError
from frontends.lutnet.transfer import transfer_onnx


class MeanNet(torch.nn.Module):
    """Every output = 0.5·(mean of the pattern pixels) - 0.25, r² = 4 outputs."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (0.5 * m - 0.25).repeat(1, 4, 1, 1)


def export(net, shape, path, dynamic=True):
    torch.onnx.export(
        net,
        torch.zeros(1, 1, *shape),
        str(path),
        input_names=["p"],
        output_names=["y"],
        opset_version=17,
        dynamo=False,
        dynamic_axes={"p": {0: "b"}, "y": {0: "b"}} if dynamic else None,
    )
    return path


@pytest.mark.parametrize("shape,pattern,n", [((2, 2), "S", 4), ((1, 3), "F", 3)])
def test_transfer_evaluates_the_net_on_the_grid(tmp_path, shape, pattern, n):
    plan = transfer_onnx(export(MeanNet(), shape, tmp_path / "m.onnx"), interval_bits=6)
    assert (plan.pattern, plan.scale, plan.interval_bits) == (pattern, 2, 6)
    grid = [0, 64, 128, 192, 255]
    want = np.array([round(127 * (0.5 * np.mean(p) / 255 - 0.25)) for p in product(grid, repeat=n)])
    np.testing.assert_array_equal(plan.table, np.repeat(want[:, None], 4, axis=1))


def test_transfer_with_fixed_batch(tmp_path):
    plan = transfer_onnx(
        export(MeanNet(), (1, 2), tmp_path / "v.onnx", dynamic=False), interval_bits=6
    )
    assert plan.pattern == "V" and plan.table.shape == (25, 4)
    assert plan.table[0, 0] == round(-0.25 * 127) and plan.table[-1, 0] == round(0.25 * 127)


def test_wrong_input_shape_is_named(tmp_path):
    path = export(MeanNet(), (3, 3), tmp_path / "bad.onnx")
    with pytest.raises(
        TableError,
        match=r"bad\.onnx: input 'p' has shape .*; a pattern net "
        r"takes \(B, 1, 2, 2\) \(S\)",
    ):
        transfer_onnx(path)
