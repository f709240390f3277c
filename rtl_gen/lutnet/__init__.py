"""LUT super-resolution and enhancement engines: SR-LUT and HKLUT integer golden models and
streaming RTL, the ICELUT-style enhancement golden and its per-pixel apply engine, table
import, transfer and training."""

from .hklut import HklutPlan, HklutStage, load_hklut_dir
from .icelut import IcelutPlan
from .srlut import SrlutPlan, TableError, round_half_even_shift

__all__ = ["SrlutPlan", "HklutPlan", "HklutStage", "IcelutPlan", "TableError",
           "load_hklut_dir", "round_half_even_shift"]
