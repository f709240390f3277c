"""What the examples' training and quantization share: the seeded minibatch loop, a
single-threaded block (the same weights whatever the machine's thread count), and
onnxruntime's static QDQ int8 quantization with its calibration reader."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Calibration", "module_accuracy", "fit", "one_thread", "quantize_qdq"]


def fit(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray | None,
    opt: torch.optim.Optimizer,
    *,
    epochs: int,
    seed: int,
    batch: int = 64,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> nn.Module:
    """``epochs`` passes over ``x`` in batches of ``batch``, each pass in the order of a
    ``torch.Generator`` seeded with ``seed``: cross-entropy against the labels ``y``, or the
    mean squared error against ``x`` itself when ``y`` is None (an autoencoder); ``sched``
    steps after every batch. The model keeps its mode; returns it."""
    import torch
    from torch import nn

    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y) if y is not None else None
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            opt.zero_grad()
            out = model(xt[idx])
            loss = (
                nn.functional.cross_entropy(out, yt[idx])
                if yt is not None
                else nn.functional.mse_loss(out, xt[idx])
            )
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    return model


def module_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """The share of the samples ``x`` whose highest output is their label ``y`` (the model
    in the mode it is in, no gradients)."""
    import torch

    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block (its reductions then add in one order)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Calibration:
    """onnxruntime's calibration reader: the rows of ``x``, one at a time, as input ``name``."""

    def __init__(self, name: str, x: np.ndarray):
        self._it = iter([{name: x[i : i + 1]} for i in range(len(x))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_qdq(
    float_path: Path,
    out_path: Path,
    calib: np.ndarray,
    *,
    per_channel: bool,
    exclude: Sequence[str] | None = None,
) -> None:
    """onnxruntime ``quantize_static`` of the float model: QDQ, int8 activations and weights
    (per channel or per tensor), calibrated on the rows of ``calib`` (input ``x``), the nodes
    ``exclude`` left float. Its advice to pre-process, on the root logger, is silenced."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    options = {} if exclude is None else {"nodes_to_exclude": list(exclude)}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(float_path),
            str(out_path),
            Calibration("x", calib),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            **options,
        )
    finally:
        root.setLevel(level)
