"""Verilog text of an Amaranth component, the same bytes for the same design (no source
locations)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amaranth.lib import wiring

__all__ = ["emit_verilog", "kick_comb_blocks"]


def emit_verilog(component: wiring.Component, name: str) -> str:
    """``component`` as Verilog with top module ``name``."""
    from amaranth.back import verilog

    return kick_comb_blocks(verilog.convert(component, name=name, emit_src=False))


# Yosys' write_verilog gives each module a ``reg <trigger> = 0;`` that every ``always @*``
# block reads, so simulators evaluate those blocks at time 0. Under SystemVerilog rules
# (``iverilog -g2012``) a declaration's initial value makes no event, and blocks that depend
# only on constant registers (a state machine resting in state 0) stay ``x`` forever. One
# change of the trigger at time 0 (after every block waits) starts them. Synthesis never sees
# it, nor Verilator (which evaluates every block first and wants no delays without --timing).
_TRIGGER = re.compile(
    r"^([ \t]*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.MULTILINE
)


def kick_comb_blocks(text: str) -> str:
    """``text`` with an ``initial #0`` toggle of each Yosys time-0 trigger (for event-driven
    simulators: not for synthesis or Verilator)."""
    return _TRIGGER.sub(
        lambda m: (
            f"{m[0]}\n`ifndef SYNTHESIS\n`ifndef VERILATOR\n{m[1]}initial #0 "
            f"{m[2]} = 1'h1;\n`endif\n`endif"
        ),
        text,
    )
