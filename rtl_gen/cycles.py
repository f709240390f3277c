"""The cycle counters of the engines: per inference (dense, SNN, SMURF) and per frame (the LUT
engines)."""

from __future__ import annotations

from amaranth import Module, Signal, Value
from amaranth.lib import wiring

__all__ = ["count_inference_cycles", "count_frame_cycles"]


def count_inference_cycles(m: Module, engine: wiring.Component, *, first: Value) -> Signal:
    """Drive ``engine.cycles`` in module ``m``: the cycles from an inference's first ``i``
    transfer to its last ``o`` transfer (``o.payload.last``), both inclusive.

    ``first`` is high while ``engine.i`` offers an inference's first element; a transfer then
    starts the count unless one is running. ``cycles`` is registered: it takes the new value
    one cycle after the last output transfer and holds it until the next inference's last
    output transfer. Returns the ``running`` flag (high from the cycle after the first input
    transfer to the last output transfer, inclusive).

    A function rather than a ``Component``, like ``count_frame_cycles``: it
    reads the engine's own stream handshakes and drives its ``cycles`` port, so a submodule
    would only repeat those as ports.
    """
    running = Signal()
    count = Signal(32)
    first_in = engine.i.valid & engine.i.ready & first & ~running
    last_out = engine.o.valid & engine.o.ready & engine.o.payload.last
    with m.If(first_in):
        m.d.sync += [count.eq(1), running.eq(1)]
    with m.Elif(running):
        m.d.sync += count.eq(count + 1)
    with m.If(last_out):
        m.d.sync += [running.eq(0), engine.cycles.eq(count + 1)]
    return running


def count_frame_cycles(m: Module, engine: wiring.Component) -> None:
    """Drive ``engine.cycles`` (cycles from a frame's first ``i`` transfer to its last ``o``
    transfer, inclusive) and ``engine.busy`` (high in between) in module ``m``.

    Unlike ``count_inference_cycles``, ``cycles`` itself is the counter: it counts while the
    frame runs (1 in the cycle after the first transfer) and holds the frame's total from the
    cycle after its last output transfer until the next frame starts."""
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
