"""Output reorder buffer: r×r blocks in LR raster order in, HR pixels in HR raster order out."""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .streams import PIXEL, block_layout

__all__ = ["ReorderBuffer"]


class ReorderBuffer(wiring.Component):
    """Two banks of one LR row of blocks (``2·width`` words of r² bytes).

    A block is written whole in the cycle it is accepted; a bank is drained as r HR rows of
    ``r·width`` pixels, one pixel per cycle, once all its ``width`` blocks are in. The first
    block of a row is accepted only while a bank is free, so a row is computed while the
    previous one drains. ``o.payload.last`` marks the last HR pixel of each
    ``width``×``height`` LR frame. Latency: a block's first pixel can leave 2 cycles after
    the row's last block was written.
    """

    def __init__(self, *, width: int, height: int, scale: int):
        self.width, self.height, self.scale = width, height, scale
        super().__init__(
            {"i": In(stream.Signature(block_layout(scale))), "o": Out(stream.Signature(PIXEL))}
        )

    def elaborate(self, platform):
        m = Module()
        W, H, r = self.width, self.height, self.scale
        m.submodules.mem = mem = Memory(shape=unsigned(8 * r * r), depth=2 * W, init=[])
        wp, rp = mem.write_port(), mem.read_port()

        busy = Signal(range(3))  # rows claimed by the writer and not yet drained
        full = Signal(range(3))  # rows complete and not yet started by the reader
        wbank, wx = Signal(), Signal(range(W))
        rbank, ri, rx, rj = Signal(), Signal(range(r)), Signal(range(W)), Signal(range(r))
        rrow = Signal(range(H))

        accept = Signal()
        m.d.comb += [
            self.i.ready.eq((wx != 0) | (busy < 2)),
            accept.eq(self.i.valid & self.i.ready),
        ]
        m.d.comb += [
            wp.addr.eq(wbank * W + wx),
            wp.data.eq(self.i.payload.as_value()),
            wp.en.eq(accept),
        ]
        row_done = accept & (wx == W - 1)
        with m.If(accept):
            with m.If(wx == W - 1):
                m.d.sync += [wx.eq(0), wbank.eq(~wbank)]
            with m.Else():
                m.d.sync += wx.eq(wx + 1)

        advance = ~self.o.valid | self.o.ready
        m.d.comb += rp.en.eq(advance)
        issue = Signal()
        starting = (ri == 0) & (rx == 0) & (rj == 0)
        m.d.comb += [issue.eq(advance & (~starting | (full > 0))), rp.addr.eq(rbank * W + rx)]
        finishing = (ri == r - 1) & (rx == W - 1) & (rj == r - 1)
        pend, pend_lane, pend_last = Signal(), Signal(range(r * r)), Signal()
        with m.If(advance):
            m.d.sync += [
                pend.eq(issue),
                pend_lane.eq(ri * r + rj),
                pend_last.eq(finishing & (rrow == H - 1)),
            ]
            m.d.sync += self.o.valid.eq(pend)
            m.d.sync += [
                self.o.payload.data.eq(rp.data.word_select(pend_lane, 8)),
                self.o.payload.last.eq(pend_last),
            ]
            with m.If(issue):
                with m.If(rj == r - 1):
                    m.d.sync += rj.eq(0)
                    with m.If(rx == W - 1):
                        m.d.sync += rx.eq(0)
                        with m.If(ri == r - 1):
                            m.d.sync += [ri.eq(0), rbank.eq(~rbank), rrow.eq(rrow + 1)]
                            with m.If(rrow == H - 1):
                                m.d.sync += rrow.eq(0)
                        with m.Else():
                            m.d.sync += ri.eq(ri + 1)
                    with m.Else():
                        m.d.sync += rx.eq(rx + 1)
                with m.Else():
                    m.d.sync += rj.eq(rj + 1)

        claim = accept & (wx == 0)
        drained = issue & finishing
        m.d.sync += busy.eq(busy + claim - drained)
        m.d.sync += full.eq(full + row_done - (issue & starting))
        return m
