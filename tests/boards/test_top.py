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
from boards.protocol import Command, LinkModel, ResponseParser, Status, encode_request
from boards.top import BoardTop

from .test_uart import CLK, line_receive, line_send

BAUD = 100_000
PERIOD = CLK // BAUD


def element(shape):
    return data.StructLayout({"data": shape, "last": 1})


class AddOne(wiring.Component):
    """A stand-in engine: takes ``n`` signed elements, then emits each plus one (unsigned,
    wrapping), ``last`` on the final one; ``busy`` while it emits; ``cycles`` counts the
    inferences done, plus ``CYCLES_BASE`` (so every byte of it is distinct)."""

    CYCLES_BASE = 0x0A0B0C00

    def __init__(self, *, n=4, in_shape=signed(8), out_shape=unsigned(8)):
        self.n = n
        super().__init__(
            {
                "i": In(stream.Signature(element(in_shape))),
                "o": Out(stream.Signature(element(out_shape))),
                "cycles": Out(32, init=self.CYCLES_BASE),
                "busy": Out(1),
            }
        )

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
                m.d.comb += [
                    self.busy.eq(1),
                    self.o.valid.eq(1),
                    self.o.payload.data.eq(values[k] + 1),
                    self.o.payload.last.eq(k == self.n - 1),
                ]
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == self.n - 1):
                        m.d.sync += [k.eq(0), self.cycles.eq(self.cycles + 1)]
                        m.next = "LOAD"
        return m


DESIGN = 0xC0FFEE42


def add_one_model(n=4):
    done = [0]

    def engine(inputs):
        done[0] += 1
        return bytes((b + 1) & 0xFF for b in inputs), AddOne.CYCLES_BASE + done[0]

    return LinkModel(n_in=n, n_out=n, design=DESIGN, engine=engine)


def run_host_link(requests, *, fifo_depth=16, n=4, engine=None):
    """Send each request's bytes on ``rx`` and collect the bytes on ``tx`` until the line has
    been idle for 40 bit times after the last request; returns (tx bytes, busy samples,
    error samples)."""
    top = BoardTop(
        engine or AddOne(n=n),
        n_in=n,
        n_out=n,
        design_id=DESIGN,
        baud=BAUD,
        clk_freq=CLK,
        fifo_depth=fifo_depth,
    )
    received, busy_seen, error_seen, sent_all = [], [], [], [False]

    async def host_send(ctx):
        await ctx.tick().repeat(3)
        for request in requests:
            for byte in request:
                await line_send(ctx, top.rx, byte, period=PERIOD)
            await ctx.tick().repeat(40 * PERIOD)  # the reply, before the next request
        sent_all[0] = True

    async def host_receive(ctx):
        clock = [0]
        while True:
            received.append(await line_receive(ctx, top.tx, period=PERIOD, clock=clock))

    async def watch(ctx):
        async for _, _, busy, error in ctx.tick().sample(top.busy, top.error):
            busy_seen.append(busy)
            error_seen.append(error)

    async def until_done(ctx):
        while not sent_all[0]:
            await ctx.tick()
        await ctx.tick().repeat(200 * PERIOD)

    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    sim.add_testbench(host_send)
    sim.add_testbench(until_done)
    sim.add_testbench(host_receive, background=True)
    sim.add_testbench(watch, background=True)
    sim.run()
    return bytes(received), busy_seen, error_seen


def test_replies_equal_the_link_model():
    requests = [
        encode_request(Command.INFO),
        encode_request(Command.INFER, bytes([0, 1, 127, 255])),
        encode_request(Command.INFER, bytes([0x80, 0x41, 0xFE, 0x10])),
    ]
    bad_crc = bytearray(encode_request(Command.INFER, bytes([1, 2, 3, 4])))
    bad_crc[5] ^= 0x40  # a payload byte corrupted on the way
    requests += [
        bytes(bad_crc),
        encode_request(Command.INFER, bytes([9, 9, 9])),  # wrong length
        encode_request(7, b"xy"),  # unknown command
        encode_request(Command.INFO, b"z"),  # INFO with a payload
        encode_request(Command.INFER, bytes([5, 6, 7, 8])),
    ]
    got, busy, error = run_host_link(requests)
    model = add_one_model()
    expected = b"".join(model.feed(r) for r in requests)
    assert got == expected
    replies = ResponseParser().feed(got)
    assert [r.status for r in replies] == [
        Status.OK,
        Status.OK,
        Status.OK,
        Status.BAD_CRC,
        Status.BAD_LENGTH,
        Status.BAD_COMMAND,
        Status.BAD_LENGTH,
        Status.OK,
    ]
    assert all(r.crc_ok for r in replies)
    assert replies[0].info() == (4, 4, DESIGN)
    assert replies[1].inference(4) == (bytes([1, 2, 128, 0]), AddOne.CYCLES_BASE + 1)
    assert any(busy) and not busy[-1]
    assert any(error) and not error[-1]  # the last request was answered OK


def test_wide_outputs_go_as_little_endian_bytes():
    """An engine whose outputs are wider than a byte (a layer's accumulator): each element
    leaves as ceil(width / 8) bytes, least significant first; the client reads them back."""
    from boards.protocol import Client

    done = [0]

    def engine(inputs):
        done[0] += 1
        return b"".join(
            ((b + 1) & 0xFFF).to_bytes(2, "little") for b in inputs
        ), AddOne.CYCLES_BASE + done[0]

    model = LinkModel(n_in=4, n_out=4, design=DESIGN, engine=engine)
    requests = [
        encode_request(Command.INFER, bytes([0, 1, 127, 255])),
        encode_request(Command.INFO),
    ]
    got, _, _ = run_host_link(requests, engine=AddOne(out_shape=signed(12)))
    assert got == b"".join(model.feed(r) for r in requests)
    client = Client(n_in=4, n_out=4, in_signed=True, out_signed=True, design=DESIGN, out_bytes=2)
    replies = ResponseParser().feed(got)
    assert client.decode_inference(replies[0]) == ([1, 2, 128, 256], AddOne.CYCLES_BASE + 1)
    client.check_info(replies[1])


def test_fifo_too_small_loses_a_request():
    # With a one-byte FIFO and an engine that stops taking bytes while it emits, a request
    # sent while the previous reply is still on its way may lose bytes: the board then
    # answers with a failed CRC or not at all, and never with wrong data marked OK (with the
    # two outputs the board top buffers behind the engine, this one arrives whole).
    first = encode_request(Command.INFER, bytes([10, 20, 30, 40]))
    second = encode_request(Command.INFER, bytes([50, 60, 70, 80]))
    got, _, _ = run_host_link([first + second], fifo_depth=1)
    replies = ResponseParser().feed(got)
    assert replies[0].status == Status.OK
    assert replies[0].inference(4)[0] == bytes([11, 21, 31, 41])
    assert all(
        r.status != Status.OK or r.inference(4)[0] == bytes([51, 61, 71, 81]) for r in replies[1:]
    )


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_engine_width_and_clock_are_checked():
    with pytest.raises(
        ValueError,
        match=r"^Cannot put the engine on the UART host link: its "
        r"'i' elements are 16 bits wide",
    ):
        BoardTop(AddOne(in_shape=signed(16)), n_in=4, n_out=4, clk_freq=CLK)
    with pytest.raises(TypeError, match=r"its port 'i' is not a stream of \{data, last\}"):
        BoardTop(Module(), n_in=4, n_out=4)
    top = BoardTop(AddOne(), n_in=4, n_out=4)
    with pytest.raises(
        ValueError,
        match=r"^BoardTop elaborated without a platform needs "
        r"clk_freq=",
    ):
        Simulator(top)
    del top
    gc.collect()  # the components that failed to elaborate warn now, under this test's filter


def test_registry():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f", "orangecrab-25f", "tang-nano-9k"}
    ice, ecp = get_board("icebreaker"), get_board("ulx3s-85f")
    assert isinstance(ice, BoardSpec) and ice.name == "icebreaker"
    assert (ice.family, ice.device, ice.synth_opts) == ("ice40", "iCE40UP5K-SG48", "-dsp")
    assert (ecp.family, ecp.device, ecp.synth_opts) == ("ecp5", "LFE5U-85F-6BG381", "")
    assert ice.capacity["ICESTORM_DSP"] == 8 and ecp.capacity["MULT18X18D"] == 156
    assert set(ice.env) == {"YOSYS", "NEXTPNR_ICE40", "ICEPACK"}
    assert set(ecp.env) == {"YOSYS", "NEXTPNR_ECP5", "ECPPACK", "OPENFPGALOADER"}
    crab = get_board("orangecrab-25f")
    assert (crab.family, crab.device, crab.clock_hz) == ("ecp5", "LFE5U-25F-8MG285", 48e6)
    with pytest.raises(
        ValueError,
        match=r"^Unknown board 'ulx3s'; known boards: icebreaker, "
        r"orangecrab-25f, tang-nano-9k, ulx3s-85f$",
    ):
        get_board("ulx3s")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_spec_matches_platform(name):
    spec = get_board(name)
    platform = spec.platform()
    assert platform is not spec.platform()  # a fresh platform per build
    assert spec.clock_hz == platform.default_clk_frequency
    if spec.family == "gowin":
        assert spec.device == platform.part
    else:
        assert spec.device.startswith(platform.device)
        assert spec.device.endswith(platform.package)
    assert type(platform).__name__.startswith(
        {
            "icebreaker": "ICE",
            "ulx3s-85f": "ULX3S",
            "orangecrab-25f": "OrangeCrab",
            "tang-nano-9k": "TangNano9k",
        }[name]
    )


PINS = {
    "icebreaker": (
        "top.pcf",
        ["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9", "set_io led_0__io 11"],
    ),
    "ulx3s-85f": (
        "top.lpf",
        [
            'LOCATE COMP "uart_0__rx__io" SITE "M1"',
            'LOCATE COMP "uart_0__tx__io" SITE "L4"',
            'LOCATE COMP "led_0__io" SITE "B2"',
        ],
    ),
    "orangecrab-25f": (
        "top.lpf",
        ['LOCATE COMP "uart_0__rx__io" SITE "N17"', 'LOCATE COMP "uart_0__tx__io" SITE "M18"'],
    ),
    "tang-nano-9k": (
        "top.cst",
        ['IO_LOC "uart_0__rx__io" 18;', 'IO_LOC "uart_0__tx__io" 17;', 'IO_LOC "led_0__io" 10;'],
    ),
}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_elaborates_for_platform_without_tools(name, monkeypatch):
    def no_tools(*args, **kwargs):
        raise AssertionError(f"a tool was run: {args!r}")

    monkeypatch.setattr(subprocess, "run", no_tools)
    monkeypatch.setattr(subprocess, "Popen", no_tools)
    spec = get_board(name)
    plan = spec.platform().build(
        BoardTop(AddOne(), n_in=4, n_out=4), name="top", do_build=False, synth_opts=spec.synth_opts
    )
    constraints, pins = PINS[name]
    text = plan.files[constraints]
    for line in pins:
        assert line in text
    assert "uart_0__rts" not in text  # requested with dir="-" and unused: not constrained
    assert "top.il" in plan.files and "top.v" not in plan.files
    script = plan.files["build_top.sh"]
    assert spec.synth_opts in plan.files["top.ys"]
    assert "YOSYS" in script


class AddOneProtected(AddOne):
    """``AddOne`` with memory-error counters as a protected engine has them (constants)."""

    CORRECTED, ERRORS = 0x1234, 0x0056

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ecc_corrected, self.ecc_errors = Signal(16), Signal(16)

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += [self.ecc_corrected.eq(self.CORRECTED), self.ecc_errors.eq(self.ERRORS)]
        return m


@pytest.mark.parametrize("protected", [False, True])
def test_status_reports_the_memory_error_counters(protected):
    from boards.protocol import MemoryStatus

    requests = [
        encode_request(Command.STATUS),
        encode_request(Command.STATUS, b"x"),
        encode_request(Command.INFER, bytes([1, 2, 3, 4])),
        encode_request(Command.STATUS),
    ]
    engine = AddOneProtected(n=4) if protected else AddOne(n=4)
    got, _, _ = run_host_link(requests, engine=engine)
    model = add_one_model()
    if protected:
        model.status = lambda: MemoryStatus(True, AddOneProtected.CORRECTED, AddOneProtected.ERRORS)
    assert got == b"".join(model.feed(r) for r in requests)
    replies = ResponseParser().feed(got)
    assert [r.status for r in replies] == [Status.OK, Status.BAD_LENGTH, Status.OK, Status.OK]
    expected = MemoryStatus(
        protected,
        AddOneProtected.CORRECTED if protected else 0,
        AddOneProtected.ERRORS if protected else 0,
    )
    assert replies[0].memory_status() == expected == replies[3].memory_status()


LOAD_FIELDS = (("mem", 3), ("addr", 16), ("data", 20))


class AddLoaded(wiring.Component):
    """A stand-in engine whose weights are written at run time: ``n`` 16-bit words through
    ``load`` (memory code 2); takes ``n`` elements, then emits element ``k`` plus one plus
    word ``k``'s low byte; ``busy`` from its first input to its last output, as the GEMM
    engine's; ``load_taken_busy`` counts words taken while busy (must stay 0)."""

    def __init__(self, *, n=4):
        from boards.protocol import LoadSpec

        self.n = n
        self.load_spec = LoadSpec(fields=LOAD_FIELDS, word_bits=16, mems={"w": (2, n)})
        super().__init__(
            {
                "i": In(stream.Signature(element(signed(8)))),
                "o": Out(stream.Signature(element(unsigned(8)))),
                "cycles": Out(32, init=AddOne.CYCLES_BASE),
                "busy": Out(1),
                "load": In(stream.Signature(data.StructLayout(dict(LOAD_FIELDS)))),
                "load_taken_busy": Out(8),
            }
        )

    def elaborate(self, platform):
        m = Module()
        values = Signal(data.ArrayLayout(8, self.n))
        words = Signal(data.ArrayLayout(16, self.n))
        k = Signal(range(self.n))
        m.d.comb += self.load.ready.eq(1)
        with m.If(self.load.valid & (self.load.payload.mem == 2)):
            m.d.sync += words[self.load.payload.addr].eq(self.load.payload.data)
            with m.If(self.busy):
                m.d.sync += self.load_taken_busy.eq(self.load_taken_busy + 1)
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [values[k].eq(self.i.payload.data), k.eq(k + 1), self.busy.eq(1)]
                    with m.If(k == self.n - 1):
                        m.d.sync += k.eq(0)
                        m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.data.eq(values[k] + 1 + words[k][:8]),
                    self.o.payload.last.eq(k == self.n - 1),
                ]
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == self.n - 1):
                        m.d.sync += [k.eq(0), self.cycles.eq(self.cycles + 1), self.busy.eq(0)]
                        m.next = "LOAD"
        return m


def load_model(n=4):
    from boards.protocol import LoadSpec

    spec = LoadSpec(fields=LOAD_FIELDS, word_bits=16, mems={"w": (2, n)})
    done = [0]

    def engine(inputs):
        done[0] += 1
        mem = model.memory[2]
        out = bytes((b + 1 + mem.get(k, 0)) & 0xFF for k, b in enumerate(inputs))
        return out, AddOne.CYCLES_BASE + done[0]

    model = LinkModel(n_in=n, n_out=n, design=DESIGN, engine=engine, load=spec)
    return model


def _load(payload: bytes) -> bytes:
    return encode_request(Command.LOAD, payload)


def test_load_writes_the_engine_memory_only_after_its_crc():
    """LOAD frames (good, corrupted, too long, partial word, past the image, unknown memory)
    and inferences between them: the board's replies equal the link model's byte for byte,
    a refused LOAD writes nothing, an accepted one is acknowledged with its CRC."""
    from boards.protocol import LoadSpec

    spec = LoadSpec(fields=LOAD_FIELDS, word_bits=16, mems={"w": (2, 4)})
    frames = [r for _, r in spec.requests({"w": [0x0110, 0x0220, 0x0330, 0x0440]})]
    assert len(frames) == 1
    corrupted = bytearray(_load(bytes([2, 0, 0]) + (0x77).to_bytes(2, "little")))
    corrupted[-4] ^= 0x55  # the word's low byte (what the engine adds): the CRC fails
    requests = [
        encode_request(Command.INFER, bytes([0, 1, 2, 3])),  # nothing loaded: words are 0
        frames[0],
        encode_request(Command.INFER, bytes([0, 1, 2, 3])),
        bytes(corrupted),
        _load(bytes([2, 0, 0]) + bytes(10)),  # words 0-4: past the image
        _load(bytes([5, 0, 0]) + bytes(2)),  # a memory the board does not load
        _load(bytes([2, 0, 0]) + bytes(3)),  # one and a half words
        _load(bytes([2, 0])),  # no word
        _load(bytes([2, 1, 0]) + bytes(2)),  # not at a multiple of LOAD_WORDS
        _load(bytes([2, 0, 0]) + bytes(2 * 257)),  # more than LOAD_WORDS
        encode_request(Command.INFER, bytes([0, 1, 2, 3])),
        _load(bytes([2, 0, 0]) + bytes.fromhex("1000 2000 5a00")),
        encode_request(Command.INFER, bytes([10, 20, 30, 40])),
    ]
    engine = AddLoaded(n=4)
    got, _, error = run_host_link(requests, engine=engine)
    model = load_model()
    expected = b"".join(model.feed(r) for r in requests)
    replies = ResponseParser().feed(got)
    assert [r.status for r in replies] == [
        Status.OK,
        Status.OK,
        Status.OK,
        Status.BAD_CRC,
        Status.BAD_ADDRESS,
        Status.BAD_ADDRESS,
        Status.BAD_LENGTH,
        Status.BAD_LENGTH,
        Status.BAD_ADDRESS,
        Status.BAD_LENGTH,
        Status.OK,
        Status.OK,
        Status.OK,
    ]
    assert got == expected
    assert replies[0].inference(4)[0] == bytes([1, 2, 3, 4])
    assert replies[1].load_ack() == int.from_bytes(frames[0][-2:], "big")
    assert replies[2].inference(4)[0] == bytes([0x11, 0x22, 0x33, 0x44])
    assert replies[10].inference(4)[0] == bytes([0x11, 0x22, 0x33, 0x44])  # nothing refused
    assert replies[12].inference(4)[0] == bytes(
        [10 + 1 + 0x10, 20 + 1 + 0x20, 30 + 1 + 0x5A, 40 + 1 + 0x40]
    )
    assert not error[-1]


def test_a_board_without_a_loader_refuses_load():
    got, _, _ = run_host_link([_load(bytes([2, 0, 0, 1, 2]))])
    assert [r.status for r in ResponseParser().feed(got)] == [Status.BAD_COMMAND]
