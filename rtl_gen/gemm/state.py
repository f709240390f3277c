"""The compiler's state as the units' emitters see it (``rowwise``, ``attention``,
``tables`` and the post ops): typing contracts only, so that those modules need not import
the compiler that calls them (``compiler.Lowering`` and ``compiler._Arena`` fulfil them).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from frontends.ir import Graph

from .isa import Instr

__all__ = ["Arena", "LoweringState"]


class Arena(Protocol):
    """The activation buffer's allocator as a post op or unit takes a region from it."""

    def take(self, n: int) -> int: ...


class LoweringState(Protocol):
    """What a unit's emitter reads and appends to: the graph, the instruction list, the
    activation arena and where each tensor lives (base, physical order, aliases of views),
    the parameter, gather-table and table memories' contents, and the flags and widths that
    size the units the engine instantiates."""

    graph: Graph
    instrs: list[Instr]
    act: Arena
    act_base: dict[str, int]
    layout: dict[str, np.ndarray]
    aliases: dict[str, str]
    last_read: dict[str, int]
    params: list[tuple[int, int]]
    tab: list[int]
    etab: list[int]
    bias_bits: int
    row_bits: int
    matmul: bool
    cadd: bool
    norm: bool

    def add_idx(self, entries: np.ndarray) -> int: ...
