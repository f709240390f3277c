"""The SR-LUT engine against its ONNX pattern net (``sim.lut_agreement``): the float
ensemble run through onnxruntime agrees with the table model where interpolation is exact,
and the artefact made from the net carries it for ``nnloom sim``."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def pattern_net(path, seed=0):
    """A seeded, asymmetric ×4 pattern-S net: (B, 1, 2, 2) in [0, 1] -> 16 values in
    [-1, 1], exported to ONNX."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 2), torch.nn.Tanh(), torch.nn.Conv2d(8, 16, 1), torch.nn.Tanh()
    ).eval()
    with torch.no_grad():
        net[0].weight.mul_(3)
    torch.onnx.export(
        net,
        torch.zeros(1, 1, 2, 2),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
        dynamo=False,
    )
    return path


def test_float_ensemble_equals_the_table_on_grid_pixels(tmp_path):
    from frontends.lutnet.transfer import onnx_session, transfer_onnx
    from sim.lut_agreement import float_ensemble

    net = pattern_net(tmp_path / "net.onnx")
    plan = transfer_onnx(net, interval_bits=4)
    rng = np.random.default_rng(1)
    # every pixel on the table's grid: the interpolation takes one vertex, so the table
    # model is the net's rounded entries summed; only their rounding separates the two
    frame = (rng.integers(0, 16, (6, 7)) * 16).astype(np.uint8)
    ensemble = float_ensemble(onnx_session(net), plan, frame)
    table = plan.reference(frame).astype(np.float64)
    assert ensemble.shape == table.shape == (24, 28)
    assert np.abs(ensemble - table).max() <= 4 * 0.5 + 0.5
    assert np.abs(ensemble - table).mean() < 1.0
    # a wrong rotation order is caught: the mirrored frame's ensemble is another picture
    mirrored = float_ensemble(onnx_session(net), plan, frame[:, ::-1].copy())[:, ::-1]
    assert np.abs(mirrored - table).max() > 3
