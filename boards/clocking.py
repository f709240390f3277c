"""The engine's clock on a board: a PLL from the board's oscillator to a target frequency.

``plan_clock(family, f_in=..., f_target=...)`` searches the divider settings of the family's
PLL in Python and returns a frozen settings object whose ``output_hz`` is the vendor formula
applied to them (the achieved frequency, which the UART divisor and the timing constraint
use). ``settings.create()`` gives ``PllClock``, the component that instantiates the primitive,
drives the ``sync`` domain from its output, constrains that clock for nextpnr and holds
``sync`` in reset until the PLL has locked.

Ranges and formulas (the frequencies are in MHz in the vendors' documents):

- iCE40 ``SB_PLL40_PAD``, simple feedback (Lattice TN1251, as icestorm's ``icepll``):
  ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)``; PFD 10-133, VCO 533-1066,
  output 16-275.
- ECP5 ``EHXPLLL``, feedback from CLKOP (Lattice TN1263, as prjtrellis' ``ecppll``):
  ``f_out = f_in * CLKFB_DIV / CLKI_DIV``, ``f_vco = f_out * CLKOP_DIV``; PFD 3.125-400,
  VCO 400-800, output 10-400.
- Gowin ``rPLL`` (Gowin UG286): ``f_out = f_in * (FBDIV_SEL + 1) / (IDIV_SEL + 1)``,
  ``f_vco = f_out * ODIV_SEL``; PFD 3-400, VCO 400-1200, output 3.125-600.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

from amaranth import (
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Instance,
    Module,
    Signal,
    Value,
)
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth.lib.wiring import In, Out

from frontends.errors import NnloomError

__all__ = [
    "ClockError",
    "Ice40Pll",
    "Ecp5Pll",
    "GowinPll",
    "PllClock",
    "PllSettings",
    "LockHold",
    "plan_clock",
    "TOLERANCE",
    "HOLD_AFTER_LOCK_S",
]

TOLERANCE = 0.01  # the achieved frequency may differ from the target by 1 %
HOLD_AFTER_LOCK_S = 15e-6  # iCE40 block RAMs read zeroes for ~3 us after configuration


class ClockError(NnloomError, ValueError):
    """A clock target no PLL setting reaches."""


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:g} MHz"


@dataclass(frozen=True)
class Ice40Pll:
    """``SB_PLL40_PAD`` settings; the pad is the board's clock pin."""

    f_in: float
    divr: int
    divf: int
    divq: int

    PRIMITIVE = "SB_PLL40_PAD"
    PFD = (10e6, 133e6)
    VCO = (533e6, 1066e6)
    OUT = (16e6, 275e6)

    @property
    def pfd_hz(self) -> float:
        return self.f_in / (self.divr + 1)

    @property
    def vco_hz(self) -> float:
        return self.pfd_hz * (self.divf + 1)

    @property
    def output_hz(self) -> float:
        return self.vco_hz / 2**self.divq

    @property
    def filter_range(self) -> int:
        """The loop filter setting for the PFD frequency (TN1251, as ``icepll``)."""
        return 1 + sum(self.pfd_hz >= f for f in (17e6, 26e6, 44e6, 66e6, 101e6))

    @classmethod
    def candidates(cls, f_in: float) -> Iterator["Ice40Pll"]:
        for divr in range(16):
            for divq in range(1, 7):
                for divf in range(128):
                    yield cls(f_in, divr, divf, divq)

    def valid(self) -> bool:
        return (
            _within(self.pfd_hz, self.PFD)
            and _within(self.vco_hz, self.VCO)
            and _within(self.output_hz, self.OUT)
        )

    def parameters(self) -> dict:
        return {
            "FEEDBACK_PATH": "SIMPLE",
            "DIVR": self.divr,
            "DIVF": self.divf,
            "DIVQ": self.divq,
            "FILTER_RANGE": self.filter_range,
        }

    PAD_INPUT = True  # the PLL takes the pin itself: on the UP5K it shares the pin's site

    def primitive(self, clock_pin: io.SingleEndedPort, clk_out: Signal, lock: Signal) -> Instance:
        return Instance(
            self.PRIMITIVE,
            io_PACKAGEPIN=clock_pin.io,
            o_PLLOUTGLOBAL=clk_out,
            o_LOCK=lock,
            i_RESETB=Const(1),
            i_BYPASS=Const(0),
            **{f"p_{k}": v for k, v in self.parameters().items()},
        )

    def create(self) -> "PllClock":
        return PllClock(self)


@dataclass(frozen=True)
class Ecp5Pll:
    """``EHXPLLL`` settings, output CLKOP fed back to CLKFB."""

    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    PRIMITIVE = "EHXPLLL"
    PFD = (3.125e6, 400e6)
    VCO = (400e6, 800e6)
    OUT = (10e6, 400e6)

    @property
    def pfd_hz(self) -> float:
        return self.f_in / self.clki_div

    @property
    def output_hz(self) -> float:
        return self.pfd_hz * self.clkfb_div

    @property
    def vco_hz(self) -> float:
        return self.output_hz * self.clkop_div

    @classmethod
    def candidates(cls, f_in: float) -> Iterator["Ecp5Pll"]:
        for clki_div in range(1, 129):
            if not _within(f_in / clki_div, cls.PFD):
                continue
            for clkfb_div in range(1, 81):
                f_out = f_in / clki_div * clkfb_div
                if not _within(f_out, cls.OUT):
                    continue
                for clkop_div in range(1, 129):
                    if _within(f_out * clkop_div, cls.VCO):
                        yield cls(f_in, clki_div, clkfb_div, clkop_div)

    def valid(self) -> bool:
        return (
            _within(self.pfd_hz, self.PFD)
            and _within(self.vco_hz, self.VCO)
            and _within(self.output_hz, self.OUT)
        )

    def parameters(self) -> dict:
        return {
            "CLKI_DIV": self.clki_div,
            "CLKFB_DIV": self.clkfb_div,
            "CLKOP_DIV": self.clkop_div,
            "CLKOP_ENABLE": "ENABLED",
            # phase 0 of the output divider counts from CLKOP_DIV - 1 (as LiteX sets it)
            "CLKOP_CPHASE": self.clkop_div - 1,
            "CLKOP_FPHASE": 0,
            "FEEDBK_PATH": "CLKOP",
            "OUTDIVIDER_MUXA": "DIVA",
            "PLLRST_ENA": "DISABLED",
            "INTFB_WAKE": "DISABLED",
            "STDBY_ENABLE": "DISABLED",
            "DPHASE_SOURCE": "DISABLED",
        }

    PAD_INPUT = False

    def primitive(self, clk_in: Value, clk_out: Signal, lock: Signal) -> Instance:
        return Instance(
            self.PRIMITIVE,
            i_CLKI=clk_in,
            i_CLKFB=clk_out,
            o_CLKOP=clk_out,
            o_LOCK=lock,
            i_RST=Const(0),
            i_STDBY=Const(0),
            i_PHASESEL0=Const(0),
            i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1),
            i_PHASELOADREG=Const(1),
            i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            # the loop filter settings prjtrellis' ecppll gives every PLL
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.output_hz / 1e6:g}",
            **{f"p_{k}": v for k, v in self.parameters().items()},
        )

    def create(self) -> "PllClock":
        return PllClock(self)


@dataclass(frozen=True)
class GowinPll:
    """``rPLL`` settings for the GW1NR-9C (Tang Nano 9K)."""

    f_in: float
    idiv_sel: int
    fbdiv_sel: int
    odiv_sel: int

    PRIMITIVE = "rPLL"
    DEVICE = "GW1NR-9C"
    PFD = (3e6, 400e6)
    VCO = (400e6, 1200e6)
    OUT = (3.125e6, 600e6)
    ODIV = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)

    @property
    def pfd_hz(self) -> float:
        return self.f_in / (self.idiv_sel + 1)

    @property
    def output_hz(self) -> float:
        return self.pfd_hz * (self.fbdiv_sel + 1)

    @property
    def vco_hz(self) -> float:
        return self.output_hz * self.odiv_sel

    @classmethod
    def candidates(cls, f_in: float) -> Iterator["GowinPll"]:
        for idiv in range(64):
            if not _within(f_in / (idiv + 1), cls.PFD):
                continue
            for fbdiv in range(64):
                f_out = f_in / (idiv + 1) * (fbdiv + 1)
                if not _within(f_out, cls.OUT):
                    continue
                for odiv in cls.ODIV:
                    if _within(f_out * odiv, cls.VCO):
                        yield cls(f_in, idiv, fbdiv, odiv)

    def valid(self) -> bool:
        return (
            _within(self.pfd_hz, self.PFD)
            and _within(self.vco_hz, self.VCO)
            and _within(self.output_hz, self.OUT)
        )

    def parameters(self) -> dict:
        return {
            "FCLKIN": f"{self.f_in / 1e6:g}",
            "DEVICE": self.DEVICE,
            "IDIV_SEL": self.idiv_sel,
            "FBDIV_SEL": self.fbdiv_sel,
            "ODIV_SEL": self.odiv_sel,
            "DYN_IDIV_SEL": "false",
            "DYN_FBDIV_SEL": "false",
            "DYN_ODIV_SEL": "false",
            "DYN_SDIV_SEL": 2,
            "PSDA_SEL": "0000",
            "DUTYDA_SEL": "1000",
            "CLKOUT_BYPASS": "false",
            "CLKOUTP_BYPASS": "false",
            "CLKOUTD_BYPASS": "false",
            "CLKFB_SEL": "internal",
            "CLKOUTD_SRC": "CLKOUT",
            "CLKOUTD3_SRC": "CLKOUT",
        }

    PAD_INPUT = False

    def primitive(self, clk_in: Value, clk_out: Signal, lock: Signal) -> Instance:
        zero6 = Const(0, 6)
        return Instance(
            self.PRIMITIVE,
            i_CLKIN=clk_in,
            o_CLKOUT=clk_out,
            o_LOCK=lock,
            i_RESET=Const(0),
            i_RESET_P=Const(0),
            i_CLKFB=Const(0),
            i_FBDSEL=zero6,
            i_IDSEL=zero6,
            i_ODSEL=zero6,
            i_PSDA=Const(0, 4),
            i_DUTYDA=Const(0, 4),
            i_FDLY=Const(0, 4),
            **{f"p_{k}": v for k, v in self.parameters().items()},
        )

    def create(self) -> "PllClock":
        return PllClock(self)


PllSettings = Ice40Pll | Ecp5Pll | GowinPll
"""The settings of one PLL, as ``plan_clock`` returns them."""

_PLLS: dict[str, type[PllSettings]] = {"ice40": Ice40Pll, "ecp5": Ecp5Pll, "gowin": GowinPll}


def _within(value: float, limits: tuple[float, float]) -> bool:
    return limits[0] <= value <= limits[1]


def plan_clock(
    family: str, *, f_in: float, f_target: float, tolerance: float = TOLERANCE
) -> PllSettings:
    """The PLL settings of ``family`` whose output is nearest ``f_target`` (Hz) from an
    ``f_in`` oscillator; among equals, the one whose VCO is nearest the middle of its range.
    Raises ``ClockError`` when no setting comes within ``tolerance`` of the target, naming
    the nearest ones."""
    if family not in _PLLS:
        raise ClockError(f"no PLL is known for the FPGA family {family!r}")
    kind = _PLLS[family]
    if not (f_target > 0 and math.isfinite(f_target)):
        raise ClockError(
            f"Cannot make a {_mhz(f_target)} clock: the target must be a positive frequency"
        )
    valid = [c for c in kind.candidates(f_in) if c.valid()]
    middle = sum(kind.VCO) / 2
    best = min(valid, key=lambda c: (abs(c.output_hz - f_target), abs(c.vco_hz - middle)))
    error = abs(best.output_hz - f_target) / f_target
    if error > tolerance:
        low, high = kind.OUT
        below = max((c.output_hz for c in valid if c.output_hz <= f_target), default=None)
        above = min((c.output_hz for c in valid if c.output_hz >= f_target), default=None)
        nearest = " or ".join(_mhz(f) for f in (below, above) if f is not None)
        raise ClockError(
            f"Cannot make a {_mhz(f_target)} clock with the {kind.PRIMITIVE} "
            f"from {_mhz(f_in)}: its output ranges {_mhz(low)} to {_mhz(high)} "
            f"and the nearest settings give {nearest}; ask for one of those"
        )
    return best


class PllClock(wiring.Component):
    """Drives the ``sync`` clock domain (its parent defines it) from a PLL on the board's
    default clock pin.

    ``sync`` runs at ``settings.output_hz`` and is in reset until the PLL reports lock and
    then for ``HOLD_AFTER_LOCK_S`` more (the iCE40's block RAMs are not readable earlier); its
    reset is released synchronously. ``locked`` is high once the reset is released. The PLL
    output is constrained to ``output_hz`` for nextpnr.
    """

    locked: Out(1)

    def __init__(self, settings: PllSettings):
        self.settings = settings
        super().__init__()

    def elaborate(self, platform):
        if platform is None:
            raise ValueError(
                "PllClock instantiates a vendor PLL and needs a platform; "
                "simulate the board top with a plain sync clock instead"
            )
        settings = self.settings
        m = Module()
        m.domains.por = por = ClockDomain("por", reset_less=True, local=True)
        clock_pin = platform.request(platform.default_clk, dir="-")
        lock = Signal()
        # A net of this module only, kept through synthesis, so that the constraint names a
        # net nextpnr finds (the domain's clock takes the name of some user of it).
        pll_out = Signal(attrs={"keep": "true"})
        if settings.PAD_INPUT:
            m.submodules.pll = settings.primitive(clock_pin, pll_out, lock)
        else:
            m.submodules.clk_buffer = buffer = io.Buffer("i", clock_pin)
            m.submodules.pll = settings.primitive(buffer.i, pll_out, lock)
        platform.add_clock_constraint(pll_out, settings.output_hz)
        m.d.comb += [ClockSignal("sync").eq(pll_out), por.clk.eq(pll_out)]

        hold = max(1, math.ceil(HOLD_AFTER_LOCK_S * settings.output_hz))
        m.submodules.lock_hold = lock_hold = DomainRenamer("por")(LockHold(cycles=hold))
        m.d.comb += [lock_hold.lock.eq(lock), self.locked.eq(lock_hold.ready)]
        m.submodules.reset_sync = ResetSynchronizer(~lock_hold.ready, domain="sync")
        return m


class LockHold(wiring.Component):
    """``ready`` rises at the ``cycles + 3``-th clock edge that sees ``lock`` high (two
    synchroniser flops, ``cycles`` counted, one register) and falls at the third edge that
    sees it low. Its ``sync`` domain needs no reset: it runs from the PLL's output, before
    there is any reset."""

    lock: In(1)
    ready: Out(1)

    def __init__(self, *, cycles: int):
        if cycles < 1:
            raise ValueError(f"LockHold cycles must be at least 1, not {cycles!r}")
        self.cycles = cycles
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        lock = Signal()
        timer = Signal(range(self.cycles + 1))
        m.submodules.lock_sync = FFSynchronizer(self.lock, lock)
        with m.If(~lock):
            m.d.sync += [timer.eq(0), self.ready.eq(0)]
        with m.Elif(timer == self.cycles):
            m.d.sync += self.ready.eq(1)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        return m
