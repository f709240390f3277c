"""The engines ``nnloom generate``, ``flow`` and ``bench`` know: one typed record each, all
registered here and nowhere else.

An ``Engine`` says what it takes (``can_run``: the engine's own check on the model, with the
reason), how it writes an artefact (``generate(model, out, *, board, data, options)``), its
benchmark for ``nnloom bench``, the ``generate`` options it takes beyond the common ones, the
board it builds for by default and the commands of its own (``nnloom smurf``, ``nnloom bench
gemm``...). ``choose_engine`` is ``--engine auto``: the first engine in ``ENGINES`` order
that can run the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frontends.errors import ModelError, UsageError

from .commands import dense, gemm, lutnet, smurf, snn

if TYPE_CHECKING:
    from frontends.ir import Graph

__all__ = [
    "Engine",
    "ModelSource",
    "ENGINES",
    "GENERATE_OPTIONS",
    "get_engine",
    "engine_names",
    "check_options",
    "choose_engine",
]

# ``nnloom generate``/``flow`` options an engine may take; ``Engine.options`` names its own
GENERATE_OPTIONS = ("lanes", "random", "seed", "protect")


class ModelSource:
    """The model a user named: its path, the board asked for, and its IR graph imported once
    for every engine's check (``graph`` is None for a file that is not ONNX)."""

    def __init__(self, path: Path, board: str):
        self.path = Path(path)
        self.board = board
        self._graph = None
        self._error: ModelError | None = None
        self._imported = False

    @property
    def is_onnx(self) -> bool:
        return self.path.suffix.lower() == ".onnx" and self.path.is_file()

    @property
    def graph(self) -> Graph | None:
        """The IR graph, or None when the file is not ONNX; ``ModelError`` when it is ONNX
        that nnloom cannot import."""
        if not self._imported:
            self._imported = True
            if self.is_onnx:
                from frontends.onnx_import import import_onnx

                try:
                    self._graph = import_onnx(self.path)
                except ModelError as exc:
                    self._error = exc
        if self._error is not None:
            raise self._error
        return self._graph


def _onnx_check(check: Callable[[Any], tuple[bool, str]]):
    """``check(graph)`` for engines that take ONNX models only."""

    def can_run(source: ModelSource) -> tuple[bool, str]:
        if not source.is_onnx:
            return False, "not an ONNX model"
        return check(source.graph)

    return can_run


@dataclass(frozen=True)
class Engine:
    """One engine as the command line sees it."""

    name: str
    summary: str
    can_run: Callable[[ModelSource], tuple[bool, str]]
    generate: Callable[..., Path]  # (model, out, *, board, data, options) -> artefact path
    bench: Callable[..., list[dict]]  # (out_dir[, full=]) -> rows of ``nnloom bench``
    options: frozenset[str] = field(default_factory=frozenset)
    default_board: str = "icebreaker"
    commands: Callable[[Any, Any], None] | None = None  # register(app, bench_app)


# ``--engine auto`` asks them in this order: the overlay that runs the most networks first
ENGINES: tuple[Engine, ...] = (
    Engine(
        "gemm",
        "heterogeneous DSP+LUT GEMM overlay (dense and convolution layers)",
        can_run=lambda source: _onnx_check(lambda graph: gemm.can_run_gemm(graph, source.board))(
            source
        ),
        generate=gemm.generate,
        bench=gemm.bench_all_rows,
        options=frozenset({"random", "seed", "protect", "nonlinear"}),
        commands=gemm.register,
    ),
    Engine(
        "dense",
        "fully connected int8 layers on MAC lanes",
        can_run=_onnx_check(dense.can_run_dense),
        generate=dense.generate_dense,
        bench=dense.bench_dense,
        options=frozenset({"lanes", "random", "seed", "protect"}),
        commands=dense.register,
    ),
    Engine(
        "snn",
        "ST-BIF/IF/LIF spiking neurons (ONNX by exact conversion, or NIR)",
        can_run=lambda source: snn.can_run_snn(
            source.path, source.graph if source.is_onnx else None
        ),
        generate=snn.generate,
        bench=snn._bench_rows,
        options=frozenset({"random", "seed"}),
        commands=snn.register,
    ),
    Engine(
        "smurf",
        "stochastic-computing unit for one nonlinear function",
        can_run=_onnx_check(smurf.can_run_smurf),
        generate=smurf.generate,
        bench=smurf.bench_rows,
        commands=smurf.register,
    ),
    Engine(
        "lutnet",
        "SR-LUT/HKLUT super-resolution and ICELUT enhancement from LUT tables",
        can_run=lambda source: lutnet.can_run_lutnet(source.path),
        generate=lutnet.generate,
        bench=lutnet.bench_rows,
        default_board="ulx3s-85f",
        commands=lutnet.register,
    ),
)


def engine_names() -> list[str]:
    return [e.name for e in ENGINES]


def get_engine(name: str) -> Engine:
    """The engine called ``name``; ``UsageError`` naming the known ones otherwise."""
    for engine in ENGINES:
        if engine.name == name:
            return engine
    raise UsageError(f"unknown engine '{name}'; available: auto, {', '.join(engine_names())}")


def check_options(engine: Engine, given: dict[str, Any]) -> None:
    """Refuse, by name, a ``generate`` option the user gave that ``engine`` does not take."""
    refused = [k for k in given if k not in engine.options]
    if refused:
        takes = ", ".join(f"--{k}" for k in sorted(engine.options)) or "none of them"
        raise UsageError(
            f"{', '.join(f'--{k}' for k in refused)}: the {engine.name} engine "
            f"does not take {'it' if len(refused) == 1 else 'them'} (it takes "
            f"{takes})"
        )


def choose_engine(
    source: ModelSource, given: dict[str, Any] | None = None
) -> tuple[Engine, str, list[tuple[str, str]]]:
    """``--engine auto``: the first engine in ``ENGINES`` that can run ``source`` and takes
    every option in ``given``; returns it, its reason, and ``(name, why not)`` of the ones
    asked before it. ``ModelError`` when none can, with each engine's reason."""
    refused: list[tuple[str, str]] = []
    for engine in ENGINES:
        extra = [k for k in (given or {}) if k not in engine.options]
        if extra:
            refused.append((engine.name, f"does not take {', '.join('--' + k for k in extra)}"))
            continue
        ok, reason = engine.can_run(source)
        if ok:
            return engine, reason, refused
        refused.append((engine.name, reason))
    raise ModelError(
        f"{source.path}: no engine can run it: "
        + "; ".join(f"{name}: {why}" for name, why in refused)
    )
