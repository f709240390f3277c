"""``StbifArray``: one layer of ST-BIF neurons behind accumulate-only synapses.

Memories: the synapse weights (column-major: input ``j``'s row of weights to all ``n_out``
neurons sits at ``j * n_out + n``), the initial membranes (``v0 + bias``), the membranes ``V``
and tracers ``S``, and -- for a layer with a successor -- the event list of the spikes of the
last sweep (``{base = n * fanout, neg}``: ``base`` is where neuron ``n``'s row starts in the
successor's weight memory, so no multiplier computes it).

Commands (``start`` pulse with ``mode``; ``busy`` is high from the next cycle until done):

- ``INIT``: ``V[n] = v_init[n]``, ``S[n] = 0`` for every neuron; ``N + 1`` busy cycles.
- ``ROW``: one input event: ``V[n] += (-1)**neg * (weight[base + n] << shift)`` for every
  neuron, one neuron a cycle -- an add or subtract, never a multiply; ``N + 1`` busy cycles.
- ``SWEEP``: one ST-BIF step of every neuron (``frontends.snn.neurons.stbif_step`` with
  ``x = 0``: the inputs were already added into ``V``); each spike is appended to the event
  list; ``count`` and ``fired`` then describe this sweep; ``N + 1`` busy cycles.
- ``SKIP``: the layer does not step (it cannot fire); ``count = 0``, ``fired = 0``; no busy.

With ``layer.kind == "if"`` or ``"lif"`` (NIR neurons, ``frontends.snn.nir_import``) a
SWEEP is ``H = V + bias``; spike if ``H > theta`` (or ``>=``); ``V = H - theta`` or
``v_reset`` on a spike, else ``H``; the tracer counts spikes (``frontends.snn.neurons.if_step``).
A LIF layer also takes ``LEAK``: ``V = V - (V >> k)`` (``leak_shift``) or
``V = (beta * V + 2**(F-1)) >> F`` (``beta``, ``beta_bits``; the product as shifted adds),
``N + 1`` busy cycles -- ``frontends.snn.neurons.lif_step``'s leak with ``v_leak = 0``, taken
at the start of a step, before the step's inputs.

A ``"cubalif"`` layer has one more memory, the synaptic current ``I`` (``i_bits``): ROWs add
into ``I`` instead of ``V``; LEAK decays both (``I - (I >> syn_shift)`` or the ``alpha``
product, and ``V``'s leak as LIF); a SWEEP is ``I' = I + bias``, ``H = V + I'``, then fire
and reset as IF (``frontends.snn.neurons.cuba_lif_step``). An ``"li"`` layer (the last one,
a non-spiking readout) leaks and integrates as LIF but never fires; its readout port reads
the membranes.

With ``layer.conv`` (a ``ConvSynapse``) the weight memory holds the shared kernel only, and a
ROW's ``base`` is the source neuron's index: ``ConvTaps`` walks the output neurons its spike
reaches, one a cycle after a one-cycle table read (``taps + 2`` busy cycles).

Pipeline: neuron ``n``'s memories are read in the cycle it is issued and written in the next;
``V``'s read port is transparent to its write port, so back-to-back commands on one neuron
read the value just written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import signed_bits

if TYPE_CHECKING:
    from frontends.snn import StbifLayer
    from frontends.snn.nir_import import IfLayer

__all__ = ["StbifArray", "Mode", "event_layout"]


class Mode(enum.Enum, shape=3):
    INIT = 0
    ROW = 1
    SWEEP = 2
    SKIP = 3
    LEAK = 4


def _unsigned_bits(n: int) -> int:
    return max(1, (max(n, 1) - 1).bit_length())


def event_layout(span: int) -> data.StructLayout:
    """A spike event: ``base`` (start of the target row in the successor's weights, ``span``
    words in all) and ``neg`` (a -1 spike)."""
    return data.StructLayout({"base": unsigned(_unsigned_bits(span)), "neg": 1})


def _leak(m, v, shift, beta, bits):
    """``V - (V >> k)`` (``shift``) or ``(beta * V + 2**(F-1)) >> F`` with the product as
    shifted adds."""
    if shift is not None:
        return v - (v >> shift)
    beta, bits = int(beta), int(bits)
    prod = Signal(signed(len(v) + max(beta.bit_length(), 1) + 1))
    terms = [v << i for i in range(beta.bit_length()) if beta >> i & 1]
    total = 0
    for term in terms:
        total = total + term
    m.d.comb += prod.eq(total)
    rnd = (1 << (bits - 1)) if bits > 0 else 0
    return (prod + rnd) >> bits


class StbifArray(wiring.Component):
    """The neurons and synapses of one ``frontends.snn.StbifLayer`` (see the module docstring).

    ``v_bits`` is the membrane width (``StbifLayer.v_bits`` of the layer's input range),
    ``shift_bits`` the width of a ROW's ``shift`` (0: none), ``fanout`` the successor's
    ``n_out`` (0: no successor, no event list), ``readout`` adds the ``s_addr``/``s_data``
    port that reads tracers out (membranes, for an LI layer); ``i_bits`` is the width of a
    CubaLIF layer's current.
    """

    def __init__(
        self,
        layer: StbifLayer | IfLayer,
        *,
        v_bits: int,
        shift_bits: int = 0,
        fanout: int = 0,
        readout: bool = False,
        i_bits: int = 0,
    ):
        self.layer = layer
        self.v_bits = v_bits
        self.i_bits = i_bits
        kind = getattr(layer, "kind", "stbif")
        if kind == "cubalif" and i_bits < 1:
            raise ValueError("a CubaLIF layer needs i_bits")
        self.s_bits = signed_bits(min(layer.smin, 0), max(layer.smax, 0))
        self.w_bits = signed_bits(int(layer.weight.min()), int(layer.weight.max()))
        self.shift_bits = shift_bits
        self.fanout = fanout
        self.readout = readout
        self.conv = getattr(layer, "conv", None)
        n = layer.n_out
        span = layer.n_in if self.conv is not None else layer.n_in * layer.n_out
        if self.conv is not None:
            self.w_bits = signed_bits(int(self.conv.kernel.min()), int(self.conv.kernel.max()))
        members = {
            "start": In(1),
            "mode": In(Mode),
            "base": In(_unsigned_bits(span)),
            "neg": In(1),
            "shift": In(max(shift_bits, 1)),
            "busy": Out(1),
            "fired": Out(1),
            "count": Out(range(n + 1)),
        }
        if fanout:
            members["ev_addr"] = In(range(max(n, 2)))
            members["ev_data"] = Out(event_layout(n * fanout))
        if readout:
            members["s_addr"] = In(range(max(n, 2)))
            members["s_en"] = In(1)
            members["s_data"] = Out(signed(v_bits if kind == "li" else self.s_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        layer = self.layer
        n_out, n_in = layer.n_out, layer.n_in
        vs = signed(self.v_bits)

        conv = self.conv
        if conv is not None:
            from .conv_taps import ConvTaps

            m.submodules.taps = taps = ConvTaps(conv)
            w_init = [int(v) for v in conv.kernel.reshape(-1)]
        else:
            w_init = [int(layer.weight[n, j]) for j in range(n_in) for n in range(n_out)]
        m.submodules.weights = w_mem = Memory(
            shape=signed(self.w_bits), depth=len(w_init), init=w_init
        )
        v_init = [int(x) for x in layer.v_init]
        vi_rd = None
        if any(v_init):  # NIR layers start at 0: no memory for that
            m.submodules.v_init = vi_mem = Memory(shape=vs, depth=n_out, init=v_init)
            vi_rd = vi_mem.read_port()
        m.submodules.v = v_mem = Memory(shape=vs, depth=n_out, init=[])
        m.submodules.s = s_mem = Memory(shape=signed(self.s_bits), depth=n_out, init=[])
        w_rd = w_mem.read_port()
        bias_rd = None
        bias = getattr(layer, "bias", None)
        if getattr(layer, "kind", "stbif") != "stbif" and bias is not None and np.any(bias != 0):
            m.submodules.bias = b_mem = Memory(shape=vs, depth=n_out, init=[int(x) for x in bias])
            bias_rd = b_mem.read_port()
        kind = getattr(layer, "kind", "stbif")
        v_wr, s_wr = v_mem.write_port(), s_mem.write_port()
        v_rd = v_mem.read_port(transparent_for=(v_wr,))
        s_rd = s_mem.read_port(transparent_for=(s_wr,))
        i_wr = i_rd = None
        if kind == "cubalif":  # the synaptic current, one word per neuron
            m.submodules.i = i_mem = Memory(shape=signed(self.i_bits), depth=n_out, init=[])
            i_wr = i_mem.write_port()
            i_rd = i_mem.read_port(transparent_for=(i_wr,))
        if self.readout:
            s_out = (v_mem if kind == "li" else s_mem).read_port()
            m.d.comb += [
                s_out.addr.eq(self.s_addr),
                s_out.en.eq(self.s_en),
                self.s_data.eq(s_out.data),
            ]

        # --- issue stage: one neuron a cycle ------------------------------------------------
        issuing = Signal()
        mode = Signal(Mode)
        n = Signal(range(max(n_out, 2)))
        if bias_rd is not None:
            m.d.comb += bias_rd.addr.eq(n)  # read in SWEEPs only, which walk every neuron
        base = Signal.like(self.base)
        neg = Signal()
        shift = Signal.like(self.shift)
        conv_row = Signal()
        with m.If(self.start):
            with m.If(self.mode == Mode.SKIP):
                m.d.sync += [self.count.eq(0), self.fired.eq(0)]
            with m.Elif(self.mode == Mode.ROW if conv is not None else 0):
                m.d.sync += [mode.eq(self.mode), neg.eq(self.neg), shift.eq(self.shift)]
                if conv is not None:
                    m.d.comb += [taps.start.eq(1), taps.src.eq(self.base)]
            with m.Else():
                m.d.sync += [
                    issuing.eq(1),
                    mode.eq(self.mode),
                    n.eq(0),
                    base.eq(self.base),
                    neg.eq(self.neg),
                    shift.eq(self.shift),
                ]
                with m.If(self.mode == Mode.SWEEP):
                    m.d.sync += [self.count.eq(0), self.fired.eq(0)]
        with m.Elif(issuing):
            m.d.sync += n.eq(n + 1)
            with m.If(n == n_out - 1):
                m.d.sync += issuing.eq(0)
        n_sel = Signal.like(n)  # the neuron issued this cycle
        issue = Signal()
        if conv is not None:
            m.d.comb += conv_row.eq(taps.valid)
            m.d.comb += [
                issue.eq(issuing | taps.valid),
                n_sel.eq(Mux(conv_row, taps.n, n)),
                w_rd.addr.eq(taps.w),
            ]
        else:
            m.d.comb += [issue.eq(issuing), n_sel.eq(n), w_rd.addr.eq(base + n)]
        m.d.comb += [v_rd.addr.eq(n_sel), s_rd.addr.eq(n_sel)]
        if i_rd is not None:
            m.d.comb += i_rd.addr.eq(n_sel)
        if vi_rd is not None:
            m.d.comb += vi_rd.addr.eq(n_sel)

        # --- write stage --------------------------------------------------------------------
        s1_valid = Signal()
        s1_n = Signal.like(n)
        m.d.sync += [s1_valid.eq(issue), s1_n.eq(n_sel)]
        busy = issue | s1_valid
        if conv is not None:
            busy = busy | taps.busy
        m.d.comb += self.busy.eq(busy)
        m.d.comb += [v_wr.addr.eq(s1_n), s_wr.addr.eq(s1_n)]
        if i_wr is not None:
            m.d.comb += i_wr.addr.eq(s1_n)

        weight = Signal(
            signed(self.w_bits + (1 << self.shift_bits) - 1 if self.shift_bits else self.w_bits)
        )
        m.d.comb += weight.eq(w_rd.data << shift if self.shift_bits else w_rd.data)
        theta = layer.theta
        up = Signal()
        down = Signal()
        s = s_rd.data
        if kind == "stbif":
            h = v_rd.data
            m.d.comb += [
                up.eq((h >= theta) & (s < layer.smax)),
                down.eq((h < 0) & (s > layer.smin)),
            ]
        elif kind == "cubalif":
            # CubaLIF SWEEP: I' = I + bias, H = V + I' (the leaks came first, in LEAK)
            cur = Signal(signed(self.i_bits + 1))
            if bias_rd is not None:
                m.d.comb += cur.eq(i_rd.data + bias_rd.data)
            else:
                m.d.comb += cur.eq(i_rd.data)
            h = Signal(signed(max(self.v_bits, self.i_bits) + 2))
            m.d.comb += [
                h.eq(v_rd.data + cur),
                up.eq(h > theta if layer.cmp == ">" else h >= theta),
            ]
        else:
            # IF: H = V + bias (every step), fire on H > theta (or >=), tracer counts spikes;
            # LI: the same H, never fires
            h = Signal(signed(self.v_bits + 1))
            if bias_rd is not None:
                m.d.comb += h.eq(v_rd.data + Mux(mode == Mode.SWEEP, bias_rd.data, 0))
            else:
                m.d.comb += h.eq(v_rd.data)
            if kind != "li":
                m.d.comb += up.eq(h > theta if layer.cmp == ">" else h >= theta)

        ev_base = Signal(range(max(n_out * max(self.fanout, 1), 2)))
        if self.fanout:
            m.submodules.events = ev_mem = Memory(
                shape=event_layout(n_out * self.fanout), depth=n_out, init=[]
            )
            ev_wr, ev_rd = ev_mem.write_port(), ev_mem.read_port()
            m.d.comb += [
                ev_rd.addr.eq(self.ev_addr),
                self.ev_data.eq(ev_rd.data),
                ev_wr.addr.eq(self.count),
                ev_wr.data.base.eq(ev_base),
                ev_wr.data.neg.eq(down),
            ]

        with m.If(s1_valid):
            with m.Switch(mode):
                with m.Case(Mode.INIT):
                    m.d.comb += [
                        v_wr.data.eq(vi_rd.data if vi_rd is not None else 0),
                        v_wr.en.eq(1),
                        s_wr.data.eq(0),
                        s_wr.en.eq(1),
                    ]
                    if i_wr is not None:
                        m.d.comb += [i_wr.data.eq(0), i_wr.en.eq(1)]
                with m.Case(Mode.ROW):
                    if i_wr is not None:  # CubaLIF: input spikes charge the current
                        m.d.comb += [
                            i_wr.data.eq(Mux(neg, i_rd.data - weight, i_rd.data + weight)),
                            i_wr.en.eq(1),
                        ]
                    else:
                        m.d.comb += [v_wr.data.eq(Mux(neg, h - weight, h + weight)), v_wr.en.eq(1)]
                if kind in ("lif", "cubalif", "li"):
                    with m.Case(Mode.LEAK):
                        m.d.comb += [
                            v_wr.data.eq(
                                _leak(m, v_rd.data, layer.leak_shift, layer.beta, layer.beta_bits)
                            ),
                            v_wr.en.eq(1),
                        ]
                        if i_wr is not None:
                            m.d.comb += [
                                i_wr.data.eq(
                                    _leak(
                                        m, i_rd.data, layer.syn_shift, layer.alpha, layer.beta_bits
                                    )
                                ),
                                i_wr.en.eq(1),
                            ]
                with m.Case(Mode.SWEEP):
                    if kind == "stbif":
                        m.d.comb += [
                            v_wr.data.eq(Mux(up, h - theta, h + theta)),
                            v_wr.en.eq(up | down),
                        ]
                    else:
                        fired_v = h - theta if layer.reset == "subtract" else layer.v_reset
                        m.d.comb += [v_wr.data.eq(Mux(up, fired_v, h)), v_wr.en.eq(1)]
                        if i_wr is not None and bias_rd is not None:
                            m.d.comb += [i_wr.data.eq(cur), i_wr.en.eq(1)]
                    m.d.comb += [s_wr.data.eq(Mux(up, s + 1, s - 1)), s_wr.en.eq(up | down)]
                    with m.If(up | down):
                        m.d.sync += [self.count.eq(self.count + 1), self.fired.eq(1)]
                        if self.fanout:
                            m.d.comb += ev_wr.en.eq(1)
                    if self.fanout:
                        m.d.sync += ev_base.eq(ev_base + self.fanout)
        with m.If(self.start):
            m.d.sync += ev_base.eq(0)
        return m
