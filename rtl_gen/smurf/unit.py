"""``SmurfUnit``: the hardware of a ``SmurfPlan`` (see ``plan.py`` for what it computes).

Blocks: per input, leap-forward LFSRs and a comparator per draw (the stochastic number
generators, ``plan.draw_map``) feeding the input's basis block (FSM counter or popcount);
the index fields concatenate into the address of one coefficient ROM per output; one gate
LFSR shared by all outputs; per output a comparator (the sampling gate), a registered gate bit and
a ones
counter; and the start/done control.

Interface: ``i`` (stream of ``M`` input codes; a transfer starts a run, ``ready`` only when
idle), ``o`` (stream of ``K`` counts; ``valid`` when the run is done, held until taken),
``busy``. Latency: ``plan.latency_cycles`` = warmup + L + 1 rising edges after the input
transfer up to the one after which ``o.valid`` is high. One evaluation at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .basis import basis_block
from .lfsr import LeapLfsr, Lfsr
from .plan import SmurfPlan

__all__ = ["SmurfUnit", "Sng", "SamplingGate", "OnesCounter", "PARTS", "RANDOM_PARTS", "part_of"]

# The parts of the area breakdown, by submodule name (see ``SmurfUnit``).
PARTS = ("input SNGs", "basis", "gate LFSR", "ROM + gate", "output counters", "control")
# The random sources, which stochastic-computing papers usually count as shared by many units.
RANDOM_PARTS = ("input SNGs", "gate LFSR")


def part_of(path: str) -> str:
    """The part a submodule path (``"sng0_1.lfsr"``, ``"gate0.rom"``, ``""`` for the unit's
    own logic) belongs to."""
    first = path.split(".")[0]
    for prefix, part in (
        ("sng", "input SNGs"),
        ("basis", "basis"),
        ("gate_rng", "gate LFSR"),
        ("gate", "ROM + gate"),
        ("ones", "output counters"),
    ):
        if first.startswith(prefix):
            return part
    return "control"


class Sng(wiring.Component):
    """Stochastic number generators sharing one ``LeapLfsr``: for each bit offset ``o``, the
    comparator ``bits[j] = R_j < code`` with ``R_j = (state >> o_j) & (2^bits - 1)``. The bits
    belong to the current clock; ``state`` is the LFSR's (the unit's clock of the run, see
    ``SmurfUnit``)."""

    def __init__(self, spec: Lfsr, bits: int, offsets: Sequence[int] = (0,)):
        self.spec, self.width, self.offsets = spec, bits, tuple(offsets)
        super().__init__(
            {
                "load": In(1),
                "advance": In(1),
                "code": In(bits),
                "bits": Out(len(self.offsets)),
                "state": Out(spec.width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.lfsr = lfsr = LeapLfsr(self.spec)
        m.d.comb += [
            lfsr.load.eq(self.load),
            lfsr.advance.eq(self.advance),
            self.state.eq(lfsr.state),
        ]
        for j, o in enumerate(self.offsets):
            m.d.comb += self.bits[j].eq(lfsr.state[o : o + self.width] < self.code)
        return m


class SamplingGate(wiring.Component):
    """One output's coefficient ROM and comparator: ``y`` (registered) ``= R_g < W[address]``,
    or ``W[address] != 0`` when every threshold is 0 or ``2^Bw`` (no random source)."""

    def __init__(self, init: list[int], *, address_bits: int, coef_bits: int, deterministic: bool):
        self.init, self.coef_bits, self.deterministic = init, coef_bits, deterministic
        super().__init__({"address": In(address_bits), "random": In(coef_bits), "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rom = Memory(shape=unsigned(self.coef_bits + 1), depth=len(self.init), init=self.init)
        m.submodules.rom = rom
        port = rom.read_port(domain="comb")
        m.d.comb += port.addr.eq(self.address)
        if self.deterministic:
            m.d.sync += self.y.eq(port.data != 0)
        else:
            m.d.sync += self.y.eq(self.random < port.data)
        return m


class OnesCounter(wiring.Component):
    """The output counter: cleared by ``load``, counts the clocks with ``count_en & y``."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"load": In(1), "count_en": In(1), "y": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(self.width, reset_less=True)  # cleared by ``load`` before every run
        with m.If(self.load):
            m.d.sync += count.eq(0)
        with m.Elif(self.count_en & self.y):
            m.d.sync += count.eq(count + 1)
        m.d.comb += self.count.eq(count)
        return m


class SmurfUnit(wiring.Component):
    """The unit of ``plan``; submodules by part (``sng*``, ``basis*``, ``gate_rng``,
    ``gate*``, ``ones*``; control is the unit's own logic), which the area breakdown of
    ``nnloom bench smurf`` reads."""

    def __init__(self, plan: SmurfPlan):
        self.plan = plan
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(unsigned(plan.input_bits), plan.m))),
                "o": Out(
                    stream.Signature(data.ArrayLayout(unsigned(plan.count_bits), len(plan.outputs)))
                ),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self.plan

        load = Signal()  # the input transfer: restart every source and counter
        run = Signal()  # one of the warmup + L clocks
        flush = Signal()  # the clock that counts the last registered gate bit
        done = Signal()
        x = Signal(data.ArrayLayout(unsigned(plan.input_bits), plan.m), reset_less=True)

        m.d.comb += [
            self.i.ready.eq(~run & ~flush & ~done),
            load.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(done),
            self.busy.eq(run | flush | done),
        ]

        fields = []
        for k, (basis, lfsr_specs) in enumerate(zip(plan.bases, plan.lfsrs)):
            block = basis_block(basis)
            m.submodules[f"basis{k}"] = block
            bits = [None] * basis.draws
            for j, spec in enumerate(lfsr_specs):
                draws = [d for d, (src, _) in enumerate(plan.draw_map[k]) if src == j]
                sng = Sng(spec, plan.input_bits, [plan.draw_map[k][d][1] for d in draws])
                m.submodules[f"sng{k}_{j}"] = sng
                m.d.comb += [sng.load.eq(load), sng.advance.eq(run), sng.code.eq(x[k])]
                for n, d in enumerate(draws):
                    bits[d] = sng.bits[n]
                if k == j == 0:
                    clock_lfsr = sng
            m.d.comb += [block.load.eq(load), block.advance.eq(run), block.bits.eq(Cat(*bits))]
            fields.append(block.index)
        address = Cat(*fields)

        gate_value = Const(0, plan.coef_bits)
        if not plan.deterministic_gate:
            gate = LeapLfsr(plan.lfsrs[-1][0])
            m.submodules.gate_rng = gate
            m.d.comb += [gate.load.eq(load), gate.advance.eq(run)]
            gate_value = gate.state[: plan.coef_bits]

        counting = Signal()  # the registered gate bits belong to a counted clock
        for k in range(len(plan.outputs)):
            gate_k = SamplingGate(
                plan.rom(k),
                address_bits=plan.address_bits,
                coef_bits=plan.coef_bits,
                deterministic=plan.deterministic_gate,
            )
            m.submodules[f"gate{k}"] = gate_k
            ones = OnesCounter(plan.count_bits)
            m.submodules[f"ones{k}"] = ones
            m.d.comb += [
                gate_k.address.eq(address),
                gate_k.random.eq(gate_value),
                ones.load.eq(load),
                ones.count_en.eq(counting),
                ones.y.eq(gate_k.y),
                self.o.payload[k].eq(ones.count),
            ]

        # Which clock of the run this is: the first input LFSR's state, unique while the run
        # is shorter than its period (no time counter); otherwise a counter.
        spec = plan.lfsrs[0][0]
        first, last = Signal(), Signal()  # clock ``warmup``; clock ``cycles - 1``
        if plan.cycles < (1 << spec.width) - 1:
            states = spec.states(plan.cycles)
            m.d.comb += [
                first.eq(clock_lfsr.state == int(states[plan.warmup])),
                last.eq(clock_lfsr.state == int(states[-1])),
            ]
        else:
            t = Signal(range(plan.cycles), reset_less=True)
            m.d.comb += [first.eq(t == plan.warmup), last.eq(t == plan.cycles - 1)]
            with m.If(load):
                m.d.sync += t.eq(0)
            with m.Elif(run):
                m.d.sync += t.eq(t + 1)

        with m.If(load):
            m.d.sync += [x.eq(self.i.payload), run.eq(1), counting.eq(0)]
        with m.Elif(run):
            m.d.sync += counting.eq(counting | first)
            with m.If(last):
                m.d.sync += [run.eq(0), flush.eq(1)]
        with m.Elif(flush):
            m.d.sync += [flush.eq(0), done.eq(1), counting.eq(0)]
        with m.Elif(done & self.o.ready):
            m.d.sync += done.eq(0)
        return m
