"""The spiking engine: ST-BIF neuron arrays behind accumulate-only synapses, layer-sequential,
stopping on network-wide silence (issue #7)."""

from .engine import SnnEngine
from .layer import StbifArray
from .plan import SnnPlan

__all__ = ["SnnPlan", "SnnEngine", "StbifArray"]
