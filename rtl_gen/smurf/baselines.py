"""Binary baselines for SMURF: a fixed-point polynomial (Horner) unit and a full look-up table.

Both take the same ``M`` input codes as a ``SmurfPlan`` (``B`` bits each) on a stream ``i`` and
give one output word on ``o``; both have an integer ``reference()`` the RTL equals bit for bit.

- ``HornerPlan``: ``p(u) = sum a_i u^i`` (1D) or ``sum a_ij u^i w^j`` (2D, ``i, j <= d``) with
  ``u = (c - 2^(B-1)) / 2^B``. The coefficients are a least-squares fit on the input codes,
  not a literal Taylor expansion (tanh(4x)'s Taylor series diverges for |x| > pi/8); the
  hardware is the Horner recurrence the Taylor baselines of the literature use:
  ``acc = ((acc * v) >> B) + A_i`` with ``A = round(a * 2^F)``, one multiplier, one step a
  clock. Latency: one rising edge per program step after the input transfer edge. Register width:
  derived from
  the largest value any step takes over every input code.
- ``LutPlan``: a ROM of ``2^(M*B)`` words of ``out_bits``, read synchronously at the transfer
  edge (one clock; no further edges), one input per clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from numpy.typing import ArrayLike

__all__ = ["HornerPlan", "HornerUnit", "LutPlan", "LutUnit", "fit_horner", "fit_lut"]

# Horner program steps: (op, a, b): LOAD coef a into inner; MAC inner = inner*v[b] + coef a;
# OUTER_COPY outer = inner; OUTER_MAC outer = outer*v[b] + inner.
LOAD, MAC, OUTER_COPY, OUTER_MAC = range(4)


@dataclass(frozen=True)
class HornerPlan:
    m: int  # 1 or 2 inputs
    input_bits: int
    degree: int
    frac_bits: int
    coefs: tuple[int, ...]  # A[i] (1D) or A[i * (d+1) + j] (2D)
    lo: float
    hi: float

    @property
    def program(self) -> list[tuple[int, int, int]]:
        d = self.degree
        if self.m == 1:
            return [(LOAD, d, 0)] + [(MAC, i, 0) for i in range(d - 1, -1, -1)]
        prog = []
        for i in range(d, -1, -1):
            prog.append((LOAD, i * (d + 1) + d, 0))
            prog += [(MAC, i * (d + 1) + j, 1) for j in range(d - 1, -1, -1)]
            prog.append((OUTER_COPY, 0, 0) if i == d else (OUTER_MAC, 0, 0))
        return prog

    @property
    def result_reg(self) -> str:
        return "inner" if self.m == 1 else "outer"

    def _run(self, codes: np.ndarray):
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        v = codes - (1 << (self.input_bits - 1))
        a = np.array(self.coefs, dtype=np.int64)
        inner = np.zeros(len(codes), dtype=np.int64)
        outer = np.zeros(len(codes), dtype=np.int64)
        peak = 0
        for op, k, var in self.program:
            if op == LOAD:
                inner = np.full(len(codes), a[k])
            elif op == MAC:
                inner = ((inner * v[:, var]) >> self.input_bits) + a[k]
            elif op == OUTER_COPY:
                outer = inner.copy()
            else:
                outer = ((outer * v[:, 0]) >> self.input_bits) + inner
            peak = max(peak, int(np.abs(inner).max()), int(np.abs(outer).max()))
        return (inner if self.m == 1 else outer), peak

    def reference(self, codes: np.ndarray) -> np.ndarray:
        """The integer result ``(n,)``: real output ``lo + (hi - lo) * r / 2^F``."""
        return self._run(codes)[0]

    @property
    def width(self) -> int:
        """Signed register width: every value of every step over all input codes fits."""
        axis = np.arange(1 << self.input_bits)
        grid = np.stack([a.ravel() for a in np.meshgrid(*([axis] * self.m), indexing="ij")], 1)
        peak = max(self._run(grid)[1], max(abs(c) for c in self.coefs))
        return peak.bit_length() + 1

    @property
    def latency_cycles(self) -> int:
        return len(self.program)

    def decode(self, r: np.ndarray) -> np.ndarray:
        return self.lo + (self.hi - self.lo) * np.asarray(r) / (1 << self.frac_bits)

    def create(self) -> HornerUnit:
        return HornerUnit(self)


class HornerUnit(wiring.Component):
    """Sequential Horner evaluation of ``HornerPlan`` (one multiply-add per clock)."""

    def __init__(self, plan: HornerPlan):
        self.plan = plan
        self._w = plan.width
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(unsigned(plan.input_bits), plan.m))),
                "o": Out(stream.Signature(signed(self._w))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan, w, b = self.plan, self._w, self.plan.input_bits
        prog = plan.program
        m.submodules.coefs = coefs = Memory(
            shape=signed(w), depth=len(plan.coefs), init=list(plan.coefs)
        )
        m.submodules.ops = ops = Memory(
            shape=unsigned(8 + 2 + 1),
            depth=len(prog),
            init=[op | var << 2 | k << 3 for op, k, var in prog],
        )
        step = Signal(range(len(prog) + 1))
        op_port = ops.read_port(domain="comb")
        coef_port = coefs.read_port(domain="comb")
        op, var, k = op_port.data[:2], op_port.data[2], op_port.data[3:]
        m.d.comb += [op_port.addr.eq(step), coef_port.addr.eq(k)]
        v = Signal(data.ArrayLayout(signed(b), plan.m))
        inner, outer = Signal(signed(w)), Signal(signed(w))
        busy, done = Signal(), Signal()
        operand = Signal(signed(b))
        m.d.comb += operand.eq(v[var] if plan.m == 2 else v[0])
        src = Signal(signed(w))
        m.d.comb += src.eq(inner)
        with m.If(op == OUTER_MAC):
            m.d.comb += [src.eq(outer), operand.eq(v[0])]
        product = Signal(signed(w + b))
        m.d.comb += product.eq(src * operand)
        shifted = product >> b
        m.d.comb += [
            self.i.ready.eq(~busy & ~done),
            self.o.valid.eq(done),
            self.o.payload.eq(inner if plan.m == 1 else outer),
        ]
        with m.If(self.i.valid & self.i.ready):
            for j in range(plan.m):
                m.d.sync += v[j].eq(self.i.payload[j] - (1 << (b - 1)))
            m.d.sync += [busy.eq(1), step.eq(0)]
        with m.Elif(busy):
            with m.Switch(op):
                with m.Case(LOAD):
                    m.d.sync += inner.eq(coef_port.data)
                with m.Case(MAC):
                    m.d.sync += inner.eq(shifted + coef_port.data)
                with m.Case(OUTER_COPY):
                    m.d.sync += outer.eq(inner)
                with m.Case(OUTER_MAC):
                    m.d.sync += outer.eq(shifted + inner)
            m.d.sync += step.eq(step + 1)
            with m.If(step == len(prog) - 1):
                m.d.sync += [busy.eq(0), done.eq(1)]
        with m.Elif(done & self.o.ready):
            m.d.sync += done.eq(0)
        return m


def _codes_grid(m: int, bits: int, per_axis: int | None = None) -> np.ndarray:
    full = 1 << bits
    axis = np.unique(np.rint(np.linspace(0, full - 1, per_axis or full)).astype(np.int64))
    return np.stack([a.ravel() for a in np.meshgrid(*([axis] * m), indexing="ij")], 1)


def fit_horner(
    g: Callable[[np.ndarray], np.ndarray],
    m: int,
    input_bits: int,
    degree: int,
    frac_bits: int,
    lo: float,
    hi: float,
) -> HornerPlan:
    """Least-squares polynomial of ``g(codes) -> [0, 1]`` (normalised target) on the codes."""
    codes = _codes_grid(m, input_bits, None if m == 1 else 65)
    u = (codes - (1 << (input_bits - 1))) / (1 << input_bits)
    cols = (
        [u[:, 0] ** i for i in range(degree + 1)]
        if m == 1
        else [u[:, 0] ** i * u[:, 1] ** j for i in range(degree + 1) for j in range(degree + 1)]
    )
    a = np.linalg.lstsq(np.stack(cols, 1), g(codes), rcond=None)[0]
    coefs = tuple(int(v) for v in np.rint(a * (1 << frac_bits)))
    return HornerPlan(m, input_bits, degree, frac_bits, coefs, lo, hi)


@dataclass(frozen=True)
class LutPlan:
    m: int
    input_bits: int
    out_bits: int
    table: tuple[int, ...]  # address = codes concatenated, input 0 lowest
    lo: float
    hi: float

    def reference(self, codes: np.ndarray) -> np.ndarray:
        codes = np.atleast_2d(codes)
        addr = sum(codes[:, j] << (j * self.input_bits) for j in range(self.m))
        return np.array(self.table, dtype=np.int64)[addr]

    def decode(self, r: ArrayLike) -> np.ndarray:
        return self.lo + (self.hi - self.lo) * np.asarray(r) / ((1 << self.out_bits) - 1)

    @property
    def rom_bits(self) -> int:
        return len(self.table) * self.out_bits

    latency_cycles = 0  # the output is valid right after the transfer edge

    def create(self) -> LutUnit:
        return LutUnit(self)


class LutUnit(wiring.Component):
    """Full look-up table: one synchronous ROM read per input (latency 1, one per clock)."""

    def __init__(self, plan: LutPlan):
        self.plan = plan
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(unsigned(plan.input_bits), plan.m))),
                "o": Out(stream.Signature(unsigned(plan.out_bits))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.rom = rom = Memory(
            shape=unsigned(plan.out_bits), depth=len(plan.table), init=list(plan.table)
        )
        port = rom.read_port()
        valid = Signal()
        m.d.comb += [
            self.i.ready.eq(~valid | self.o.ready),
            port.addr.eq(self.i.payload.as_value()),
            port.en.eq(self.i.ready),
            self.o.payload.eq(port.data),
            self.o.valid.eq(valid),
        ]
        with m.If(self.i.ready):
            m.d.sync += valid.eq(self.i.valid)
        return m


def fit_lut(
    g: Callable[[np.ndarray], np.ndarray],
    m: int,
    input_bits: int,
    out_bits: int,
    lo: float,
    hi: float,
) -> LutPlan:
    """Round the normalised target ``g(codes)`` of every code to ``out_bits``."""
    codes = _codes_grid(m, input_bits)
    # Address order: input 0 in the low bits, so input 0 varies fastest.
    codes = codes[:, ::-1] if m > 1 else codes
    top = (1 << out_bits) - 1
    table = np.clip(np.rint(g(codes) * top), 0, top).astype(np.int64)
    return LutPlan(m, input_bits, out_bits, tuple(table.tolist()), lo, hi)
