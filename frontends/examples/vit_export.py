"""The digits ViT examples' ONNX export (``digits_vit`` and its QAT twin ``digits_vit_qat``)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["export_vit"]


def export_vit(model: nn.Module, path: Path, *, dynamo: bool) -> Path:
    """``torch.onnx.export`` as users call it: the TorchScript exporter (opset 17) or the
    dynamo one (its default opset), a batch of one, the producer version and the dynamo
    exporter's per-node metadata (stack traces: source paths and line numbers) cleared, so
    the same model gives the same bytes from any checkout."""
    import contextlib
    import io
    import warnings

    import onnx
    import torch

    from .._atomic import write_bytes_atomic

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export.") as tmp:
        raw = Path(tmp) / "raw.onnx"
        kwargs = {"dynamo": True} if dynamo else {"dynamo": False, "opset_version": 17}
        quiet = logging.getLogger("torch.onnx")  # torchvision-not-installed notices
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (torch.zeros(1, 64),),
                    str(raw),
                    input_names=["x"],
                    output_names=["logits"],
                    **kwargs,
                )
        finally:
            quiet.setLevel(level)
        proto = onnx.load(str(raw))
        proto.producer_version = ""
        for node in proto.graph.node:
            del node.metadata_props[:]
        write_bytes_atomic(path, proto.SerializeToString())
    return path
