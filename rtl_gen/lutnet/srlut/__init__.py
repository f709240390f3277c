"""The streaming SR-LUT engine: line-buffer window, simplex interpolator over the 4-rotation
ensemble, reorder buffer (golden: ``frontends.lutnet.srlut.SrlutPlan``)."""

from .engine import SrlutEngine

__all__ = ["SrlutEngine"]
