"""The streaming SR-LUT engine: LR raster pixels in, ×r HR raster pixels out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...cycles import count_frame_cycles
from ..linebuffer import LineWindow
from ..reorder import ReorderBuffer
from ..streams import PIXEL
from .interp import SimplexInterpolator

if TYPE_CHECKING:
    from frontends.lutnet.srlut import SrlutPlan

__all__ = ["SrlutEngine"]


class SrlutEngine(wiring.Component):
    """``LineWindow`` → ``SimplexInterpolator`` → ``ReorderBuffer`` for fixed-size frames.

    ``i`` takes a ``width``×``height`` frame of 8-bit pixels in raster order (``last`` on the
    final one is not needed), ``o`` gives the ``r·width``×``r·height`` frame in raster order
    with ``last`` on its final pixel; frames may follow back to back. Throughput: one LR
    pixel per ``interp.steps`` cycles (r²/steps HR pixels a cycle, at most 1). ``cycles``
    counts the cycles from a frame's first input transfer to its last output transfer
    (inclusive); ``busy`` is high in between.
    """

    cycles: Out(32)
    busy: Out(1)

    def __init__(self, plan: SrlutPlan, *, width: int, height: int, ports: int = 1):
        self.plan, self.width, self.height = plan, width, height
        self.window = LineWindow(width=width, height=height, radius=plan.radius)
        self.interp = SimplexInterpolator(plan, ports=ports)
        self.reorder = ReorderBuffer(width=width, height=height, scale=plan.scale)
        super().__init__(
            {
                "i": In(stream.Signature(PIXEL)),
                "o": Out(stream.Signature(PIXEL)),
                "cycles": Out(32),
                "busy": Out(1),
            }
        )

    @property
    def steps(self) -> int:
        return self.interp.steps

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.interp = self.interp
        m.submodules.reorder = self.reorder
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        wiring.connect(m, self.window.o, self.interp.i)
        wiring.connect(m, self.interp.o, self.reorder.i)
        wiring.connect(m, self.reorder.o, wiring.flipped(self.o))

        count_frame_cycles(m, self)
        return m
