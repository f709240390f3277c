"""cocotb bench for the spiking engine: the stream bench's bit-exact output check, plus each
inference's cycles and time steps against the engine's exact model (``snn_cycles``,
``snn_steps`` in the golden vectors; a negative ``snn_cycles`` has no model: NIR IF/LIF
networks), and the distribution of time steps to silence.

Settings, clock/reset and result files as every bench (``sim.bench.common``). Writes
``outputs.npz`` (outputs, cycles, steps) and ``summary.json`` (with ``steps``:
min/mean/p99/max and a histogram).
"""

from __future__ import annotations

import cocotb
import numpy as np

from .common import settings, start, write_results
from .stream_bench import MAX_REPORTED, _receive, _send


def steps_summary(steps: np.ndarray) -> dict:
    """min/mean/p99/max of the time steps and a histogram over at most ten bins."""
    edges = np.unique(np.linspace(0, max(int(steps.max()), 1), 11).astype(int))
    hist, _ = np.histogram(steps, bins=edges)
    return {
        "min": int(steps.min()),
        "mean": float(steps.mean()),
        "p99": float(np.percentile(steps, 99)),
        "max": int(steps.max()),
        "histogram": {"edges": edges.tolist(), "counts": hist.tolist()},
    }


@cocotb.test()
async def spikes_settle_on_golden(dut):
    bench = settings()
    manifest = bench.artefact.manifest
    inputs, expected = bench.inputs, bench.expected
    vectors = bench.artefact.vectors()
    exp_cycles, exp_steps = vectors["snn_cycles"], vectors["snn_steps"]
    gaps = bench.rng() if bench.backpressure else None
    in_dtype = manifest["streams"]["input"]["dtype"]
    out_dtype = manifest["streams"]["output"]["dtype"]
    last_layer = manifest["layers"][-1]
    out_tensor = manifest["streams"]["output"]["tensor"]
    await start(dut)

    got = np.zeros_like(expected)
    cycles = np.zeros(len(inputs), np.int64)
    steps = np.zeros(len(inputs), np.int64)
    mismatches: list[str] = []
    mismatch_count = 0
    for n, vector in enumerate(inputs):
        await _send(dut, vector, in_dtype["width"], gaps)
        out, lasts = await _receive(dut, expected.shape[1], out_dtype, gaps)
        got[n] = out
        cycles[n] = dut.cycles.value.to_unsigned()
        steps[n] = dut.steps.value.to_unsigned()
        if lasts != [0] * (len(lasts) - 1) + [1]:
            mismatches.append(f"vector {n}: 'last' flags {lasts}, expected only on the final")
        for index in np.flatnonzero(got[n] != expected[n]):
            mismatch_count += 1
            if len(mismatches) < MAX_REPORTED:
                mismatches.append(
                    f"vector {n}: layer '{last_layer['name']}' ({last_layer['op']}) tracer "
                    f"'{out_tensor}'[{index}]: expected {expected[n, index]}, "
                    f"got {got[n, index]}"
                )
        if steps[n] != exp_steps[n] and len(mismatches) < MAX_REPORTED:
            mismatches.append(f"vector {n}: {steps[n]} time steps, the model says {exp_steps[n]}")
        if (
            not bench.backpressure
            and exp_cycles[n] >= 0
            and cycles[n] != exp_cycles[n]
            and len(mismatches) < MAX_REPORTED
        ):
            mismatches.append(f"vector {n}: {cycles[n]} cycles, the model says {exp_cycles[n]}")

    write_results(
        bench.out_dir,
        {
            "vectors": int(len(inputs)),
            "mismatching_elements": mismatch_count,
            "mismatches": mismatches,
            "backpressure": bench.backpressure,
            "cycles": {
                "min": int(cycles.min()),
                "mean": float(cycles.mean()),
                "max": int(cycles.max()),
            },
            "steps": steps_summary(steps),
            "t_max": manifest["parameters"]["t_max"],
            "expected_latency": manifest["latency_cycles"],
        },
        outputs=got,
        cycles=cycles,
        steps=steps,
    )
    assert not mismatches, "RTL differs from the spiking golden model:\n" + "\n".join(mismatches)
