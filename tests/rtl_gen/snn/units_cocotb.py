"""cocotb bench of ``tests/rtl_gen/snn/test_units_sim.py``: drives a spiking unit with the
increments the integer spiking graph fed it at every step of every vector, one element a
cycle, and checks every output increment and its cycle against the golden run."""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge


@cocotb.test()
async def adder_matches_golden(dut):
    with np.load(os.environ["UNIT_VECTORS"]) as f:
        da, db, want = f["da"], f["db"], f["spikes"]  # (B, T, N)
        latency, per_step = int(f["latency"]), int(f["cycles_per_step"])
    batch, steps, n = want.shape
    assert per_step == n
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    got, out_cycles, in_cycles = [], [], []
    cycle = 0
    stream = [(b, t, k) for b in range(batch) for t in range(steps) for k in range(n)]
    for i in range(len(stream) + latency):
        if i < len(stream):
            b, t, k = stream[i]
            dut.valid.value = 1
            dut.first.value = int(t == 0)
            dut.da.value = int(da[b, t, k])
            dut.db.value = int(db[b, t, k])
            in_cycles.append(cycle)
        else:
            dut.valid.value = 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
        if int(dut.spike_valid.value):
            got.append(dut.spike.value.to_signed())
            out_cycles.append(cycle)
    assert len(got) == len(stream), f"{len(got)} spikes out for {len(stream)} inputs"
    got = np.array(got).reshape(want.shape)
    bad = np.argwhere(got != want)
    assert len(bad) == 0, f"{len(bad)} mismatches, first (vector, step, element) {bad[0]}"
    assert all(o - i == latency for i, o in zip(in_cycles, out_cycles))


@cocotb.test()
async def diffmax_matches_golden(dut):
    with np.load(os.environ["UNIT_VECTORS"]) as f:
        d, want = f["d"], f["out"]  # (B, T, n_in), (B, T, windows)
        per_step = int(f["cycles_per_step"])
    batch, steps, n_in = d.shape
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    dut.sweep.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    got, starts = [], []
    cycle = 0

    async def tick():
        nonlocal cycle
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
        if int(dut.out_valid.value):
            got.append(dut.out.value.to_signed())

    for b in range(batch):
        for t in range(steps):
            starts.append(cycle)
            for k in range(n_in):
                dut.valid.value, dut.first.value, dut.d.value = 1, int(t == 0), int(d[b, t, k])
                await tick()
            dut.valid.value = 0
            dut.sweep.value, dut.sweep_first.value = 1, int(t == 0)
            await tick()
            dut.sweep.value = 0
            while int(dut.busy.value):
                await tick()
    for _ in range(3):
        await tick()
    assert len(got) == want.size, f"{len(got)} window outputs for {want.size} expected"
    got = np.array(got).reshape(want.shape)
    bad = np.argwhere(got != want)
    assert len(bad) == 0, f"{len(bad)} mismatches, first (vector, step, window) {bad[0]}"
    assert set(np.diff(starts)) == {per_step}, set(np.diff(starts))
