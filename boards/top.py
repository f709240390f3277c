"""``BoardTop``: an engine behind a UART host link, for a board or for simulation."""

from typing import TYPE_CHECKING

from amaranth import Cat, ClockDomain, Module, Shape
from amaranth.build import ResourceError
from amaranth.lib import data, io, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .link import HostLink
from .uart import UartRx, UartTx

if TYPE_CHECKING:
    from .clocking import PllSettings

__all__ = ["BoardTop"]


def _data_width(engine, name: str) -> int:
    port = getattr(engine, name, None)
    layout = getattr(getattr(port, "payload", None), "shape", lambda: None)()
    if not isinstance(layout, data.StructLayout) or "data" not in layout.members:
        raise TypeError(
            f"Cannot put {engine!r} on a board: its port {name!r} is not a stream "
            f"of {{data, last}} elements; an engine has i/o element streams, "
            f"cycles and busy"
        )
    return Shape.cast(layout["data"].shape).width


class _Slice(wiring.Component):
    """A one-element register between two streams of ``layout``: ``i.ready`` is the
    register's empty flag and ``o`` its contents, so neither side's handshake nor the
    payload passes through it combinationally. Latency one cycle; an element every other
    cycle (the host link takes one per UART byte)."""

    def __init__(self, layout):
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1)]
        return m


class BoardTop(wiring.Component):
    """Runs ``engine`` for a host on a UART, through the framed protocol of
    ``boards.protocol`` (``HostLink``): one byte per input element, one or more (little
    endian) per output element.

    Received bytes wait in a ``fifo_depth``-byte FIFO ahead of the link, so a request's
    payload is not lost while the engine is not ready to take it; a byte that arrives while
    the FIFO is full is dropped (and the request's CRC then fails). ``n_in``/``n_out`` are the
    engine's elements per inference, ``design_id`` what ``INFO`` reports.

    Without a platform (simulation) the ports ``rx``/``tx`` are the UART pins, ``busy`` and
    ``error`` the status, and ``sync`` is a plain clock of ``clk_freq`` Hz (which must be
    given). With a platform the pins are ``uart`` 0, LED 0 (if the board has one) shows
    ``busy`` and LED 1 ``error``; an engine with a ``load_spec`` (``boards.protocol.LoadSpec``:
    memories written at run time, e.g. SPRAM weights) gets the link's ``LOAD`` requests on its
    ``load`` stream; ``clock`` (PLL settings from ``boards.clocking``) makes
    ``sync`` from the default clock pin, at ``clock.output_hz``, in reset until the PLL
    locks; without ``clock`` the platform's default clock drives ``sync``. The UART divides
    the frequency ``sync`` runs at.

    Latency: the UART's (see ``UartRx``/``UartTx``), the link's and the engine's, plus two
    cycles through the receive FIFO, and one through each register between the link and
    the engine's streams. Throughput is the UART's: one byte per ``10 * divisor`` cycles
    each way.
    """

    def __init__(
        self,
        engine: wiring.Component,
        *,
        n_in: int,
        n_out: int,
        design_id: int = 0,
        baud: int = 115200,
        clk_freq: float | None = None,
        fifo_depth: int = 16,
        clock: "PllSettings | None" = None,
    ):
        width = _data_width(engine, "i")
        if width != 8:
            raise ValueError(
                f"Cannot put the engine on the UART host link: its 'i' elements "
                f"are {width} bits wide, and the link carries one byte per "
                f"input element"
            )
        if _data_width(engine, "o") > 32:
            raise ValueError(
                "Cannot put the engine on the UART host link: its 'o' elements "
                "are wider than 32 bits"
            )
        if fifo_depth < 1:
            raise ValueError(f"fifo_depth must be at least 1, not {fifo_depth!r}")
        self.engine = engine
        self.protected = hasattr(engine, "ecc_corrected")
        self.link = HostLink(
            n_in=n_in,
            n_out=n_out,
            design_id=design_id,
            in_layout=engine.i.payload.shape(),
            out_layout=engine.o.payload.shape(),
            protected=self.protected,
            load=getattr(engine, "load_spec", None),
        )
        self.baud, self.clk_freq, self.fifo_depth, self.clock = baud, clk_freq, fifo_depth, clock
        super().__init__(
            {"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "error": Out(1)}
        )

    def elaborate(self, platform):
        m = Module()
        clk_freq = self.clk_freq
        if platform is not None and self.clock is not None:
            m.domains.sync = ClockDomain("sync")
            m.submodules.clocking = self.clock.create()
            clk_freq = self.clock.output_hz
        elif clk_freq is None:
            if platform is None:
                raise ValueError(
                    "BoardTop elaborated without a platform needs clk_freq= "
                    "(the frequency of the sync clock in Hz) to set the baud rate"
                )
            clk_freq = platform.default_clk_frequency

        m.submodules.engine = engine = self.engine
        m.submodules.link = link = self.link
        m.submodules.uart_rx = uart_rx = UartRx(clk_freq=clk_freq, baud=self.baud)
        m.submodules.uart_tx = uart_tx = UartTx(clk_freq=clk_freq, baud=self.baud)
        m.submodules.rx_fifo = fifo = SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        # register slices between the link and the engine's streams: the UART's ready
        # through the link into the engine's output logic, and the link's receive state
        # through the input handshake into the sequencer, were the UP5K board's critical
        # paths, the activation memory's read multiplexer into the link's CRC the ECP5's
        m.submodules.in_slice = in_ = _Slice(engine.i.payload.shape())
        m.submodules.out_slice = out = _Slice(engine.o.payload.shape())

        wiring.connect(m, uart_rx.o, fifo.w_stream)
        wiring.connect(m, fifo.r_stream, link.rx)
        wiring.connect(m, link.tx, uart_tx.i)
        wiring.connect(m, link.engine_i, in_.i)
        wiring.connect(m, in_.o, engine.i)
        wiring.connect(m, engine.o, out.i)
        wiring.connect(m, out.o, link.engine_o)
        if self.link.load_spec is not None:  # LOAD writes the engine's memories between runs
            wiring.connect(m, link.load, engine.load)
            m.d.comb += link.engine_busy.eq(engine.busy)
        if self.protected:  # the memory-error counters STATUS reports
            m.d.comb += link.ecc.eq(Cat(engine.ecc_corrected, engine.ecc_errors))
        m.d.comb += [
            link.cycles.eq(engine.cycles),
            self.tx.eq(uart_tx.tx),
            self.busy.eq(engine.busy),
            self.error.eq(link.error),
        ]

        if platform is None:
            m.d.comb += uart_rx.rx.eq(self.rx)
        else:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
            m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
            m.d.comb += [uart_rx.rx.eq(rx_buffer.i), tx_buffer.o.eq(uart_tx.tx)]
            for number, status in enumerate((engine.busy, link.error)):
                try:
                    led = platform.request("led", number, dir="-")
                except ResourceError:
                    continue
                buffer = io.Buffer("o", led)
                m.submodules[f"led{number}_buffer"] = buffer
                m.d.comb += buffer.o.eq(status)
        return m
