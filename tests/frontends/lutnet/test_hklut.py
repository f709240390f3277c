"""The HKLUT golden: released tables reproduce the published Set5 figure; table files."""

import numpy as np
import pytest

from frontends.lutnet.hklut import load_hklut_dir, random_plan, table_files
from frontends.lutnet.metrics import psnr_y
from frontends.lutnet.srlut import TableError


def test_released_hklut_reproduces_set5_psnr(hklut_released, set5):
    plan = hklut_released
    assert plan.table_bytes == 102400 and plan.scale == 4
    psnr = np.mean([psnr_y(hr, plan.reference(lr)) for lr, hr in set5])
    assert abs(psnr - 30.34) <= 0.05, psnr


def test_missing_table_is_named(tmp_path):
    with pytest.raises(TableError, match=r"S0_MSB_HDB_LUT_H_x2_4bit_int8\.npy: missing"):
        load_hklut_dir(tmp_path)


def test_table_files_round_trip(tmp_path):
    plan = random_plan(2)
    for name, table in table_files(plan).items():
        np.save(tmp_path / name, table)
    back = load_hklut_dir(tmp_path)
    x = np.random.default_rng(0).integers(0, 256, (5, 6), dtype=np.uint8)
    np.testing.assert_array_equal(back.reference(x), plan.reference(x))
    assert back.table_bytes == plan.table_bytes == 102400
