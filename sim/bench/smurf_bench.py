"""cocotb bench for a SMURF engine (``engine: smurf``): RTL outputs equal the cycle model's.

For every golden input vector (a tuple of codes): stream its ``M`` elements into ``i``, count
the cycles from the last input transfer to ``o.valid`` (the unit's latency,
``parameters.unit_latency_cycles``), read the full-precision ``counts`` port, then take the
``K`` output elements from ``o``. Each count and each 8-bit output code must equal the golden
(``counts`` and ``outputs`` of the cycle model) bit for bit, ``last`` must mark the final
element, and without backpressure the ``cycles`` port must equal ``latency_cycles``. Signals
are driven and sampled on the falling edge; transfers happen at rising edges.

Environment: ``NNLOOM_ARTEFACT``, ``NNLOOM_SIM_OUT``, ``NNLOOM_SIM_LIMIT`` (first N vectors),
``NNLOOM_BACKPRESSURE`` ("1": random input gaps and output stalls), ``NNLOOM_SEED``.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles

from .common import report_progress, settings, start, write_results
from .stream import MAX_REPORTED, receive, send


def _unpack(word: int, count: int, width: int) -> list[int]:
    return [(word >> (j * width)) & ((1 << width) - 1) for j in range(count)]


@cocotb.test()
async def outputs_match_cycle_model(dut: HierarchyObject) -> None:
    bench = settings()
    manifest = bench.artefact.manifest
    inputs, expected = bench.inputs, bench.expected
    with np.load(bench.artefact.path / "vectors" / "golden.npz") as f:
        expected_counts = f["counts"][: len(inputs)]
    gaps = bench.rng() if bench.backpressure else None
    s_in, s_out = manifest["streams"]["input"], manifest["streams"]["output"]
    count_bits = s_out["counts"]["width"]
    latency = manifest["latency_cycles"]
    unit_latency = manifest["parameters"]["unit_latency_cycles"]
    await start(dut)

    got = np.zeros_like(expected)
    got_counts = np.zeros_like(expected_counts)
    cycles = np.zeros(len(inputs), dtype=np.int64)
    waits = np.zeros(len(inputs), dtype=np.int64)
    mismatches: list[str] = []
    count = 0

    def report(text):
        nonlocal count
        count += 1
        if len(mismatches) < MAX_REPORTED:
            mismatches.append(text)

    for n, codes in enumerate(inputs):
        named = ", ".join(f"{name}={int(c)}" for name, c in zip(s_in["names"], codes))
        await send(dut, codes, s_in["dtype"]["width"], gaps)
        waited = 0  # rising edges since the last input transfer
        while not dut.o__valid.value:
            if waited > 4 * unit_latency + 16:
                raise AssertionError(
                    f"vector {n} ({named}): o.valid never rose within "
                    f"{waited} cycles (expected {unit_latency})"
                )
            step = max(1, unit_latency - waited)
            await ClockCycles(dut.clk, step, rising=False)
            waited += step
        waits[n] = waited
        got_counts[n] = _unpack(dut.counts.value.to_unsigned(), s_out["elements"], count_bits)
        out, lasts = await receive(dut, s_out["elements"], s_out["dtype"], gaps)
        got[n] = out
        cycles[n] = dut.cycles.value.to_unsigned()
        if lasts != [0] * (len(lasts) - 1) + [1]:
            report(
                f"vector {n} ({named}): 'last' flags {lasts}, expected only on the final element"
            )
        for k in np.flatnonzero(got_counts[n] != expected_counts[n]):
            report(
                f"vector {n} ({named}): output '{s_out['names'][k]}' count expected "
                f"{expected_counts[n, k]}, got {got_counts[n, k]}"
            )
        for k in np.flatnonzero(got[n] != expected[n]):
            report(
                f"vector {n} ({named}): output '{s_out['names'][k]}' code expected "
                f"{expected[n, k]}, got {got[n, k]}"
            )
        report_progress(bench.out_dir, n + 1, len(inputs))

    write_results(
        bench.out_dir,
        {
            "vectors": int(len(inputs)),
            "mismatching_elements": count,
            "mismatches": mismatches,
            "backpressure": bench.backpressure,
            "cycles": {"min": int(cycles.min()), "max": int(cycles.max())},
            "unit_cycles": {"min": int(waits.min()), "max": int(waits.max())},
            "expected_latency": latency,
        },
        outputs=got,
        counts=got_counts,
        cycles=cycles,
    )

    assert not mismatches, "RTL differs from the cycle model:\n" + "\n".join(mismatches)
    assert (waits == unit_latency).all(), (
        f"cycles from the last input transfer to o.valid {sorted(set(waits.tolist()))} differ "
        f"from the unit's latency model {unit_latency}"
    )
    if not bench.backpressure:
        assert (cycles == latency).all(), (
            f"cycles port {sorted(set(cycles.tolist()))} differs from the latency model's {latency}"
        )
