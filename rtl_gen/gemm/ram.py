"""Block RAM of the overlay's memories on a board's device, and the refusal of a program that
does not fit.

Each memory of a ``GemmConfig`` (``engine``) is ``width x depth`` bits; Yosys maps it onto the
device's block RAM primitive in the aspect ratio that takes the fewest blocks (iCE40
``SB_RAM40_4K``, "EBR": 256x16 .. 2048x2; ECP5 ``DP16KD``: 512x36 .. 16384x1), one copy per
read port (the activation buffer has one for each core; the sequencer shares the first
core's, ``engine``). The
compiler calls ``check_device`` on every program for a board's config: a model whose
memories need more blocks than the device has is refused with one line naming the memory
kind, the bytes needed (and which memories need them) and the bytes available.

A ``spram`` config (iCE40 UP5K) keeps its three large memories in the device's four
``SB_SPRAM256KA`` (128 KB, single-ported; ``spram``): the activation buffer (bytes), the
DSP accumulators (32-bit words) and the DSP weights (16-bit words, ``subwords`` a
lanes-wide word), and adds the weight cache ``wc`` in block RAM. ``check_device`` then
counts both kinds, and ``spram_variant`` is the config the compiler falls back to on an
iCE40 board when a program's memories exceed its block RAM. ``direct_variant`` (the next
fallback: a reduction longer than the cache, or memories that exceed the SPRAM) keeps the
DSP weights at ``wbits`` a lane in a SPRAM memory one weight word wide that the core reads
directly, and the accumulators in block RAM (``GemmConfig.spram_wbits``).
"""

from __future__ import annotations

from dataclasses import replace

from frontends.errors import ModelError

from .config import ACT_BITS, DSP_WBITS, GemmConfig
from .spram import BYTES, spram_blocks

__all__ = [
    "PRIMITIVES",
    "memories",
    "blocks",
    "ram_use",
    "check_device",
    "spram_memories",
    "spram_use",
    "spram_variant",
    "direct_variant",
    "subwords",
    "DeviceFitError",
]


# the weight cache's words: 256 lanes-wide words are one row of SB_RAM40_4K (6 of them for 12
# DSP lanes), and hold a 64-channel 1x1 layer's weights in two chunks
WC_DEPTH = 256
# DSP lanes of the SPRAM overlay: the UP5K's logic is the limit. 12 packed lanes with the
# window counters, the fills and the SPRAM ports took 5150 of its 5280 LCs out of context;
# 8 lanes on 4 SB_MAC16 pairs with the board top (UART host link and its LOAD path for the
# SPRAM weights) take 5117 LCs (97 %) since the link's and the post unit's registers
# (5407 before, not placed)
SPRAM_LANES = 8
# the direct variant's lanes: its SPRAM words are 8 lanes of 4 or 8 bits (32 or 64 bits)
DIRECT_LANES = 8
# the lane cache's words: a depthwise layer's input plane (KWS: 25x5) a lane
XC_DEPTH = 256


class DeviceFitError(ModelError):
    """A program whose memories exceed the board's RAM of one kind."""


def subwords(lanes: int) -> int:
    """16-bit SPRAM words a ``lanes``-wide int8 weight word takes."""
    return max(1, -(-lanes * DSP_WBITS // 16))


def spram_variant(config: GemmConfig) -> GemmConfig:
    """``config`` with its buffers in SPRAM: the DSP core alone (see the module docstring)."""
    return replace(
        config,
        spram=True,
        dsp_lanes=min(config.dsp_lanes, SPRAM_LANES),
        lut_lanes=0,
        lut_mode="shiftadd",
        lut_wbits=4,
        wc_depth=WC_DEPTH,
        xc_depth=XC_DEPTH,
        lane_cache=config.dsp_pack,
    )


def direct_variant(config: GemmConfig, wbits: int) -> GemmConfig:
    """``spram_variant(config)`` with the DSP weights read from SPRAM directly at ``wbits``
    (4 or 8) bits a lane and the accumulators in block RAM (module docstring)."""
    return replace(
        spram_variant(config),
        dsp_lanes=min(config.dsp_lanes, DIRECT_LANES),
        spram_wbits=wbits,
        wc_depth=2,
    )


# family -> (primitive, capacity key in boards.families.Board.capacity, bits a block,
#            (width, depth) configurations)
PRIMITIVES = {
    "ice40": ("EBR", "ICESTORM_RAM", 4096, ((16, 256), (8, 512), (4, 1024), (2, 2048))),
    "ecp5": (
        "DP16KD",
        "DP16KD",
        18432,
        ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    ),
}


def _abits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def memories(config: GemmConfig) -> dict[str, tuple[int, int, int]]:
    """``{name: (width, depth, copies)}`` of the overlay's memories (``engine``)."""
    cores = sum(1 for lanes in (config.dsp_lanes, config.lut_lanes) if lanes)
    out = {
        "imem": (64, config.imem_depth, 1),
        "act": (ACT_BITS, config.act_depth, cores),
        "idx": (_abits(config.act_depth) + 1, config.idx_depth, 1),
        "params": (config.bias_bits + config.mult_bits, config.param_depth, 1),
    }
    if config.tab_depth and not config.smurf_cycles:
        out["tab"] = (ACT_BITS, config.tab_depth, 1)
    if config.etab_depth:
        out["etab"] = (17, config.etab_depth, 1)
    if config.spram and config.spram_wbits:  # act and wd in SPRAM, no weight cache
        del out["act"]
        out["accd"] = (config.acc_widths["dsp"], config.accd_depth, 1)
        if config.lane_cache:
            out["xc"] = (config.dsp_lanes * ACT_BITS, config.xc_depth, 1)
        return out
    if config.spram:  # act, accd and wd are in SPRAM (spram_memories)
        del out["act"]
        out["wc"] = (config.dsp_lanes * DSP_WBITS, config.wc_depth, 1)
        if config.lane_cache:
            out["xc"] = (config.dsp_lanes * ACT_BITS, config.xc_depth, 1)
        return out
    if config.lane_cache:
        out["xc"] = (config.dsp_lanes * ACT_BITS, config.xc_depth, 1)
    if config.dsp_lanes:
        out["wd"] = (config.dsp_lanes * DSP_WBITS, config.wd_depth, 1)
        out["accd"] = (config.acc_widths["dsp"], config.accd_depth, 1)
    if config.lut_lanes:
        out["wl"] = (config.lut_lanes * config.lut_wbits, config.wl_depth, 1)
        out["accl"] = (config.acc_widths["lut"], config.accl_depth, 1)
    return out


def blocks(width: int, depth: int, family: str) -> int:
    """Blocks of ``family``'s primitive that a ``width x depth`` memory takes."""
    shapes = PRIMITIVES[family][3]
    return min(-(-width // w) * -(-depth // d) for w, d in shapes)


def ram_use(config: GemmConfig, family: str) -> dict[str, int]:
    """Blocks each memory of ``config`` takes on ``family`` (copies included)."""
    return {
        name: blocks(width, depth, family) * copies
        for name, (width, depth, copies) in memories(config).items()
    }


def spram_memories(config: GemmConfig) -> dict[str, tuple[int, int]]:
    """``{name: (width, depth)}`` of a ``spram`` config's SPRAM memories (none otherwise)."""
    if not config.spram:
        return {}
    if config.spram_wbits:
        return {
            "act": (8, config.act_depth),
            "wd": (config.dsp_lanes * config.spram_wbits, config.wd_depth),
        }
    return {
        "act": (8, config.act_depth),
        "accd": (32, config.accd_depth),
        "wd": (16, config.wd_depth * subwords(config.dsp_lanes)),
    }


def spram_use(config: GemmConfig) -> dict[str, int]:
    """SPRAM blocks each SPRAM memory of ``config`` takes."""
    return {name: spram_blocks(w, d) for name, (w, d) in spram_memories(config).items()}


def check_device(config: GemmConfig, board: str, model: str) -> None:
    """Refuses (``DeviceFitError``) a config whose memories exceed ``board``'s block RAM or
    SPRAM."""
    from boards.families import board_facts

    spec = board_facts(board)
    if spec.family not in PRIMITIVES:
        return
    if config.spram:
        use = spram_use(config)
        have = spec.capacity.get("ICESTORM_SPRAM", 0)
        if sum(use.values()) > have:
            need = sum(use.values()) * BYTES
            parts = ", ".join(
                f"{name} {w * d // 8:,}" for name, (w, d) in spram_memories(config).items()
            )
            raise DeviceFitError(
                f"model '{model}' needs {need:,} bytes of SPRAM on the gemm overlay "
                f"({sum(use.values())} SB_SPRAM256KA: {parts} bytes, each memory in "
                f"whole blocks); the {spec.device} on {board} has {have * BYTES:,} "
                f"bytes ({have} SB_SPRAM256KA)"
            )
    kind, key, bits, _ = PRIMITIVES[spec.family]
    use = ram_use(config, spec.family)
    have = spec.capacity.get(key, 0)
    need = sum(use.values())
    if need <= have:
        return
    top = sorted(use.items(), key=lambda kv: -kv[1])[:3]
    parts = ", ".join(f"{name} {n * bits // 8:,}" for name, n in top)
    raise DeviceFitError(
        f"model '{model}' needs {need * bits // 8:,} bytes of {kind} block RAM "
        f"on the gemm overlay ({parts}); the {spec.device} on {board} has "
        f"{have * bits // 8:,} bytes ({have} {kind})"
    )
