"""Compression helpers that produce the compressed models the examples use.

Here (numpy): TGA-style ternarization, structured channel pruning, per-channel symmetric
weight quantization to a chosen bit width. In ``frontends.compress.qat`` (PyTorch, imported
on its own so that this package stays light): quantization-aware fine-tuning with bits chosen
per layer and export to QONNX.
"""

from ._weights import prune_channels, quantize_weights, ternarize

__all__ = ["ternarize", "prune_channels", "quantize_weights"]
