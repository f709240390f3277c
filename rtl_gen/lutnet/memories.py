"""Table memory contents shared by the LUT engines: ROM words of a table's entries, and the
Verilog edit that lets Yosys put a memory in the UP5K's SPRAM."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["SPRAM_MEMORY", "table_words", "strip_spram_init"]

# The memory the HKLUT engine keeps in SPRAM on the UP5K (its MSB tables).
SPRAM_MEMORY = "msb"


def table_words(table: np.ndarray) -> list[int]:
    """Table ROM words: entry ``e``'s r² int8 values, lane ``l`` in bits ``[8l, 8l+8)``."""
    t = np.asarray(table, dtype=np.int64) & 0xFF
    shifts = np.arange(t.shape[1], dtype=object) * 8
    return [int(sum(int(v) << int(s) for v, s in zip(row, shifts))) for row in t]


def strip_spram_init(verilog_text: str, names: tuple[str, ...] = (SPRAM_MEMORY,)) -> str:
    """The Verilog without the initial block of zeros of every memory named in ``names``
    (default ``msb``): Yosys maps a memory with initial contents to block RAM only, never to
    the UP5K's SPRAM."""
    for name in names:
        pattern = (
            r"  initial begin\n(?:    " + re.escape(name) + r"\[\d+\] = \d+'[dhb]0+;\n)+  end\n"
        )
        verilog_text = re.sub(pattern, "", verilog_text)
    return verilog_text
