"""The 8N1 UART against a bit-level line model: loopback, timing, framing errors."""

import gc
import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from boards.uart import UartRx, UartTx, uart_divisor

CLK = 1_000_000
BAUD = 100_000  # 10 cycles per bit


async def line_send(ctx, pin, byte, *, period, stop=1):
    """Drive one 8N1 frame on ``pin``, ``period`` cycles per bit, then leave the line high."""
    for bit in [0, *((byte >> n) & 1 for n in range(8)), stop]:
        ctx.set(pin, bit)
        await ctx.tick().repeat(period)
    ctx.set(pin, 1)


async def line_receive(ctx, pin, *, period, clock=None, idle_limit=None):
    """Decode one 8N1 frame from ``pin``, sampling each bit in its middle. ``clock`` (a
    one-element list) counts cycles; the start bit's first cycle is stored in ``clock[1]``.
    With ``idle_limit``, fails when no start bit comes within that many cycles."""
    clock = clock if clock is not None else [0]
    waited = 0
    while ctx.get(pin):
        await ctx.tick()
        clock[0] += 1
        waited += 1
        assert idle_limit is None or waited <= idle_limit, (
            f"no start bit on the line for {idle_limit} cycles"
        )
    clock[1:] = [clock[0]]
    await ctx.tick().repeat(period // 2)
    assert ctx.get(pin) == 0, "start bit too short"
    byte = 0
    for n in range(8):
        await ctx.tick().repeat(period)
        byte |= ctx.get(pin) << n
    await ctx.tick().repeat(period)
    assert ctx.get(pin) == 1, "stop bit missing"
    clock[0] += period // 2 + 9 * period
    return byte


def run(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1 / CLK)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_divisor_is_rounded_and_checked():
    assert uart_divisor(clk_freq=12e6, baud=115200) == 104
    assert uart_divisor(clk_freq=25e6, baud=115200) == 217
    with pytest.raises(
        ValueError,
        match=r"^Cannot run a UART at 115200 baud from a 300000 Hz "
        r"clock: it needs at least 4 clock cycles per bit",
    ):
        UartRx(clk_freq=300e3, baud=115200)
    with pytest.raises(
        ValueError,
        match=r"^Cannot run a UART at 115200 baud from a 1e\+06 Hz "
        r"clock: the nearest integer divider 9 gives 111111 "
        r"baud, 3\.5% off",
    ):
        UartTx(clk_freq=1e6, baud=115200)
    with pytest.raises(TypeError):
        UartTx(CLK, BAUD)  # keyword-only
    gc.collect()  # the components that failed to construct warn now, under this test's filter


def test_loopback_random_bytes():
    tx, rx = UartTx(clk_freq=CLK, baud=BAUD), UartRx(clk_freq=CLK, baud=BAUD)
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    m.d.comb += rx.rx.eq(tx.tx)
    rng = random.Random(5)
    sent = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0x55, 0xAA]
    received = []

    async def producer(ctx):
        for byte in sent:
            for _ in range(rng.choice([0, 0, 3, 17])):  # gaps, and no gap
                await ctx.tick()
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        while len(received) < len(sent):
            ready = rng.random() < 0.5  # stalls shorter than a frame lose nothing
            ctx.set(rx.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid and ready:
                received.append(payload)

    run(m, producer, consumer)
    assert received == sent


def test_tx_frames_back_to_back():
    dut = UartTx(clk_freq=CLK, baud=BAUD)
    sent, decoded, starts = [0x12, 0xF0, 0x01, 0x80], [], []

    async def producer(ctx):
        assert ctx.get(dut.tx) == 1
        ctx.set(dut.i.valid, 1)
        for byte in sent:
            ctx.set(dut.i.payload, byte)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        clock = [0]
        for _ in sent:
            decoded.append(await line_receive(ctx, dut.tx, period=10, clock=clock))
            starts.append(clock[1])

    run(dut, producer, monitor)
    assert decoded == sent
    assert starts[0] == 1  # the start bit follows the transfer cycle
    assert [b - a for a, b in zip(starts, starts[1:])] == [100] * 3  # 10 bits, no idle


@pytest.mark.parametrize("period", [24, 25, 26])  # the sender's clock 4 % off either way
def test_rx_samples_mid_bit(period):
    dut = UartRx(clk_freq=CLK, baud=40_000)
    sent = [0x3C, 0xA5, 0x7E, 0x01]
    received = []

    async def sender(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(5)
        for byte in sent:
            await line_send(ctx, dut.rx, byte, period=period)
        await ctx.tick().repeat(3 * period)

    async def sink(ctx):
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                received.append(payload)

    run(dut, sender, background=[sink])
    assert received == sent


def test_rx_latency():
    dut = UartRx(clk_freq=CLK, baud=BAUD)
    divisor = dut.divisor
    bits = [0, *((0x5A >> k) & 1 for k in range(8)), 1]
    ticks = []

    async def bench(ctx):
        n = 0  # the pin value set before tick n + 1 is sampled by that clock edge
        while not ctx.get(dut.o.valid):
            ctx.set(dut.rx, bits[n // divisor] if n < 10 * divisor else 1)
            await ctx.tick()
            n += 1
        ticks.append(n)
        assert ctx.get(dut.o.payload) == 0x5A

    run(dut, bench)
    # o.valid is set by the edge 9 * D + (D - 1) // 2 + 2 cycles after the first sampling edge
    assert ticks == [9 * divisor + (divisor - 1) // 2 + 2 + 1]


def test_rx_drops_bad_stop_bit_and_glitches():
    dut = UartRx(clk_freq=CLK, baud=BAUD)
    received = []

    async def sender(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(5)
        await line_send(ctx, dut.rx, 0x11, period=10, stop=0)  # framing error
        await ctx.tick().repeat(12)
        await line_send(ctx, dut.rx, 0x22, period=10)
        ctx.set(dut.rx, 0)  # a glitch shorter than half a bit is no start bit
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(20)
        await line_send(ctx, dut.rx, 0x33, period=10)
        await line_send(ctx, dut.rx, 0x44, period=10, stop=0)
        ctx.set(dut.rx, 0)  # the line stays low (a break) after the bad frame ...
        await ctx.tick().repeat(40)
        ctx.set(dut.rx, 1)  # ... and nothing is received until it is high again
        await ctx.tick().repeat(10)
        await line_send(ctx, dut.rx, 0x55, period=10)
        await ctx.tick().repeat(30)

    async def sink(ctx):
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                received.append(payload)

    run(dut, sender, background=[sink])
    assert received == [0x22, 0x33, 0x55]


def test_rx_keeps_waiting_byte_on_overrun():
    dut = UartRx(clk_freq=CLK, baud=BAUD)
    received = []

    async def bench(ctx):
        for byte in (0xC3, 0x3C):  # o.ready low: the second byte has nowhere to go
            await line_send(ctx, dut.rx, byte, period=10)
        await ctx.tick().repeat(10)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0xC3
        ctx.set(dut.o.ready, 1)
        await line_send(ctx, dut.rx, 0x99, period=10)
        await ctx.tick().repeat(10)

    async def sink(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(
            dut.o.valid, dut.o.ready, dut.o.payload
        ):
            if valid and ready:
                received.append(payload)

    run(dut, bench, background=[sink])
    assert received == [0xC3, 0x99]
