"""Payload layouts and the frame cycle counter shared by the LUT engines' blocks."""

from amaranth import Signal, unsigned
from amaranth.lib import data

__all__ = ["PIXEL", "RGB_PIXEL", "window_layout", "block_layout", "count_frame_cycles"]

# One 8-bit pixel of a raster frame; ``last`` marks the frame's final pixel.
PIXEL = data.StructLayout({"data": unsigned(8), "last": 1})


def window_layout(radius: int) -> data.ArrayLayout:
    """A (2p+1)×(2p+1) LR window, row-major; element ``(p, p)`` is the centre pixel."""
    side = 2 * radius + 1
    return data.ArrayLayout(unsigned(8), side * side)


def block_layout(scale: int) -> data.ArrayLayout:
    """One LR pixel's r×r block of HR pixels, row-major."""
    return data.ArrayLayout(unsigned(8), scale * scale)


# One RGB pixel: channels R, G, B in bits [0, 8), [8, 16), [16, 24); ``last`` ends a frame.
RGB_PIXEL = data.StructLayout({"data": data.ArrayLayout(unsigned(8), 3), "last": 1})


def count_frame_cycles(m, engine) -> None:
    """Drive ``engine.cycles`` (cycles from a frame's first ``i`` transfer to its last ``o``
    transfer, inclusive) and ``engine.busy`` (high in between) in module ``m``."""
    counting = Signal()
    start = engine.i.valid & engine.i.ready & ~counting
    end = engine.o.valid & engine.o.ready & engine.o.payload.last
    with m.If(start):
        m.d.sync += [counting.eq(1), engine.cycles.eq(1)]
    with m.Elif(counting):
        m.d.sync += engine.cycles.eq(engine.cycles + 1)
    with m.If(end):
        m.d.sync += counting.eq(0)
    m.d.comb += engine.busy.eq(counting)
