"""The boards nnloom builds for: platform glue on top of ``amaranth-boards``.

``BOARDS`` maps a board name to its ``BoardSpec``: the platform, the device, the oscillator and
the engine's default clock target (a PLL makes it, ``boards.clocking``), the resources nextpnr
reports (to turn utilisation into percentages), and the Yosys options and tool variables the
build uses. ``boards.top.BoardTop`` puts an engine on a board.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from amaranth.build import Platform

from frontends.errors import NnloomError

from .families import BOARD_FACTS, FAMILIES, Family

if TYPE_CHECKING:
    from .clocking import PllSettings

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
    family: str  # "ice40" or "ecp5"
    device: str
    clock_hz: float
    target_hz: float
    capacity: dict[str, int]
    synth_opts: str
    env: dict[str, str]

    @property
    def fpga(self) -> Family:
        """The family's tools, products and resource names (``boards.families.Family``)."""
        return FAMILIES[self.family]

    def clock(self, target_hz: float | None = None) -> PllSettings:
        """The PLL settings for ``target_hz`` (default ``self.target_hz``) on this board;
        ``boards.clocking.ClockError`` when the PLL cannot make it."""
        from .clocking import plan_clock

        return plan_clock(
            self.family,
            f_in=self.clock_hz,
            f_target=self.target_hz if target_hz is None else target_hz,
        )


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
    platform.add_resources(
        [
            UARTResource(
                0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")
            )
        ]
    )
    return platform


def _tang_nano_9k() -> Platform:
    from amaranth_boards.tang_nano_9k import TangNano9kPlatform

    return TangNano9kPlatform()


def _env(family: str, **extra: str) -> dict[str, str]:
    fam = FAMILIES[family]
    return {
        "YOSYS": fam.yosys,
        fam.nextpnr_variable: fam.nextpnr,
        fam.packer_variable: fam.packer,
        **extra,
    }


def _spec(name: str, platform: Callable[[], Platform], synth_opts: str, **env: str) -> BoardSpec:
    facts = BOARD_FACTS[name]
    return BoardSpec(
        name=name,
        platform=platform,
        family=facts.family,
        device=facts.device,
        clock_hz=facts.clock_hz,
        target_hz=facts.target_hz,
        capacity=dict(facts.capacity),
        synth_opts=synth_opts,
        env=_env(facts.family, **env),
    )


# Device, clocks and capacity come from ``boards.families.BOARD_FACTS``; the platform, the
# Yosys options and the tool variables of Amaranth's build script are here.
BOARDS: dict[str, BoardSpec] = {
    spec.name: spec
    for spec in (
        _spec("icebreaker", _icebreaker, "-dsp"),  # multipliers map to SB_MAC16
        # The ULX3S platforms list openFPGALoader as a required tool; only programming runs it.
        _spec("ulx3s-85f", _ulx3s_85f, "", OPENFPGALOADER="openFPGALoader"),
        # The platform's build script appends the DFU suffix with dfu-suffix (dfu-util's
        # package, not on PyPI); `nnloom program` adds it when it programs the board.
        _spec("orangecrab-25f", _orangecrab_25f, "", DFU_SUFFIX="true"),
        # nextpnr-gowin 0.7 (YoWASP) has no BELs for the block RAM cells (SPX9) Yosys maps
        # memories to on the GW1NR-9C, nor for its multipliers (MULT18X18): memories go to LUT
        # RAM and flip-flops, multipliers to LUTs. Optional tools (pip install 'nnloom[gowin]').
        _spec("tang-nano-9k", _tang_nano_9k, "-nobram -nodsp"),
    )
}


def get_board(name: str) -> BoardSpec:
    """The ``BoardSpec`` called ``name``; ``BoardError`` names the known boards otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(
            f"Unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}"
        ) from None
