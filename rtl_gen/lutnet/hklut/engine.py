"""The streaming HKLUT ×4 engine: two ×2 stages, LR raster pixels in, HR raster pixels out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...cycles import count_frame_cycles
from ..linebuffer import LineWindow
from ..reorder import ReorderBuffer
from ..streams import PIXEL
from .stage import STEPS, HklutStageUnit

if TYPE_CHECKING:
    from frontends.lutnet.hklut import HklutPlan

__all__ = ["HklutEngine"]


class HklutEngine(wiring.Component):
    """``LineWindow`` → stage 0 → ``LineWindow`` (2×2 blocks in) → stage 1 → reorder buffer

    ``i`` takes a ``width``×``height`` frame of 8-bit pixels in raster order, ``o`` gives the
    ``4·width``×``4·height`` frame in raster order with ``last`` on its final pixel. Stage 0
    writes its 2×2 blocks straight into stage 1's line buffer (no reorder buffer between).
    Throughput: stage 1 takes ``STEPS`` = 12 cycles per intermediate pixel, 48 per LR pixel,
    so 16/48 = 1/3 HR pixel a cycle, less the refill of the line buffers between frames.
    ``cycles`` counts the cycles from a frame's first input transfer to its last output
    transfer; ``busy`` is high in between.

    ``msb_memory="spram"`` (iCE40 UP5K): both stages' MSB tables are RAMs filled through
    ``load`` after reset, stage 0's words then stage 1's (``HklutStageUnit``); frames are
    taken once ``loaded`` is high.
    """

    def __init__(self, plan: HklutPlan, *, width: int, height: int, msb_memory: str = "rom"):
        if len(plan.stages) != 2:
            raise ValueError(f"the HKLUT engine has two ×2 stages; the plan has {len(plan.stages)}")
        self.plan, self.width, self.height, self.msb_memory = plan, width, height, msb_memory
        self.window0 = LineWindow(width=width, height=height, radius=2)
        self.stage0 = HklutStageUnit(
            plan.stages[0], width=width, height=height, final=False, msb_memory=msb_memory
        )
        self.window1 = LineWindow(width=2 * width, height=2 * height, radius=2, block=2)
        self.stage1 = HklutStageUnit(
            plan.stages[1], width=2 * width, height=2 * height, final=True, msb_memory=msb_memory
        )
        self.reorder = ReorderBuffer(width=2 * width, height=2 * height, scale=2)
        members = {
            "i": In(stream.Signature(PIXEL)),
            "o": Out(stream.Signature(PIXEL)),
            "cycles": Out(32),
            "busy": Out(1),
        }
        if msb_memory == "spram":
            members.update(load=In(stream.Signature(unsigned(32))), loaded=Out(1))
        super().__init__(members)

    @property
    def steps(self) -> int:
        return STEPS

    def elaborate(self, platform):
        m = Module()
        for name in ("window0", "stage0", "window1", "stage1", "reorder"):
            m.submodules[name] = getattr(self, name)
        wiring.connect(m, wiring.flipped(self.i), self.window0.i)
        wiring.connect(m, self.window0.o, self.stage0.i)
        wiring.connect(m, self.stage0.o, self.window1.i)
        wiring.connect(m, self.window1.o, self.stage1.i)
        wiring.connect(m, self.stage1.o, self.reorder.i)
        wiring.connect(m, self.reorder.o, wiring.flipped(self.o))

        if self.msb_memory == "spram":
            s0, s1 = self.stage0, self.stage1
            m.d.comb += [
                s0.load.payload.eq(self.load.payload),
                s1.load.payload.eq(self.load.payload),
                s0.load.valid.eq(self.load.valid & ~s0.loaded),
                s1.load.valid.eq(self.load.valid & s0.loaded),
                self.load.ready.eq(s0.load.ready | (s0.loaded & s1.load.ready)),
                self.loaded.eq(s0.loaded & s1.loaded),
            ]

        count_frame_cycles(m, self)
        return m
