"""Compression helpers that produce the compressed weights the examples use (numpy; no
training loop yet): TGA-style ternarization, structured channel pruning, per-channel
symmetric weight quantization to a chosen bit width.
"""

from ._weights import prune_channels, quantize_weights, ternarize

__all__ = ["ternarize", "prune_channels", "quantize_weights"]
