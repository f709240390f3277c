"""``BoardTop``: an engine behind a UART host link, for a board or for simulation."""

from amaranth import Module, Shape
from amaranth.build import ResourceError
from amaranth.lib import data, io, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .uart import UartRx, UartTx

__all__ = ["BoardTop"]


def _data_width(engine, name: str) -> int:
    port = getattr(engine, name, None)
    layout = getattr(getattr(port, "payload", None), "shape", lambda: None)()
    if not isinstance(layout, data.StructLayout) or "data" not in layout.members:
        raise TypeError(f"Cannot put {engine!r} on a board: its port {name!r} is not a stream "
                        f"of {{data, last}} elements; an engine has i/o element streams, "
                        f"cycles and busy")
    return Shape.cast(layout["data"].shape).width


class BoardTop(wiring.Component):
    """Runs ``engine`` with the host on a UART: one byte per tensor element, both ways.

    Every byte received on ``rx`` becomes one input element (its bits are ``data``, ``last`` is
    0: the engine counts elements); it waits in a ``fifo_depth``-byte FIFO, so the host may
    send the next vector while the engine computes. A byte that arrives while the FIFO is full
    is dropped. The 8 ``data`` bits of every output element are sent as one byte on ``tx``;
    the engine waits for the transmitter (stream back-pressure), so no output is lost.

    Without a platform (simulation) the ports ``rx``/``tx`` are the UART pins and ``busy`` is
    the engine's; ``clk_freq`` (the ``sync`` clock, Hz) must be given. With a platform the
    pins are ``uart`` 0, LED 0 (if the board has one) shows ``busy``, and the clock is the
    platform's default clock, whose frequency is the default ``clk_freq``.

    Latency: the UART's (see ``UartRx``/``UartTx``) plus the engine's, plus two cycles through
    the FIFO. Throughput is the UART's: one element per ``10 * divisor`` cycles each way.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, engine: wiring.Component, *, baud: int = 115200,
                 clk_freq: float | None = None, fifo_depth: int = 16):
        for name in ("i", "o"):
            width = _data_width(engine, name)
            if width != 8:
                raise ValueError(f"Cannot put the engine on the UART host link: its {name!r} "
                                 f"elements are {width} bits wide, and the link carries one "
                                 f"byte per element")
        if fifo_depth < 1:
            raise ValueError(f"fifo_depth must be at least 1, not {fifo_depth!r}")
        self.engine = engine
        self.baud, self.clk_freq, self.fifo_depth = baud, clk_freq, fifo_depth
        super().__init__()

    def elaborate(self, platform):
        clk_freq = self.clk_freq
        if clk_freq is None:
            if platform is None:
                raise ValueError("BoardTop elaborated without a platform needs clk_freq= "
                                 "(the frequency of the sync clock in Hz) to set the baud rate")
            clk_freq = platform.default_clk_frequency
        m = Module()

        m.submodules.engine = engine = self.engine
        m.submodules.uart_rx = uart_rx = UartRx(clk_freq=clk_freq, baud=self.baud)
        m.submodules.uart_tx = uart_tx = UartTx(clk_freq=clk_freq, baud=self.baud)
        m.submodules.rx_fifo = fifo = SyncFIFOBuffered(width=8, depth=self.fifo_depth)

        wiring.connect(m, uart_rx.o, fifo.w_stream)
        m.d.comb += [engine.i.payload.data.eq(fifo.r_data), engine.i.payload.last.eq(0),
                     engine.i.valid.eq(fifo.r_rdy), fifo.r_en.eq(engine.i.ready),
                     uart_tx.i.payload.eq(engine.o.payload.data),
                     uart_tx.i.valid.eq(engine.o.valid), engine.o.ready.eq(uart_tx.i.ready),
                     self.tx.eq(uart_tx.tx), self.busy.eq(engine.busy)]

        if platform is None:
            m.d.comb += uart_rx.rx.eq(self.rx)
        else:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
            m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
            m.d.comb += [uart_rx.rx.eq(rx_buffer.i), tx_buffer.o.eq(uart_tx.tx)]
            try:
                led = platform.request("led", 0, dir="-")
            except ResourceError:
                pass
            else:
                m.submodules.led_buffer = led_buffer = io.Buffer("o", led)
                m.d.comb += led_buffer.o.eq(engine.busy)
        return m
