"""An engine with one input and one output element stream in Amaranth's simulator (the
tests' side of ``sim.bench.stream``): vectors in, output codes and counters out."""

from collections.abc import Callable, Sequence

import numpy as np
from amaranth.sim import Simulator


def run_stream(
    dut,
    inputs: Sequence[Sequence[int]],
    n_out: int,
    *,
    counters: Sequence[str] = ("cycles",),
    stall_seed: int | None = None,
    after: Callable | None = None,
) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Each vector of ``inputs`` into ``dut.i`` and ``n_out`` elements from ``dut.o`` (with
    ``stall_seed``: random input gaps and output stalls), ``last`` only on the final one.
    Returns the outputs (N, n_out) and, per name in ``counters``, the port's value after
    each inference; ``after(ctx)`` runs once the last output is in."""
    rng = np.random.default_rng(stall_seed) if stall_seed is not None else None
    results: list[list[int]] = []
    read: dict[str, list[int]] = {name: [] for name in counters}

    async def bench(ctx):
        for x in inputs:
            for j, v in enumerate(x):
                while rng is not None and rng.random() < 0.3:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i.payload, {"data": int(v), "last": j == len(x) - 1})
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            out, lasts = [], []
            while len(out) < n_out:
                ready = rng is None or rng.random() < 0.6
                ctx.set(dut.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if valid and ready:
                    out.append(payload.data)
                    lasts.append(payload.last)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            assert lasts == [0] * (n_out - 1) + [1]
            results.append(out)
            for name in counters:
                read[name].append(ctx.get(getattr(dut, name)))
        if after is not None:
            after(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results), read
