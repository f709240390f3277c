"""8N1 UART receiver and transmitter with byte streams, for the host link.

A frame is a start bit (0), eight data bits LSB first and a stop bit (1); the line idles high.
Both ends divide the clock by an integer ``divisor = round(clk_freq / baud)`` cycles per bit.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "uart_divisor"]

MIN_DIVISOR = 4
MAX_BAUD_ERROR = 0.02  # per end; an 8N1 link tolerates about 4-5 % between both ends


def uart_divisor(*, clk_freq: float, baud: int) -> int:
    """Clock cycles per bit, ``round(clk_freq / baud)``; raises ``ValueError`` when the clock
    is too slow for the baud rate or the integer divider misses the rate by more than 2 %."""
    if not clk_freq > 0 or not baud > 0:
        raise ValueError(
            f"UART clk_freq and baud must be positive, not clk_freq={clk_freq!r} and baud={baud!r}"
        )
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(
            f"Cannot run a UART at {baud} baud from a {clk_freq:g} Hz clock: it "
            f"needs at least {MIN_DIVISOR} clock cycles per bit, and "
            f"clk_freq / baud is {clk_freq / baud:.2f}; lower the baud rate"
        )
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(
            f"Cannot run a UART at {baud} baud from a {clk_freq:g} Hz clock: the "
            f"nearest integer divider {divisor} gives {clk_freq / divisor:.0f} baud, "
            f"{error:.1%} off (at most {MAX_BAUD_ERROR:.0%} works); pick a baud "
            f"rate closer to clk_freq / {divisor}"
        )
    return divisor


class UartTx(wiring.Component):
    """Sends each byte of ``i`` on ``tx`` as one 8N1 frame.

    Latency: the start bit is on ``tx`` from the cycle after the transfer on ``i``. A frame
    lasts ``10 * divisor`` cycles; ``i.ready`` is high while idle and in the last cycle of the
    stop bit, so back-to-back bytes leave no idle time: one byte per ``10 * divisor`` cycles.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, *, clk_freq: float, baud: int = 115200):
        self.clk_freq, self.baud = clk_freq, baud
        self.divisor = uart_divisor(clk_freq=clk_freq, baud=baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        frame = Signal(10, init=(1 << 10) - 1)  # shifted out LSB first; all ones is idle
        bits_left = Signal(range(11))
        timer = Signal(range(divisor))
        stop_ends = (bits_left == 1) & (timer == 0)

        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq((bits_left == 0) | stop_ends)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                frame.eq(Cat(0, self.i.payload, 1)),
                bits_left.eq(10),
                timer.eq(divisor - 1),
            ]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    frame.eq(Cat(frame[1:], 1)),
                    bits_left.eq(bits_left - 1),
                    timer.eq(divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """Receives 8N1 frames on ``rx`` and emits each byte on ``o``.

    ``rx`` goes through a two-flop synchroniser; each bit is sampled once, in the middle of its
    cell, counted from the falling edge of the start bit. A start bit that is high again at its
    middle is a glitch and is ignored. A frame whose stop bit is low is dropped, and reception
    resumes once the line is back high. A byte that completes while the previous one still
    waits on ``o`` is dropped (``o`` keeps its byte, as the stream rules require).

    Latency: ``o.valid`` rises ``9 * divisor + (divisor - 1) // 2 + 2`` cycles after the first
    clock edge that samples the start bit on ``rx`` (the middle of the stop bit, plus the
    synchroniser). Throughput: one byte per frame.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))

    def __init__(self, *, clk_freq: float, baud: int = 115200):
        self.clk_freq, self.baud = clk_freq, baud
        self.divisor = uart_divisor(clk_freq=clk_freq, baud=baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(divisor))
        data_bit = Signal(range(8))
        shift = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM(name="rx_state"):
            with m.State("IDLE"):
                with m.If(~rx):
                    # The synchroniser and this state take two cycles of the start bit.
                    m.d.sync += timer.eq((divisor - 1) // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(divisor - 1), data_bit.eq(0)]
                    with m.If(rx):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [
                        timer.eq(divisor - 1),
                        shift.eq(Cat(shift[1:], rx)),
                        data_bit.eq(data_bit + 1),
                    ]
                    with m.If(data_bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(~self.o.valid | self.o.ready):
                            m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m
