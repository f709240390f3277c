"""The artefact directory every later stage reads (see DESIGN.md), and atomic writes into it.

``Artefact(path)`` reads ``manifest.json`` and ``vectors/golden.npz``; ``atomic_write`` and
``atomic_directory`` make sure a reader never sees a half-written file or folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontends.errors import NnloomError

__all__ = ["Artefact", "ArtefactError", "atomic_write", "atomic_directory", "MANIFEST_VERSION"]

MANIFEST_VERSION = 1


class ArtefactError(NnloomError):
    """An artefact directory that is missing or incomplete."""


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str | Path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old.{os.getpid()}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class Artefact:
    """A generated design: ``manifest.json``, ``rtl/``, ``vectors/``, ``sim/``, ``build/``."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).resolve())
        if not (self.path / "manifest.json").is_file():
            raise ArtefactError(f"{self.path}: not an nnloom artefact directory (no "
                                f"manifest.json); make one with `nnloom generate`")

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())

    @property
    def name(self) -> str:
        return self.manifest["design"]

    @property
    def top(self) -> str:
        return self.manifest["top"]

    @property
    def rtl_sources(self) -> list[Path]:
        return [self.path / "rtl" / f for f in self.manifest["rtl"]]

    def vectors(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "vectors" / "golden.npz") as f:
            return {k: f[k] for k in f.files}

    def write_json(self, relative: str, obj) -> Path:
        target = self.path / relative
        atomic_write(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")
        return target
