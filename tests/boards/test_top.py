"""``BoardTop``: an engine behind the UART, bytes on the pins; the board registry and
elaboration for every registered platform."""

import gc
import subprocess

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from boards import BOARDS, BoardSpec, get_board
from boards.top import BoardTop

from .test_uart import CLK, line_receive, line_send

BAUD = 100_000
PERIOD = CLK // BAUD


def element(shape):
    return data.StructLayout({"data": shape, "last": 1})


class AddOne(wiring.Component):
    """A stand-in engine: takes ``n`` signed elements, then emits each plus one (unsigned,
    wrapping), ``last`` on the final one; ``busy`` while it emits."""

    def __init__(self, *, n=4, in_shape=signed(8), out_shape=unsigned(8)):
        self.n = n
        super().__init__({"i": In(stream.Signature(element(in_shape))),
                          "o": Out(stream.Signature(element(out_shape))),
                          "cycles": Out(32), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        store = data.ArrayLayout(8, self.n)
        values = Signal(store)
        k = Signal(range(self.n))
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [values[k].eq(self.i.payload.data), k.eq(k + 1)]
                    with m.If(k == self.n - 1):
                        m.d.sync += k.eq(0)
                        m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1),
                             self.o.payload.data.eq(values[k] + 1),
                             self.o.payload.last.eq(k == self.n - 1)]
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == self.n - 1):
                        m.d.sync += k.eq(0)
                        m.next = "LOAD"
        return m


def run_host_link(sent, n_expected, *, fifo_depth=16):
    top = BoardTop(AddOne(), baud=BAUD, clk_freq=CLK, fifo_depth=fifo_depth)
    received, busy_seen = [], []

    async def host_send(ctx):
        await ctx.tick().repeat(3)
        for byte in sent:  # back to back: the second vector arrives while the first is sent
            await line_send(ctx, top.rx, byte, period=PERIOD)

    async def host_receive(ctx):
        clock = [0]
        while len(received) < n_expected:
            received.append(await line_receive(ctx, top.tx, period=PERIOD, clock=clock,
                                               idle_limit=100 * PERIOD))
        await ctx.tick().repeat(20 * PERIOD)  # and nothing more arrives
        assert ctx.get(top.tx) == 1

    async def watch_busy(ctx):
        async for _, _, busy in ctx.tick().sample(top.busy):
            busy_seen.append(busy)

    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    sim.add_testbench(host_send)
    sim.add_testbench(host_receive)
    sim.add_testbench(watch_busy, background=True)
    sim.run()
    return received, busy_seen


def test_bytes_through_the_engine():
    sent = [0, 1, 127, 255, 0x80, 0x41, 0xFE, 0x10]
    received, busy = run_host_link(sent, 8)
    assert received == [(b + 1) & 0xFF for b in sent]
    assert any(busy) and not busy[-1]


def test_fifo_too_small_drops_bytes():
    # With a one-byte FIFO the second vector arrives while the engine emits: bytes are lost,
    # and the engine, still counting elements, has not completed a second vector.
    sent = [10, 20, 30, 40, 50, 60, 70, 80]
    received, _ = run_host_link(sent[:4], 4, fifo_depth=1)
    assert received == [11, 21, 31, 41]
    top = BoardTop(AddOne(), baud=BAUD, clk_freq=CLK, fifo_depth=1)
    out = []

    async def host(ctx):
        for byte in sent:
            await line_send(ctx, top.rx, byte, period=PERIOD)
        await ctx.tick().repeat(60 * PERIOD)

    async def listen(ctx):
        clock = [0]
        while True:
            out.append(await line_receive(ctx, top.tx, period=PERIOD, clock=clock))

    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    sim.add_testbench(host)
    sim.add_testbench(listen, background=True)
    sim.run()
    assert out[:4] == [11, 21, 31, 41] and len(out) == 4


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_engine_width_and_clock_are_checked():
    with pytest.raises(ValueError, match=r"^Cannot put the engine on the UART host link: its "
                                         r"'o' elements are 16 bits wide"):
        BoardTop(AddOne(out_shape=unsigned(16)), clk_freq=CLK)
    with pytest.raises(TypeError, match=r"its port 'i' is not a stream of \{data, last\}"):
        BoardTop(Module())
    top = BoardTop(AddOne())
    with pytest.raises(ValueError, match=r"^BoardTop elaborated without a platform needs "
                                         r"clk_freq="):
        Simulator(top)
    gc.collect()  # the components that failed to elaborate warn now, under this test's filter


def test_registry():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f"}
    ice, ecp = get_board("icebreaker"), get_board("ulx3s-85f")
    assert isinstance(ice, BoardSpec) and ice.name == "icebreaker"
    assert (ice.family, ice.device, ice.synth_opts) == ("ice40", "iCE40UP5K-SG48", "-dsp")
    assert (ecp.family, ecp.device, ecp.synth_opts) == ("ecp5", "LFE5U-85F-6BG381", "")
    assert ice.capacity["ICESTORM_DSP"] == 8 and ecp.capacity["MULT18X18D"] == 156
    assert set(ice.env) == {"YOSYS", "NEXTPNR_ICE40", "ICEPACK"}
    assert set(ecp.env) == {"YOSYS", "NEXTPNR_ECP5", "ECPPACK", "OPENFPGALOADER"}
    with pytest.raises(ValueError, match=r"^Unknown board 'ulx3s'; known boards: icebreaker, "
                                         r"ulx3s-85f$"):
        get_board("ulx3s")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_spec_matches_platform(name):
    spec = get_board(name)
    platform = spec.platform()
    assert platform is not spec.platform()  # a fresh platform per build
    assert spec.clock_hz == platform.default_clk_frequency
    assert spec.device.startswith(platform.device)
    assert spec.device.endswith(platform.package)
    assert type(platform).__name__.startswith({"ice40": "ICE", "ecp5": "ULX3S"}[spec.family])


PINS = {"icebreaker": ("top.pcf", ["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9",
                                   "set_io led_0__io 11"]),
        "ulx3s-85f": ("top.lpf", ['LOCATE COMP "uart_0__rx__io" SITE "M1"',
                                  'LOCATE COMP "uart_0__tx__io" SITE "L4"',
                                  'LOCATE COMP "led_0__io" SITE "B2"'])}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_elaborates_for_platform_without_tools(name, monkeypatch):
    def no_tools(*args, **kwargs):
        raise AssertionError(f"a tool was run: {args!r}")
    monkeypatch.setattr(subprocess, "run", no_tools)
    monkeypatch.setattr(subprocess, "Popen", no_tools)
    spec = get_board(name)
    plan = spec.platform().build(BoardTop(AddOne()), name="top", do_build=False,
                                 synth_opts=spec.synth_opts)
    constraints, pins = PINS[name]
    text = plan.files[constraints]
    for line in pins:
        assert line in text
    assert "uart_0__rts" not in text  # requested with dir="-" and unused: not constrained
    assert "top.il" in plan.files and "top.v" not in plan.files
    script = plan.files["build_top.sh"]
    assert spec.synth_opts in plan.files["top.ys"]
    assert "YOSYS" in script
