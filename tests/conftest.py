import logging
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
logging.getLogger("root").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session")
def mlp_onnx(tmp_path_factory):
    """A 16-12-5 QDQ MLP (int8, per-tensor)."""
    from models import qdq_mlp

    return qdq_mlp(tmp_path_factory.mktemp("models") / "mlp.onnx")


@pytest.fixture(scope="session")
def mlp_graph(mlp_onnx):
    from frontends.onnx_import import import_onnx

    return import_onnx(mlp_onnx)


# The authors' released LUT tables and Set5 (``frontends.data``: the NNLOOM_DATA mirror, the
# cache or a download), for the tests that reproduce the published figures; without them those
# tests skip, saying how to get them. Every other lutnet test runs on seeded tables.


def _released(get):
    from frontends.data import DataUnavailable

    try:
        return get()
    except DataUnavailable as exc:
        pytest.skip(f"needs the authors' released data: {exc}")


@pytest.fixture(scope="session")
def set5():
    """Set5 ×4 (LR, HR) RGB pairs."""
    from frontends.data import set5

    return _released(lambda: set5(4))


@pytest.fixture(scope="session")
def hklut_released():
    """The HKLUT authors' HKLUT-S tables."""
    from frontends.data import hklut_dir
    from frontends.lutnet.hklut import load_hklut_dir

    return _released(lambda: load_hklut_dir(hklut_dir()))


@pytest.fixture(scope="session")
def srlut_released():
    """``name -> path`` of an SR-LUT authors' table, e.g. ``srlut_released("Model_S_x4_4bit")``."""
    from frontends.data import srlut_table

    return lambda name: _released(lambda: srlut_table(name))
