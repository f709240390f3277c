"""One HKLUT ×2 stage in hardware: a 5×5 window in, the 2×2 block of the stage out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.lutnet.hklut import LSB_KERNELS, MSB_KERNELS, HklutStage
from frontends.lutnet.pattern import BLOCK_ROT, PATTERNS, rotated_pattern

from ..memories import table_words
from ..streams import block_layout, window_layout

__all__ = ["HklutStageUnit", "lsb_lane_bits", "lsb_words", "STEPS", "MEMORY_KINDS", "div6_floor"]

# One MSB read per cycle: 3 kernels × 4 rotations; the 2 × 4 LSB reads ride alongside.
STEPS = len(MSB_KERNELS) * 4
MEMORY_KINDS = ("rom", "spram")
# floor(u / 6) = (u · DIV6) >> DIV6_SHIFT for 0 ≤ u < 1536 (checked exhaustively in the
# tests); the smallest such constant, six ones, so the product is five adders, not a DSP.
DIV6, DIV6_SHIFT = 683, 12


def div6_floor(u: np.ndarray) -> np.ndarray:
    """The hardware's division: ``(u · 683) >> 12``."""
    return (np.asarray(u, dtype=np.int64) * DIV6) >> DIV6_SHIFT


def lsb_lane_bits(tables: Sequence[np.ndarray]) -> int:
    """Signed bits one LSB entry needs (the released tables' entries are at most |11|)."""
    lo = min(int(np.min(t)) for t in tables)
    hi = max(int(np.max(t)) for t in tables)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return bits


def lsb_words(tables: Sequence[np.ndarray], bits: int) -> list[int]:
    """LSB ROM words: kernel ``K``'s entry ``e`` at ``K·256 + e``, lane ``l`` in bits
    ``[bits·l, bits·(l+1))``."""
    mask = (1 << bits) - 1
    words = []
    for t in tables:
        for row in np.asarray(t, dtype=np.int64):
            words.append(sum((int(v) & mask) << (bits * lane) for lane, v in enumerate(row)))
    return words


def msb_words(tables: Sequence[np.ndarray]) -> list[int]:
    """MSB table words: kernel ``K``'s entry ``e`` at ``K·4096 + e``, lane ``l`` (int8) in
    bits ``[8l, 8l+8)``; also the order of the words streamed into ``load``."""
    return [w for t in tables for w in table_words(t)]


def _times(value, constant: int):
    """``value · constant`` as a sum of shifted copies (one per set bit of ``constant``)."""
    return sum(value << k for k in range(constant.bit_length()) if constant >> k & 1)


class HklutStageUnit(wiring.Component):
    """HKLUT eq. (spec ``lutnet.md`` §5.2) for one input pixel of one ×2 stage:
    ``V = 2·Sm + 3·Sl + 6·x``, then ``clamp(floor(V/6))`` (``final``: ``floor((V+3)/6)``).

    ``i`` takes the reflect-padded 5×5 window of each pixel of a ``width``×``height`` frame
    in raster order; ``o`` gives the 2×2 block (row-major). The LSB branch's edge (replicate)
    border is made from the reflect window by the pixel's position, which the unit counts.

    One window takes ``STEPS`` = 12 cycles: step t reads MSB kernel t mod 3 of rotation
    t div 3 (index ``M_a·256 + M_b·16 + M_c``) and, for t < 8, LSB kernel t mod 2 of rotation
    t div 2 (index ``L_a·16 + L_b``). Pipeline: addresses → table read → rotated back into the
    upright block → accumulators → V, division by 6 as ``(u·683) >> 12`` and clamp; a block
    leaves 5 cycles after its window's last step, and everything holds while ``o`` stalls.

    Memories: MSB tables (3 × 4096 words of 4 int8) either as a ROM (``msb_memory="rom"``,
    block RAM with initial contents) or, ``"spram"``, as a RAM marked for the iCE40 UP5K's
    single-port SPRAM (which cannot be initialised by the bitstream): it is filled through
    ``load`` (``msb_words`` order, one word per transfer) and windows are taken once
    ``loaded`` is high (``strip_spram_init`` removes the all-zero initial contents Amaranth
    writes for it from the Verilog, as SPRAM has none). LSB tables (2 × 256 words) are a ROM
    of ``lsb_lane_bits`` per lane.
    """

    def __init__(
        self, stage: HklutStage, *, width: int, height: int, final: bool, msb_memory: str = "rom"
    ):
        if msb_memory not in MEMORY_KINDS:
            raise ValueError(f"MSB memory kind must be one of {MEMORY_KINDS}, got {msb_memory}")
        if stage.scale != 2:
            raise ValueError(f"the HKLUT stage unit makes ×2 stages, not ×{stage.scale}")
        self.stage, self.width, self.height = stage, width, height
        self.final, self.msb_memory = final, msb_memory
        self.lsb_bits = lsb_lane_bits(stage.lsb)
        members = {
            "i": In(stream.Signature(window_layout(2))),
            "o": Out(stream.Signature(block_layout(2))),
        }
        if msb_memory == "spram":
            members.update(load=In(stream.Signature(unsigned(32))), loaded=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        W, H, p, side, lanes = self.width, self.height, 2, 5, 4
        lbits = self.lsb_bits
        depth = len(MSB_KERNELS) * 4096

        if self.msb_memory == "spram":
            mem = Memory(shape=32, depth=depth, init=[], attrs={"ram_style": "huge"})
        else:
            mem = Memory(shape=32, depth=depth, init=msb_words(self.stage.msb))
        m.submodules.msb = mem
        lmem = Memory(
            shape=lbits * lanes, depth=len(LSB_KERNELS) * 256, init=lsb_words(self.stage.lsb, lbits)
        )
        m.submodules.lsb = lmem
        mrp, lrp = mem.read_port(), lmem.read_port()

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        ready_for_windows = Signal()
        maddr = Signal(range(depth))
        if self.msb_memory == "spram":
            # SPRAM has one address for reads and writes: loading and reading share maddr.
            wp = mem.write_port()
            loaded, laddr = self.loaded, Signal(range(depth))
            m.d.comb += [
                self.load.ready.eq(~loaded),
                wp.addr.eq(maddr),
                wp.data.eq(self.load.payload),
                wp.en.eq(self.load.valid & ~loaded),
                ready_for_windows.eq(loaded),
            ]
            with m.If(self.load.valid & ~loaded):
                m.d.sync += laddr.eq(laddr + 1)
                with m.If(laddr == depth - 1):
                    m.d.sync += loaded.eq(1)
            read_addr = Signal(range(depth))
            m.d.comb += maddr.eq(Mux(loaded, read_addr, laddr))
        else:
            read_addr = maddr
            m.d.comb += ready_for_windows.eq(1)
        m.d.comb += [mrp.addr.eq(maddr), lrp.en.eq(advance)]
        if self.msb_memory == "spram":
            # SPRAM keeps its output during a write; reads off while writing say it is moot.
            m.d.comb += mrp.en.eq(advance & ~wp.en)
        else:
            m.d.comb += mrp.en.eq(advance)

        # --- step sequencer and pixel position ----------------------------------------------
        win = Signal(window_layout(p))
        have = Signal()
        t = Signal(range(STEPS))
        last_step = t == STEPS - 1
        x, y = Signal(range(W)), Signal(range(H))
        wx, wy = Signal(range(W)), Signal(range(H))
        m.d.comb += self.i.ready.eq(advance & ready_for_windows & (~have | last_step))
        with m.If(advance & have):
            m.d.sync += t.eq(Mux(last_step, 0, t + 1))
            with m.If(last_step):
                m.d.sync += have.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [win.eq(self.i.payload), have.eq(1), t.eq(0), wx.eq(x), wy.eq(y)]
            m.d.sync += x.eq(Mux(x == W - 1, 0, x + 1))
            with m.If(x == W - 1):
                m.d.sync += y.eq(Mux(y == H - 1, 0, y + 1))

        def tap(dy, dx):
            return win[(dy + p) * side + (dx + p)]

        edge = {"top": wy == 0, "bottom": wy == H - 1, "left": wx == 0, "right": wx == W - 1}

        def edge_tap(dy, dx):
            """The pixel at (dy, dx) with the frame's edge replicated (numpy ``edge``)."""
            ycl = edge["top"] if dy < 0 else edge["bottom"] if dy > 0 else None
            xcl = edge["left"] if dx < 0 else edge["right"] if dx > 0 else None

            def col(row):
                return tap(row, dx) if xcl is None else Mux(xcl, tap(row, 0), tap(row, dx))

            return col(dy) if ycl is None else Mux(ycl, col(0), col(dy))

        msb_addr, lsb_addr = [], []
        for step in range(STEPS):
            k, kern = divmod(step, len(MSB_KERNELS))
            a, b, c = (tap(*o)[4:] for o in rotated_pattern(PATTERNS[MSB_KERNELS[kern]], k))
            msb_addr.append(Cat(c, b, a, Const(kern, 2)))
            if step < 4 * len(LSB_KERNELS):
                k, kern = divmod(step, len(LSB_KERNELS))
                a, b = (edge_tap(*o)[:4] for o in rotated_pattern(PATTERNS[LSB_KERNELS[kern]], k))
                lsb_addr.append(Cat(b, a, Const(kern, 1)))

        # --- stage 0: table addresses ---------------------------------------------------------
        v0, first0, last0, lsb0 = Signal(), Signal(), Signal(), Signal()
        km0, kl0 = Signal(2), Signal(2)
        centre0 = Signal(8)
        laddr0 = Signal(9)
        with m.If(advance):
            m.d.sync += [
                v0.eq(have),
                first0.eq(t == 0),
                last0.eq(last_step),
                lsb0.eq(t < len(lsb_addr)),
                read_addr.eq(Array(msb_addr)[t]),
                laddr0.eq(Array(lsb_addr + [Const(0, 9)] * (STEPS - len(lsb_addr)))[t]),
                km0.eq(Array(Const(s // 3, 2) for s in range(STEPS))[t]),
                kl0.eq(Array(Const(min(s // 2, 3), 2) for s in range(STEPS))[t]),
                centre0.eq(tap(0, 0)),
            ]
        m.d.comb += lrp.addr.eq(laddr0)

        # --- stage 1: table read (the read ports' own register) ------------------------------
        v1, first1, last1, lsb1 = Signal(), Signal(), Signal(), Signal()
        km1, kl1, centre1 = Signal(2), Signal(2), Signal(8)
        with m.If(advance):
            m.d.sync += [
                v1.eq(v0),
                first1.eq(first0),
                last1.eq(last0),
                lsb1.eq(lsb0),
                km1.eq(km0),
                kl1.eq(kl0),
                centre1.eq(centre0),
            ]

        # --- stage 2: entries rotated back into the upright block ----------------------------
        perms = [np.rot90(np.arange(lanes).reshape(2, 2), BLOCK_ROT[kk]).ravel() for kk in range(4)]
        mval = [mrp.data.word_select(lane, 8).as_signed() for lane in range(lanes)]
        lval = [lrp.data.word_select(lane, lbits).as_signed() for lane in range(lanes)]
        m2 = [Signal(signed(8), name=f"m2_{lane}") for lane in range(lanes)]
        l2 = [Signal(signed(lbits), name=f"l2_{lane}") for lane in range(lanes)]
        v2, first2, last2, centre2 = Signal(), Signal(), Signal(), Signal(8)
        with m.If(advance):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1), centre2.eq(centre1)]
            for lane in range(lanes):
                m.d.sync += m2[lane].eq(Array(mval[int(pm[lane])] for pm in perms)[km1])
                m.d.sync += l2[lane].eq(
                    Mux(lsb1, Array(lval[int(pm[lane])] for pm in perms)[kl1], 0)
                )

        # --- stage 3: Sm (12 terms) and Sl (8 terms) ------------------------------------------
        sm = [Signal(signed(13), name=f"sm{lane}") for lane in range(lanes)]
        sl = [Signal(signed(lbits + 4), name=f"sl{lane}") for lane in range(lanes)]
        done3, centre3 = Signal(), Signal(8)
        with m.If(advance):
            m.d.sync += done3.eq(v2 & last2)
            with m.If(v2):
                m.d.sync += centre3.eq(centre2)
                for lane in range(lanes):
                    m.d.sync += [
                        sm[lane].eq(Mux(first2, 0, sm[lane]) + m2[lane]),
                        sl[lane].eq(Mux(first2, 0, sl[lane]) + l2[lane]),
                    ]

        # --- stage 4: V in sixths, divided by 6 and clamped -----------------------------------
        with m.If(advance):
            m.d.sync += self.o.valid.eq(done3)
            for lane in range(lanes):
                v = Signal(signed(16), name=f"v{lane}")
                # Constant products as shifts and adds: Yosys would give each a DSP.
                m.d.comb += v.eq(
                    (sm[lane] << 1)
                    + (sl[lane] << 1)
                    + sl[lane]
                    + (centre3 << 2)
                    + (centre3 << 1)
                    + (3 if self.final else 0)
                )
                q = Signal(unsigned(8), name=f"q{lane}")
                m.d.comb += q.eq(_times(v[:11], DIV6) >> DIV6_SHIFT)
                m.d.sync += self.o.payload[lane].eq(Mux(v < 0, 0, Mux(v >= 6 * 255, 255, q)))
        return m
