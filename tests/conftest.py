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
