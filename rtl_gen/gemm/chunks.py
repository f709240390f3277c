"""A layer's GEMM in chunks that fit the weight cache of a ``spram`` config (iCE40 UP5K).

On a ``spram`` config the DSP core reads its weights from a block-RAM cache of
``wc_depth`` words, which ``LOAD fill`` copies from the weight SPRAM. A layer whose weight
words exceed the cache runs as several chunks, each ``LOAD fill`` (the chunk's words to
cache address 0), ``CFG``/``WIN``/``WSTEP``/``GEMM`` (weights at 0), ``PCFG``, ``SYNC``,
``POST``: a grouped layer in runs of whole groups, any other in runs of whole tiles (its
output channels ``tiles * lanes`` at a time). A chunk's accumulators are ``acc[q*n_c + c]``
for its own ``n_c`` channels, so its POST writes them at the chunk's first channel. A layer
whose weights are all 1 (average pools) reads none: one chunk, ``GEMM ones``.

Double buffering (``overlapped``): where a chunk's words fit half the cache (and a depthwise
tile's input block half the lane cache), chunk ``c`` uses half ``c % 2`` and the next chunk's
``LOAD fill``s run while chunk ``c``'s GEMM computes, between its ``GEMM`` and ``SYNC``: a
weight fill reads the weight SPRAM and a lane fill the activation SPRAM, neither of which a
depthwise GEMM (it reads the lane cache) or a cached GEMM's weights use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from frontends.errors import ModelError

from . import timing
from .config import GemmConfig
from .isa import Instr
from .layers import GemmLayer
from .ram import subwords

__all__ = [
    "chunk_plan",
    "chunked_instrs",
    "depthwise_halves",
    "depthwise_instrs",
    "drop_repeats",
    "overlapped",
]


def chunk_plan(n: int, g: int, k: int, lanes: int, depth: int, name: str) -> list[tuple]:
    """``[(first group, groups, first channel, channels, first word, words)]`` of a GEMM of
    ``g`` groups of ``n`` channels and ``k`` steps on ``lanes`` lanes with a cache of
    ``depth`` words."""
    tiles = timing.ceil_div(n, lanes)
    if g > 1:
        per = tiles * k
        if per > depth:
            raise ModelError(
                f"{name}: a group's {per} weight words exceed the {depth}-word weight "
                f"cache of the SPRAM overlay"
            )
        step = depth // per
        return [
            (g0, min(step, g - g0), 0, n, g0 * per, min(step, g - g0) * per)
            for g0 in range(0, g, step)
        ]
    if k > depth:
        raise ModelError(
            f"{name}: its {k}-step reduction exceeds the {depth}-word weight cache of the "
            f"SPRAM overlay (one tile of weights)"
        )
    step = depth // k
    out = []
    for t0 in range(0, tiles, step):
        t1 = min(tiles, t0 + step)
        c0, c1 = t0 * lanes, min(n, t1 * lanes)
        out.append((0, 1, c0, c1 - c0, t0 * k, (t1 - t0) * k))
    return out


def chunked_instrs(
    gemm_instrs: Callable[..., list[Instr]],
    layer: GemmLayer,
    config: GemmConfig,
    *,
    n: int,
    g: int,
    x: int,
    w: int,
    y: int,
    p: int,
    ones: bool,
    name: str,
    **kwargs: object,
) -> tuple[list[Instr], int]:
    """The layer's instructions in chunks (``gemm_instrs``: the compiler's ``_gemm_instrs``)
    and the largest chunk's words. ``x``/``w``/``y``/``p``: the DSP core's window origin,
    weight words, output and parameter bases of the whole layer."""
    lanes = config.dsp_lanes
    half = config.wc_depth // 2
    double = not ones and _halves_fit(n, g, layer.k, lanes, half)
    if ones:
        chunks = [(0, g, 0, n, 0, 0)]
    else:
        chunks = chunk_plan(n, g, layer.k, lanes, half if double else config.wc_depth, name)
    gstep = layer.window.cin_g * layer.window.plane
    wsub = subwords(lanes)
    blocks, most = [], 0
    for c, (g0, gc, c0, nc, word0, words) in enumerate(chunks):
        base = half * (c % 2) if double else 0
        out = []
        if words:
            out.append(
                Instr(
                    "LOAD",
                    fields={"n": words, "dst": base, "src": (w + word0) * wsub, "fill": 1},
                    comment=f"{name}: weights" if name else "",
                )
            )
        most = max(most, base + words)
        block = gemm_instrs(
            layer,
            {"dsp": (nc, gc), "lut": (0, 0)},
            config,
            x=(x + g0 * gstep, 0),
            w=(base, 0),
            y=y + (g0 * n + c0) * layer.m,
            p=p + g0 * n + c0,
            name=name,
            **kwargs,
        )
        if ones:
            block = [
                replace(i, fields={**i.fields, "ones": 1}) if i.op == "GEMM" else i for i in block
            ]
        out.extend(block)
        blocks.append(out)
    if double:
        return drop_repeats(overlapped(blocks)), most
    return drop_repeats([i for b in blocks for i in b]), most


def _halves_fit(n: int, g: int, k: int, lanes: int, half: int) -> bool:
    """Whether a GEMM's chunks fit half a cache of ``2 * half`` words (a group's words, or a
    tile's ``k``), and there is more than one of them to overlap."""
    per = timing.ceil_div(n, lanes) * k if g > 1 else k
    total = per * g if g > 1 else timing.ceil_div(n, lanes) * k
    return 0 < per <= half and total > per


def overlapped(blocks: list[list[Instr]]) -> list[Instr]:
    """Chunks' instructions (each its ``LOAD fill``s first, one ``SYNC``) with every chunk's
    fills moved in front of the previous chunk's ``SYNC``: they run while its GEMM
    computes. The chunks must alternate between the caches' halves."""
    out = []
    for c, block in enumerate(blocks):
        fills = [i for i in block if i.op == "LOAD" and i["fill"]]
        rest = block[len(fills) :]
        if any(i.op == "LOAD" and i["fill"] for i in rest) or any(
            i.op == "GEMM" and i["stream"] for i in rest
        ):
            raise ValueError("a chunk's fills come first and its GEMM is not streamed")
        if c == 0:
            out.extend(fills)
        else:
            sync = max(j for j, i in enumerate(out) if i.op == "SYNC")
            out[sync:sync] = fills
        out.extend(rest)
    return out


def drop_repeats(instrs: list[Instr]) -> list[Instr]:
    """A layer's chunks without the configuration words that set what the registers hold
    already: a core's ``CFG`` equal to its last one (``CFG`` resets the window, so a kept
    one's ``WIN``/``WSTEP`` follow), a ``WIN``/``WSTEP`` equal to what the core holds, a
    ``PCFG`` equal to the last one (the post unit's registers keep their values)."""
    out, held, pcfg = [], {}, None
    for ins in instrs:
        if ins.op == "CFG":
            if held.get(ins.core, {}).get("CFG") == ins.fields:
                continue
            held[ins.core] = {"CFG": ins.fields}
        elif ins.op in ("WIN", "WSTEP"):
            regs = held.setdefault(ins.core, {})
            if regs.get(ins.op) == ins.fields:
                continue
            regs[ins.op] = ins.fields
        elif ins.op == "PCFG":
            if pcfg == ins.fields:
                continue
            pcfg = ins.fields
        out.append(ins)
    return out


def depthwise_instrs(
    gemm_instrs: Callable[..., list[Instr]],
    layer: GemmLayer,
    config: GemmConfig,
    *,
    block0: int,
    in_base: int,
    w: int,
    y: int,
    p: int,
    name: str,
    cache: bool = True,
    **kwargs: object,
) -> list[Instr]:
    """A depthwise layer (``G`` groups of one channel) on every lane (``CFG dw``): per tile of
    ``lanes`` groups, ``LOAD fill lanes`` copies their input blocks (``cin_g`` planes each)
    into the lane cache, ``LOAD fill`` their ``k`` weight words (lane ``l``: group ``l`` of
    the tile), one GEMM of ``n`` = the tile's groups reads lane ``l``'s activation from lane
    ``l`` of the cache at the window's address, and a POST writes them. ``block0``: the
    physical block of the first group (the core's groups are consecutive blocks). Without
    ``cache`` (no weight cache: the core reads the weight memory) the GEMM reads the tile's
    words where they are."""
    win, lanes = layer.window, config.dsp_lanes
    size = win.cin_g * win.plane
    wsub = subwords(lanes)
    xhalf, whalf = depthwise_halves(size, layer.k, config) if cache else (0, 0)
    double = bool(xhalf) and layer.groups > lanes
    blocks = []
    for t, g0 in enumerate(range(0, layer.groups, lanes)):
        gc = min(lanes, layer.groups - g0)
        xb, wb = (xhalf * (t % 2), whalf * (t % 2)) if double else (0, 0)
        out = [
            Instr(
                "LOAD",
                fields={
                    "n": size,
                    "dst": xb,
                    "src": in_base + (block0 + g0) * size,
                    "fill": 1,
                    "lanes": gc,
                },
                comment=f"{name}: planes of channels {g0}-{g0 + gc - 1}" if name else "",
            )
        ]
        if cache:
            words = {"n": layer.k, "dst": wb, "src": (w + t * layer.k) * wsub, "fill": 1}
            out.append(Instr("LOAD", fields=words))
        block = gemm_instrs(
            layer,
            {"dsp": (gc, 1), "lut": (0, 0)},
            config,
            x=((win.origin() + xb) % (1 << 16), 0),
            w=(wb, 0) if cache else (w + t * layer.k, 0),
            y=y + g0 * layer.m,
            p=p + g0,
            name=name,
            **kwargs,
        )
        out.extend(replace(i, fields={**i.fields, "dw": 1}) if i.op == "CFG" else i for i in block)
        blocks.append(out)
    if double:
        return drop_repeats(overlapped(blocks))
    return drop_repeats([i for b in blocks for i in b])


def depthwise_halves(size: int, k: int, config: GemmConfig) -> tuple[int, int]:
    """The lane cache's and the weight cache's second halves (their words' offsets) for a
    depthwise layer's double buffering on a ``spram`` config: an input block of ``size``
    words and ``k`` weight words each fit half; ``(0, 0)`` where not."""
    if not config.spram:
        return 0, 0
    xhalf = 1 << max(0, size - 1).bit_length()
    whalf = config.wc_depth // 2
    if 2 * xhalf > config.xc_depth or k > whalf:
        return 0, 0
    return xhalf, whalf
