"""LUT networks for the lutnet engines: SR-LUT, HKLUT and ICELUT tables and their integer
golden models, table files (the authors' released ones or ours), transfer of ONNX nets to
tables, training on scikit-image's images, and the image metrics (PSNR-Y, bicubic, MATLAB
resize). The hardware is ``rtl_gen.lutnet``."""

from .hklut import HklutPlan, HklutStage, load_hklut_dir
from .icelut import IcelutPlan
from .srlut import SrlutPlan, TableError, round_half_even_shift

__all__ = [
    "SrlutPlan",
    "HklutPlan",
    "HklutStage",
    "IcelutPlan",
    "TableError",
    "load_hklut_dir",
    "round_half_even_shift",
]
