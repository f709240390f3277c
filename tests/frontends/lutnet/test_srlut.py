"""The SR-LUT golden against an independent float model and the published Set5 figures."""

import numpy as np
import pytest

from frontends.lutnet.metrics import bicubic_upscale, psnr_y
from frontends.lutnet.srlut import SrlutPlan, TableError, round_half_even_shift
from frontends.lutnet.tables import load_srlut_table

OFFSETS = {"S": ((0, 0), (0, 1), (1, 0), (1, 1)), "F": ((0, 0), (0, 1), (0, 2))}


def float_srlut(img, table, offsets, b, r):
    """The authors' formulation: rotate the image, pad bottom/right by reflect, interpolate
    each pattern in floating point, rotate the HR result back, sum, np.round."""
    q = 2**b
    L = 2 ** (8 - b) + 1
    n = len(offsets)
    pad = max(max(o) for o in offsets)
    total = np.zeros((img.shape[0] * r, img.shape[1] * r))
    for k in range(4):
        x = np.rot90(img, k).astype(np.float64)
        h, w = x.shape
        xp = np.pad(x, ((0, pad), (0, pad)), mode="reflect")
        hr = np.zeros((h * r, w * r))
        for y in range(h):
            for c in range(w):
                v = np.array([xp[y + dy, c + dx] for dy, dx in offsets])
                lo = np.floor(v / q).astype(int)
                t = v / q - lo
                order = sorted(range(n), key=lambda i: -t[i])
                corner = lo.copy()
                val = (1 - t[order[0]]) * table[np.ravel_multi_index(corner, (L,) * n)]
                for j, i in enumerate(order):
                    corner[i] += 1
                    nxt = t[order[j + 1]] if j + 1 < n else 0.0
                    val = val + (t[i] - nxt) * table[np.ravel_multi_index(corner, (L,) * n)]
                hr[y * r : (y + 1) * r, c * r : (c + 1) * r] = val.reshape(r, r)
        total += np.rot90(hr, 4 - k)
    return np.round(np.clip(total, 0, 255)).astype(np.uint8)


@pytest.mark.parametrize("pattern,b", [("S", 6), ("S", 5), ("F", 5)])
def test_golden_equals_rotated_float_model(pattern, b):
    rng = np.random.default_rng(7)
    n, L, r = len(OFFSETS[pattern]), 2 ** (8 - b) + 1, 2
    table = rng.integers(-128, 128, (L**n, r * r))
    img = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    img[0, :] = 255  # saturating border rows exercise the clamp
    plan = SrlutPlan(pattern, b, r, table)
    want = float_srlut(img, table.astype(np.float64), OFFSETS[pattern], b, r)
    np.testing.assert_array_equal(plan.reference(img), want)


def test_round_half_even_matches_numpy():
    s = np.arange(-5000, 5000)
    for b in (0, 1, 4, 5, 6):
        np.testing.assert_array_equal(round_half_even_shift(s, b), np.round(s / 2**b))


def test_released_5bit_table_is_4bit_table_resampled(srlut_released):
    s4 = load_srlut_table(srlut_released("Model_S_x4_4bit"))
    s5 = load_srlut_table(srlut_released("Model_S_x4_5bit"))
    assert (s4.pattern, s4.interval_bits, s5.interval_bits) == ("S", 4, 5)
    np.testing.assert_array_equal(s4.resampled(5).table, s5.table)


# Published Set5 ×4 PSNR-Y (issue #6; spec lutnet.md §1), 4-pixel shave.
@pytest.mark.parametrize(
    "name,pattern,published",
    [
        ("Model_S_x4_4bit", "S", 29.83),
        ("Model_S_x4_5bit", "S", 29.63),
        ("Model_F_x4_4bit", "F", 29.79),
    ],
)
def test_released_tables_reproduce_set5_psnr(srlut_released, set5, name, pattern, published):
    plan = load_srlut_table(srlut_released(name), pattern=pattern)
    psnr = np.mean([psnr_y(hr, plan.reference(lr)) for lr, hr in set5])
    assert abs(psnr - published) <= 0.05, psnr


def test_bicubic_baseline_psnr(set5):
    psnr = np.mean([psnr_y(hr, bicubic_upscale(lr, 4)) for lr, hr in set5])
    assert abs(psnr - 28.43) <= 0.05, psnr


def test_released_table_keeps_constant_images_near_constant(srlut_released):
    plan = load_srlut_table(srlut_released("Model_S_x4_5bit"))
    for level in (0, 255):
        out = plan.reference(np.full((6, 6), level, np.uint8))
        assert out.shape == (24, 24) and np.abs(out.astype(int) - level).max() <= 3


def test_errors_name_the_table_and_the_way_out(tmp_path):
    with pytest.raises(
        TableError,
        match=r"^table 'x' has shape \(10, 16\); pattern S with "
        r"4-bit intervals at ×4 needs \(83521, 16\)$",
    ):
        SrlutPlan("S", 4, 4, np.zeros((10, 16)), name="x")
    plan = SrlutPlan("F", 6, 2, np.zeros((125, 4)))
    with pytest.raises(
        TableError,
        match=r"^image: 2×9 is too small; pattern F needs at "
        r"least 3 pixels a side for its reflect border$",
    ):
        plan.reference(np.zeros((2, 9), np.uint8))
    with pytest.raises(TableError, match=r"takes 8-bit images"):
        plan.reference(np.zeros((5, 5), np.float32))
    bad = tmp_path / "t.npy"
    np.save(bad, np.zeros((100, 1, 4, 4), np.int8))
    with pytest.raises(TableError, match=r"100 entries is not \(2\^\(8-b\)\+1\)\^n"):
        load_srlut_table(bad)
