"""Board-level simulation: the board top of a bitstream, driven through its UART pins.

``run_board_sim(artefact, board)`` writes the Verilog of ``BoardTop`` around the artefact's
engine for ``board`` (the host link's baud rate, and the engine clock the board's PLL makes
for the bitstream, so the UART divides the same frequency; without the PLL and the board's
I/O buffers, vendor primitives a simulator does not have: ``sync`` is a plain clock) and runs
``sim.bench.board_bench`` on it: a host that speaks the framed protocol on the UART pins at
the true baud rate, asks the board who it is, sends golden inputs and compares the replies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog

from rtl_gen.artefact import Artefact, atomic_write
from sim.runner import SimResult, run_sim

from .engine_instance import EngineInstance

__all__ = ["run_board_sim", "BOARD_TOP", "DEFAULT_BAUD"]

BOARD_TOP = "nnloom_board"
DEFAULT_BAUD = 115200


def write_board_verilog(
    artefact: Artefact, board: str, *, baud: int = DEFAULT_BAUD, clk_freq: float
) -> Path:
    from boards import get_board
    from boards.top import BoardTop

    spec = get_board(board)
    engine = EngineInstance(artefact)
    top = BoardTop(
        engine,
        n_in=engine.n_in,
        n_out=engine.n_out,
        design_id=engine.design_id,
        baud=baud,
        clk_freq=clk_freq,
    )
    path = artefact.path / "sim" / f"board-{spec.name}" / f"{BOARD_TOP}.v"
    atomic_write(path, verilog.convert(top, name=BOARD_TOP, emit_src=False))
    return path


def run_board_sim(
    artefact: Artefact | str | Path,
    board: str,
    *,
    limit: int = 4,
    baud: int = DEFAULT_BAUD,
    waves: bool = False,
    clock_mhz: float | None = None,
    build_root: Path | None = None,
    progress: Callable[[str, int | None, int | None], None] | None = None,
) -> SimResult:
    """Run ``limit`` golden vectors through the simulated board top of ``board``, clocked at
    the frequency its PLL makes for ``clock_mhz`` (default: the board's target); results go
    to ``sim/board-<board>/``. ``progress`` is ``sim.runner.run_sim``'s."""
    from boards import get_board

    from .build import board_clock

    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    spec = get_board(board)
    clk_freq = board_clock(spec, clock_mhz).output_hz
    verilog_path = write_board_verilog(artefact, board, baud=baud, clk_freq=clk_freq)
    return run_sim(
        artefact,
        design=([verilog_path], BOARD_TOP),
        bench="sim.bench.board_bench",
        sim_dir=verilog_path.parent,
        limit=limit,
        waves=waves,
        build_root=build_root,
        progress=progress,
        extra_env={
            "NNLOOM_CLK_HZ": repr(clk_freq),
            "NNLOOM_BAUD": str(baud),
            "NNLOOM_BOARD": spec.name,
        },
    )
