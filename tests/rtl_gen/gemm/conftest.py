import pytest


@pytest.fixture(scope="session")
def pool_cat(tmp_path_factory):
    """The QDQ max-pool/concat CNN (``nets.qdq_pool_cat``) as an IR graph, built once."""
    from frontends.onnx_import import import_onnx

    from .nets import qdq_pool_cat
    return import_onnx(qdq_pool_cat(tmp_path_factory.mktemp("pool") / "pool.onnx"))
