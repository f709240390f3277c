"""What every cocotb bench of an artefact shares: its settings from the environment, clock
and reset, and writing ``outputs.npz`` / ``summary.json`` (see ``sim.runner.run_sim``)."""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, FallingEdge

from rtl_gen.artefact import Artefact, atomic_write

__all__ = ["BenchSettings", "settings", "start", "write_results", "report_progress"]


@dataclass
class BenchSettings:
    artefact: Artefact
    inputs: np.ndarray  # golden input vectors (the first NNLOOM_SIM_LIMIT, if set)
    expected: np.ndarray  # golden outputs for them
    backpressure: bool  # NNLOOM_BACKPRESSURE=1: random input gaps and output stalls
    seed: int
    out_dir: Path  # where outputs.npz and summary.json go

    def rng(self, offset: int = 0) -> random.Random:
        return random.Random(self.seed + offset)


def settings() -> BenchSettings:
    artefact = Artefact(os.environ["NNLOOM_ARTEFACT"])
    vectors = artefact.vectors()
    inputs, expected = vectors["inputs"], vectors["outputs"]
    limit = int(os.environ.get("NNLOOM_SIM_LIMIT", "0") or 0)
    if limit:
        inputs, expected = inputs[:limit], expected[:limit]
    return BenchSettings(
        artefact=artefact,
        inputs=inputs,
        expected=expected,
        backpressure=os.environ.get("NNLOOM_BACKPRESSURE") == "1",
        seed=int(os.environ.get("NNLOOM_SEED", "1")),
        out_dir=Path(os.environ.get("NNLOOM_SIM_OUT", artefact.path / "sim")),
    )


async def start(dut: HierarchyObject, *, period_ns: int = 10, idle: dict | None = None) -> None:
    """Start the clock, hold reset for three cycles with the stream handshakes low (and the
    signals in ``idle`` at their values), and return on a falling edge after reset."""
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    for name, value in {"i__valid": 0, "o__ready": 0, **(idle or {})}.items():
        if hasattr(dut, name):
            getattr(dut, name).value = value
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)


def write_results(out_dir: Path, summary: dict, **arrays: np.ndarray) -> None:
    """``outputs.npz`` with ``arrays`` and ``summary.json`` (``vectors``,
    ``mismatching_elements``, ``mismatches``, ``cycles``: {``min``, ``max``}, ...)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(Path(out_dir) / "outputs.npz", buf.getvalue())
    atomic_write(Path(out_dir) / "summary.json", json.dumps(summary, indent=2) + "\n")


_last_report = [0.0]


def report_progress(out_dir: Path, done: int, total: int, *, every_s: float = 0.25) -> None:
    """Tells ``sim.runner`` (which shows it) that ``done`` of ``total`` vectors are checked:
    ``progress.json`` in ``out_dir``, rewritten at most every ``every_s`` seconds and always
    for the last vector."""
    import time

    now = time.monotonic()
    if done < total and now - _last_report[0] < every_s:
        return
    _last_report[0] = now
    atomic_write(Path(out_dir) / "progress.json", json.dumps({"done": done, "total": total}))
