from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[3] / "../shared/data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "srlut").is_dir():
        pytest.skip(f"reference data not found at {DATA.resolve()} (clone ../shared beside "
                    f"the repository)")
    return DATA


@pytest.fixture(scope="session")
def set5(data_dir):
    from PIL import Image
    names = ("baby", "bird", "butterfly", "head", "woman")
    return [(np.asarray(Image.open(data_dir / "set5" / f"{n}_LRx4.png").convert("RGB")),
             np.asarray(Image.open(data_dir / "set5" / f"{n}_HR.png").convert("RGB")))
            for n in names]


def released(data_dir, name):
    return np.load(data_dir / "srlut" / f"{name}_int8.npy", allow_pickle=False)
