"""LUT super-resolution engines: SR-LUT and HKLUT integer golden models, streaming RTL."""

from .hklut import HklutPlan, HklutStage, load_hklut_dir
from .srlut import SrlutPlan, TableError, round_half_even_shift

__all__ = ["SrlutPlan", "HklutPlan", "HklutStage", "TableError", "load_hklut_dir",
           "round_half_even_shift"]
