"""``nnloom lutnet enhance`` and ``nnloom generate --engine lutnet`` with an ICELUT net
folder (ONNX backbones, split FC, bases.npy), transferred to tables."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from frontends.lutnet.icetransfer import transfer_icelut_dir
from tests.frontends.lutnet.icenets import make_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("icecli") / "net"
    make_folder(path, seed=7)
    return path


def test_enhance_takes_a_net_folder(folder, tmp_path, lutnet_on_image):
    from skimage import data as skdata

    img = skdata.chelsea()[100:148, 150:198]
    Image.fromarray(img).save(tmp_path / "in.png")
    res = lutnet_on_image("enhance", folder, tmp_path / "in.png", tmp_path / "out.png")
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    np.testing.assert_array_equal(out, transfer_icelut_dir(folder).reference(img))


def test_generate_takes_a_net_folder(folder, tmp_path):
    res = runner.invoke(
        app, ["generate", str(folder), "--engine", "lutnet", "-o", str(tmp_path / "art")]
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert m["engine"] == "lutnet"


def test_partial_folder_is_a_clear_error(folder, tmp_path, lutnet_on_image):
    part = tmp_path / "part"
    part.mkdir()
    (part / "bases.npy").write_bytes((folder / "bases.npy").read_bytes())
    res = lutnet_on_image("enhance", part, "x.png", tmp_path / "o.png")
    assert res.exit_code == 1
    assert (
        "error:" in res.output
        and "missing backbone_msb.onnx, backbone_lsb.onnx, split_fc.onnx" in res.output
    )
