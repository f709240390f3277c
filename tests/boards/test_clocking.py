"""``boards.clocking``: PLL settings against the vendors' formulas, impossible targets, the
lock-and-hold reset, and the PLL in every board top."""

import gc
import random
import subprocess

import pytest
from amaranth.sim import Simulator

from boards import BOARDS, get_board
from boards.clocking import ClockError, LockHold, PllClock, plan_clock
from boards.top import BoardTop

from .test_top import AddOne

# Written from the vendors' documents (TN1251, TN1263, UG286), not from boards.clocking:
# family -> (f_out(f_in, params), f_vco(f_in, params), f_pfd(f_in, params), ranges in MHz)


def _ice40(f, p):
    pfd = f / (p["DIVR"] + 1)
    vco = pfd * (p["DIVF"] + 1)
    return vco / 2 ** p["DIVQ"], vco, pfd


def _ecp5(f, p):
    pfd = f / p["CLKI_DIV"]
    out = pfd * p["CLKFB_DIV"]
    return out, out * p["CLKOP_DIV"], pfd


def _gowin(f, p):
    pfd = f / (p["IDIV_SEL"] + 1)
    out = pfd * (p["FBDIV_SEL"] + 1)
    return out, out * p["ODIV_SEL"], pfd


VENDOR = {  # formula, output range, VCO range, PFD range (MHz)
    "ice40": (_ice40, (16, 275), (533, 1066), (10, 133)),
    "ecp5": (_ecp5, (10, 400), (400, 800), (3.125, 400)),
    "gowin": (_gowin, (3.125, 600), (400, 1200), (3, 400)),
}


def check(settings, family, f_in, target):
    formula, out_range, vco_range, pfd_range = VENDOR[family]
    out, vco, pfd = formula(f_in, settings.parameters())
    assert out == pytest.approx(settings.output_hz, rel=1e-12)
    assert abs(out - target) <= 0.01 * target
    for value, (low, high) in ((out, out_range), (vco, vco_range), (pfd, pfd_range)):
        assert low * 1e6 <= value <= high * 1e6


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_default_clock(name):
    spec = get_board(name)
    settings = spec.clock()
    check(settings, spec.family, spec.clock_hz, spec.target_hz)
    assert settings.output_hz == spec.target_hz  # every default is made exactly


RANDOM_PARAMS = {  # a random setting, as the vendor's divider ranges allow
    "ice40": lambda r: {
        "DIVR": r.randrange(16),
        "DIVF": r.randrange(128),
        "DIVQ": r.randrange(1, 7),
    },
    "ecp5": lambda r: {
        "CLKI_DIV": r.randrange(1, 129),
        "CLKFB_DIV": r.randrange(1, 81),
        "CLKOP_DIV": r.randrange(1, 129),
    },
    "gowin": lambda r: {
        "IDIV_SEL": r.randrange(64),
        "FBDIV_SEL": r.randrange(64),
        "ODIV_SEL": r.choice((2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)),
    },
}


@pytest.mark.parametrize(
    "family,f_in", [("ice40", 12e6), ("ecp5", 25e6), ("ecp5", 48e6), ("gowin", 27e6)]
)
def test_every_reachable_frequency_is_found(family, f_in):
    formula, out_range, vco_range, pfd_range = VENDOR[family]
    rng, found = random.Random(family + str(f_in)), 0
    while found < 8:
        out, vco, pfd = formula(f_in, RANDOM_PARAMS[family](rng))
        if all(
            low * 1e6 <= v <= high * 1e6
            for v, (low, high) in ((out, out_range), (vco, vco_range), (pfd, pfd_range))
        ):
            settings = plan_clock(family, f_in=f_in, f_target=out)
            check(settings, family, f_in, out)
            assert settings.output_hz == pytest.approx(out, rel=1e-12)
            found += 1


def test_impossible_targets_are_refused():
    with pytest.raises(
        ClockError,
        match=r"^Cannot make a 300 MHz clock with the SB_PLL40_PAD "
        r"from 12 MHz: its output ranges 16 MHz to 275 MHz "
        r"and the nearest settings give 270 MHz; ask for one "
        r"of those$",
    ):
        plan_clock("ice40", f_in=12e6, f_target=300e6)
    with pytest.raises(
        ClockError,
        match=r"^Cannot make a 5 MHz clock with the EHXPLLL from "
        r"25 MHz: .* give 10 MHz;",
    ):
        plan_clock("ecp5", f_in=25e6, f_target=5e6)
    with pytest.raises(ClockError, match=r"^Cannot make a -1 MHz clock"):
        plan_clock("gowin", f_in=27e6, f_target=-1e6)


def test_lock_hold():
    dut = LockHold(cycles=5)
    seen = []

    async def bench(ctx):
        for cycle in range(30):
            ctx.set(dut.lock, 3 <= cycle < 20)
            await ctx.tick()
            seen.append(ctx.get(dut.ready))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # lock is high from edge 3 to edge 19: ready from the 8th edge that sees it (edge 10)
    # to the 3rd edge that sees it low (edge 22)
    assert seen.index(1) == 3 + (5 + 3) - 1
    assert seen[seen.index(1) :].index(0) + seen.index(1) == 20 + 3 - 1
    with pytest.raises(ValueError, match=r"^LockHold cycles must be at least 1, not 0$"):
        LockHold(cycles=0)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_uses_the_pll(name, monkeypatch):
    monkeypatch.setattr(subprocess, "run", None)  # no tool runs
    spec = get_board(name)
    clock = spec.clock(spec.target_hz * 0.75)
    platform = spec.platform()
    top = BoardTop(AddOne(), n_in=4, n_out=4, clock=clock)
    assert top.elaborate(platform).submodules.uart_rx.divisor == round(clock.output_hz / top.baud)
    del top
    gc.collect()  # what elaborate() made and nothing used warns now, under this test's filter
    plan = spec.platform().build(
        BoardTop(AddOne(), n_in=4, n_out=4, clock=clock),
        name="top",
        do_build=False,
        synth_opts=spec.synth_opts,
    )
    assert f"cell \\{clock.PRIMITIVE} \\pll" in plan.files["top.il"]
    mhz = clock.output_hz / 1e6
    if spec.family == "ice40":
        assert f"set_frequency clocking.pll_out {mhz}" in plan.files["top.pcf"]
    elif spec.family == "ecp5":
        assert f'FREQUENCY NET "clocking.pll_out" {clock.output_hz} HZ;' in plan.files["top.lpf"]


def test_pll_needs_a_platform():
    with pytest.raises(
        ValueError,
        match=r"^PllClock instantiates a vendor PLL and needs a "
        r"platform",
    ):
        Simulator(PllClock(get_board("icebreaker").clock()))
