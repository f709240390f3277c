"""Out-of-context synthesis and place-and-route of a Verilog module, for benchmarks.

``synthesize(sources, top, family=...)`` runs Yosys (``synth_ice40 -dsp`` or ``synth_ecp5``)
and nextpnr on a module that is not on a board, and returns its resources and Fmax. The
commands are written to ``run.sh`` in ``out_dir`` so a person can rerun them by hand.

nextpnr needs every top-level port on a pin. ECP5 has ``--out-of-context`` for that; the
iCE40 UP5K in the SG48 package has only 39 I/O pins, so a module with more port bits than
``ICE40_MAX_PORT_BITS`` is wrapped in ``nnloom_ooc``: its inputs come from a shift register fed
by one pin and its outputs fold into a registered XOR chain that leaves on one pin. The
wrapper costs one flip-flop per port bit and one LUT per output bit; the report says so
(``io_wrapper``), and ``lut4``/``ff`` are the module's own cells from Yosys's statistics, which
the wrapper does not change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import Cat, ClockSignal, Instance, Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards.families import BOARD_FACTS, FAMILIES, OOC_BOARD, Resources

from .build import BuildError, parse_nextpnr_report
from .tools import tool_env, yowasp_mount

__all__ = ["SynthReport", "synthesize", "ICE40_MAX_PORT_BITS"]

ICE40_MAX_PORT_BITS = 36

# Yosys 0.70's ABC9 aborts ("count_id(wire->name) == 0") on some Amaranth netlists
# (YosysHQ/yosys#4349); splitting multi-bit nets first avoids it.
_PREPASS = "hierarchy -top {top}\nproc\nsplitnets"


@dataclass(frozen=True)
class SynthReport:
    """Resources and timing of one module on one FPGA family, out of context."""

    top: str
    family: str
    device: str
    clock_mhz: float
    fmax_mhz: float
    utilisation: dict  # nextpnr: {resource: {used, available, percent}}
    cells: dict  # Yosys: {cell type: count}, after synthesis
    lut4: int  # SB_LUT4 (iCE40) or LUT4 (ECP5) cells of the module
    ff: int  # flip-flops of the module
    io_wrapper: dict = field(default_factory=dict)  # {} or {"ff": n, "lut4": m}
    seconds: float = 0.0
    out_dir: Path | None = None
    fmax_seeds: dict = field(default_factory=dict)  # {placer seed: Fmax}
    netlist_sha256: str = ""  # of Yosys's netlist of the module: same Verilog, same hash

    @property
    def resources(self) -> Resources:
        return Resources.from_utilisation(self.utilisation)

    @property
    def timing_met(self) -> bool:
        return self.fmax_mhz >= self.clock_mhz

    def to_json(self) -> dict:
        return {
            "top": self.top,
            "family": self.family,
            "device": self.device,
            "clock_mhz": self.clock_mhz,
            "fmax_mhz": self.fmax_mhz,
            "timing_met": self.timing_met,
            "utilisation": self.utilisation,
            "cells": self.cells,
            "lut4": self.lut4,
            "ff": self.ff,
            "io_wrapper": self.io_wrapper,
            "seconds": round(self.seconds, 1),
            "fmax_seeds": {str(k): v for k, v in self.fmax_seeds.items()},
            "netlist_sha256": self.netlist_sha256,
        }


class _SerialIO(wiring.Component):
    """Drives every input of ``top`` from a shift register fed by ``sin`` and folds every
    output into a registered XOR chain ending on ``sout``, so that nothing is optimised away
    and the design needs three pins besides the clock and reset."""

    def __init__(self, top: str, ports: list[tuple[str, str, int]], clock: str, reset: str):
        self.top, self.ports, self.clock, self.reset = top, ports, clock, reset
        self.in_bits = sum(w for n, d, w in ports if d == "input" and n != clock)
        self.out_bits = sum(w for n, d, w in ports if d == "output")
        super().__init__({"sin": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        feed = Signal(max(self.in_bits, 1))
        fold = Signal(max(self.out_bits, 1))
        outputs = []
        kwargs, offset = {}, 0
        for name, direction, width in self.ports:
            if name == self.clock:
                kwargs[f"i_{name}"] = ClockSignal()
            elif direction == "input":
                kwargs[f"i_{name}"] = feed[offset : offset + width]
                offset += width
            else:
                sig = Signal(width, name=f"out_{name}")
                kwargs[f"o_{name}"] = sig
                outputs.append(sig)
        m.submodules.dut = Instance(self.top, **kwargs)
        m.d.sync += feed.eq(Cat(self.sin, feed[:-1]))
        if outputs:
            everything = Cat(*outputs)
            m.d.sync += fold.eq(Cat(self.sin, fold[:-1]) ^ everything)
        m.d.comb += self.sout.eq(fold[-1])
        return m


def _run(cmd: list[str], cwd: Path, env: dict, log_name: str, tool: str) -> None:
    log_path = cwd / log_name
    with open(log_path, "w") as log_file:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env={**env, **yowasp_mount(cwd)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise BuildError(
            f"{tool} failed (exit {proc.returncode})\ncommand: {shlex.join(cmd)}\n"
            f"log ({log_path}):\n{tail}"
        )


def _yosys_ports(top_json: Path, top: str) -> list[tuple[str, str, int]]:
    modules = json.loads(top_json.read_text())["modules"]
    if top not in modules:
        raise BuildError(
            f"yosys: module '{top}' is not in the design; modules: {', '.join(sorted(modules))}"
        )
    return [(name, p["direction"], len(p["bits"])) for name, p in modules[top]["ports"].items()]


def _cells(stat_json: Path) -> dict:
    stat = json.loads(stat_json.read_text())
    design = stat.get("design", {})
    return {k: int(v) for k, v in sorted(design.get("num_cells_by_type", {}).items())}


def _count(cells: dict, family: str) -> tuple[int, int]:
    if family == "ice40":
        lut4 = cells.get("SB_LUT4", 0)
        ff = sum(v for k, v in cells.items() if re.fullmatch(r"SB_DFF\w*", k))
    else:
        lut4 = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        ff = sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
    return lut4, ff


def synthesize(
    sources: list[str | Path],
    top: str,
    *,
    family: str,
    out_dir: str | Path,
    clock_mhz: float = 12.0,
    clock: str = "clk",
    reset: str = "rst",
    seeds: tuple[int, ...] = (1,),
) -> SynthReport:
    """Synthesize ``top`` from the Verilog ``sources`` for ``family`` ("ice40": UP5K,
    "ecp5": LFE5U-85F), place and route it at ``clock_mhz`` on the port ``clock``, and
    return its resources and Fmax. Everything is written to ``out_dir``.

    ``seeds``: place and route once per placer seed and report the median Fmax, each
    seed's in ``fmax_seeds``: a nearly full UP5K's Fmax moves by a quarter between seeds of
    the same netlist, so one placement says little."""
    if family not in OOC_BOARD:
        raise ValueError(
            f"unknown FPGA family '{family}'; choose one of {', '.join(sorted(OOC_BOARD))}"
        )
    die, fam = BOARD_FACTS[OOC_BOARD[family]], FAMILIES[family]
    device, synth_cmd, pnr_args = die.device, fam.synth, list(die.pnr_args)
    yosys, nextpnr = fam.yosys, fam.nextpnr
    env = {**os.environ, **tool_env((yosys, nextpnr))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [Path(s).resolve() for s in sources]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise BuildError(f"synthesis of '{top}': no such Verilog file: {', '.join(missing)}")
    start = time.monotonic()
    # YoWASP tools see only the working directory: the sources are copied into it.
    (out_dir / "src").mkdir(exist_ok=True)
    names = []
    for source in sources:
        names.append(f"src/{source.name}")
        shutil.copyfile(source, out_dir / names[-1])
    reads = "\n".join(f"read_verilog -sv {shlex.quote(n)}" for n in names)

    # 1. The module alone: its cells, and its ports (to decide whether it needs the wrapper).
    (out_dir / "module.ys").write_text(
        f"{reads}\n{_PREPASS.format(top=top)}\n{synth_cmd} -top {top} -json module.json\n"
        f"tee -q -o module_stat.json stat -json\n"
    )
    commands = [[env["YOSYS"], "-q", "-l", "module.log", "module.ys"]]
    _run(commands[-1], out_dir, env, "module.out", "yosys")
    cells = _cells(out_dir / "module_stat.json")
    lut4, ff = _count(cells, family)
    ports = _yosys_ports(out_dir / "module.json", top)
    port_bits = sum(w for name, _, w in ports if name != clock)

    # 2. Place and route: the module itself, or the module inside the serial I/O wrapper.
    pnr_json, io_wrapper = "module.json", {}
    if family == "ice40" and port_bits > ICE40_MAX_PORT_BITS:
        wrapper = _SerialIO(top, ports, clock, reset)
        (out_dir / "nnloom_ooc.v").write_text(
            verilog.convert(wrapper, name="nnloom_ooc", emit_src=False)
        )
        (out_dir / "wrapped.ys").write_text(
            f"{reads}\nread_verilog nnloom_ooc.v\n{_PREPASS.format(top='nnloom_ooc')}\n"
            f"{synth_cmd} -top nnloom_ooc "
            f"-json wrapped.json\n"
        )
        commands.append([env["YOSYS"], "-q", "-l", "wrapped.log", "wrapped.ys"])
        _run(commands[-1], out_dir, env, "wrapped.out", "yosys")
        pnr_json = "wrapped.json"
        io_wrapper = {"ff": wrapper.in_bits + wrapper.out_bits, "lut4": wrapper.out_bits}
    # ECP5 out of context cannot write a bitstream config: the routed netlist instead.
    # The first seed's files have the plain names; another seed's carry its number.
    placements = []
    if not seeds:
        raise ValueError("synthesize: give at least one placer seed")
    for n, placer_seed in enumerate(seeds):
        tag = "" if n == 0 else f"_s{placer_seed}"
        product = (
            ["--asc", f"top{tag}.asc"] if family == "ice40" else ["--write", f"routed{tag}.json"]
        )
        commands.append(
            [
                env[fam.nextpnr_variable],
                "--quiet",
                *pnr_args,
                "--json",
                pnr_json,
                *product,
                "--freq",
                f"{clock_mhz:g}",
                "--seed",
                str(placer_seed),
                "--timing-allow-fail",
                "--report",
                f"nextpnr{tag}.json",
                "--log",
                f"nextpnr{tag}.log",
            ]
        )
        placements.append((placer_seed, tag))
    (out_dir / "run.sh").write_text(
        "#!/bin/sh\n# Generated by nnloom: reruns this synthesis."
        "\nset -e\n" + "\n".join(shlex.join(c) for c in commands) + "\n"
    )
    fmax_seeds = {}
    for (placer_seed, tag), command in zip(placements, commands[-len(placements) :]):
        _run(command, out_dir, env, f"nextpnr{tag}.out", nextpnr)
        report = json.loads((out_dir / f"nextpnr{tag}.json").read_text())
        util_s, fmax_seeds[placer_seed] = parse_nextpnr_report(
            report, (out_dir / f"nextpnr{tag}.log").read_text(errors="replace")
        )
        if not tag:
            util = util_s
    found = sorted(f for f in fmax_seeds.values() if f)
    fmax = found[(len(found) - 1) // 2] if found else None  # the median (lower of two)
    result = SynthReport(
        top=top,
        family=family,
        device=device,
        clock_mhz=clock_mhz,
        fmax_mhz=round(fmax, 2) if fmax else 0.0,
        utilisation=util,
        cells=cells,
        lut4=lut4,
        ff=ff,
        io_wrapper=io_wrapper,
        seconds=time.monotonic() - start,
        out_dir=out_dir,
        fmax_seeds={k: round(f, 2) if f else 0.0 for k, f in fmax_seeds.items()},
        netlist_sha256=hashlib.sha256((out_dir / "module.json").read_bytes()).hexdigest(),
    )
    (out_dir / "report.json").write_text(
        json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
    )
    return result
