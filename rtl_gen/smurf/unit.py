"""``SmurfUnit``: the hardware of a ``SmurfPlan`` (see ``plan.py`` for what it computes).

Blocks: per input, ``draws`` leap-forward LFSRs and comparators (the stochastic number
generators) feeding the input's basis block (FSM counter or popcount); the index fields
concatenate into the address of one coefficient ROM per output; one gate LFSR shared by all
outputs; per output a comparator (the sampling gate), a registered gate bit and a ones
counter; and the start/done control.

Interface: ``i`` (stream of ``M`` input codes; a transfer starts a run, ``ready`` only when
idle), ``o`` (stream of ``K`` counts; ``valid`` when the run is done, held until taken),
``busy``. Latency: ``plan.latency_cycles`` = warmup + L + 1 rising edges after the input
transfer up to the one after which ``o.valid`` is high. One evaluation at a time.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .basis import basis_block
from .lfsr import LeapLfsr
from .plan import SmurfPlan

__all__ = ["SmurfUnit"]


class SmurfUnit(wiring.Component):
    def __init__(self, plan: SmurfPlan):
        self.plan = plan
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(plan.input_bits), plan.m))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(plan.count_bits),
                                                       len(plan.outputs)))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan

        load = Signal()       # the input transfer: restart every source and counter
        run = Signal()        # one of the warmup + L clocks
        flush = Signal()      # the clock that counts the last registered gate bit
        done = Signal()
        t = Signal(range(plan.cycles + 1))
        x = Signal(data.ArrayLayout(unsigned(plan.input_bits), plan.m))

        m.d.comb += [self.i.ready.eq(~run & ~flush & ~done), load.eq(self.i.valid & self.i.ready),
                     self.o.valid.eq(done), self.busy.eq(run | flush | done)]

        fields = []
        for k, (basis, lfsr_specs) in enumerate(zip(plan.bases, plan.lfsrs)):
            block = basis_block(basis)
            m.submodules[f"basis{k}"] = block
            bits = []
            for d, spec in enumerate(lfsr_specs):
                lfsr = LeapLfsr(spec)
                m.submodules[f"sng{k}_{d}"] = lfsr
                m.d.comb += [lfsr.load.eq(load), lfsr.advance.eq(run)]
                bits.append(lfsr.state[:plan.input_bits] < x[k])
            m.d.comb += [block.load.eq(load), block.advance.eq(run), block.bits.eq(Cat(*bits))]
            fields.append(block.index)
        address = Cat(*fields)

        gate_value = None
        if not plan.deterministic_gate:
            gate = LeapLfsr(plan.lfsrs[-1][0])
            m.submodules.gate_rng = gate
            m.d.comb += [gate.load.eq(load), gate.advance.eq(run)]
            gate_value = gate.state[:plan.coef_bits]

        counting = Signal()   # the registered gate bits belong to a counted clock
        for k in range(len(plan.outputs)):
            rom = Memory(shape=unsigned(plan.coef_bits + 1), depth=1 << plan.address_bits,
                         init=plan.rom(k))
            m.submodules[f"coef{k}"] = rom
            port = rom.read_port(domain="comb")
            m.d.comb += port.addr.eq(address)
            y = Signal(name=f"y{k}")
            ones = Signal(plan.count_bits, name=f"ones{k}")
            if gate_value is None:
                m.d.sync += y.eq(port.data != 0)
            else:
                m.d.sync += y.eq(gate_value < port.data)
            with m.If(load):
                m.d.sync += ones.eq(0)
            with m.Elif(counting & y):
                m.d.sync += ones.eq(ones + 1)
            m.d.comb += self.o.payload[k].eq(ones)

        with m.If(load):
            m.d.sync += [x.eq(self.i.payload), t.eq(0), run.eq(1), counting.eq(0)]
        with m.Elif(run):
            m.d.sync += [t.eq(t + 1), counting.eq(t >= plan.warmup)]
            with m.If(t == plan.cycles - 1):
                m.d.sync += [run.eq(0), flush.eq(1)]
        with m.Elif(flush):
            m.d.sync += [flush.eq(0), done.eq(1), counting.eq(0)]
        with m.Elif(done & self.o.ready):
            m.d.sync += done.eq(0)
        return m
