"""cocotb bench for a SMURF unit (``engine: smurf``): RTL counts equal the cycle model's.

For every golden input vector (a tuple of codes): send it on ``i``, wait for ``o``, compare
each output's ones-count with the golden count bit for bit, and check the cycles from the
input transfer to ``o.valid`` against the manifest's ``latency_cycles``. Signals are driven
and sampled on the falling edge; transfers happen at rising edges.

Environment: ``NNLOOM_ARTEFACT``, ``NNLOOM_SIM_OUT``, ``NNLOOM_SIM_LIMIT`` (first N vectors),
``NNLOOM_BACKPRESSURE`` ("1": random delays before taking ``o``), ``NNLOOM_SEED``.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge

from .common import settings, start, write_results

MAX_REPORTED = 20


def _pack(values, width: int) -> int:
    word = 0
    for j, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (j * width)
    return word


def _unpack(word: int, count: int, width: int) -> list[int]:
    return [(word >> (j * width)) & ((1 << width) - 1) for j in range(count)]


@cocotb.test()
async def counts_match_cycle_model(dut):
    bench = settings()
    manifest = bench.artefact.manifest
    inputs, expected = bench.inputs, bench.expected
    backpressure = bench.backpressure
    stalls = bench.rng()
    s_in, s_out = manifest["streams"]["input"], manifest["streams"]["output"]
    latency = manifest["latency_cycles"]
    await start(dut)

    got = np.zeros_like(expected)
    cycles = np.zeros(len(inputs), dtype=np.int64)
    mismatches: list[str] = []
    count = 0
    for n, codes in enumerate(inputs):
        dut.i__payload.value = _pack(codes, s_in["width"])
        dut.i__valid.value = 1
        while not dut.i__ready.value:
            await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)          # the transfer happened at this rising edge
        dut.i__valid.value = 0
        waited = 0
        while not dut.o__valid.value:
            if waited > 4 * latency + 16:
                raise AssertionError(f"vector {n} (codes {codes.tolist()}): o.valid never rose "
                                     f"within {waited} cycles (expected {latency})")
            await ClockCycles(dut.clk, max(1, latency - 1) if waited == 0 else 1,
                              rising=False)
            waited += max(1, latency - 1) if waited == 0 else 1
        cycles[n] = waited
        if backpressure:
            await ClockCycles(dut.clk, stalls.randrange(4), rising=False)
        got[n] = _unpack(dut.o__payload.value.to_unsigned(), s_out["elements"], s_out["width"])
        dut.o__ready.value = 1
        await FallingEdge(dut.clk)
        dut.o__ready.value = 0
        for k in np.flatnonzero(got[n] != expected[n]):
            count += 1
            if len(mismatches) < MAX_REPORTED:
                named = ", ".join(f"{name}={int(c)}" for name, c in zip(s_in["names"], codes))
                mismatches.append(f"vector {n} ({named}): output '{s_out['names'][k]}' count "
                                  f"expected {expected[n, k]}, got {got[n, k]}")

    write_results(bench.out_dir, {
        "vectors": int(len(inputs)), "mismatching_elements": count, "mismatches": mismatches,
        "backpressure": backpressure, "cycles": {"min": int(cycles.min()),
                                                 "max": int(cycles.max())},
        "expected_latency": latency}, outputs=got, cycles=cycles)

    assert not mismatches, "RTL differs from the cycle model:\n" + "\n".join(mismatches)
    assert (cycles == latency).all(), (
        f"cycles from input transfer to o.valid {sorted(set(cycles.tolist()))} differ from "
        f"the latency model's {latency}")
