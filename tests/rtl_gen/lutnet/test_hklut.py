"""The HKLUT golden: released tables reproduce the published Set5 figure."""

import numpy as np
import pytest

from rtl_gen.lutnet.hklut import load_hklut_dir
from rtl_gen.lutnet.metrics import psnr_y
from rtl_gen.lutnet.srlut import TableError


def test_released_hklut_reproduces_set5_psnr(data_dir, set5):
    plan = load_hklut_dir(data_dir / "hklut")
    assert plan.table_bytes == 102400 and plan.scale == 4
    psnr = np.mean([psnr_y(hr, plan.reference(lr)) for lr, hr in set5])
    assert abs(psnr - 30.34) <= 0.05, psnr


def test_missing_table_is_named(tmp_path):
    with pytest.raises(TableError, match=r"S0_MSB_HDB_LUT_H_x2_4bit_int8\.npy: missing"):
        load_hklut_dir(tmp_path)
