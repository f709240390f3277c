"""The LUT engines' hardware, one sub-package each: ``srlut`` (the streaming SR-LUT engine),
``hklut`` (HKLUT's two ×2 stages) and ``icelut`` (the ICELUT per-pixel apply engine), with
their shared blocks (line buffer, reorder buffer, stream layouts, table memories) and the
artefact writer. The tables, their integer golden models, transfer and training are
``frontends.lutnet``."""

from .hklut import HklutEngine
from .icelut import IcelutEngine
from .srlut import SrlutEngine

__all__ = ["SrlutEngine", "HklutEngine", "IcelutEngine"]
