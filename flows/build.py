"""Synthesis, place and route and packing of an artefact for a board, through YoWASP.

Amaranth's build system writes the scripts (``build/<board>/build_top.sh``, a person can
rerun it by hand); this module runs the script with the YoWASP tools in its environment,
parses nextpnr's report and fails with a clear message when a tool fails, the design does
not fit, or timing is missed at the engine's clock: the board's PLL output (``--clock``, by
default the board's ``target_hz``), which nextpnr is told about.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boards.families import BOARD_FACTS, FAMILIES, Resources
from frontends.errors import NnloomError
from rtl_gen.artefact import Artefact, atomic_write

from .engine_instance import EngineInstance
from .tools import tool_env, yowasp_mount

if TYPE_CHECKING:
    from boards import BoardSpec
    from boards.clocking import PllSettings

__all__ = ["BuildError", "BuildReport", "build", "parse_nextpnr_report"]

log = logging.getLogger(__name__)


class BuildError(NnloomError):
    """A build that failed; the message names the step (tool), command and log tail."""


@dataclass(frozen=True)
class BuildReport:
    """``clock_mhz`` is the engine clock the PLL achieves, ``clock_requested_mhz`` what was
    asked for, ``clock_source_mhz`` the board's oscillator; ``pll`` the primitive and its
    parameters."""

    board: str
    device: str
    clock_mhz: float
    fmax_mhz: float
    timing_met: bool
    utilisation: dict
    bitstream: Path
    seconds: float
    path: Path
    clock_requested_mhz: float = 0.0
    clock_source_mhz: float = 0.0
    pll: dict | None = None

    @property
    def resources(self) -> Resources:
        return Resources.from_utilisation(self.utilisation)

    def to_json(self) -> dict:
        return {
            "board": self.board,
            "device": self.device,
            "clock_mhz": self.clock_mhz,
            "clock_requested_mhz": self.clock_requested_mhz,
            "clock_source_mhz": self.clock_source_mhz,
            "pll": self.pll,
            "fmax_mhz": self.fmax_mhz,
            "timing_met": self.timing_met,
            "utilisation": self.utilisation,
            "bitstream": str(self.bitstream),
            "seconds": round(self.seconds, 1),
        }


def parse_nextpnr_report(report: dict, log_text: str = "") -> tuple[dict, float | None]:
    """Utilisation ``{resource: {used, available, percent}}`` and the Fmax (MHz) of the
    engine's clock, from nextpnr's ``--report`` JSON (falling back to its log)."""
    util = {}
    for name, entry in sorted(report.get("utilization", {}).items()):
        used, avail = int(entry["used"]), int(entry["available"])
        util[name] = {
            "used": used,
            "available": avail,
            "percent": round(100.0 * used / avail, 1) if avail else 0.0,
        }
    fmax = None
    for _clock, entry in report.get("fmax", {}).items():
        achieved = float(entry["achieved"])
        fmax = achieved if fmax is None else min(fmax, achieved)
    if fmax is None:
        found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+) MHz", log_text)
        if found:
            fmax = float(found[-1])
    return util, fmax


def _packer(fam) -> str:
    """The packer as its log and messages name it (icepack, ecppack, gowin_pack)."""
    return fam.packer.removeprefix("yowasp-")


def built_for(artefact: Artefact) -> tuple[str, str] | None:
    """``(board, family)`` or ``(None, family)`` an artefact's hardware was generated for,
    when its engine depends on the family (gemm's ``board_config``, lutnet's
    ``parameters.family``); None for an engine that is the same on every board."""
    manifest = artefact.manifest
    board = manifest.get("board_config")
    if board in BOARD_FACTS:
        return board, BOARD_FACTS[board].family
    family = (manifest.get("parameters") or {}).get("family")
    if family in FAMILIES:
        return None, family
    return None


def check_family(artefact: Artefact, spec: BoardSpec) -> None:
    """``BuildError`` when ``artefact`` was generated for another FPGA family than board
    ``spec``'s (its primitives and memories would not map)."""
    made = built_for(artefact)
    if made is None or made[1] == spec.family:
        return
    board, family = made
    made_for = f"board {board} ({family})" if board else f"the {family} family"
    raise BuildError(
        f"{artefact.name} was generated for {made_for}; board {spec.name} is "
        f"{spec.family}: regenerate it with `nnloom generate MODEL --board "
        f"{spec.name}`"
    )


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def board_clock(spec: BoardSpec, clock_mhz: float | None = None) -> PllSettings:
    """The PLL settings of ``spec`` for ``clock_mhz`` (default: the board's target);
    ``BuildError`` names the board when the PLL cannot make that clock."""
    from boards.clocking import ClockError

    try:
        return spec.clock(None if clock_mhz is None else clock_mhz * 1e6)
    except ClockError as exc:
        raise BuildError(f"board {spec.name}: {exc}") from None


def build(
    artefact: Artefact | str | Path,
    board: str,
    *,
    seed: int = 1,
    clock_mhz: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build ``artefact`` for ``board`` with the engine at ``clock_mhz`` (default: the
    board's target); writes ``build/<board>/`` and its ``report.json``. ``progress(step)``
    hears each tool as it starts (``"yosys"``, ``"nextpnr-ice40"``, ...)."""
    from boards import get_board
    from boards.top import BoardTop

    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    spec = get_board(board)
    check_family(artefact, spec)
    clock = board_clock(spec, clock_mhz)
    requested_mhz = spec.target_hz / 1e6 if clock_mhz is None else clock_mhz
    fam = spec.fpga
    env_tools = tool_env(fam.tools)
    platform = spec.platform()
    engine = EngineInstance(artefact)
    top = BoardTop(
        engine, n_in=engine.n_in, n_out=engine.n_out, design_id=engine.design_id, clock=clock
    )
    clock_mhz = clock.output_hz / 1e6
    build_dir = artefact.path / "build" / spec.name
    build_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*fam.products, "report.json", "nextpnr.json"):
        (build_dir / stale).unlink(missing_ok=True)
    nextpnr_opts = f"--report nextpnr.json --seed {seed} --timing-allow-fail"
    if spec.family == "gowin":  # Amaranth's Gowin flow writes no clock constraints
        nextpnr_opts += f" --freq {clock_mhz:g}"
    plan = platform.build(
        top, name="top", do_build=False, synth_opts=spec.synth_opts, nextpnr_opts=nextpnr_opts
    )
    plan.extract(str(build_dir))
    env = {**os.environ, **{k: v for k, v in spec.env.items() if k not in env_tools}, **env_tools}
    env.update(yowasp_mount(build_dir))  # the same netlist in any folder
    start = time.monotonic()
    log_path = build_dir / "build.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            ["sh", "build_top.sh"],
            cwd=build_dir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        _follow_steps(proc, spec.family, build_dir, progress or (lambda step: None))
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        _raise_tool_failure(spec, build_dir, env)

    report = json.loads((build_dir / "nextpnr.json").read_text())
    util, fmax = parse_nextpnr_report(report, (build_dir / "top.tim").read_text(errors="replace"))
    result = BuildReport(
        board=spec.name,
        device=spec.device,
        clock_mhz=round(clock_mhz, 4),
        fmax_mhz=round(fmax, 2) if fmax else 0.0,
        timing_met=bool(fmax and fmax >= clock_mhz),
        utilisation=util,
        bitstream=build_dir / fam.bitstream,
        seconds=seconds,
        path=build_dir / "report.json",
        clock_requested_mhz=requested_mhz,
        clock_source_mhz=spec.clock_hz / 1e6,
        pll={"primitive": clock.PRIMITIVE, **clock.parameters()},
    )
    atomic_write(result.path, json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    if not result.timing_met:
        raise BuildError(
            f"{spec.name}: timing missed: Fmax {result.fmax_mhz:.2f} MHz is below "
            f"the engine clock {clock_mhz:.2f} MHz (nextpnr log: "
            f"{build_dir / 'top.tim'}); the bitstream would not work; ask for a "
            f"slower clock with --clock"
        )
    return result


def _follow_steps(
    proc: subprocess.Popen, family: str, build_dir: Path, progress, interval: float = 0.5
) -> None:
    """Waits for the build script, telling ``progress`` the tool that runs: the one whose
    predecessor's product exists."""
    fam = FAMILIES[family]
    synthesized, placed, _ = fam.products
    steps = [("yosys", None), (f"nextpnr-{family}", synthesized), (_packer(fam), placed)]
    current = None
    while True:
        step = [name for name, after in steps if after is None or (build_dir / after).exists()]
        if step[-1] != current:
            current = step[-1]
            progress(current)
        try:
            proc.wait(timeout=interval)
            return
        except subprocess.TimeoutExpired:
            continue


def _raise_tool_failure(spec, build_dir: Path, env: dict):
    """Find the first step whose product is missing and raise a ``BuildError`` naming the
    tool, the command as run (variables expanded) and the tail of its log."""
    fam = spec.fpga
    synthesized, placed, bitstream = fam.products
    steps = [
        ("yosys", "YOSYS", synthesized, "top.rpt"),
        ("nextpnr-" + spec.family, fam.nextpnr_variable, placed, "top.tim"),
        (_packer(fam), fam.packer_variable, bitstream, None),
    ]
    script = (build_dir / "build_top.sh").read_text().splitlines()
    for tool, variable, product, log_name in steps:
        if (build_dir / product).exists():
            continue
        line = next(
            (l.strip() for l in script if l.strip().startswith(f'"${variable}"')), f'"${variable}"'
        )
        command = line.replace(f'"${variable}"', env.get(variable, tool.split("-")[0]), 1)
        log_path = build_dir / log_name if log_name else None
        if log_path is None or not log_path.exists() or not log_path.stat().st_size:
            log_path = build_dir / "build.log"  # the tool's own log is empty: its output
        log_text = _tail(log_path)
        hint = ""
        if tool.startswith("nextpnr") and re.search(
            r"(not enough|Unable to place|failed to place|too many|exceeds)",
            log_text,
            re.IGNORECASE,
        ):
            hint = f" (the design does not fit on the {spec.device})"
        raise BuildError(
            f"{tool} failed for board {spec.name}{hint}\n"
            f"command: {command}\nlog ({log_path}):\n{log_text}"
        )
    raise BuildError(
        f"the build script failed for board {spec.name}; see {build_dir}/build.log"
        f"\n{_tail(build_dir / 'build.log')}"
    )
