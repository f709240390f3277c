"""The ICELUT per-pixel apply engine: each frame's 17³ residual LUT loaded, then one pixel a
cycle (golden: ``frontends.lutnet.icelut.IcelutPlan``)."""

from .engine import IcelutEngine

__all__ = ["IcelutEngine"]
