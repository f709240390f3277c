"""A layer-sequential dense (fully connected) engine: int8 MACs on DSPs, weights in ROM."""

from .engine import DenseEngine
from .plan import DenseLayer, DensePlan

__all__ = ["DenseEngine", "DenseLayer", "DensePlan"]
