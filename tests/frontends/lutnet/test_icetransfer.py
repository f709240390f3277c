"""ICELUT net folder (ONNX backbones, split FC, bases) → ICELUT tables (onnxruntime)."""

from itertools import product

import numpy as np
import pytest

from frontends.lutnet.icelut import IcelutPlan, thumbnail
from frontends.lutnet.icetransfer import transfer_icelut_dir
from frontends.lutnet.srlut import TableError

from .icenets import Backbone, SplitFC, export, make_folder

# The grids, built independently of the module: nibble triples R slowest; code pairs.
NIBBLES = np.array(list(product(range(16), repeat=3)), np.float64) / 16
CODES = np.array(list(product(range(64), repeat=2)), np.float64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("icenet") / "mynet"
    return path, make_folder(path)


@pytest.fixture(scope="module")
def plan(folder):
    return transfer_icelut_dir(folder[0])


def test_tables_equal_the_nets_on_the_grids(folder, plan):
    _, (msb, lsb, split, bases) = folder
    assert isinstance(plan, IcelutPlan) and plan.name == "mynet"
    np.testing.assert_array_equal(plan.fm, np.round(64 * msb.numpy(NIBBLES)))
    np.testing.assert_array_equal(plan.fl, np.round(64 * lsb.numpy(NIBBLES)))
    v = np.repeat(((CODES - 32) / 2)[:, None, :], 5, axis=1)
    want = np.round(4 * split.numpy(v))  # (4096, 5, 10)
    for p in range(5):
        np.testing.assert_array_equal(plan.split[p], want[:, p])
    # bases in ±0.1 image units = ±25.5 levels: the finest shift that fits int8 is 2.
    assert plan.basis_shift == 2
    np.testing.assert_array_equal(plan.bases, np.round(bases * 255 * 4))
    assert np.abs(plan.bases).max() > 64
    # The tables are not degenerate: a swap (MSB/LSB, the two pair inputs) would show.
    assert not np.array_equal(plan.fm, plan.fl)
    assert not np.array_equal(
        plan.split[0], plan.split[0].reshape(64, 64, 10).transpose(1, 0, 2).reshape(4096, 10)
    )


def test_plan_runs_and_follows_the_float_net(folder, plan):
    """The golden's features and weights against the float nets on a real thumbnail."""
    from skimage import data as skdata

    _, (msb, lsb, split, bases) = folder
    img = skdata.coffee()[100:164, 200:264]
    lut = plan.lut(img)
    assert lut.shape == (3, 17, 17, 17)
    out = plan.apply(img, lut)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, plan.reference(img))
    t = thumbnail(img).reshape(-1, 3).astype(np.int64)
    feat = (msb.numpy((t >> 4) / 16) + lsb.numpy((t & 15) / 16)).mean(0)
    g = np.clip(np.round(2 * feat), -32, 31)
    np.testing.assert_array_equal(plan.features(thumbnail(img)), g)
    w = split.numpy(np.stack([g[0::2], g[1::2]], axis=1)[None] / 2)[0].sum(0)
    np.testing.assert_allclose(plan.weights(g.astype(np.int64)) / 4, w, atol=5 * 0.125)


def test_missing_file_is_named(folder, tmp_path):
    import shutil

    bad = tmp_path / "partial"
    shutil.copytree(folder[0], bad)
    (bad / "split_fc.onnx").unlink()
    with pytest.raises(
        TableError,
        match=r"partial: missing split_fc\.onnx; an ICELUT net "
        r"folder holds backbone_msb\.onnx, backbone_lsb",
    ):
        transfer_icelut_dir(bad)


def test_wrong_shapes_are_named(folder, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(folder[0], bad)
    export(Backbone(5, outputs=9), (3,), bad / "backbone_msb.onnx")
    with pytest.raises(
        TableError,
        match=r"backbone_msb\.onnx: the backbone returns 9 values "
        r"per pixel",
    ):
        transfer_icelut_dir(bad)
    export(SplitFC(5, inputs=3), (5, 3), bad / "backbone_msb.onnx")
    with pytest.raises(
        TableError,
        match=r"backbone_msb\.onnx: input \[\('x', .*\]; a "
        r"backbone takes one \(B, 3\) or \(B, 3, 1, 1\)",
    ):
        transfer_icelut_dir(bad)
    shutil.copy(folder[0] / "backbone_msb.onnx", bad)
    export(Backbone(5), (3,), bad / "split_fc.onnx")
    with pytest.raises(
        TableError,
        match=r"split_fc\.onnx: input .*; the split FC takes one "
        r"\(B, 5, 2\) input",
    ):
        transfer_icelut_dir(bad)
    shutil.copy(folder[0] / "split_fc.onnx", bad)
    np.save(bad / "bases.npy", np.zeros((10, 3, 33, 33, 33)))
    with pytest.raises(
        TableError,
        match=r"bases of shape \(10, 3, 33, 33, 33\).*"
        r"bases\[\.\.\., ::2, ::2, ::2\]",
    ):
        transfer_icelut_dir(bad)


def test_values_that_do_not_fit_are_named(folder, tmp_path):
    import shutil

    bad = tmp_path / "big"
    shutil.copytree(folder[0], bad)
    np.save(bad / "bases.npy", np.full((10, 3, 17, 17, 17), 0.6))
    with pytest.raises(TableError, match=r"bases\.npy: table 'bases' gets values .*int8"):
        transfer_icelut_dir(bad)
    shutil.copy(folder[0] / "bases.npy", bad)
    export(Backbone(1, scale=1024.0), (3,), bad / "backbone_lsb.onnx")
    with pytest.raises(
        TableError,
        match=r"backbone_lsb\.onnx: table 'fl' gets values .* "
        r"int16 holds -32768\.\.32767",
    ):
        transfer_icelut_dir(bad)
