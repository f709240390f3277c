import pytest


@pytest.fixture(scope="session")
def cnn(tmp_path_factory):
    """The QDQ depthwise/pointwise CNN with a residual (``nets.qdq_cnn``) as an IR graph."""
    from frontends.onnx_import import import_onnx

    from .nets import qdq_cnn

    return import_onnx(qdq_cnn(tmp_path_factory.mktemp("cnn") / "cnn.onnx"))


@pytest.fixture(scope="session")
def pool_cat(tmp_path_factory):
    """The QDQ max-pool/concat CNN (``nets.qdq_pool_cat``) as an IR graph, built once."""
    from frontends.onnx_import import import_onnx

    from .nets import qdq_pool_cat

    return import_onnx(qdq_pool_cat(tmp_path_factory.mktemp("pool") / "pool.onnx"))
