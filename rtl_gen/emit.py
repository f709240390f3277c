"""Verilog text of an Amaranth component, the same bytes for the same design (no source
locations)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amaranth.lib import wiring

__all__ = ["emit_verilog", "kick_comb_blocks", "split_memory_inits", "INIT_WORDS"]


def emit_verilog(component: wiring.Component, name: str) -> str:
    """``component`` as Verilog with top module ``name``."""
    from amaranth.back import verilog

    text = verilog.convert(component, name=name, emit_src=False)
    return kick_comb_blocks(split_memory_inits(text))


# Yosys' Verilog frontend takes time quadratic in the statements of one ``initial`` block that
# fills a memory (read_verilog alone, measured: 1,024 words 1.2 s, 2,048 4.3 s, 4,096 20 s;
# the FC autoencoder's 18,432-word weight memory did not get past it in 45 minutes), and
# linear in the number of blocks (16,384 words in blocks of 64: 5.0 s). Write_verilog puts a
# memory's whole initial value in one block: it is cut into blocks of ``INIT_WORDS``.
INIT_WORDS = 64
_INIT_WORD = re.compile(r"[ \t]+(?:\\\S+ |[\w$]+)\[\d+\] = \d+'[hb][0-9a-fA-FxXzZ_]+;\n")


def split_memory_inits(text: str, words: int = INIT_WORDS) -> str:
    """``text`` with every ``initial begin ... end`` block made only of memory word
    assignments (``mem[i] = W'h...;``) cut into blocks of at most ``words`` assignments, in
    the same order (the same initial value)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != "initial begin":
            out.append(line)
            i += 1
            continue
        j = i + 1
        while j < len(lines) and _INIT_WORD.fullmatch(lines[j]):
            j += 1
        body = lines[i + 1 : j]
        if j >= len(lines) or lines[j].strip() != "end" or len(body) <= words:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        for start in range(0, len(body), words):
            out += [line, *body[start : start + words], f"{indent}end\n"]
        i = j + 1
    return "".join(out)


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
