"""The stream driver of the benches whose engine has one input and one output element stream
(``stream_bench``, ``gemm_bench``, ``snn_bench``, ``smurf_bench``).

``send`` drives one vector into ``i`` and ``receive`` collects elements from ``o``; inputs are
driven and outputs sampled on the falling clock edge, and a transfer happens at the rising
edge where ``valid & ready``. ``stream_vectors`` runs every golden vector through and names
each output element that differs from the golden, bit for bit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import FallingEdge, RisingEdge

from .common import BenchSettings, report_progress

__all__ = ["MAX_REPORTED", "StreamRun", "decode", "receive", "send", "stream_vectors"]

MAX_REPORTED = 20


def decode(raw: int, dtype: dict) -> tuple[int, int]:
    """An output payload as (element code, ``last`` flag); ``dtype`` is the manifest's."""
    width = dtype["width"]
    data = raw & ((1 << width) - 1)
    if dtype["signed"] and data >> (width - 1):
        data -= 1 << width
    return data, (raw >> width) & 1


async def send(
    dut: HierarchyObject, vector: Sequence[int], width: int, gaps: random.Random | None
) -> None:
    """``vector`` into ``i``, ``last`` on its final element; with ``gaps``, random idle
    cycles between elements."""
    for j, value in enumerate(vector):
        while gaps is not None and gaps.random() < 0.25:
            dut.i__valid.value = 0
            await FallingEdge(dut.clk)
        last = int(j == len(vector) - 1)
        dut.i__payload.value = (int(value) & ((1 << width) - 1)) | (last << width)
        dut.i__valid.value = 1
        while True:
            ready = bool(dut.i__ready.value)
            await FallingEdge(dut.clk)
            if ready:
                break
    dut.i__valid.value = 0


async def receive(
    dut: HierarchyObject, count: int, dtype: dict, gaps: random.Random | None
) -> tuple[list[int], list[int]]:
    """``count`` elements from ``o`` and their ``last`` flags; with ``gaps``, ``ready`` is
    low on random cycles."""
    out, lasts = [], []
    while len(out) < count:
        ready = gaps is None or gaps.random() < 0.7
        dut.o__ready.value = int(ready)
        if gaps is None and not dut.o__valid.value:
            await RisingEdge(dut.o__valid)
            await FallingEdge(dut.clk)
            continue
        valid = bool(dut.o__valid.value)
        raw = dut.o__payload.value.to_unsigned() if valid else 0
        await FallingEdge(dut.clk)
        if valid and ready:
            data, last = decode(raw, dtype)
            out.append(data)
            lasts.append(last)
    dut.o__ready.value = 0
    return out, lasts


@dataclass
class StreamRun:
    """What ``stream_vectors`` saw: the output codes and the ``cycles`` counter per vector,
    and how they differ from the golden (``mismatches`` describes every wrong ``last`` flag
    and the first of the rest, up to ``MAX_REPORTED``)."""

    got: np.ndarray
    cycles: np.ndarray
    mismatches: list[str] = field(default_factory=list)
    mismatching_elements: int = 0

    def note(self, text: str) -> None:
        """Describe one more difference while fewer than ``MAX_REPORTED`` are."""
        if len(self.mismatches) < MAX_REPORTED:
            self.mismatches.append(text)

    def summary(self, bench: BenchSettings) -> dict:
        """The ``summary.json`` entries every stream bench writes."""
        return {
            "vectors": int(len(self.got)),
            "mismatching_elements": self.mismatching_elements,
            "mismatches": self.mismatches,
            "backpressure": bench.backpressure,
            "cycles": {"min": int(self.cycles.min()), "max": int(self.cycles.max())},
            "expected_latency": bench.artefact.manifest["latency_cycles"],
        }

    def assert_exact(self, model: str = "the golden model") -> None:
        assert not self.mismatches, f"RTL differs from {model}:\n" + "\n".join(self.mismatches)

    def assert_latency(self, bench: BenchSettings) -> None:
        """Without back-pressure every inference takes the latency model's cycles."""
        latency = bench.artefact.manifest["latency_cycles"]
        if not bench.backpressure:
            assert (self.cycles == latency).all(), (
                f"cycles per inference {sorted(set(self.cycles.tolist()))} differ from the "
                f"latency model's {latency}"
            )


async def stream_vectors(
    dut: HierarchyObject,
    bench: BenchSettings,
    *,
    what: str = "output",
    tracer: Callable[[list], Coroutine[Any, Any, None]] | None = None,
    each: Callable[[int, StreamRun], None] | None = None,
) -> StreamRun:
    """Every input vector of ``bench`` into ``i`` and its outputs from ``o``, each element
    compared with the golden (``what`` names the output stream in the messages), the
    ``cycles`` counter read after each vector. ``tracer(stop)`` starts as the first vector
    goes in and ``stop`` (a list) fills once its outputs are out; ``each(n, run)`` runs after
    vector ``n`` is checked (to read and check more counters)."""
    manifest = bench.artefact.manifest
    inputs, expected = bench.inputs, bench.expected
    gaps = bench.rng() if bench.backpressure else None
    in_dtype = manifest["streams"]["input"]["dtype"]
    out_dtype = manifest["streams"]["output"]["dtype"]
    last_layer = manifest["layers"][-1]
    out_tensor = manifest["streams"]["output"]["tensor"]
    run = StreamRun(np.zeros_like(expected), np.zeros(len(inputs), dtype=np.int64))
    stop: list[bool] = []
    for n, vector in enumerate(inputs):
        if n == 0 and tracer is not None:
            cocotb.start_soon(tracer(stop))
        await send(dut, vector, in_dtype["width"], gaps)
        out, lasts = await receive(dut, expected.shape[1], out_dtype, gaps)
        if n == 0:
            stop.append(True)
        run.got[n] = out
        run.cycles[n] = dut.cycles.value.to_unsigned()
        if lasts != [0] * (len(lasts) - 1) + [1]:
            run.mismatches.append(
                f"vector {n}: 'last' flags {lasts}, expected only on the final element"
            )
        for index in np.flatnonzero(run.got[n] != expected[n]):
            run.mismatching_elements += 1
            run.note(
                f"vector {n}: layer '{last_layer['name']}' ({last_layer['op']}) {what} "
                f"'{out_tensor}'[{index}]: expected {expected[n, index]}, "
                f"got {run.got[n, index]}"
            )
        if each is not None:
            each(n, run)
        report_progress(bench.out_dir, n + 1, len(inputs))
    return run
