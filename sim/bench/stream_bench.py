"""cocotb bench for an engine with one input and one output element stream.

Streams every golden input vector into ``i``, collects ``o`` and compares every element with
the golden output, bit for bit. Inputs are driven and outputs sampled on the falling clock
edge; a transfer happens at the rising edge where ``valid & ready``.

Environment: ``NNLOOM_ARTEFACT`` (the artefact folder), ``NNLOOM_BACKPRESSURE`` ("1": random
gaps on the input and random ``ready`` on the output), ``NNLOOM_SIM_OUT`` (where to write
``outputs.npz`` and ``summary.json``).
"""

from __future__ import annotations

import io
import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from rtl_gen.artefact import atomic_write

from .common import report_progress, settings, start, write_results

MAX_REPORTED = 20


def _decode(raw: int, dtype: dict) -> tuple[int, int]:
    width = dtype["width"]
    data = raw & ((1 << width) - 1)
    if dtype["signed"] and data >> (width - 1):
        data -= 1 << width
    return data, (raw >> width) & 1


async def _send(dut, vector, width: int, gaps: random.Random | None):
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


async def _receive(dut, count: int, dtype: dict, gaps: random.Random | None):
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
            data, last = _decode(raw, dtype)
            out.append(data)
            lasts.append(last)
    dut.o__ready.value = 0
    return out, lasts


TRACE_SIGNALS = ("i__valid", "i__ready", "o__valid", "o__ready", "busy")
TRACE_LIMIT = 4096


async def _trace(dut, samples: list, stop: list):
    """Samples the stream handshakes and ``busy`` every cycle (for the report's waveform of
    the first inference) until ``stop[0]`` or ``TRACE_LIMIT`` cycles."""
    while not stop[0] and len(samples) < TRACE_LIMIT:
        await RisingEdge(dut.clk)
        samples.append([int(getattr(dut, name).value) for name in TRACE_SIGNALS])


@cocotb.test()
async def outputs_match_golden(dut):
    bench = settings()
    manifest = bench.artefact.manifest
    inputs, expected = bench.inputs, bench.expected
    gaps = bench.rng() if bench.backpressure else None
    in_dtype = manifest["streams"]["input"]["dtype"]
    out_dtype = manifest["streams"]["output"]["dtype"]
    last_layer = manifest["layers"][-1]
    out_tensor = manifest["streams"]["output"]["tensor"]
    await start(dut)

    got = np.zeros_like(expected)
    cycles = np.zeros(len(inputs), dtype=np.int64)
    mismatches: list[str] = []
    mismatch_count = 0
    trace, stop_trace = [], [False]
    cocotb.start_soon(_trace(dut, trace, stop_trace))
    for n, vector in enumerate(inputs):
        await _send(dut, vector, in_dtype["width"], gaps)
        out, lasts = await _receive(dut, expected.shape[1], out_dtype, gaps)
        stop_trace[0] = True
        got[n] = out
        cycles[n] = dut.cycles.value.to_unsigned()
        if lasts != [0] * (len(lasts) - 1) + [1]:
            mismatches.append(
                f"vector {n}: 'last' flags {lasts}, expected only on the final element"
            )
        for index in np.flatnonzero(got[n] != expected[n]):
            mismatch_count += 1
            if len(mismatches) < MAX_REPORTED:
                mismatches.append(
                    f"vector {n}: layer '{last_layer['name']}' ({last_layer['op']}) output "
                    f"'{out_tensor}'[{index}]: expected {expected[n, index]}, "
                    f"got {got[n, index]}"
                )
        report_progress(bench.out_dir, n + 1, len(inputs))

    write_results(
        bench.out_dir,
        {
            "vectors": int(len(inputs)),
            "mismatching_elements": mismatch_count,
            "mismatches": mismatches,
            "backpressure": bench.backpressure,
            "cycles": {"min": int(cycles.min()), "max": int(cycles.max())},
            "expected_latency": manifest["latency_cycles"],
        },
        outputs=got,
        cycles=cycles,
    )
    buf = io.BytesIO()
    np.savez(buf, signals=np.array(TRACE_SIGNALS), samples=np.array(trace, dtype=np.uint8))
    atomic_write(bench.out_dir / "trace.npz", buf.getvalue())

    assert not mismatches, "RTL differs from the golden model:\n" + "\n".join(mismatches)
    if not bench.backpressure:
        assert (cycles == manifest["latency_cycles"]).all(), (
            f"cycles per inference {sorted(set(cycles.tolist()))} differ from the latency "
            f"model's {manifest['latency_cycles']}"
        )
