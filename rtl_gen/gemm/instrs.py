"""Instruction emission for one layer, the compiler's fourth phase (after placement, split
and parameters).

``gemm_instrs``: each core's ``CFG`` (+ ``WIN``/``WSTEP`` of a convolution window) and
``GEMM``; ``row_split_instrs``: a convolution split by output rows between the cores;
``post_cfg``/``post_params``: the post unit's configuration word and its parameter checks;
``stream_first_layer``/``stream_after_posts``/``mark_early_posts``: the reorderings that let
a GEMM start while its input streams in and a post op run on behind the next layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from frontends.errors import ModelError
from frontends.ir import Node

from . import timing
from .config import DSP_WBITS, MAX_MULT_BITS, GemmConfig
from .isa import Instr
from .layers import ROUNDING, GemmLayer


def gemm_instrs(
    layer: GemmLayer,
    shapes: dict,
    config: GemmConfig,
    *,
    x: tuple[int, int] = (0, 0),
    w: tuple[int, int] = (0, 0),
    y: int = 0,
    p: int = 0,
    xsigned: bool = True,
    shift: int | None = None,
    name: str = "",
    lut_wbits: int | None = None,
) -> list[Instr]:
    """CFG (+WIN, WSTEP for a convolution window) + GEMM per core with channels (``x``: its
    window origin), PCFG, SYNC, POST per core."""
    win = layer.window
    win_fields, step_fields = win.fields()
    out, started = [], []
    for i, core in enumerate(("dsp", "lut")):
        n, g = shapes[core]
        if n * g == 0:
            continue
        lanes = config.lanes[core]
        if lanes == 0:
            raise ModelError(
                f"{layer.node.describe()}: {n * g} channels assigned to the "
                f"{core} core, which this configuration does not have"
            )
        tiles = timing.ceil_div(n, lanes)
        if tiles > 255:
            raise ModelError(
                f"{layer.node.describe()}: {n} channels make {tiles} tiles on "
                f"the {core} core; at most 255"
            )
        wbits = DSP_WBITS if core == "dsp" else (lut_wbits or config.lut_precisions[-1])
        out.append(
            Instr(
                "CFG",
                core,
                {
                    "m": layer.m,
                    "k": layer.k,
                    "n": n,
                    "g": g,
                    "tiles": tiles,
                    "xsigned": int(xsigned),
                    "wbits": wbits,
                },
                comment=f"{name}: {n * g} channels" if name else "",
            )
        )
        if not win.dense:
            out.append(Instr("WIN", core, win_fields))
            out.append(Instr("WSTEP", core, step_fields))
        out.append(
            Instr(
                "GEMM",
                core,
                {
                    "x": x[i] % (1 << 16),
                    "gstep": win.cin_g * win.plane if g > 1 else 0,
                    "w": w[i],
                    "pad": layer.zp_in & 0xFF,
                },
            )
        )
        started.append((core, n * g))
    # PCFG before the barrier: it waits only for the post unit, not the cores
    out.append(
        Instr(
            "PCFG",
            fields={
                "m": layer.m,
                "shift": layer.shift if shift is None else shift,
                "zp": layer.zp_out,
                "lo": layer.lo,
                "hi": layer.hi,
                "round": ROUNDING[layer.rounding],
            },
        )
    )
    out.append(Instr("SYNC"))
    offset = 0
    for core, count in started:
        out.append(Instr("POST", core, {"n": count, "y": y + offset * layer.m, "p": p + offset}))
        offset += count
    return out


def row_split_instrs(
    layer: GemmLayer,
    config: GemmConfig,
    r1: int,
    in_base: int,
    w: tuple,
    y: int,
    p: int,
    xsigned: bool,
    name: str,
) -> list[Instr]:
    """A convolution split by output rows: the DSP core computes rows ``[0, r1)`` and the
    LUT core rows ``[r1, oh)``, every channel each, through windows of their own (the LUT
    core's starts at input row ``b = r1*sy - pt``: its plane is the ``h - b`` rows from
    there, no top padding, the same address steps); each core's POST writes its pixels of
    every channel (``PCFG`` ``mc``), the LUT core's from pixel ``r1 * ow`` on."""
    win = layer.window
    _, steps = win.fields()
    out, posts = [], []
    for i, (core, r0, r_end) in enumerate((("dsp", 0, r1), ("lut", r1, win.oh))):
        mc = (r_end - r0) * win.ow
        lanes = config.lanes[core]
        b = r0 * win.sy - win.pt
        sub = win if r0 == 0 else replace(win, h=win.h - b, pt=0, pb=0)
        fields, _ = sub.fields()
        x = in_base + (win.origin() if r0 == 0 else b * win.w - win.pl)
        wbits = DSP_WBITS if core == "dsp" else config.lut_precisions[-1]
        out += [
            Instr(
                "CFG",
                core,
                {
                    "m": mc,
                    "k": layer.k,
                    "n": layer.n,
                    "g": 1,
                    "tiles": timing.ceil_div(layer.n, lanes),
                    "xsigned": int(xsigned),
                    "wbits": wbits,
                },
                comment=f"{name}: output rows {r0}-{r_end - 1}" if name else "",
            ),
            Instr("WIN", core, fields),
            Instr("WSTEP", core, steps),
            Instr(
                "GEMM", core, {"x": x % (1 << 16), "gstep": 0, "w": w[i], "pad": layer.zp_in & 0xFF}
            ),
        ]
        pcfg = {
            "m": layer.m,
            "shift": layer.shift,
            "zp": layer.zp_out,
            "lo": layer.lo,
            "hi": layer.hi,
            "round": ROUNDING[layer.rounding],
            "mc": mc,
        }
        posts.append(
            (
                Instr("PCFG", fields=pcfg),
                Instr("POST", core, {"n": layer.n, "y": y + r0 * win.ow, "p": p}),
            )
        )
    (pcfg_d, post_d), (pcfg_l, post_l) = posts
    return out + [pcfg_d, Instr("SYNC"), post_d, pcfg_l, post_l]


def stream_first_layer(instrs: list[Instr]) -> int:
    """Moves the input ``LOAD`` (``instrs[0]``) behind the first layer's ``CFG``/``GEMM``
    pairs and marks those GEMM instructions ``stream``. Returns the instruction after the
    ``LOAD``, where the layer's cycles are counted from: before it the program waits for
    its input, however long that takes."""
    load = instrs.pop(0)
    at = next(i for i, ins in enumerate(instrs) if ins.op not in ("CFG", "GEMM"))
    for i in range(at):
        if instrs[i].op == "GEMM":
            instrs[i] = replace(instrs[i], fields={**instrs[i].fields, "stream": 1})
    instrs.insert(at, load)
    return at + 1


def stream_after_posts(instrs: list[Instr], first: int) -> int:
    """Moves a layer's ``CFG``/``GEMM`` pairs (from ``first``) ahead of the previous
    layer's POST instructions, which write its input, and marks the GEMM instructions
    ``stream``. Returns the index of the layer's first other instruction (its ``PCFG``), where its
    cycles are counted from."""
    at = next(i for i in range(first, len(instrs)) if instrs[i].op not in ("CFG", "GEMM"))
    block = [
        replace(ins, fields={**ins.fields, "stream": 1}) if ins.op == "GEMM" else ins
        for ins in instrs[first:at]
    ]
    p0 = first
    while instrs[p0 - 1].op == "POST":
        p0 -= 1
    instrs[p0 + len(block) : at] = instrs[p0:first]
    instrs[p0 : p0 + len(block)] = block
    return at


def mark_early_posts(instrs: list[Instr]) -> None:
    """Sets ``early`` on each POST whose pipeline may run on behind what follows: up to the
    next POST (whose own pipeline ends later) or a streamed STORE (which waits for the
    writes), only CFG, SYNC, NOP and streamed GEMM instructions, none of which touches
    the post unit or reads activations unguarded."""
    for i, ins in enumerate(instrs):
        if ins.op != "POST":
            continue
        for nxt in instrs[i + 1 :]:
            if nxt.op == "POST" or (nxt.op == "STORE" and nxt["stream"]):
                instrs[i] = replace(ins, fields={**ins.fields, "early": 1})
                break
            if not (nxt.op in ("CFG", "SYNC", "NOP") or (nxt.op == "GEMM" and nxt["stream"])):
                break


def post_params(node: Node, multipliers: ArrayLike, zero_points: Iterable[int]) -> np.ndarray:
    """Checks that ``MAX``'s parameter fields hold the node's multipliers and zero points."""
    mult = np.asarray(multipliers, np.int64).reshape(-1)
    if mult.max(initial=0) >= 2**MAX_MULT_BITS or mult.min(initial=0) < 0:
        raise ModelError(
            f"{node.describe()}: multipliers {mult.tolist()} exceed {MAX_MULT_BITS} unsigned bits"
        )
    for z in zero_points:
        if not -256 <= int(z) <= 255:
            raise ModelError(f"{node.describe()}: input zero point {z} exceeds 9 bits")
    return mult


def post_cfg(node: Node, comment: str | None = None) -> Instr:
    """The ``PCFG`` of a node that requantizes with one multiplier (``m`` = 1: a shift, the
    zero point, the clamp and the rounding); a ``ModelError`` names an unknown rounding."""
    a = node.attrs
    rounding = a.get("rounding", "half_up")
    if rounding not in ROUNDING:
        raise ModelError(
            f"{node.describe()}: rounding '{rounding}' is not one of {', '.join(ROUNDING)}"
        )
    return Instr(
        "PCFG",
        fields={
            "m": 1,
            "shift": int(a["shift"]),
            "zp": int(a["output_zero_point"]),
            "lo": int(a["lo"]),
            "hi": int(a["hi"]),
            "round": ROUNDING[rounding],
        },
        comment=comment or f"{node.name}: {node.op}",
    )
