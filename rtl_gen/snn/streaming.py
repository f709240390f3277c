"""What the graph engine's units fed one input element a cycle share: the element counter and
first pipeline stage of the element-wise units (``IncrementAdder``, ``DifferentialAdd``,
``DifferentialTable``) and the ports of the units that accumulate then sweep
(``DifferentialMax``, ``DifferentialPool``, ``DifferentialRow``)."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal, Value, signed
from amaranth.lib.wiring import In, Out

__all__ = ["ElementStage", "element_stage", "sweep_ports"]


@dataclass(frozen=True)
class ElementStage:
    """``k``: the element read this cycle (a counter that wraps at ``n``, advanced by
    ``valid``); ``k1``, ``valid1``, ``first1`` and ``inputs1`` (by name): the element, the
    strobes and the inputs one cycle later, beside the memories' answers."""

    k: Signal
    k1: Signal
    valid1: Signal
    first1: Signal
    inputs1: dict


def element_stage(m: Module, valid: Value, first: Value, n: int, **inputs: Value) -> ElementStage:
    """The element counter of a unit taking one element a cycle (a time step is ``n``
    consecutive ``valid`` cycles) and its first stage's registers."""
    k = Signal(range(n))
    with m.If(valid):
        m.d.sync += k.eq(Mux(k == n - 1, 0, k + 1))
    k1 = Signal(range(n))
    valid1, first1 = Signal(), Signal()
    regs = {name: Signal.like(v, name=f"{name}1") for name, v in inputs.items()}
    m.d.sync += [valid1.eq(valid), first1.eq(first), k1.eq(k)]
    m.d.sync += [regs[name].eq(v) for name, v in inputs.items()]
    return ElementStage(k, k1, valid1, first1, regs)


def sweep_ports(d_bits: int, out_bits: int, out_addr: int | None = None, **extra: object) -> dict:
    """The ports of a unit that accumulates its input increments one a cycle (``valid``,
    ``first``, ``d`` of ``d_bits``) and, on a ``sweep`` pulse (``sweep_first``: the first
    step), emits its output increments (``out`` of ``out_bits``, at ``out_addr`` when the
    outputs are not in order: its range) while ``busy``; ``extra`` ports go first."""
    ports = {
        **extra,
        "valid": In(1),
        "first": In(1),
        "d": In(signed(d_bits)),
        "sweep": In(1),
        "sweep_first": In(1),
        "busy": Out(1),
        "out": Out(signed(out_bits)),
    }
    if out_addr is not None:
        ports["out_addr"] = Out(range(max(out_addr, 2)))
    return {**ports, "out_valid": Out(1)}
