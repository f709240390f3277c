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


@cocotb.test()
async def sesa_matches_golden(dut):
    """Commands (kind: 0 event, 1 sweep, 2 clear; side B, neg, own, p_base, o_base,
    shift), each presented in the first cycle ``busy`` is low; a step ends with its
    sweep."""
    with np.load(os.environ["UNIT_VECTORS"]) as f:
        commands, want, step_cycles = f["commands"], f["spikes"], f["step_cycles"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in ("ev_valid", "sweep", "clear"):
        getattr(dut, port).value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    got, sweeps = [], []
    cycle = 0

    async def tick():
        nonlocal cycle
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
        if int(dut.spike_valid.value):
            got.append(dut.spike.value.to_signed())

    step_start = 0
    for kind, side_b, neg, own, p_base, o_base, shift in commands.tolist():
        while int(dut.busy.value):
            await tick()
        if kind == 0:
            dut.ev_valid.value, dut.ev_b.value, dut.ev_neg.value = 1, side_b, neg
            dut.ev_shift.value = shift
            dut.ev_own.value, dut.ev_p_base.value, dut.ev_o_base.value = own, p_base, o_base
        elif kind == 1:
            dut.sweep.value = 1
        else:
            dut.clear.value = 1
        await tick()
        dut.ev_valid.value = dut.sweep.value = dut.clear.value = 0
        if kind != 0:  # a sweep ends a step, a clear an inference
            while int(dut.busy.value):
                await tick()
            if kind == 1:
                sweeps.append(cycle - step_start)
            step_start = cycle
    for _ in range(3):
        await tick()
    assert len(got) == want.size, f"{len(got)} spikes for {want.size} expected"
    got = np.array(got).reshape(want.shape)
    bad = np.argwhere(got != want)
    assert len(bad) == 0, f"{len(bad)} mismatches, first (vector, step, neuron) {bad[0]}"
    assert sweeps == step_cycles.tolist()


@cocotb.test()
async def table_matches_golden(dut):
    with np.load(os.environ["UNIT_VECTORS"]) as f:
        d, want = f["d"], f["out"]  # (B, T, N)
        latency, per_step = int(f["latency"]), int(f["cycles_per_step"])
    batch, steps, n = want.shape
    assert per_step == n
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    got, in_cycles, out_cycles = [], [], []
    cycle = 0
    stream = [(b, t, k) for b in range(batch) for t in range(steps) for k in range(n)]
    for i in range(len(stream) + latency):
        if i < len(stream):
            b, t, k = stream[i]
            dut.valid.value, dut.first.value, dut.d.value = 1, int(t == 0), int(d[b, t, k])
            in_cycles.append(cycle)
        else:
            dut.valid.value = 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
        if int(dut.out_valid.value):
            got.append(dut.out.value.to_signed())
            out_cycles.append(cycle)
    assert len(got) == len(stream), f"{len(got)} outputs for {len(stream)} inputs"
    got = np.array(got).reshape(want.shape)
    bad = np.argwhere(got != want)
    assert len(bad) == 0, f"{len(bad)} mismatches, first (vector, step, element) {bad[0]}"
    assert all(o - i == latency for i, o in zip(in_cycles, out_cycles))


@cocotb.test()
async def diffrow_matches_golden(dut):
    """A differential softmax/LayerNorm: per step the inputs one a cycle, the sweep, then
    the (address, increment) outputs of the changed rows; every step's increments and
    cycles against the golden run's."""
    with np.load(os.environ["UNIT_VECTORS"]) as f:
        d, want, step_cycles = f["d"], f["out"], f["step_cycles"]  # (B, T, n), (B*T,)
    batch, steps, n = d.shape
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    dut.sweep.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    got = np.zeros_like(want)
    seen = np.zeros(want.shape, bool)
    cycles = []
    where = [0, 0]

    async def tick():
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        if int(dut.out_valid.value):
            b, t = where
            a = int(dut.out_addr.value)
            assert not seen[b, t, a], f"element {a} output twice in step {t} of vector {b}"
            seen[b, t, a] = True
            got[b, t, a] = dut.out.value.to_signed()

    for b in range(batch):
        for t in range(steps):
            where[:] = [b, t]
            start = 0
            for k in range(n):
                dut.valid.value, dut.first.value, dut.d.value = 1, int(t == 0), int(d[b, t, k])
                await tick()
                start += 1
            dut.valid.value = 0
            dut.sweep.value, dut.sweep_first.value = 1, int(t == 0)
            await tick()
            start += 1
            dut.sweep.value = 0
            while int(dut.busy.value):
                await tick()
                start += 1
            cycles.append(start)
    bad = np.argwhere(got != want)
    assert len(bad) == 0, f"{len(bad)} mismatches, first (vector, step, element) {bad[0]}"
    assert cycles == step_cycles.tolist(), (cycles[:8], step_cycles[:8].tolist())
