"""The authors' released tables and Set5 (``frontends.data``: the ``NNLOOM_DATA`` mirror, the
cache or a download), for the tests that reproduce the published figures; without them those
tests skip with the way to get them. Every other lutnet test runs on seeded tables."""

import pytest


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
    from rtl_gen.lutnet.hklut import load_hklut_dir
    return _released(lambda: load_hklut_dir(hklut_dir()))


@pytest.fixture(scope="session")
def srlut_released():
    """``name -> path`` of an SR-LUT authors' table, e.g. ``srlut_released("Model_S_x4_4bit")``."""
    from frontends.data import srlut_table
    return lambda name: _released(lambda: srlut_table(name))
