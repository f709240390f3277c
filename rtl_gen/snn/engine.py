"""``SnnEngine``: a chain of ``StbifArray`` layers run layer-sequentially, step by step.

Per inference:

1. LOAD: the input vector is stored; on its first element every layer initialises its
   membranes and tracers (in parallel, ``N_l + 1`` cycles).
2. Time steps ``t = 0, 1, ...``; in each, layer by layer:
   - layer 0 at ``t = 0`` takes the input ``a = x - zero_point`` as bit-plane events: for
     each input ``k``, one ROW per set bit ``b`` of ``|a_k|`` (``V += +-(w << b)``): the
     analog input costs adds and shifts only;
   - layer ``l > 0`` takes the spikes layer ``l - 1`` emitted in this step, one ROW each;
   - the layer SWEEPs (one ST-BIF step of every neuron) if it received a spike, fired in the
     last step or ``t = 0``; otherwise it is SKIPped (it cannot fire).
   In the fixed-step mode (NIR IF/LIF/CubaLIF networks) a fresh input vector arrives every
   step, and LIF, CubaLIF and LI layers LEAK (in parallel) while it loads; layers with a bias
   and CubaLIF layers (whose current charges the membrane) always SWEEP.
   The run stops after the first step in which no layer fired, or after ``t_max`` steps.
3. OUTPUT: the last layer's tracers plus its zero point stream out (an LI readout's
   membranes).

Latency (cycles from the first input transfer to the last output transfer, inclusive, input
always valid and output always ready) depends on the spikes: ``SnnPlan.cycles`` models it
exactly from the golden run. ``steps`` holds the time steps of the last inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..cycles import count_inference_cycles
from .layer import Mode, StbifArray

if TYPE_CHECKING:
    from amaranth.lib import data

    from frontends.ir import IntType
    from frontends.snn import StbifLayer
    from frontends.snn.nir_import import IfLayer

__all__ = ["SnnEngine", "element_layout"]


def _row_stride(layer) -> int:
    """How far apart two source neurons' ``base`` values are for ``layer``: a weight row
    (``n_out``) for dense synapses, one for a convolution (``base`` is the source index)."""
    return 1 if getattr(layer, "conv", None) is not None else layer.n_out


class SnnNetwork(Protocol):
    """What ``SnnEngine`` reads of a plan's network (``frontends.snn.StbifNetwork``, or the
    NIR network ``IfPlan`` holds)."""

    @property
    def layers(self) -> Sequence[StbifLayer | IfLayer]: ...

    @property
    def n_in(self) -> int: ...

    @property
    def n_out(self) -> int: ...

    @property
    def in_zero_point(self) -> int: ...

    @property
    def in_dtype(self) -> IntType: ...


class SnnEnginePlan(Protocol):
    """What ``SnnEngine`` reads of its plan: ``SnnPlan`` (ST-BIF) and ``IfPlan`` (NIR) are
    both one. The plans create the engine, so the engine names neither (an optional
    ``mode`` and ``i_bits`` are read where present)."""

    @property
    def network(self) -> SnnNetwork: ...

    @property
    def t_max(self) -> int: ...

    @property
    def v_bits(self) -> tuple[int, ...]: ...

    @property
    def mag_bits(self) -> int: ...

    @property
    def shift_bits(self) -> int: ...

    @property
    def in_dtype(self) -> IntType: ...

    @property
    def out_dtype(self) -> IntType: ...


def element_layout(dtype: IntType) -> data.StructLayout:
    from amaranth.lib import data

    shape = signed(dtype.width) if dtype.signed else unsigned(dtype.width)
    return data.StructLayout({"data": shape, "last": 1})


def engine_signature(in_dtype: IntType, out_dtype: IntType) -> dict:
    """The ports of a spiking engine (``SnnEngine``, ``GraphEngine``): the dense engine's
    (``i``, ``o``, ``cycles``, ``busy``) plus ``steps``, the time steps of the last
    inference."""
    return {
        "i": In(stream.Signature(element_layout(in_dtype))),
        "o": Out(stream.Signature(element_layout(out_dtype))),
        "cycles": Out(32),
        "busy": Out(1),
        "steps": Out(16),
    }


class SnnEngine(wiring.Component):
    """Streams an input vector in, runs the spiking network of ``plan`` to silence, streams
    the last layer's codes out. Ports as the dense engine's (``i``, ``o``, ``cycles``,
    ``busy``) plus ``steps``."""

    def __init__(self, plan: SnnEnginePlan):
        self.plan = plan
        super().__init__(engine_signature(plan.in_dtype, plan.out_dtype))

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        net = plan.network
        layers = net.layers
        L = len(layers)
        arrays = []
        for index, layer in enumerate(layers):
            i_bits = getattr(plan, "i_bits", ())
            arr = StbifArray(
                layer,
                v_bits=plan.v_bits[index],
                shift_bits=plan.shift_bits if index == 0 else 0,
                fanout=_row_stride(layers[index + 1]) if index + 1 < L else 0,
                readout=index == L - 1,
                i_bits=i_bits[index] if i_bits else 0,
            )
            m.submodules[f"layer{index}"] = arr
            arrays.append(arr)
        last = arrays[-1]
        # "if": NIR IF networks, a fresh input vector every step, a fixed number of steps
        fixed = getattr(plan, "mode", "stbif") == "if"
        has_bias = [
            bool(getattr(l, "kind", "stbif") != "stbif" and np.any(l.bias != 0)) for l in layers
        ]
        # a CubaLIF current keeps charging its membrane without input: those always SWEEP
        always = [b or getattr(l, "kind", "") == "cubalif" for b, l in zip(has_bias, layers)]
        leaky = [
            arr
            for arr, l in zip(arrays, layers)
            if getattr(l, "kind", "") in ("lif", "cubalif", "li")
        ]

        in_dtype = net.in_dtype
        in_shape = signed(in_dtype.width) if in_dtype.signed else unsigned(in_dtype.width)
        m.submodules.inputs = in_mem = Memory(shape=in_shape, depth=net.n_in, init=[])
        in_wr, in_rd = in_mem.write_port(), in_mem.read_port()

        # --- counters and registers ---------------------------------------------------------
        in_k = Signal(range(max(net.n_in, 2)))
        k = Signal(range(net.n_in + 1))
        k_base = Signal(range(max(net.n_in * layers[0].n_out, 2)))
        mag = Signal(plan.mag_bits)
        a_neg = Signal()
        bit = Signal(max(plan.shift_bits, 1))
        t = Signal(range(plan.t_max + 1))
        layer = Signal(range(max(L, 2)))
        e = Signal(range(max(l.n_out for l in layers) + 1))
        out_k = Signal(range(max(net.n_out, 2)))
        o_valid = Signal()
        in_any = Signal()  # layer 0 got an input spike in this step

        busy_any = Signal()
        m.d.comb += busy_any.eq(Cat(a.busy for a in arrays).any())
        fired_any = Signal()
        m.d.comb += fired_any.eq(Cat(a.fired for a in arrays).any())

        # Per-layer views selected by ``layer``: the array's busy and fired flags, and the
        # predecessor's spike count and event read data.
        sel_busy, sel_fired = Signal(), Signal()
        prev_count = Signal(range(max(l.n_out for l in layers) + 1))
        prev_base = Signal(max(len(a.base) for a in arrays))
        prev_neg = Signal()
        with m.Switch(layer):
            for index, arr in enumerate(arrays):
                with m.Case(index):
                    m.d.comb += [sel_busy.eq(arr.busy), sel_fired.eq(arr.fired)]
                    if index > 0:
                        prev = arrays[index - 1]
                        m.d.comb += [
                            prev_count.eq(prev.count),
                            prev_base.eq(prev.ev_data.base),
                            prev_neg.eq(prev.ev_data.neg),
                            prev.ev_addr.eq(e),
                        ]

        def command(mode, *, base=0, neg=0, shift=0):
            """Start ``mode`` on the selected layer (this cycle)."""
            stmts = []
            with m.Switch(layer):
                for index, arr in enumerate(arrays):
                    with m.Case(index):
                        m.d.comb += [
                            arr.start.eq(1),
                            arr.mode.eq(mode),
                            arr.base.eq(base),
                            arr.neg.eq(neg),
                            arr.shift.eq(shift),
                        ]
            return stmts

        count_inference_cycles(m, self, first=in_k == 0)

        a_value = Signal(signed(in_dtype.width + 2))
        m.d.comb += a_value.eq(in_rd.data - net.in_zero_point)
        m.d.comb += in_rd.addr.eq(k)
        m.d.comb += [last.s_addr.eq(out_k), last.s_en.eq(1)]

        with m.FSM(name="state"):
            with m.State("LOAD"):
                m.d.comb += [
                    self.i.ready.eq(1),
                    in_wr.addr.eq(in_k),
                    in_wr.data.eq(self.i.payload.data),
                    in_wr.en.eq(self.i.valid),
                ]
                with m.If(self.i.valid):
                    with m.If((in_k == 0) & (t == 0)):
                        for arr in arrays:
                            m.d.comb += [arr.start.eq(1), arr.mode.eq(Mode.INIT)]
                    with m.Elif(in_k == 0):
                        for arr in leaky:  # a new step: LIF membranes leak first
                            m.d.comb += [arr.start.eq(1), arr.mode.eq(Mode.LEAK)]
                    m.d.sync += in_k.eq(in_k + 1)
                    with m.If(in_k == net.n_in - 1):
                        m.d.sync += [in_k.eq(0), k.eq(0), k_base.eq(0), layer.eq(0)]
                        with m.If((t == 0) | bool(leaky)):
                            m.next = "LOAD_WAIT"
                        with m.Else():
                            m.next = "IN_FETCH"
            with m.State("LOAD_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~busy_any):
                    m.next = "IN_FETCH"
            # layer 0, t = 0: the input as bit-plane events
            with m.State("IN_FETCH"):
                m.d.comb += self.busy.eq(1)
                with m.If(k == net.n_in):
                    m.next = "DECIDE"
                with m.Else():
                    m.next = "IN_LOAD"
            with m.State("IN_LOAD"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [mag.eq(abs(a_value)), a_neg.eq(a_value < 0), bit.eq(0)]
                m.next = "IN_BIT"
            with m.State("IN_BIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(mag == 0):
                    m.d.sync += [k.eq(k + 1), k_base.eq(k_base + _row_stride(layers[0]))]
                    m.next = "IN_FETCH"
                with m.Else():
                    m.d.sync += [mag.eq(mag >> 1), bit.eq(bit + 1)]
                    with m.If(mag[0]):
                        command(Mode.ROW, base=k_base, neg=a_neg, shift=bit)
                        m.d.sync += in_any.eq(1)
                        m.next = "IN_WAIT"
            with m.State("IN_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~sel_busy):
                    m.next = "IN_BIT"
            # layer l > 0: the spikes of layer l - 1 in this step
            with m.State("EV_FETCH"):
                m.d.comb += self.busy.eq(1)
                with m.If(e == prev_count):
                    m.next = "DECIDE"
                with m.Else():
                    m.next = "EV_ISSUE"
            with m.State("EV_ISSUE"):
                m.d.comb += self.busy.eq(1)
                command(Mode.ROW, base=prev_base, neg=prev_neg)
                m.d.sync += e.eq(e + 1)
                m.next = "EV_WAIT"
            with m.State("EV_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~sel_busy):
                    m.next = "EV_FETCH"
            # the neuron step of layer l
            with m.State("DECIDE"):
                m.d.comb += self.busy.eq(1)
                active = (t == 0) | sel_fired | (e != 0) | ((layer == 0) & in_any)
                for index, biased in enumerate(always):
                    if biased:
                        active = active | (layer == index)
                with m.If(active):
                    command(Mode.SWEEP)
                    m.next = "SWEEP_WAIT"
                with m.Else():
                    command(Mode.SKIP)
                    m.next = "NEXT"
            with m.State("SWEEP_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~sel_busy):
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += e.eq(0)
                with m.If(layer == L - 1):
                    m.d.sync += in_any.eq(0)
                    if fixed:
                        done = t == plan.t_max - 1
                    else:
                        done = ~fired_any | (t == plan.t_max - 1)
                    with m.If(done):
                        m.d.sync += [self.steps.eq(t + 1), out_k.eq(0), o_valid.eq(0)]
                        m.next = "OUTPUT"
                    with m.Else():
                        m.d.sync += [t.eq(t + 1), layer.eq(0)]
                        m.next = "LOAD" if fixed else "DECIDE"
                with m.Else():
                    m.d.sync += layer.eq(layer + 1)
                    m.next = "EV_FETCH"
            with m.State("OUTPUT"):
                m.d.comb += self.busy.eq(1)
                advance = o_valid & self.o.ready
                m.d.comb += [last.s_addr.eq(out_k + advance), last.s_en.eq(~o_valid | self.o.ready)]
                with m.If(advance):
                    with m.If(out_k == net.n_out - 1):
                        m.d.sync += [o_valid.eq(0), out_k.eq(0), t.eq(0)]
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += out_k.eq(out_k + 1)
                with m.Elif(~o_valid):
                    m.d.sync += o_valid.eq(1)
        m.d.comb += [
            self.o.valid.eq(o_valid),
            self.o.payload.data.eq(last.s_data + layers[-1].zero_point),
            self.o.payload.last.eq(out_k == net.n_out - 1),
        ]
        return m
