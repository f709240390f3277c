"""The one FPGA table (``boards.families``) and the one reading of nextpnr's resources."""

import pytest

from boards import BOARDS
from boards.families import BOARD_FACTS, FAMILIES, Resources
from flows.build import parse_nextpnr_report

# Captured from nextpnr-ecp5 --report: the digits MLP's gemm overlay on the ULX3S 85F
# (`nnloom generate --board ulx3s-85f`, `nnloom build --board ulx3s-85f`); the board top's
# UART domain added as a second clock.
ECP5_REPORT = {
    "utilization": {
        "DCCA": {"available": 56, "used": 1},
        "DP16KD": {"available": 208, "used": 4},
        "EHXPLLL": {"available": 4, "used": 1},
        "MULT18X18D": {"available": 156, "used": 18},
        "TRELLIS_COMB": {"available": 83640, "used": 3614},
        "TRELLIS_FF": {"available": 83640, "used": 2193},
        "TRELLIS_IO": {"available": 365, "used": 5},
        "TRELLIS_RAMW": {"available": 10455, "used": 36},
    },
    "fmax": {
        "$glbnet$clocking.clk": {"achieved": 116.41443634033203, "constraint": 50},
        "$glbnet$uart_clk": {"achieved": 180.2, "constraint": 50.0},
    },
}
# In the shape of nextpnr-ice40's --report (an overlay on the UP5K).
ICE40_REPORT = {
    "utilization": {
        "ICESTORM_LC": {"available": 5280, "used": 3090},
        "ICESTORM_RAM": {"available": 30, "used": 12},
        "ICESTORM_SPRAM": {"available": 4, "used": 0},
        "ICESTORM_DSP": {"available": 8, "used": 8},
        "SB_IO": {"available": 96, "used": 3},
        "SB_GB": {"available": 8, "used": 3},
    },
    "fmax": {"clk": {"achieved": 34.5, "constraint": 24.0}},
}


def test_ecp5_report_sorts_into_kinds():
    util, fmax = parse_nextpnr_report(ECP5_REPORT)
    res = Resources.from_utilisation(util)
    assert (res.lut, res.ff, res.ram, res.spram, res.dsp, res.io) == (3614, 2193, 4, 0, 18, 5)
    assert res.of("lut") == "3614/83640" and res.of("spram") == "—"
    assert res.ram_by_name == {"DP16KD": 4}
    assert round(fmax, 2) == 116.41  # the slowest clock domain


def test_ice40_report_sorts_into_kinds():
    util, fmax = parse_nextpnr_report(ICE40_REPORT)
    res = Resources.from_utilisation(util)
    assert res.as_dict() == {"lut": 3090, "ff": 0, "ram": 12, "spram": 0, "dsp": 8, "io": 3}
    assert res.of("dsp") == "8/8" and res.of("ff") == "—"  # iCE40 LCs hold the FFs
    assert res.ram_by_name == {"ICESTORM_RAM": 12, "ICESTORM_SPRAM": 0}
    assert fmax == 34.5


def test_the_log_gives_fmax_when_the_report_has_none():
    util, fmax = parse_nextpnr_report(
        {"utilization": {}}, "Info: Max frequency for clock 'clk': 41.07 MHz (PASS)"
    )
    assert util == {} and fmax == 41.07


def test_every_board_comes_from_the_one_table():
    assert set(BOARDS) == set(BOARD_FACTS)
    for name, spec in BOARDS.items():
        facts = BOARD_FACTS[name]
        assert (spec.family, spec.device, spec.clock_hz, spec.target_hz) == (
            facts.family,
            facts.device,
            facts.clock_hz,
            facts.target_hz,
        )
        assert spec.env[facts.fpga.nextpnr_variable] == facts.fpga.nextpnr
        # the capacity speaks nextpnr's names, which Resources knows
        fam = FAMILIES[facts.family]
        known = {*fam.logic, *fam.ff, *fam.ram, *fam.dsp}
        assert set(facts.capacity) <= known, name


@pytest.mark.parametrize(
    "board, mhz",
    [("icebreaker", 24.0), ("ulx3s-85f", 50.0), ("orangecrab-25f", 64.0), ("tang-nano-9k", 54.0)],
)
def test_the_gemm_overlay_clocks_at_the_boards_default(board, mhz):
    """The overlay's table reads the board's clock (the ULX3S's PLL makes 50 MHz)."""
    from rtl_gen.gemm.config import BOARDS as GEMM
    from rtl_gen.gemm.config import NO_CONFIG, board_configs

    if board in NO_CONFIG:
        from boards import BoardError

        with pytest.raises(BoardError, match=f"no configuration for board '{board}'"):
            board_configs(board)
        return
    assert GEMM[board]["clock_mhz"] == mhz == BOARD_FACTS[board].target_mhz
    assert GEMM[board]["family"] == BOARD_FACTS[board].family
