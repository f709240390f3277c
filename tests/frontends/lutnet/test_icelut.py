"""The ICELUT-style golden: statistics path and per-pixel interpolation against exact models."""

import numpy as np
import pytest

from frontends.lutnet.icelut import DIM, IcelutPlan, thumbnail
from frontends.lutnet.srlut import TableError


def tables(basis0=None, fm=0, shift=0, interpolation="tetrahedral"):
    split = np.zeros((5, 4096, 10), np.int8)
    split[0, 32 * 64 + 32, 0] = 4  # features 0 -> weight 1.0 on basis 0
    bases = np.zeros((10, 3, DIM, DIM, DIM), np.int8)
    if basis0 is not None:
        bases[0] = basis0
    return IcelutPlan(
        np.full((4096, 10), fm, np.int16),
        np.zeros((4096, 10), np.int16),
        split,
        bases,
        basis_shift=shift,
        interpolation=interpolation,
    )


@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_affine_residual_is_interpolated_exactly(interpolation):
    # Residual LUT affine in the vertex indices: both interpolations reproduce an affine
    # function exactly, so the golden equals the float formula rounded half up.
    b, g, r = np.meshgrid(*[np.arange(DIM)] * 3, indexing="ij")
    basis = np.stack([2 * r - g, b - r, g + b - 16]).astype(np.int8)
    plan = tables(basis, interpolation=interpolation)
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    img[0, :4] = [[0, 0, 0], [255, 255, 255], [255, 0, 128], [15, 16, 17]]
    x = img.astype(np.float64) / 16
    R, G, B = x[..., 0], x[..., 1], x[..., 2]
    res = np.floor(np.stack([2 * R - G, B - R, G + B - 16], -1) + 0.5)
    want = np.clip(img + res, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(plan.reference(img), want)


def test_zero_bases_leave_the_frame_unchanged():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tables().reference(img), img)


def test_statistics_path():
    # Every thumbnail pixel adds 64 (1.0 in Q6) to feature n: the mean 1.0 doubles to g = 2.
    plan = tables(fm=64)
    g = plan.features(np.zeros((32, 32, 3), np.uint8))
    assert g.tolist() == [2] * 10
    plan.split[:] = 0
    plan.split[1, (2 + 32) * 64 + 2 + 32, 3] = 8  # pair 1 = features 2, 3
    assert plan.weights(g).tolist() == [0, 0, 0, 8, 0, 0, 0, 0, 0, 0]
    # Basis 3 at weight 2.0 and shift 1: (8·B + 4) >> 3 = B rounded half up.
    plan = IcelutPlan(
        plan.fm, plan.fl, plan.split, np.ones((10, 3, DIM, DIM, DIM), np.int8), basis_shift=1
    )
    assert (plan.lut(np.zeros((64, 64, 3), np.uint8)) == 1).all()


def test_thumbnail_block_mean_and_centre_samples():
    img = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3) % 251
    img = img.astype(np.uint8)
    t = thumbnail(img)
    want = np.floor(img.astype(float).reshape(32, 2, 32, 2, 3).mean((1, 3)) + 0.5)
    np.testing.assert_array_equal(t, want)
    odd = np.random.default_rng(2).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(thumbnail(odd)[5, 7], odd[(11 * 48) // 64, (15 * 40) // 64])


def test_errors_name_the_table():
    with pytest.raises(TableError, match=r"^ICELUT table 'split' of 'icelut' has shape"):
        IcelutPlan(
            np.zeros((4096, 10)),
            np.zeros((4096, 10)),
            np.zeros((5, 10)),
            np.zeros((10, 3, DIM, DIM, DIM)),
        )
    with pytest.raises(TableError, match=r"smaller than the 32×32 thumbnail"):
        tables().reference(np.zeros((16, 64, 3), np.uint8))
