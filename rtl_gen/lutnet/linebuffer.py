"""Line buffers with reflect borders: an LR raster in, one (2p+1)² window per LR pixel out."""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .streams import PIXEL, block_layout, window_layout

__all__ = ["LineWindow", "reflect"]


def reflect(i: int, n: int) -> int:
    """numpy ``reflect`` padding: index -1 → 1, index n → n-2."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


class LineWindow(wiring.Component):
    """Windows of radius ``p`` around every pixel of ``width``×``height`` frames, in raster order.

    Rows live in ``R`` (a power of two ≥ 2p+2) byte lanes of one memory word per column, so
    row ``y + p + 1`` is written (byte-enabled) while row ``y``'s windows are read. A window
    is built by reading one column (all rows at once) per cycle and shifting it into a
    register window; row and column indices outside the frame are reflected (numpy
    ``reflect``). Each row costs ``width + 2p`` cycles, each window after the first 2p columns
    is emitted the cycle after its last column is read. The input is held off (``i.ready``
    low) while the row it would overwrite is still needed, and between frames until the last
    window of the previous frame has been read.

    ``block = 1``: ``i`` takes pixels in raster order (one a cycle). ``block = b > 1``: ``i``
    takes b×b blocks (row-major) in raster order of the (width/b)×(height/b) block grid, as a
    ×b stage produces them; a block is written in b cycles, b rows at once.
    """

    def __init__(self, *, width: int, height: int, radius: int, block: int = 1):
        if min(width, height) < radius + 1:
            raise ValueError(
                f"a {width}×{height} frame is too small for a radius-{radius} reflect border"
            )
        if width % block or height % block:
            raise ValueError(f"a {width}×{height} frame is not made of {block}×{block} blocks")
        self.width, self.height, self.radius, self.block = width, height, radius, block
        self.rows = 1 << (2 * radius + block).bit_length()
        payload = PIXEL if block == 1 else block_layout(block)
        super().__init__(
            {"i": In(stream.Signature(payload)), "o": Out(stream.Signature(window_layout(radius)))}
        )

    def elaborate(self, platform):
        m = Module()
        W, H, p, R = self.width, self.height, self.radius, self.rows
        side = 2 * p + 1
        m.submodules.rows = mem = Memory(shape=8 * R, depth=W, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port()
        rbits = R.bit_length() - 1

        wrow = Signal(range(max(H + 1, R)))
        wcol = Signal(range(W))
        brow = Signal(range(H))
        icol = Signal(range(W + 2 * p + 1))

        # --- writer -------------------------------------------------------------------------
        b = self.block
        room = (wrow < H) & (wrow + (b - 1) + p < brow + R)
        slot = wrow[:rbits]
        if b == 1:
            m.d.comb += self.i.ready.eq(room)
            write = self.i.valid & self.i.ready
            m.d.comb += [
                wp.addr.eq(wcol),
                wp.data.eq(self.i.payload.data.replicate(R)),
                wp.en.eq(Mux(write, 1 << slot, 0)),
            ]
            col_done = write
        else:
            # slot(wrow) is a multiple of b (R and wrow are), so lane s holds block row s % b.
            held = Signal(block_layout(b))
            pending = Signal()
            j = Signal(range(b))
            m.d.comb += self.i.ready.eq(~pending & room)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [held.eq(self.i.payload), pending.eq(1), j.eq(0)]
            m.d.comb += [
                wp.addr.eq(wcol),
                wp.data.eq(
                    Cat(Array(held[(s % b) * b + jj] for jj in range(b))[j] for s in range(R))
                ),
                wp.en.eq(Mux(pending, ((1 << b) - 1) << slot, 0)),
            ]
            with m.If(pending):
                m.d.sync += j.eq(j + 1)
                with m.If(j == b - 1):
                    m.d.sync += pending.eq(0)
            col_done = pending
        with m.If(col_done):
            with m.If(wcol == W - 1):
                m.d.sync += [wcol.eq(0), wrow.eq(wrow + b)]
            with m.Else():
                m.d.sync += wcol.eq(wcol + 1)

        # --- window builder -----------------------------------------------------------------
        advance = ~self.o.valid | self.o.ready
        need = Signal(range(H + p + 1))
        m.d.comb += need.eq(Mux(brow + p > H - 1, H - 1, brow + p))
        issue = Signal()
        m.d.comb += issue.eq(advance & (wrow > need) & (icol < W + 2 * p))

        addr = Signal(range(W))
        with m.If(icol < p):
            m.d.comb += addr.eq(p - icol)
        with m.Elif(icol >= W + p):
            m.d.comb += addr.eq(2 * (W - 1) + p - icol)
        with m.Else():
            m.d.comb += addr.eq(icol - p)
        m.d.comb += [rp.addr.eq(addr), rp.en.eq(advance)]

        slots = [Signal(range(R), name=f"slot{d}") for d in range(side)]
        for d, slot in enumerate(slots):
            row = Signal(range(-p, H + p), name=f"row{d}")
            rrow = Signal(range(max(H, R)), name=f"rrow{d}")
            m.d.comb += [row.eq(brow + (d - p)), slot.eq(rrow[: R.bit_length() - 1])]
            with m.If(row < 0):
                m.d.comb += rrow.eq(-row)
            with m.Elif(row > H - 1):
                m.d.comb += rrow.eq(2 * (H - 1) - row)
            with m.Else():
                m.d.comb += rrow.eq(row)

        pend = Signal()
        pend_emit = Signal()
        pend_slots = [Signal(range(R), name=f"pend_slot{d}") for d in range(side)]
        window = [[Signal(8, name=f"w{d}_{e}") for e in range(side)] for d in range(side)]
        column = [rp.data.word_select(pend_slots[d], 8) for d in range(side)]
        shifted = [[window[d][e + 1] for e in range(side - 1)] + [column[d]] for d in range(side)]

        with m.If(advance):
            m.d.sync += [pend.eq(issue), pend_emit.eq(issue & (icol >= 2 * p))]
            m.d.sync += [ps.eq(s) for ps, s in zip(pend_slots, slots)]
            with m.If(pend):
                for d in range(side):
                    m.d.sync += [window[d][e].eq(shifted[d][e]) for e in range(side)]
                    m.d.sync += [
                        self.o.payload[d * side + e].eq(shifted[d][e]) for e in range(side)
                    ]
            m.d.sync += self.o.valid.eq(pend & pend_emit)
            with m.If(issue):
                with m.If(icol == W + 2 * p - 1):
                    m.d.sync += icol.eq(0)
                    with m.If(brow == H - 1):
                        m.d.sync += [brow.eq(0), wrow.eq(0)]
                    with m.Else():
                        m.d.sync += brow.eq(brow + 1)
                with m.Else():
                    m.d.sync += icol.eq(icol + 1)
        return m
