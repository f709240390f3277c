"""The artefact directory every later stage reads (see DESIGN.md): its typed ``Manifest``,
the one writer every engine uses, and atomic writes into it.

An engine builds a ``Manifest`` with ``engine_manifest`` (its parameters, layers, streams and
sections; the header and the ports of its component are common) and hands it, its Verilog
and its golden vectors to ``write_artefact_dir``. ``Artefact(path)`` reads ``manifest.json``
back, validated, and ``vectors/golden.npz``; ``atomic_write`` and ``atomic_directory`` make
sure a reader never sees a half-written file or folder.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frontends._atomic import default_mode, write_bytes_atomic
from frontends.errors import NnloomError

if TYPE_CHECKING:
    from amaranth.lib import wiring

    from frontends.ir import Graph, IntType

__all__ = [
    "Artefact",
    "ArtefactError",
    "Manifest",
    "engine_manifest",
    "port_list",
    "element_streams",
    "graph_quant",
    "dtype_json",
    "write_artefact_dir",
    "atomic_write",
    "atomic_directory",
    "MANIFEST_VERSION",
    "CLOCK",
]

MANIFEST_VERSION = 1


class ArtefactError(NnloomError):
    """An artefact directory that is missing or incomplete."""


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    write_bytes_atomic(path, data.encode() if isinstance(data, str) else data)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    tmp.chmod(default_mode(directory=True))
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


# clk and rst as Amaranth emits them (synchronous reset, active high)
CLOCK = {"name": "clk", "reset": "rst", "reset_active": "high"}


def port_list(component: wiring.Component) -> list[dict]:
    """The Verilog ports Amaranth emits for ``component``: its signature's members flattened
    with ``__``, plus clk and rst; each ``{"name", "dir" ("in"/"out"), "width"}``."""
    from amaranth import Value

    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member, value in component.signature.flatten(component):
        ports.append(
            {
                "name": "__".join(map(str, path)),
                "dir": member.flow.value.lower(),
                "width": len(Value.cast(value)),
            }
        )
    return ports


_FIELDS = (
    "design",
    "engine",
    "top",
    "rtl",
    "ports",
    "streams",
    "source",
    "clock",
    "sim",
    "parameters",
    "layers",
    "latency_cycles",
    "macs",
    "quant",
)


@dataclass(frozen=True, eq=False)
class Manifest(Mapping):
    """``manifest.json``: what every engine's artefact declares (typed fields) and the
    engine's own sections (``sections``: ``gemm``, ``snn``, ``smurf``, ``fit``, ``memories``,
    ...). Optional fields left None are not written. It reads like the JSON dict too
    (``manifest["streams"]``, ``manifest.get("latency_cycles")``), for the many readers that
    want one key."""

    design: str
    engine: str
    top: str
    rtl: tuple[str, ...]
    ports: tuple[dict, ...]
    streams: dict
    source: dict | None = None
    clock: dict | None = None
    sim: dict | None = None
    parameters: dict | None = None
    layers: list | None = None
    latency_cycles: int | None = None
    macs: int | None = None
    quant: dict | None = None
    sections: dict = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    def __post_init__(self):
        clash = set(self.sections) & {*_FIELDS, "manifest_version"}
        if clash:
            raise ValueError(f"manifest sections {sorted(clash)} shadow its fields")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written as ``manifest.json``."""
        out: dict[str, Any] = {"manifest_version": self.version}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        out.update(self.sections)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest.json") -> Manifest:
        """The manifest of ``data`` (parsed JSON), validated: ``ArtefactError`` names
        ``where`` and the field that is missing or of the wrong type."""

        def fail(text):
            raise ArtefactError(f"{where}: {text}; regenerate it with `nnloom generate`")

        def need(obj, key, kind, path):
            if not isinstance(obj, dict) or key not in obj:
                fail(f"field '{path}' is missing")
            value = obj[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                fail(f"field '{path}' is {type(value).__name__}, not {kind.__name__}")
            return value

        if not isinstance(data, dict):
            fail(f"is a JSON {type(data).__name__}, not an object")
        version = need(data, "manifest_version", int, "manifest_version")
        if version != MANIFEST_VERSION:
            fail(f"manifest_version {version}; this nnloom reads version {MANIFEST_VERSION}")
        for key in ("design", "engine", "top"):
            need(data, key, str, key)
        rtl = need(data, "rtl", list, "rtl")
        if not rtl or not all(isinstance(f, str) and f and "/" not in f for f in rtl):
            fail("field 'rtl' is not a non-empty list of file names")
        for i, port in enumerate(need(data, "ports", list, "ports")):
            need(port, "name", str, f"ports[{i}].name")
            need(port, "dir", str, f"ports[{i}].dir")
            need(port, "width", int, f"ports[{i}].width")
        streams = need(data, "streams", dict, "streams")
        for side in ("input", "output"):
            stream = need(streams, side, dict, f"streams.{side}")
            need(stream, "port", str, f"streams.{side}.port")
            need(stream, "elements", int, f"streams.{side}.elements")
            dtype = need(stream, "dtype", dict, f"streams.{side}.dtype")
            need(dtype, "width", int, f"streams.{side}.dtype.width")
            need(dtype, "signed", bool, f"streams.{side}.dtype.signed")
        optional = {
            "source": dict,
            "clock": dict,
            "sim": dict,
            "parameters": dict,
            "layers": list,
            "latency_cycles": int,
            "macs": int,
            "quant": dict,
        }
        for key, kind in optional.items():
            if key in data:
                need(data, key, kind, key)
        return cls(
            design=data["design"],
            engine=data["engine"],
            top=data["top"],
            rtl=tuple(rtl),
            ports=tuple(data["ports"]),
            streams=streams,
            **{k: data[k] for k in optional if k in data},
            sections={
                k: v for k, v in data.items() if k not in _FIELDS and k != "manifest_version"
            },
        )

    # Mapping: the JSON view
    def _view(self) -> dict:
        view = self.__dict__.get("_json")
        if view is None:
            view = self.to_dict()
            object.__setattr__(self, "_json", view)
        return view

    def __getitem__(self, key: str):
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def __eq__(self, other) -> bool:
        if isinstance(other, Manifest):
            return self.to_dict() == other.to_dict()
        return NotImplemented


def engine_manifest(
    *,
    design: str,
    engine: str,
    top: str,
    component: wiring.Component,
    streams: dict,
    rtl: list[str] | None = None,
    sim_bench: str | None = None,
    **fields: object,
) -> Manifest:
    """The manifest of ``engine``'s artefact ``design``: the common header (version, clock,
    ``rtl`` (default ``[top.v]``), the ports of ``component``, the bench that simulates it)
    plus what the engine supplies: ``streams`` and, in ``fields``, any of ``source``,
    ``parameters``, ``layers``, ``latency_cycles``, ``macs``, ``quant`` and its own sections
    (any other name)."""
    known = {k: fields.pop(k) for k in list(fields) if k in _FIELDS}
    return Manifest(
        design=design,
        engine=engine,
        top=top,
        rtl=tuple(rtl or [f"{top}.v"]),
        ports=tuple(port_list(component)),
        streams=streams,
        clock=dict(CLOCK),
        sim={"bench": sim_bench} if sim_bench else None,
        **known,
        sections=fields,
    )


def dtype_json(dtype: IntType) -> dict:
    """An integer type (``width``, ``signed``) as the manifest writes it."""
    return {"width": dtype.width, "signed": dtype.signed}


def element_streams(
    *,
    n_in: int,
    in_dtype: IntType,
    in_tensor: str,
    n_out: int,
    out_dtype: IntType,
    out_tensor: str,
    data_bits: int = 8,
) -> dict:
    """The ``streams`` of an engine behind the ``i``/``o`` element streams (payload: the
    element in bits ``[0, data_bits)``, ``last`` above it)."""
    return {
        "payload": {"data": [0, data_bits], "last": data_bits},
        "input": {
            "port": "i",
            "elements": n_in,
            "dtype": dtype_json(in_dtype),
            "tensor": in_tensor,
        },
        "output": {
            "port": "o",
            "elements": n_out,
            "dtype": dtype_json(out_dtype),
            "tensor": out_tensor,
        },
    }


def graph_quant(graph: Graph) -> dict:
    """The quantization of ``graph``'s input and output (``frontends.host.quant_entry``:
    numbers per tensor, lists per channel, a float ``offset`` for an accumulator output) and,
    under ``host``, what the host does around the hardware (input layout, host ops), or
    ``{}`` when either is not quantized."""
    from frontends.host import manifest_entries

    entries = manifest_entries(graph)
    if not entries["quant"]:
        return {}
    return dict(entries["quant"], host=entries["host"])


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: arrays[k] for k in sorted(arrays)})
    return buf.getvalue()


def write_artefact_dir(
    out_dir: str | Path,
    manifest: Manifest,
    *,
    rtl: dict[str, str],
    vectors: dict[str, np.ndarray],
    files: dict[str, str | bytes] | None = None,
    npz: dict[str, dict[str, np.ndarray]] | None = None,
    rtl_mtime: int | None = None,
) -> Path:
    """Write an artefact directory atomically (a reader sees the old one or the new one
    whole): ``rtl/<name>`` for each of ``rtl`` (the files ``manifest.rtl`` lists),
    ``manifest.json``, ``vectors/golden.npz`` (arrays in name order), ``vectors/<name>.npz``
    for each of ``npz`` and each of ``files`` at its relative path. ``rtl_mtime`` stamps the
    Verilog files (same bytes, same time: a simulator build of one config is reused).
    Returns ``out_dir``."""
    out_dir = Path(out_dir)
    if list(manifest.rtl) != list(rtl):
        raise ValueError(f"manifest lists {list(manifest.rtl)}, the writer got {list(rtl)}")
    with atomic_directory(out_dir) as tmp:
        for name, text in rtl.items():
            atomic_write(tmp / "rtl" / name, text)
            if rtl_mtime is not None:
                os.utime(tmp / "rtl" / name, (rtl_mtime, rtl_mtime))
        atomic_write(tmp / "manifest.json", manifest.to_json())
        for relative, data in (files or {}).items():
            atomic_write(tmp / relative, data)
        atomic_write(tmp / "vectors" / "golden.npz", _npz(vectors))
        for name, arrays in (npz or {}).items():
            atomic_write(tmp / "vectors" / f"{name}.npz", _npz(arrays))
    return out_dir


@dataclass(frozen=True)
class Artefact:
    """A generated design: ``manifest.json``, ``rtl/``, ``vectors/``, ``sim/``, ``build/``."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).resolve())
        if not (self.path / "manifest.json").is_file():
            raise ArtefactError(
                f"{self.path}: not an nnloom artefact directory (no "
                f"manifest.json); make one with `nnloom generate`"
            )

    @property
    def manifest(self) -> Manifest:
        """``manifest.json``, validated (``ArtefactError`` names a malformed field)."""
        where = self.path / "manifest.json"
        try:
            data = json.loads(where.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtefactError(f"{where}: not readable JSON ({exc})") from None
        return Manifest.from_dict(data, str(where))

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

    def write_json(self, relative: str, obj: object) -> Path:
        target = self.path / relative
        atomic_write(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")
        return target
