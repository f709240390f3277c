"""What the flows tests share: seeded LUT table files (the project's own, never the authors'
released ones) and ``nnloom lutnet sr|enhance`` run on an image."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from flows.cli import app


@pytest.fixture
def srlut_table5(tmp_path: Path) -> Path:
    """A seeded SR-LUT-S 5-bit ×4 table file (the released one's shape)."""
    from frontends.lutnet.srlut import random_plan

    path = tmp_path / "S5.npy"
    np.save(path, random_plan("S", 5, seed=1).table.reshape(-1, 1, 4, 4))
    return path


@pytest.fixture
def hklut_tables(tmp_path: Path) -> Path:
    """A folder of seeded HKLUT-S tables named as the released ones."""
    from frontends.lutnet.hklut import random_plan, table_files

    folder = tmp_path / "hk"
    folder.mkdir()
    for name, table in table_files(random_plan(1)).items():
        np.save(folder / name, table)
    return folder


@pytest.fixture
def icelut_tables(tmp_path: Path) -> Path:
    """A seeded ICELUT table file (``.npz``)."""
    from frontends.lutnet.icelut import icelut_npz_bytes, random_plan

    path = tmp_path / "ice.npz"
    path.write_bytes(icelut_npz_bytes(random_plan(2)))
    return path


@pytest.fixture
def lutnet_on_image() -> Callable[..., Result]:
    """``run(command, tables, image, out, *options)``: ``nnloom lutnet COMMAND --tables TABLES
    --image IMAGE -o OUT OPTIONS...`` (``sr`` or ``enhance``), its click ``Result``."""
    runner = CliRunner()

    def run(command: str, tables: Path, image: Path | str, out: Path, *options: str) -> Result:
        args = ["lutnet", command, "--tables", tables, "--image", image, "-o", out, *options]
        return runner.invoke(app, [str(a) for a in args])

    return run
