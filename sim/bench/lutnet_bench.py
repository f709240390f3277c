"""cocotb bench for the LUT engines: LR frames in, HR (or enhanced) frames out, bit for bit.

Streams every golden LR frame (``vectors/golden.npz`` ``inputs``, (N, H, W) uint8) into ``i``
back to back, collects the HR pixels from ``o`` and compares each frame with ``outputs``
(N, rH, rW) exactly, including ``last`` on each frame's final pixel. Values are driven on the
falling clock edge and ``ready`` is sampled once they have settled (``ReadOnly``: an engine's
``i.ready`` may follow ``o.ready`` combinationally); a transfer happens at a rising edge with
``valid & ready``.

An engine whose tables live in RAM (HKLUT on the UP5K: manifest ``streams.load``) first gets
the vectors' ``tables`` words streamed into ``load`` (with random gaps under backpressure);
frames are sent once its ``loaded`` output is high. With ``streams.load.per_frame`` (ICELUT:
each frame has its own LUT) ``tables`` holds one row of words per frame, streamed into
``load`` alongside the pixels; the engine takes them in turn.

Frames (N, H, W, C) with C > 1 channels travel as one pixel per transfer, channel ``c`` in
bits ``[8c, 8c + 8)``, ``last`` at bit ``streams.payload.last``.

Environment: ``NNLOOM_ARTEFACT``, ``NNLOOM_SIM_OUT``, ``NNLOOM_BACKPRESSURE`` ("1": random
input gaps and output stalls), ``NNLOOM_SEED``, ``NNLOOM_SIM_LIMIT`` (frames, 0: all).
Writes ``outputs.npz`` (``outputs``; ``cycles``: frame 0's latency from its first input to its
last output, then each later frame's period) and ``summary.json``.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import FallingEdge, ReadOnly

from .common import settings, start, write_results

MAX_REPORTED = 20


def _packed(frame, channels):
    """A frame's pixels, channel c of each in bits [8c, 8c + 8)."""
    px = np.asarray(frame, dtype=np.int64).reshape(-1, channels)
    return (px << (8 * np.arange(channels))).sum(axis=1)


async def _send(dut, frames, gaps, channels=1, last_bit=8):
    for frame in frames:
        flat = _packed(frame, channels)
        for j, value in enumerate(flat):
            while gaps is not None and gaps.random() < 0.25:
                dut.i__valid.value = 0
                await FallingEdge(dut.clk)
            dut.i__payload.value = int(value) | (int(j == len(flat) - 1) << last_bit)
            dut.i__valid.value = 1
            while True:
                await ReadOnly()  # ready may follow o.ready, written this step by _receive
                ready = bool(dut.i__ready.value)
                await FallingEdge(dut.clk)
                if ready:
                    break
    dut.i__valid.value = 0


async def _receive(dut, count, gaps, per_frame, clock, last_bit=8):
    data, lasts, cycles = [], [], []
    while len(data) < count:
        ready = gaps is None or gaps.random() < 0.7
        dut.o__ready.value = int(ready)
        valid = bool(dut.o__valid.value)
        raw = dut.o__payload.value.to_unsigned() if valid else 0
        await FallingEdge(dut.clk)
        if valid and ready:
            data.append(raw & ((1 << last_bit) - 1))
            lasts.append((raw >> last_bit) & 1)
            if len(data) % per_frame == 0:
                cycles.append(clock[0])
    dut.o__ready.value = 0
    return np.array(data, dtype=np.int64), np.array(lasts), cycles


async def _load(dut, words, gaps, done=None):
    for word in np.ravel(words):
        while gaps is not None and gaps.random() < 0.25:
            dut.load__valid.value = 0
            await FallingEdge(dut.clk)
        dut.load__payload.value = int(word)
        dut.load__valid.value = 1
        while True:
            await ReadOnly()
            ready = bool(dut.load__ready.value)
            await FallingEdge(dut.clk)
            if ready:
                break
    dut.load__valid.value = 0
    while done is not None and not bool(getattr(dut, done).value):
        await FallingEdge(dut.clk)


@cocotb.test()
async def hr_frames_match_golden(dut: HierarchyObject) -> None:
    bench = settings()
    inputs, expected = bench.inputs, bench.expected
    backpressure = bench.backpressure
    gaps_in = bench.rng() if backpressure else None
    gaps_out = bench.rng(1) if backpressure else None
    streams = bench.artefact.manifest.get("streams", {})
    load = streams.get("load")
    last_bit = int(streams.get("payload", {}).get("last", 8))
    channels = int(streams.get("payload", {}).get("channels", 1))
    await start(dut, idle={"load__valid": 0} if load else None)
    loader = None
    if load:
        words = bench.artefact.vectors()[load["vector"]]
        gaps_load = bench.rng(2) if backpressure else None
        if load.get("per_frame"):
            loader = cocotb.start_soon(_load(dut, words[: len(inputs)], gaps_load))
        else:
            await _load(dut, words, gaps_load, load["done"])

    per_frame = int(expected[0].size) // channels
    clock = [0]

    async def count():
        while True:
            await FallingEdge(dut.clk)
            clock[0] += 1

    counter = cocotb.start_soon(count())
    sender = cocotb.start_soon(_send(dut, inputs, gaps_in, channels, last_bit))
    data, lasts, ends = await _receive(
        dut, per_frame * len(inputs), gaps_out, per_frame, clock, last_bit
    )
    await sender
    if loader is not None:
        await loader
    counter.cancel()
    # Frame 0: cycles from its first input transfer to its last output transfer, inclusive;
    # later frames: cycles since the previous frame's last output (the steady frame period).
    cycles = [ends[0] + 1] + [b - a for a, b in zip(ends, ends[1:])]

    got = (
        (data.astype(np.int64)[:, None] >> (8 * np.arange(channels)))
        .astype(np.uint8)
        .reshape(expected.shape)
    )
    mismatches: list[str] = []
    count = 0
    for n in range(len(expected)):
        for y, x, *c in zip(*np.nonzero(got[n] != expected[n])):
            count += 1
            if len(mismatches) < MAX_REPORTED:
                where = f"row {y}, column {x}" + (f", channel {c[0]}" if c else "")
                mismatches.append(
                    f"frame {n}: {'pixel' if c else 'HR pixel'} ({where}): "
                    f"expected {expected[n][(y, x, *c)]}, got {got[n][(y, x, *c)]}"
                )
    want_last = np.zeros(len(lasts), dtype=int)
    want_last[per_frame - 1 :: per_frame] = 1
    if not np.array_equal(lasts, want_last):
        bad = np.flatnonzero(lasts != want_last)[:5].tolist()
        mismatches.append(
            f"'last' flags wrong at output pixels {bad}; expected only on each frame's final pixel"
        )

    write_results(
        bench.out_dir,
        {
            "vectors": int(len(inputs)),
            "mismatching_elements": count,
            "mismatches": mismatches,
            "backpressure": backpressure,
            "cycles": {"min": int(min(cycles)), "max": int(max(cycles))},
            "hr_pixels_per_frame": per_frame,
        },
        outputs=got,
        cycles=np.array(cycles, dtype=np.int64),
    )
    assert not mismatches, "RTL differs from the golden model:\n" + "\n".join(mismatches)
