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
from cocotb.handle import HierarchyObject

from .common import settings, start, write_results
from .stream import StreamRun, stream_vectors


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
async def spikes_settle_on_golden(dut: HierarchyObject) -> None:
    bench = settings()
    manifest = bench.artefact.manifest
    vectors = bench.artefact.vectors()
    exp_cycles, exp_steps = vectors["snn_cycles"], vectors["snn_steps"]
    steps = np.zeros(len(bench.inputs), np.int64)
    await start(dut)

    def check_steps(n: int, run: StreamRun) -> None:
        steps[n] = dut.steps.value.to_unsigned()
        if steps[n] != exp_steps[n]:
            run.note(f"vector {n}: {steps[n]} time steps, the model says {exp_steps[n]}")
        if not bench.backpressure and exp_cycles[n] >= 0 and run.cycles[n] != exp_cycles[n]:
            run.note(f"vector {n}: {run.cycles[n]} cycles, the model says {exp_cycles[n]}")
        # one line a vector in sim.log: a long run's checked vectors, should it be stopped
        dut._log.info(
            f"vector {n}: {steps[n]} steps, {run.cycles[n]} cycles, "
            f"{len(run.mismatches)} differences so far"
        )

    run = await stream_vectors(dut, bench, what="tracer", each=check_steps)
    cycles = run.cycles
    write_results(
        bench.out_dir,
        {
            **run.summary(bench),
            "cycles": {
                "min": int(cycles.min()),
                "mean": float(cycles.mean()),
                "max": int(cycles.max()),
            },
            "steps": steps_summary(steps),
            "t_max": manifest["parameters"]["t_max"],
        },
        outputs=run.got,
        cycles=cycles,
        steps=steps,
    )
    run.assert_exact("the spiking golden model")
