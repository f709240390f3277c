"""``GraphEngine``: a whole spiking graph (``frontends.snn.graph``, transformers included) in
hardware, its units joined through per-tensor increment buffers, one unit at a time.

Every tensor that a unit produces has an increment buffer (one word per element: what the
unit emitted in this time step); a ``transpose``/``slice`` has none: its consumers read its
source's buffer through an index table. The input's buffer is the input memory: ``code -
zero_point`` at ``t = 0``, 0 afterwards (the "analog" encoding).

Per inference:

1. LOAD: the input codes are stored; on the first one every ST-BIF dense unit initialises
   its membranes and every SESA unit clears its memories; LOAD_WAIT until they are done.
2. Time steps ``t = 0, 1, ...``; in each, every unit in topological order (``drivers``):

   - ``stream`` (residual increment adder, differential add, element-wise table): one
     element a cycle from
     the input buffers into the unit, its outputs (two cycles later) into the output buffer;
   - ``row`` (differential softmax/LayerNorm, average pool): the elements streamed in as
     above (softmax/LayerNorm: while the output buffer is cleared), then the sweep, whose
     ``(address, increment)`` outputs are written;
   - ``scan`` (ST-BIF dense on tokens, SESA): the input elements read one a cycle, a
     nonzero increment issued as one command per set bit of its magnitude (``row`` /
     SESA event, waited for), then the sweep, whose spikes are written in order (a dense
     unit's ``lanes`` a word: its buffer holds ``lanes`` elements a word).

   A unit writing a nonzero increment marks the step busy; the run stops after the first
   step that is not, or after ``t_max`` steps.
3. OUTPUT: the output unit's (an ST-BIF dense unit's) tracers plus its zero point stream
   out.

Latency is modelled exactly by ``GraphPlan.cycles`` from the golden run's increments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..cycles import count_inference_cycles
from .engine import engine_signature

__all__ = ["GraphEngine"]


@dataclass(frozen=True)
class _Counters:
    """The registers the drivers share (one unit runs at a time): ``e`` the element read,
    ``oc`` the output written, ``drain`` a stream unit's pipeline tail; a scan's ``mag``,
    ``neg``, ``bit`` (the increment being issued bit by bit), ``phase_b`` (SESA: the B
    operand), ``have`` (the read of element ``e - 1`` answers this cycle) and ``ev`` (the
    element whose events issue)."""

    e: Signal
    oc: Signal
    drain: Signal
    mag: Signal
    neg: Signal
    bit: Signal
    phase_b: Signal
    have: Signal
    ev: Signal


class GraphEngine(wiring.Component):
    """Streams an input vector in, runs the spiking graph of ``plan`` (a
    ``graph_plan.GraphPlan``, which creates the engine, so the engine does not name it) to
    silence, streams the output codes out. Ports as ``SnnEngine``'s (``i``, ``o``,
    ``cycles``, ``busy``, ``steps``)."""

    def __init__(self, plan: Any):
        self.plan = plan
        super().__init__(engine_signature(plan.in_dtype, plan.out_dtype))

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        n_in = plan.n_in
        in_dtype = plan.in_dtype
        in_shape = signed(in_dtype.width) if in_dtype.signed else unsigned(in_dtype.width)
        m.submodules.inputs = in_mem = Memory(shape=in_shape, depth=n_in, init=[])
        in_wr = in_mem.write_port()

        t = Signal(range(plan.t_max + 1))
        nz = Signal()  # a unit wrote a nonzero increment in this step
        first = t == 0

        # --- increment buffers ---------------------------------------------------------------
        bufs = {}
        for b, (name, (size, bits, lanes)) in enumerate(plan.buffers.items()):
            shape = signed(bits) if lanes == 1 else unsigned(bits * lanes)
            mem = Memory(shape=shape, depth=max(size, 2), init=[])
            m.submodules[f"buf{b}_{plan.safe(name)}"] = mem
            bufs[name] = (mem, mem.write_port(), bits, lanes)

        maps: list = []
        lane_regs: list = []

        def reader(tensor: str, e):
            """A read port on ``tensor``'s increments at element ``e`` (through its index
            table); the value one cycle later."""
            source, table = plan.views[tensor]
            if table is None:
                addr = e
            else:
                rom = Memory(
                    shape=range(max(int(table.max()) + 1, 2)), depth=len(table), init=table.tolist()
                )
                maps.append(rom)
                m.submodules[f"map{len(maps)}_{plan.safe(tensor)}"] = rom
                rd = rom.read_port(domain="comb")
                m.d.comb += rd.addr.eq(e)
                addr = rd.data
            if source == plan.input_tensor:
                rd = in_mem.read_port()
                m.d.comb += rd.addr.eq(addr)
                value = Signal(signed(in_dtype.width + 2))
                m.d.comb += value.eq(Mux(first, rd.data - plan.in_zero_point, 0))
                return value
            mem, _, bits, lanes = bufs[source]
            rd = mem.read_port()
            if lanes == 1:
                m.d.comb += rd.addr.eq(addr)
                return rd.data
            lb = lanes.bit_length() - 1
            lane = Signal(lb, name=f"lane{len(lane_regs)}")
            lane_regs.append(lane)
            m.d.comb += rd.addr.eq(addr >> lb)
            m.d.sync += lane.eq(addr[:lb])
            return rd.data.word_select(lane, bits).as_signed()

        def writer(tensor: str, en, addr, value):
            wr = bufs[tensor][1]  # a word: every lane of it
            m.d.comb += [wr.en.eq(en), wr.addr.eq(addr), wr.data.eq(value)]
            with m.If(en & (value != 0)):
                m.d.sync += nz.eq(1)

        units = [plan.create_unit(d) for d in plan.drivers]
        added: set = set()
        for i, (d, hw) in enumerate(zip(plan.drivers, units)):
            if id(hw) not in added:  # a shared unit (row units) once
                added.add(id(hw))
                m.submodules[f"u{i}_{plan.safe(d.name)}"] = hw
        out_unit = units[plan.output_driver]

        # --- counters ---------------------------------------------------------------------------
        in_k = Signal(range(max(n_in, 2)))
        c = _Counters(
            e=Signal(range(plan.max_elements + 1), name="e"),
            oc=Signal(range(plan.max_elements + 1), name="oc"),
            drain=Signal(3, name="drain"),
            mag=Signal(plan.mag_bits, name="mag"),
            neg=Signal(name="neg"),
            bit=Signal(range(plan.mag_bits + 2), name="bit"),
            phase_b=Signal(name="phase_b"),
            have=Signal(name="have"),
            ev=Signal(range(plan.max_elements + 1), name="ev"),
        )
        e, oc = c.e, c.oc
        out_k = Signal(range(max(plan.n_out, 2)))
        o_valid = Signal()
        inits = [hw for d, hw in zip(plan.drivers, units) if d.unit_kind in ("dense", "sesa")]
        init_busy = Signal()
        m.d.comb += init_busy.eq(Cat(hw.busy for hw in inits).any() if inits else 0)

        count_inference_cycles(m, self, first=in_k == 0)
        m.d.comb += [out_unit.s_addr.eq(out_k)]

        def state(i, s):
            return f"U{i}_{s}"

        drivers = []
        for i, (d, hw) in enumerate(zip(plan.drivers, units)):
            nxt = state(i + 1, "GO") if i + 1 < len(units) else "NEXT"
            gen = self._driver(m, i, d, hw, state, nxt, reader, writer, first, c)
            next(gen)  # its wiring, outside the FSM
            drivers.append(gen)
        with m.FSM(name="state"):
            with m.State("LOAD"):
                m.d.comb += [
                    self.i.ready.eq(1),
                    in_wr.addr.eq(in_k),
                    in_wr.data.eq(self.i.payload.data),
                    in_wr.en.eq(self.i.valid),
                ]
                with m.If(self.i.valid):
                    with m.If(in_k == 0):
                        for d, hw in zip(plan.drivers, units):
                            if d.unit_kind == "dense":
                                m.d.comb += hw.init.eq(1)
                            elif d.unit_kind == "sesa":
                                m.d.comb += hw.clear.eq(1)
                    m.d.sync += in_k.eq(in_k + 1)
                    with m.If(in_k == n_in - 1):
                        m.d.sync += [in_k.eq(0), t.eq(0), nz.eq(0)]
                        m.next = "LOAD_WAIT"
            with m.State("LOAD_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~init_busy):
                    m.d.sync += [e.eq(0), oc.eq(0)]
                    m.next = state(0, "GO")
            for gen in drivers:
                next(gen, None)  # the driver's states
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                with m.If(~nz | (t == plan.t_max - 1)):
                    m.d.sync += [self.steps.eq(t + 1), out_k.eq(0), o_valid.eq(0)]
                    m.next = "OUTPUT"
                with m.Else():
                    m.d.sync += [t.eq(t + 1), nz.eq(0), e.eq(0), oc.eq(0)]
                    m.next = state(0, "GO")
            with m.State("OUTPUT"):
                m.d.comb += self.busy.eq(1)
                advance = o_valid & self.o.ready
                m.d.comb += out_unit.s_addr.eq(out_k + advance)
                with m.If(advance):
                    with m.If(out_k == plan.n_out - 1):
                        m.d.sync += [o_valid.eq(0), out_k.eq(0)]
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += out_k.eq(out_k + 1)
                with m.Elif(~o_valid):
                    m.d.sync += o_valid.eq(1)
        m.d.comb += [
            self.o.valid.eq(o_valid),
            self.o.payload.data.eq(out_unit.s_data + plan.out_zero_point),
            self.o.payload.last.eq(out_k == plan.n_out - 1),
        ]
        return m

    @staticmethod
    def _driver(m, i, d, hw, state, nxt, reader, writer, first, c: _Counters):
        """Unit ``i``'s driver (see the module docstring), a generator: its wiring up to the
        first ``yield``, then its states inside the engine's FSM."""
        e, oc, drain, mag, neg, bit = c.e, c.oc, c.drain, c.mag, c.neg, c.bit
        phase_b, have, ev = c.phase_b, c.have, c.ev
        go, run, wait, sweep, tail = (state(i, s) for s in ("GO", "RUN", "WAIT", "SWEEP", "TAIL"))
        n = d.n_elements
        if d.kind in ("stream", "row"):
            n = d.side_elements[0] if d.side_elements else n  # a pool streams its input
            streaming = Signal(name=f"u{i}_streaming")
            values = [reader(x, e) for x in d.inputs]
            valid1 = Signal(name=f"u{i}_valid1")
            e1 = Signal.like(e, name=f"u{i}_e1")
            m.d.sync += [valid1.eq(streaming), e1.eq(e)]
            if d.unit_kind in ("add", "dadd"):
                m.d.comb += [hw.valid.eq(valid1), hw.first.eq(first), hw.da.eq(values[0])]
                m.d.comb += hw.db.eq(values[1] if len(values) > 1 else 0)
                spiking = d.unit_kind == "add"
                out = hw.spike if spiking else hw.out
                out_valid = hw.spike_valid if spiking else hw.out_valid
            elif d.unit_kind == "row":  # a shared unit: driven while this driver runs
                active = Signal(name=f"u{i}_active")
                with m.If(active):
                    m.d.comb += [hw.valid.eq(valid1), hw.first.eq(first), hw.d.eq(values[0])]
                    m.d.comb += hw.sel.eq(d.sel)
                out, out_valid = hw.out, hw.out_valid & active
            else:
                m.d.comb += [hw.valid.eq(valid1), hw.first.eq(first), hw.d.eq(values[0])]
                out, out_valid = hw.out, hw.out_valid
            if d.kind == "stream":
                writer(d.output, out_valid, oc, out)
                with m.If(out_valid):
                    m.d.sync += oc.eq(oc + 1)
            elif d.unit_kind == "row":  # changed rows only: the others' increments are 0
                writer(
                    d.output,
                    (valid1 & active) | out_valid,
                    Mux(out_valid, hw.out_addr, e1),
                    Mux(out_valid, out, 0),
                )
            else:  # every window
                writer(d.output, out_valid, hw.out_addr, out)
            yield
            if d.unit_kind != "row":
                active = Signal(name=f"u{i}_active")
            with m.State(go):
                m.d.comb += [streaming.eq(1), active.eq(1)]
                m.d.sync += e.eq(e + 1)
                with m.If(e == n - 1):
                    m.d.sync += [e.eq(0), drain.eq(d.drain)]
                    m.next = tail
            with m.State(tail):
                m.d.comb += active.eq(1)
                if d.kind == "stream":
                    m.d.sync += drain.eq(drain - 1)
                    with m.If(drain == 1):
                        m.d.sync += oc.eq(0)
                        m.next = nxt
                else:  # the last element's X write lands
                    m.next = sweep
            if d.kind == "row":
                with m.State(sweep):
                    m.d.comb += [hw.sweep.eq(1), hw.sweep_first.eq(first), active.eq(1)]
                    m.next = wait
                with m.State(wait):
                    m.d.comb += active.eq(1)
                    with m.If(~hw.busy):
                        m.next = nxt
            return
        # scan drivers: dense on tokens and SESA
        sides = d.inputs if d.unit_kind == "sesa" else d.inputs[:1]
        value = [reader(x, e) for x in sides]
        cur = value[0] if len(value) == 1 else Mux(phase_b, value[1], value[0])
        tab = d.event_table  # per element of each side: (nbase/p_base, wbase/o_base)
        roms = []
        for side, rows in enumerate(tab):
            rom = Memory(
                shape=range(max(int(rows.max()) + 1, 2)), depth=len(rows), init=rows.tolist()
            )
            m.submodules[f"ev_{i}_{side}"] = rom
            rd = rom.read_port(domain="comb")
            m.d.comb += rd.addr.eq(ev)
            roms.append(rd)
        n_side = d.side_elements
        scan, bits = state(i, "SCAN"), state(i, "BIT")
        writer(d.output, hw.spike_valid, oc, hw.spike)
        with m.If(hw.spike_valid):
            m.d.sync += oc.eq(oc + 1)
        yield
        with m.State(go):
            m.d.sync += [phase_b.eq(0), e.eq(0), have.eq(0)]
            m.next = scan
        with m.State(scan):  # element e's read issues, e - 1's answers (``have``)
            if len(n_side) > 1:
                end = e == Mux(phase_b, n_side[1], n_side[0])
            else:
                end = e == n_side[0]
            with m.If(have & (cur != 0)):
                m.d.sync += [
                    mag.eq(abs(cur)),
                    neg.eq(cur < 0),
                    bit.eq(0),
                    ev.eq(e - 1),
                    have.eq(0),
                ]
                m.next = bits
            with m.Elif(end):
                m.d.sync += [e.eq(0), have.eq(0)]
                if len(n_side) > 1:
                    m.d.sync += phase_b.eq(1)
                    with m.If(phase_b):
                        m.next = sweep
                else:
                    m.next = sweep
            with m.Else():
                m.d.sync += [e.eq(e + 1), have.eq(1)]
        with m.State(bits):  # one bit of |increment| a cycle, an event on each set one
            with m.If(mag == 0):
                m.next = scan
            with m.Else():
                m.d.sync += [mag.eq(mag >> 1), bit.eq(bit + 1)]
                with m.If(mag[0]):
                    if d.unit_kind == "sesa":
                        m.d.comb += [
                            hw.ev_valid.eq(1),
                            hw.ev_b.eq(phase_b),
                            hw.ev_neg.eq(neg),
                            hw.ev_own.eq(ev),
                            hw.ev_p_base.eq(Mux(phase_b, roms[2].data, roms[0].data)),
                            hw.ev_o_base.eq(Mux(phase_b, roms[3].data, roms[1].data)),
                            hw.ev_shift.eq(bit),
                        ]
                    else:
                        m.d.comb += [
                            hw.row.eq(1),
                            hw.nbase.eq(roms[0].data),
                            hw.wbase.eq(roms[1].data),
                            hw.neg.eq(neg),
                            hw.shift.eq(bit),
                        ]
                    m.next = wait
        with m.State(wait):
            with m.If(~hw.busy):
                m.next = bits
        with m.State(sweep):
            m.d.comb += hw.sweep.eq(1)
            m.next = tail
        with m.State(tail):
            with m.If(~hw.busy & (oc == n // d.lanes)):
                m.d.sync += oc.eq(0)
                m.next = nxt
