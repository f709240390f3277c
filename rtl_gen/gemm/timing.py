"""Cycle costs of the overlay's instructions: the one timing model the compiler's split
chooser, the Python overlay model and the benchmark share. The constants are the RTL's
pipeline depths (see ``sequencer``, ``core`` and ``post``); tests hold the RTL to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import GemmConfig

__all__ = [
    "core_issue_cycles",
    "core_busy_cycles",
    "core_compute_cycles",
    "core_pipe",
    "post_cycles",
    "post_issue_cycles",
    "store_cycles",
    "load_cycles",
    "fill_cycles",
    "add_cycles",
    "add_period",
    "max_cycles",
    "FETCH",
    "fetch_cycles",
    "CORE_PIPE",
    "POST_START",
    "POST_PIPE",
    "POST_WRITE",
    "ceil_div",
]

FETCH = 1  # sequencer: FETCH state before every instruction's EXEC cycle
CORE_PIPE = 5  # core: start register; idx read, act/weight read, operand regs, product
POST_START = 1  # sequencer: the post unit's start register (EXEC -> start)
POST_PIPE = 10  # post: read, registers, + bias, * mult halves, sum, + round, shift, shift,
# + zp and compares, clamp
POST_WRITE = 11  # a POST's j-th element is written POST_WRITE + j cycles after its EXEC
ADD_PIPE = 10  # add: last b read, its register, - zp, * mult, sum, + round, shift, shift,
# + zp, clamp/write
MAX_PIPE = 12  # max: idx read, act read, its register, compare, - zp, * mult, copy, + round,
# shift, shift, + zp, clamp


def fetch_cycles(config: GemmConfig) -> int:
    """Cycles before an instruction's EXEC: ``FETCH``, the decoder's stages when the
    instruction memory is coded (``protect.ProtectedRead``: parity one, SECDED two), and
    with ``ins_reg`` the cycle that registers the word (``sequencer``'s LATCH)."""
    stages = {"none": 0, "parity": 1, "secded": 2}[getattr(config, "protect", "none")]
    return FETCH + stages + bool(getattr(config, "ins_reg", False))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def core_issue_cycles(
    lanes: int, m: int, k: int, n: int, g: int, planes: int = 1
) -> tuple[int, int]:
    """Issue cycles of one GEMM on a core with ``lanes`` lanes, and the lanes drained by its
    last unit. Units run in (pixel, group, tile) order, each issuing ``planes * k`` steps
    (``planes``: weight bit-planes of the bit-serial LUT core, else 1); a unit's
    accumulators drain one lane a cycle while the next unit runs, so a unit lasts
    ``max(planes * k, d_prev)`` (``d_prev``: the previous unit's lanes, 0 for the first)."""
    tiles = ceil_div(n, lanes)
    k = k * planes
    drains = [min(lanes, n - t * lanes) for t in range(tiles)]
    row = sum(max(k, d) for d in drains[:-1])  # tiles after the first of a row
    first_row = k + row
    later_row = max(k, drains[-1]) + row
    units_rows = m * g
    return first_row + (units_rows - 1) * later_row, drains[-1]


def core_pipe(config: GemmConfig, core: str) -> int:
    """``core``'s pipeline depth in ``config``: ``CORE_PIPE``, two more for DSP lanes on
    registered ``MULT18X18D``s (``dsp_regs``: their input registers, and the memory outputs
    registered before the operand logic)."""
    return CORE_PIPE + 2 * (core == "dsp" and config.dsp_regs)


def core_busy_cycles(
    lanes: int, m: int, k: int, n: int, g: int, planes: int = 1, pipe: int = CORE_PIPE
) -> int:
    """Cycles a core is busy for one GEMM (it starts the cycle after the GEMM's EXEC):
    issue, the pipeline (``pipe``: ``core_pipe``), and the last unit's drain."""
    issue, last = core_issue_cycles(lanes, m, k, n, g, planes)
    return issue + pipe + last


def core_compute_cycles(
    lanes: int, m: int, k: int, n: int, g: int, planes: int = 1, pipe: int = CORE_PIPE
) -> int:
    """Cycles a core computes for one GEMM (``busy`` but for the last unit's drain; the
    ``SYNC`` barrier waits for this): issue and the pipeline."""
    issue, _ = core_issue_cycles(lanes, m, k, n, g, planes)
    return issue + pipe


def post_cycles(n: int, m: int) -> int:
    """Cycles from a POST's EXEC to the cycle after its last write: EXEC, the start
    register, one element a cycle, pipeline."""
    return 1 + POST_START + n * m + POST_PIPE


def post_issue_cycles(n: int, m: int) -> int:
    """Cycles from a POST's EXEC to the next FETCH: EXEC, the start register, one element
    issued a cycle, the cycle that sees the last issue done (the pipeline runs on behind:
    ``post_cycles``)."""
    return 1 + POST_START + n * m + 1


def add_cycles(n: int, period: int = 2) -> int:
    """Cycles from an ADD's EXEC to the next FETCH (two activation reads per element, an
    element every ``period`` cycles: ``post.PostUnit``'s ``add_period``)."""
    return 1 + POST_START + period * (n - 1) + 2 + ADD_PIPE


def add_period(config: GemmConfig) -> int:
    """Cycles an ADD element takes on ``config``: 4 on a single-ported (``spram``)
    activation buffer, whose idle two let the write through; else 2."""
    return 4 if getattr(config, "spram", False) else 2


def max_cycles(n: int, k: int) -> int:
    """Cycles from a MAX's EXEC to the next FETCH: EXEC, one window entry a cycle,
    pipeline."""
    return 1 + POST_START + n * k + MAX_PIPE


def load_cycles(n: int) -> int:
    """LOAD with an always-valid input: EXEC, then one element a cycle."""
    return 1 + n


def fill_cycles(n: int, per: int) -> int:
    """Cycles from a ``LOAD fill``'s EXEC to the next FETCH: EXEC, one SPRAM read a cycle
    (``per`` a word: a weight word's 16-bit halves, or a lane-cache fill's lanes), the last
    read's data written into the cache."""
    return 1 + per * n + 1


def store_cycles(n: int) -> int:
    """STORE with an always-ready output: EXEC, then one element a cycle behind a two-cycle
    pipeline (index read, activation read; the transfer)."""
    return 1 + 2 + n
