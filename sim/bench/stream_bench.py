"""cocotb bench for an engine with one input and one output element stream.

Streams every golden input vector into ``i``, collects ``o`` and compares every element with
the golden output, bit for bit (the driver: ``sim.bench.stream``), and the cycles of every
inference with the latency model when there is no back-pressure.

Environment: ``NNLOOM_ARTEFACT`` (the artefact folder), ``NNLOOM_BACKPRESSURE`` ("1": random
gaps on the input and random ``ready`` on the output), ``NNLOOM_SIM_OUT`` (where to write
``outputs.npz`` and ``summary.json``).
"""

from __future__ import annotations

import io

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import RisingEdge

from rtl_gen.artefact import atomic_write

from .common import settings, start, write_results
from .stream import stream_vectors

TRACE_SIGNALS = ("i__valid", "i__ready", "o__valid", "o__ready", "busy")
TRACE_LIMIT = 4096


async def _trace(dut: HierarchyObject, samples: list, stop: list) -> None:
    """Samples the stream handshakes and ``busy`` every cycle (for the report's waveform of
    the first inference) until ``stop`` fills or ``TRACE_LIMIT`` cycles."""
    while not stop and len(samples) < TRACE_LIMIT:
        await RisingEdge(dut.clk)
        samples.append([int(getattr(dut, name).value) for name in TRACE_SIGNALS])


@cocotb.test()
async def outputs_match_golden(dut: HierarchyObject) -> None:
    bench = settings()
    await start(dut)
    trace: list = []
    run = await stream_vectors(dut, bench, tracer=lambda stop: _trace(dut, trace, stop))
    write_results(bench.out_dir, run.summary(bench), outputs=run.got, cycles=run.cycles)
    buf = io.BytesIO()
    np.savez(buf, signals=np.array(TRACE_SIGNALS), samples=np.array(trace, dtype=np.uint8))
    atomic_write(bench.out_dir / "trace.npz", buf.getvalue())
    run.assert_exact()
    run.assert_latency(bench)
