"""Hardware parameters of the GEMM overlay: core sizes, memory depths, word widths.

A ``GemmConfig`` fixes the RTL; any program whose images fit runs on it. ``fit()`` sizes
a config to a compiled program (smallest memories that hold it), and ``BOARDS`` gives the
core sizes used on each board.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from boards.families import BOARD_FACTS

__all__ = [
    "GemmConfig",
    "LUT_MODES",
    "BOARDS",
    "NO_CONFIG",
    "board_configs",
    "ACT_BITS",
    "DSP_WBITS",
    "MULT_BITS",
    "MAX_MULT_BITS",
    "SERIAL_WBITS",
]

ACT_BITS = 8  # activation codes in the activation buffer
DSP_WBITS = 8  # DSP-core weights (int8)
MULT_BITS = 15  # requantization multipliers (frontends.fixedpoint.MULTIPLIER_BITS)
MAX_MULT_BITS = 24  # the widest a program's multipliers may be (``GemmConfig.mult_bits``)
LUT_MODES = ("shiftadd", "ternary", "bitserial")
SERIAL_WBITS = (2, 8)  # bit-serial LUT core: weight precisions a CFG may choose


def _pow2(n: int) -> int:
    p = 1
    while p < max(n, 1):
        p *= 2
    return p


def _depth(n: int) -> int:
    return _pow2(n) if n <= 2048 else -(-n // 2048) * 2048


@dataclass(frozen=True)
class GemmConfig:
    """One overlay instance.

    ``dsp_lanes``/``lut_lanes``: output channels each core computes per cycle (0: the core is
    absent). ``lut_mode``: ``shiftadd`` (``lut_wbits``-bit two's-complement weights,
    products as shift-add), ``ternary`` (2-bit codes of -1/0/+1, products as +/-a) or
    ``bitserial`` (one weight bit-plane a pass, BISMO-style; each layer's precision, 2-8
    bits, is chosen by the compiler and set by ``CFG``; ``lut_wbits`` is 1, the bits a lane
    stores per word). ``dsp_pack``: DSP lanes in pairs on iCE40 ``SB_MAC16``s in dual 8x8
    mode (activations offset to int8); ``dsp_regs``: each DSP lane an ECP5 ``MULT18X18D``
    instance with its input and output registers (one more DSP-core pipeline cycle);
    ``ins_reg``: the instruction word registered before its decode (one more cycle an
    instruction: ``sequencer``'s LATCH; on the ECP5 the instruction DP16KD's clock-to-out in
    front of the decode was the critical path). ``primitives``: instantiate them (else the
    same arithmetic and registers as inferable logic, for Amaranth's simulator).
    ``acc_bits``: the cores' accumulators; ``bias_bits``: per-channel bias in the parameter
    memory. The ``*_depth`` are memory depths in words. ``residual``: the post unit has the
    ``ADD`` datapath; ``half_even``: it rounds half to even too; ``windows``: the cores have
    the convolution window counters (without them a core runs one-pixel windows only);
    ``lut_acc_bits``: the LUT
    core's accumulators (0: ``acc_bits``; low-bit weights need fewer). ``mult_bits``: the
    requantization multipliers in the parameter memory and the units that multiply by
    them (``MULT_BITS``; a transformer's, ``frontends.fixedpoint.WIDE_MULTIPLIER_BITS``).
    ``tab_depth``: the element-wise function tables' memory (``tables``; 0: none);
    ``smurf_cycles``: cycles an element of the SMURF units that replace it (0: tables in
    memory). ``etab_depth``: the row unit's exp tables (``rowwise``; 0: no row unit),
    ``row_bits``: its reciprocals' width; ``matmul``: the activation x activation unit,
    ``cadd``: the constant adder (``attention``); ``norm``: the LayerNorm unit
    (``rowwise``). ``protect``: none, parity or secded on the instruction, weight and
    parameter memories (``protect``).
    ``lane_cache``: the DSP core's lanes can each read an activation of their own from a
    lane cache of ``xc_depth`` words (``CFG dw``: a depthwise layer's channels on every lane; the
    compiler uses it for input blocks up to ``xc_depth`` and ``fit`` drops it when unused).
    ``spram`` (iCE40 UP5K): the activation buffer, the DSP accumulators and the DSP weights
    live in ``SB_SPRAM256KA`` blocks (``spram``), the weights read by the core through a
    block-RAM cache of ``wc_depth`` words that ``LOAD fill`` refills; DSP core only (the
    activation buffer has one port). ``spram_wbits`` (``spram`` only; 0: the cache above): the
    DSP weights stored at 4 (or 8) bits a lane in a SPRAM memory one weight word wide, read
    by the core every cycle with no cache (each lane's field sign-extended to int8), and the
    DSP accumulators in block RAM (the compiler runs a layer in blocks of output rows that
    fit them): no reduction limit, and a 4-bit model's weights take half the SPRAM.
    """

    dsp_lanes: int = 4
    lut_lanes: int = 16
    lut_mode: str = "shiftadd"
    lut_wbits: int = 4
    acc_bits: int = 24
    bias_bits: int = 24
    mult_bits: int = MULT_BITS
    imem_depth: int = 64
    act_depth: int = 256
    idx_depth: int = 256
    wd_depth: int = 1024
    wl_depth: int = 256
    param_depth: int = 64
    accd_depth: int = 64
    accl_depth: int = 64
    tab_depth: int = 0
    smurf_cycles: int = 0
    etab_depth: int = 0
    row_bits: int = 0
    matmul: bool = False
    cadd: bool = False
    norm: bool = False
    residual: bool = True
    half_even: bool = True
    windows: bool = True
    lut_acc_bits: int = 0
    dsp_pack: bool = False
    dsp_regs: bool = False
    ins_reg: bool = False
    primitives: bool = True
    board: str = ""
    protect: str = "none"
    spram: bool = False
    wc_depth: int = 2
    xc_depth: int = 2
    lane_cache: bool = False
    spram_wbits: int = 0

    def __post_init__(self):
        from ..ecc import EccCode

        EccCode(self.protect, 1)  # refuses an unknown protection by name
        if self.dsp_lanes < 0 or self.lut_lanes < 0 or self.dsp_lanes + self.lut_lanes == 0:
            raise ValueError(
                f"core sizes dsp_lanes={self.dsp_lanes}, lut_lanes="
                f"{self.lut_lanes}: at least one core must have lanes"
            )
        if self.lut_mode not in LUT_MODES:
            raise ValueError(
                f"unknown LUT-core mode '{self.lut_mode}'; modes: {', '.join(LUT_MODES)}"
            )
        if self.dsp_pack and self.dsp_regs:
            raise ValueError(
                "dsp_pack (iCE40 SB_MAC16 pairs) and dsp_regs (ECP5 MULT18X18D "
                "lanes) exclude each other"
            )
        if self.lane_cache and not self.dsp_lanes:
            raise ValueError("lane_cache feeds the DSP core's lanes: it needs dsp_lanes")
        if self.spram and (
            self.lut_lanes or not self.dsp_lanes or self.dsp_regs or self.protect != "none"
        ):
            raise ValueError(
                "spram (iCE40 SB_SPRAM256KA buffers) takes a DSP core of iCE40 lanes, "
                "no LUT core (the SPRAM activation buffer has one port) and no protect"
            )
        if self.spram_wbits not in (0, 4, 8) or (self.spram_wbits and not self.spram):
            raise ValueError(
                f"spram_wbits={self.spram_wbits}: SPRAM weights without a cache are 4 or 8 "
                f"bits a lane, on a spram config only"
            )
        if not MULT_BITS <= self.mult_bits <= MAX_MULT_BITS:
            raise ValueError(
                f"mult_bits={self.mult_bits}: multipliers are {MULT_BITS}-{MAX_MULT_BITS} bits"
            )
        if self.lut_mode == "ternary" and self.lut_wbits != 2:
            object.__setattr__(self, "lut_wbits", 2)
        if self.lut_mode == "bitserial":
            object.__setattr__(self, "lut_wbits", 1)
        elif not 2 <= self.lut_wbits <= 4:
            raise ValueError(
                f"lut_wbits={self.lut_wbits}: the shift-add LUT core takes 2-4 bit weights"
            )
        for name in (
            "imem_depth",
            "act_depth",
            "idx_depth",
            "wd_depth",
            "wl_depth",
            "param_depth",
            "accd_depth",
            "accl_depth",
            "wc_depth",
            "xc_depth",
        ):
            if getattr(self, name) < 2:
                raise ValueError(f"{name}={getattr(self, name)}: memories have >= 2 words")

    @property
    def lut_precisions(self) -> tuple[int, ...]:
        """Weight precisions the LUT core can run (bit-serial: chosen per layer)."""
        if self.lut_mode == "bitserial":
            return tuple(range(SERIAL_WBITS[0], SERIAL_WBITS[1] + 1))
        return (self.lut_wbits,)

    def lut_weight_range(self, wbits: int | None = None) -> tuple[int, int]:
        """Weight codes of the LUT core at ``wbits`` (default: its only precision)."""
        if self.lut_mode == "ternary":
            return -1, 1
        wbits = wbits or self.lut_precisions[-1]
        return -(1 << (wbits - 1)), (1 << (wbits - 1)) - 1

    @property
    def acc_widths(self) -> dict:
        return {"dsp": self.acc_bits, "lut": self.lut_acc_bits or self.acc_bits}

    @property
    def lanes(self) -> dict:
        return {"dsp": self.dsp_lanes, "lut": self.lut_lanes}

    def describe(self) -> str:
        mode = {"ternary": "ternary", "bitserial": "bit-serial int2-8"}.get(
            self.lut_mode, f"int{self.lut_wbits}"
        )
        pack = (
            ", SB_MAC16 8x8 pairs"
            if self.dsp_pack
            else ", registered MULT18X18D"
            if self.dsp_regs
            else ""
        )
        coded = "" if self.protect == "none" else f", {self.protect} memories"
        return (
            f"{self.dsp_lanes} DSP lanes (int8{pack}) + {self.lut_lanes} LUT lanes ({mode}){coded}"
        )

    def fit(self, needs: dict) -> GemmConfig:
        """This config with every memory at least as deep as ``needs`` (a program's use),
        rounded up to a power of two, or beyond 2048 words to a multiple of 2048 (the block
        RAMs' deepest shape: a power of two would waste up to half of them)."""
        depths = {
            name: max(2, _depth(needs.get(name, 2)))
            for name in (
                "imem_depth",
                "act_depth",
                "idx_depth",
                "wd_depth",
                "wl_depth",
                "param_depth",
                "accd_depth",
                "accl_depth",
                "wc_depth",
                "xc_depth",
            )
        }
        tab = needs.get("tab_depth", 0)
        if self.spram:  # SPRAM holds the words themselves: no rounding to block shapes
            depths["wd_depth"] = max(2, needs.get("wd_depth", 2))
        return replace(
            self,
            **depths,
            tab_depth=_depth(tab) if tab else 0,
            etab_depth=_depth(needs["etab_depth"]) if needs.get("etab_depth") else 0,
            row_bits=needs.get("row_bits", 0),
            matmul=needs.get("matmul", False),
            cadd=needs.get("cadd", False),
            norm=needs.get("norm", False),
            acc_bits=needs.get("acc_bits", self.acc_bits),
            bias_bits=needs.get("bias_bits", self.bias_bits),
            mult_bits=needs.get("mult_bits", self.mult_bits),
            residual=needs.get("residual", self.residual),
            half_even=needs.get("half_even", self.half_even),
            windows=needs.get("windows", self.windows),
            lane_cache=needs.get("lane_cache", self.lane_cache),
            lut_acc_bits=needs.get("lut_acc_bits", self.lut_acc_bits),
        )

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ECP5: depthwise layers on every DSP lane through a lane cache of up to 1024 words (a
# 32x32 plane a lane; 8 DP16KD for 16 lanes), dropped from programs that do not use it
_LANE_CACHE = dict(lane_cache=True, xc_depth=1024)
_ECP5 = dict(_LANE_CACHE, ins_reg=True)  # (ins_reg: the ULX3S's ResNet-8 at 71.5 MHz without)
# Core sizes per board (memories are fitted to the program). iCE40: DSP lanes in pairs on
# 6 SB_MAC16s (dual 8x8), the requantizer on the other 2; ECP5: one MULT18X18D per lane.
# The LUT cores are ternary: the benchmark network (frontends.examples.digits_wide) has
# ternary hidden weights, and a ternary lane (+/-a into a 14-bit accumulator, drained through
# a hold register) is the cheapest LUT lane. Lane counts follow the tiles of a 64-channel
# layer: 12 DSP + 20 LUT lanes cover it in 2 tiles a core (16 LUT lanes would need 3); on
# the ULX3S 16 + 64, so that the LUT core alone takes a 64-channel layer in one tile (the
# DS-CNN's pointwise layers: its ternary variant 1.54x DSP-only in the compiler's model,
# 1.49x with 48 LUT lanes; ResNet-8 2.01x, 1.98x with 48). The UP5K's logic bounds its LUT
# core (yosys: 12 packed DSP lanes and 20 ternary lanes are 3294 LUT4 and 2824 FF; 4
# shift-add int4 lanes cost ~205 LUT4 each).
_CORES = {
    "icebreaker": {
        "dsp": dict(dsp_lanes=12, lut_lanes=0, dsp_pack=True),
        "lut": dict(dsp_lanes=0, lut_lanes=32, lut_mode="ternary"),
        "hetero": dict(dsp_lanes=12, lut_lanes=20, dsp_pack=True, lut_mode="ternary"),
    },
    "ulx3s-85f": {
        "dsp": dict(dsp_lanes=16, lut_lanes=0, dsp_regs=True, **_ECP5),
        "lut": dict(dsp_lanes=0, lut_lanes=64, lut_mode="ternary", ins_reg=True),
        "hetero": dict(dsp_lanes=16, lut_lanes=64, lut_mode="ternary", dsp_regs=True, **_ECP5),
    },
    # The LFE5U-25F: 28 MULT18X18D and 24k LUT4, the ULX3S's cores fit (16 DSP lanes).
    "orangecrab-25f": {
        "dsp": dict(dsp_lanes=16, lut_lanes=0, dsp_regs=True),
        "lut": dict(dsp_lanes=0, lut_lanes=64, lut_mode="ternary"),
        "hetero": dict(dsp_lanes=16, lut_lanes=48, lut_mode="ternary", dsp_regs=True),
    },
}
# ``board -> {"family", "clock_mhz" (the board's default engine clock), "dsp", "lut",
# "hetero"}``; family and clock are the board table's (``boards.families``).
BOARDS = {
    name: {
        "family": BOARD_FACTS[name].family,
        "clock_mhz": BOARD_FACTS[name].target_mhz,
        **{kind: GemmConfig(**cores, board=name) for kind, cores in kinds.items()},
    }
    for name, kinds in _CORES.items()
}
# Boards the overlay refuses, and why.
NO_CONFIG = {
    "tang-nano-9k": "nextpnr-gowin (YoWASP 0.7) has no block RAM or multiplier BELs for the "
    "GW1NR-9, so the overlay's memories would become flip-flops",
}


def board_configs(board: str) -> dict:
    """``BOARDS[board]``; ``BoardError`` naming the board and why otherwise."""
    from boards import BoardError

    if board in BOARDS:
        return BOARDS[board]
    if board in NO_CONFIG:
        raise BoardError(
            f"the gemm engine has no configuration for board '{board}': "
            f"{NO_CONFIG[board]}; it has configs for {', '.join(BOARDS)}"
        )
    raise BoardError(
        f"unknown board '{board}'; the gemm engine has configs for {', '.join(BOARDS)}"
    )
