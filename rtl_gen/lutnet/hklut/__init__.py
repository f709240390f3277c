"""The streaming HKLUT ×4 engine: two ×2 stage units (MSB and LSB table branches) between line
buffers (golden: ``frontends.lutnet.hklut.HklutPlan``)."""

from .engine import HklutEngine

__all__ = ["HklutEngine"]
