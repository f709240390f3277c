"""A GEMM in blocks of output rows whose accumulators fit the accumulator memory.

A core's accumulators for one ``GEMM`` hold every output pixel of every channel it computes
(``(pixel*g + group)*n + channel``). Where that exceeds ``cap`` words (the block-RAM
accumulators of a ``spram_wbits`` overlay, or a board whose block RAM the whole layer's would
overflow) the layer runs as one GEMM per block of consecutive output rows: the block's
window starts at its first row's input row (``WIN``: no top padding, the plane from that
row on, so bottom padding is still where the plane ends; ``WSTEP``'s address steps are the
layer's), ``CFG m`` counts the block's pixels, ``GEMM x`` moves by the rows' input offset,
and its ``POST`` writes them at their pixel offset (``PCFG mc``; the channel pitch stays the
layer's ``m``). Each block costs its own ``GEMM``/``SYNC``/``POST`` (and ``WIN``): the
cores' pipeline fill and drain and the post unit's once a block.
"""

from __future__ import annotations

from dataclasses import replace

from frontends.errors import ModelError

from .isa import Instr
from .window import Window

__all__ = ["block_rows", "row_blocks", "acc_words", "MC_MAX"]

MC_MAX = 2047  # PCFG's mc field: pixels one POST writes


def acc_words(instrs: list[Instr]) -> dict[str, int]:
    """Accumulator words each core's GEMMs in ``instrs`` use (``CFG``'s ``m * g * n``)."""
    cfg: dict[str, dict] = {}
    out = {"dsp": 0, "lut": 0}
    for ins in instrs:
        if ins.op == "CFG":
            cfg[ins.core] = ins.fields
        elif ins.op == "GEMM" and ins.core in cfg:
            c = cfg[ins.core]
            out[ins.core] = max(out[ins.core], c["m"] * c["g"] * c["n"])
    return out


def block_rows(win: Window, per_pixel: int, cap: int, name: str) -> list[tuple[int, int]]:
    """``[(first row, end row)]`` of the output rows, each block's ``per_pixel`` accumulators
    a pixel within ``cap`` words and its pixels within ``MC_MAX``; one block when the
    whole layer fits. Refuses (``ModelError`` naming ``name``) a row that does not fit."""
    if per_pixel * win.m <= cap and win.m <= MC_MAX:
        return [(0, win.oh)]
    rows = min(cap // (per_pixel * win.ow), MC_MAX // win.ow)
    # every later block's window starts on an input row (no top padding left for it)
    if rows < 1 or rows * win.sy < win.pt:
        raise ModelError(
            f"{name}: one output row of {per_pixel} channels x {win.ow} pixels needs "
            f"{per_pixel * win.ow:,} accumulators; the gemm overlay's accumulator memory "
            f"holds {cap:,}"
        )
    return [(r0, min(win.oh, r0 + rows)) for r0 in range(0, win.oh, rows)]


def row_blocks(instrs: list[Instr], win: Window, cap: int, name: str) -> list[Instr]:
    """One GEMM unit (``CFG`` [``WIN`` ``WSTEP``] ``GEMM`` per core, ``PCFG``, ``SYNC``,
    ``POST`` per core, as ``compiler._gemm_instrs`` emits it) as one unit per block of
    output rows (``block_rows``; the module docstring). Instructions before the unit's first
    ``CFG`` pass through."""
    per_pixel = 0
    for ins in instrs:
        if ins.op == "CFG":
            per_pixel = max(per_pixel, ins["g"] * ins["n"])
    if win.dense or not per_pixel:
        return instrs
    blocks = block_rows(win, per_pixel, cap, name)
    if len(blocks) == 1:
        return instrs
    fields, _ = win.fields()
    out = []
    for r0, r1 in blocks:
        mc = (r1 - r0) * win.ow
        b = r0 * win.sy - win.pt  # the block's first input row
        sub = fields if r0 == 0 else replace(win, h=win.h - b, pt=0).fields()[0]
        for ins in instrs:
            f = dict(ins.fields)
            if ins.op == "CFG":
                f["m"] = mc
            elif ins.op == "WIN":
                f = dict(sub)
            elif ins.op == "GEMM":
                f["x"] = (f["x"] + r0 * win.sy * win.w) % (1 << 16)
            elif ins.op == "PCFG":
                f["mc"] = mc
            elif ins.op == "POST":
                f["y"] = f["y"] + r0 * win.ow
            out.append(replace(ins, fields=f, comment=ins.comment if r0 == 0 else ""))
    return out
