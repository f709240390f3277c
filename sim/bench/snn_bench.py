"""cocotb bench for the spiking engine: the stream bench's bit-exact output check, plus each
inference's cycles and time steps against the engine's exact model (``snn_cycles``,
``snn_steps`` in the golden vectors; a negative ``snn_cycles`` has no model: NIR IF
networks), and the distribution of time steps to silence.

Environment as ``sim.bench.stream_bench``. Writes ``outputs.npz`` (outputs, cycles, steps) and
``summary.json`` (with ``steps``: min/mean/p99/max and a histogram).
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from rtl_gen.artefact import Artefact, atomic_write
from sim.bench.stream_bench import MAX_REPORTED, _receive, _send


@cocotb.test()
async def spikes_settle_on_golden(dut):
    artefact = Artefact(os.environ["NNLOOM_ARTEFACT"])
    manifest = artefact.manifest
    vectors = artefact.vectors()
    inputs, expected = vectors["inputs"], vectors["outputs"]
    exp_cycles, exp_steps = vectors["snn_cycles"], vectors["snn_steps"]
    limit = int(os.environ.get("NNLOOM_SIM_LIMIT", "0") or 0)
    if limit:
        inputs, expected = inputs[:limit], expected[:limit]
    backpressure = os.environ.get("NNLOOM_BACKPRESSURE") == "1"
    gaps = random.Random(int(os.environ.get("NNLOOM_SEED", "1"))) if backpressure else None
    in_dtype = manifest["streams"]["input"]["dtype"]
    out_dtype = manifest["streams"]["output"]["dtype"]
    last_layer = manifest["layers"][-1]
    out_tensor = manifest["streams"]["output"]["tensor"]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)

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
                    f"got {got[n, index]}")
        if steps[n] != exp_steps[n] and len(mismatches) < MAX_REPORTED:
            mismatches.append(f"vector {n}: {steps[n]} time steps, the model says "
                              f"{exp_steps[n]}")
        if not backpressure and exp_cycles[n] >= 0 and cycles[n] != exp_cycles[n] \
                and len(mismatches) < MAX_REPORTED:
            mismatches.append(f"vector {n}: {cycles[n]} cycles, the model says "
                              f"{exp_cycles[n]}")

    out_dir = Path(os.environ.get("NNLOOM_SIM_OUT", artefact.path / "sim"))
    buf = io.BytesIO()
    np.savez(buf, outputs=got, cycles=cycles, steps=steps)
    atomic_write(out_dir / "outputs.npz", buf.getvalue())
    hist_edges = np.unique(np.linspace(0, max(int(steps.max()), 1), 11).astype(int))
    hist, _ = np.histogram(steps, bins=hist_edges)
    summary = {"vectors": int(len(inputs)), "mismatching_elements": mismatch_count,
               "mismatches": mismatches, "backpressure": backpressure,
               "cycles": {"min": int(cycles.min()), "mean": float(cycles.mean()),
                          "max": int(cycles.max())},
               "steps": {"min": int(steps.min()), "mean": float(steps.mean()),
                         "p99": float(np.percentile(steps, 99)), "max": int(steps.max()),
                         "histogram": {"edges": hist_edges.tolist(),
                                       "counts": hist.tolist()}},
               "t_max": manifest["parameters"]["t_max"],
               "expected_latency": manifest["latency_cycles"]}
    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    assert not mismatches, "RTL differs from the spiking golden model:\n" + "\n".join(mismatches)
