"""Training tables: the least-squares fit recovers a table and is reproducible."""

import numpy as np
from skimage import data as skdata

from frontends.lutnet.metrics import psnr_y
from frontends.lutnet.resize import imresize_down
from frontends.lutnet.srlut import SrlutPlan
from frontends.lutnet.train import _lane_orbits, fit_srlut_table


def smooth_table(L, r, seed):
    """A table whose entries vary smoothly over the grid (as trained tables do)."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(L)] * 4, indexing="ij"), -1).reshape(-1, 4) / (L - 1)
    mix = rng.normal(0, 20, (4, r * r))
    return np.clip(np.round(g @ mix + 30), -128, 127).astype(np.int8)


def test_lane_orbits_partition_the_block():
    orbits = _lane_orbits(4)
    assert sorted(l for o in orbits for l in o) == list(range(16))
    assert [len(o) for o in orbits] == [4, 4, 4, 4] and [0, 3, 12, 15] in orbits


def test_fit_recovers_the_table_that_made_the_pairs():
    truth = SrlutPlan("S", 6, 2, smooth_table(5, 2, seed=1))
    rng = np.random.default_rng(2)
    lrs = [rng.integers(0, 256, (24, 24), dtype=np.uint8) for _ in range(3)]
    pairs = [(lr, truth.reference(lr)) for lr in lrs]
    plan, info = fit_srlut_table(
        interval_bits=6, scale=2, samples=1500, ridge=1e-3, iterations=400, seed=0, pairs=pairs
    )
    assert info["samples"] == 1500 and plan.table.shape == truth.table.shape
    # Rounding the fitted entries to int8 moves each rotation's value by up to half a level
    # (the table is not unique: parts that cancel over the four rotations are free), so
    # pixels may differ by up to 2 but hardly ever do; a wrong equation gives tens of levels.
    test = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    got, want = plan.reference(test), truth.reference(test)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
    assert psnr_y(want, got, shave=0) > 50


def test_fit_on_bundled_images_is_seeded_and_beats_nearest():
    kw = dict(interval_bits=6, scale=2, samples=4000, iterations=60)
    a, _ = fit_srlut_table(seed=3, **kw)
    b, _ = fit_srlut_table(seed=3, **kw)
    np.testing.assert_array_equal(a.table, b.table)
    hr = skdata.stereo_motorcycle()[1][100:228, 200:328, 1]  # not a training image
    lr = imresize_down(hr, 2)
    nearest = np.kron(lr, np.ones((2, 2), np.uint8))
    assert psnr_y(hr, a.reference(lr), shave=2) > psnr_y(hr, nearest, shave=2) + 1.0
