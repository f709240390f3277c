"""What the frontends tests share."""

import pytest


@pytest.fixture
def one_torch_thread():
    """torch on one thread during the test: on tiny models OpenMP threads only spin when the
    machine's two cores are busy, and one thread adds in one order (the same weights)."""
    from frontends.examples._training import one_thread

    with one_thread():
        yield
