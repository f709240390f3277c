"""Tiny ICELUT-style nets for the transfer tests: dyadic weights, so onnxruntime and the numpy
re-evaluation agree exactly (every product and sum is representable in float32)."""

from pathlib import Path

import numpy as np
import torch


def dyadic(rng, shape, lo, hi, den):
    return rng.integers(lo, hi + 1, shape).astype(np.float32) / den


class Backbone(torch.nn.Module):
    """3 → 8 → 10 with ReLU on (B, 3), or as 1×1 convs on (B, 3, 1, 1) (``conv``)."""

    def __init__(self, seed, *, conv=False, outputs=10, scale=1.0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w1, self.b1 = dyadic(rng, (8, 3), -8, 8, 8), dyadic(rng, 8, -8, 8, 16)
        self.w2 = dyadic(rng, (outputs, 8), -8, 8, 8) * np.float32(scale)
        self.b2 = dyadic(rng, outputs, -8, 8, 16)
        self.conv = conv
        t = lambda a: torch.nn.Parameter(torch.from_numpy(a))  # noqa: E731
        self.tw1, self.tb1, self.tw2, self.tb2 = t(self.w1), t(self.b1), t(self.w2), t(self.b2)

    def forward(self, x):
        if self.conv:
            h = torch.relu(torch.nn.functional.conv2d(x, self.tw1[..., None, None], self.tb1))
            return torch.nn.functional.conv2d(h, self.tw2[..., None, None], self.tb2)
        return torch.relu(x @ self.tw1.T + self.tb1) @ self.tw2.T + self.tb2

    def numpy(self, x):
        """The same net in float64 on (N, 3)."""
        h = np.maximum(x @ self.w1.T.astype(np.float64) + self.b1, 0)
        return h @ self.w2.T.astype(np.float64) + self.b2


class SplitFC(torch.nn.Module):
    """Five pair nets 2 → 6 → 10 (ReLU), distinct per pair, on (B, 5, 2) → (B, 5, 10)."""

    def __init__(self, seed, *, inputs=2):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w1, self.b1 = dyadic(rng, (5, 6, inputs), -8, 8, 8), dyadic(rng, (5, 6), -8, 8, 8)
        self.w2, self.b2 = dyadic(rng, (5, 10, 6), -4, 4, 64), dyadic(rng, (5, 10), -8, 8, 16)
        t = lambda a: torch.nn.Parameter(torch.from_numpy(a))  # noqa: E731
        self.tw1, self.tb1, self.tw2, self.tb2 = t(self.w1), t(self.b1), t(self.w2), t(self.b2)

    def forward(self, x):
        h = torch.relu(torch.einsum("bpi,pji->bpj", x, self.tw1) + self.tb1)
        return torch.einsum("bpj,pkj->bpk", h, self.tw2) + self.tb2

    def numpy(self, x):
        """The same net in float64 on (N, 5, 2)."""
        h = np.maximum(np.einsum("bpi,pji->bpj", x, self.w1.astype(np.float64)) + self.b1, 0)
        return np.einsum("bpj,pkj->bpk", h, self.w2.astype(np.float64)) + self.b2


def export(net, shape, path: Path, *, dynamic=True) -> Path:
    with torch.no_grad():
        torch.onnx.export(
            net,
            torch.zeros(1, *shape),
            str(path),
            input_names=["x"],
            output_names=["y"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"x": {0: "b"}, "y": {0: "b"}} if dynamic else None,
        )
    return path


def make_folder(folder: Path, *, seed=0, bases_range=0.1):
    """An ICELUT net folder; returns the modules and the float bases."""
    folder.mkdir(parents=True, exist_ok=True)
    msb, lsb = Backbone(seed + 1), Backbone(seed + 2, conv=True)
    split = SplitFC(seed + 3)
    export(msb, (3,), folder / "backbone_msb.onnx")
    export(lsb, (3, 1, 1), folder / "backbone_lsb.onnx", dynamic=False)
    export(split, (5, 2), folder / "split_fc.onnx")
    bases = np.random.default_rng(seed + 4).uniform(-bases_range, bases_range, (10, 3, 17, 17, 17))
    np.save(folder / "bases.npy", bases)
    return msb, lsb, split, bases
