"""Payload layouts shared by the LUT engines' blocks."""

from amaranth import unsigned
from amaranth.lib import data

__all__ = ["PIXEL", "RGB_PIXEL", "window_layout", "block_layout"]

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
