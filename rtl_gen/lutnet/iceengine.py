"""The streaming ICELUT-style apply engine: RGB raster pixels in, enhanced RGB pixels out.

The per-pixel path of spec ``lutnet.md`` §5.3 step 6 in RTL, bit-exact to
``IcelutPlan.apply``. The statistics path (thumbnail, feature tables, split FC, fusion of the
bases; steps 1–5) is *not* in RTL: the host computes each frame's residual LUT R3 with the
golden (``IcelutPlan.lut``) and streams it into ``load`` before the frame. One bitstream
serves every image and every table set.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .icelut import DIM
from .streams import RGB_PIXEL, count_frame_cycles

__all__ = ["IcelutEngine", "lut_words", "RES_BITS", "WORD_BITS", "LOAD_WORDS", "BANKS",
           "BANK_DEPTH", "MEMORY_KINDS", "PIPELINE_LATENCY"]

RES_BITS = 9                  # one R3 entry, -256..255
WORD_BITS = 3 * RES_BITS      # one LUT vertex: R, G, B residuals
LOAD_WORDS = DIM ** 3         # 4913 vertices per frame
HALF = (DIM + 1) // 2         # 9 vertex indices of one parity per axis
BANKS = 8
BANK_DEPTH = HALF ** 3        # 729
MEMORY_KINDS = ("ebr",)
# Cycles from a pixel's input transfer to its output being valid (no stalls).
PIPELINE_LATENCY = 5


def lut_words(lut: np.ndarray) -> np.ndarray:
    """The ``load`` words of one residual LUT ``(3, 17, 17, 17)`` ``[c, b, g, r]``: vertex
    ``(b, g, r)`` at position ``b·289 + g·17 + r``, channel ``c`` (R, G, B) in bits
    ``[9c, 9c + 9)``, two's complement."""
    a = np.asarray(lut, dtype=np.int64)
    if a.shape != (3, DIM, DIM, DIM) or a.min() < -256 or a.max() > 255:
        raise ValueError(f"residual LUT has shape {a.shape} and values in [{a.min()}, "
                         f"{a.max()}]; expected (3, {DIM}, {DIM}, {DIM}) in -256..255")
    a = a.reshape(3, -1) & ((1 << RES_BITS) - 1)
    return (a[0] | (a[1] << RES_BITS) | (a[2] << 2 * RES_BITS)).astype(np.uint32)


def _times(value, constant: int):
    """``value · constant`` as shifted copies (Yosys would give a constant product a DSP)."""
    return sum(value << k for k in range(constant.bit_length()) if constant >> k & 1)


def _mul(weight, value):
    """``weight · value`` for an unsigned ``weight`` and signed ``value``, as shift-adds."""
    return sum(Mux(weight[k], value << k, 0) for k in range(len(weight)))


def _bank_address(b, g, r):
    """Bank word of the vertex with half-indices ``(b, g, r)`` (each 0..8): ``b·81 + g·9 + r``."""
    return _times(b, HALF * HALF) + _times(g, HALF) + r


class IcelutEngine(wiring.Component):
    """ICELUT per-pixel apply: ``out = clamp(p + interp(R3, p), 0, 255)`` for every channel of
    every pixel (``IcelutPlan.apply``), with ``i = p >> 4`` the LUT cell, ``f = p & 15`` the
    fractions; tetrahedral ``(Σ_j w_j·R3[v_j] + 8) >> 4`` or trilinear
    ``(Σ w_r·w_g·w_b·R3 + 2048) >> 12``.

    Ports: ``load`` takes a frame's residual LUT as 4913 words (``lut_words``); ``loaded``
    then rises, and ``i`` takes that frame's pixels ``{R, G, B}`` in any order, ``last`` on
    the final one. ``o`` gives the enhanced pixels in the same order, ``last`` passed along.
    When the pixel with ``last`` is taken, ``loaded`` falls and ``load`` takes the next
    frame's LUT, while the pipeline drains (the final pixel's vertices have been read by
    then). ``cycles`` counts from a frame's first pixel transfer to its last output
    transfer; ``busy`` is high in between.

    Memory (``memory="ebr"``): R3 lives in 8 parity banks, bank ``q = (b&1, g&1, r&1)`` holding
    the vertices of that index parity (9³ = 729 words of 27 bits, block RAM: two 18 Kb EBR
    each on ECP5). The 8 corners of any LUT cell lie in 8 different banks, so every cell is
    read whole in one cycle: corner ``d`` comes from bank ``d ^ (i & 1)``, at half-index
    ``(i >> 1) + (i & 1 & d)``.

    Throughput: 1 pixel a cycle while ``o`` is ready, plus 4913 load cycles per frame.
    Latency: ``PIPELINE_LATENCY`` = 5 cycles from input to output transfer: bank read →
    fraction ranks, weights and vertex select → products → sums → round, add, clamp. The
    whole pipeline holds while ``o`` stalls.
    """

    def __init__(self, *, interpolation: str = "tetrahedral", memory: str = "ebr"):
        if interpolation not in ("tetrahedral", "trilinear"):
            raise ValueError(f"interpolation '{interpolation}' is not tetrahedral or trilinear")
        if memory not in MEMORY_KINDS:
            raise ValueError(f"ICELUT memory kind must be one of {MEMORY_KINDS}, got '{memory}'")
        self.interpolation, self.memory = interpolation, memory
        super().__init__({"i": In(stream.Signature(RGB_PIXEL)),
                          "o": Out(stream.Signature(RGB_PIXEL)),
                          "load": In(stream.Signature(unsigned(WORD_BITS))),
                          "loaded": Out(1), "cycles": Out(32), "busy": Out(1)})

    @property
    def pixels_per_cycle(self) -> float:
        return 1.0

    def elaborate(self, platform):
        m = Module()
        tetra = self.interpolation == "tetrahedral"
        shift = 4 if tetra else 12

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        banks = []
        for q in range(BANKS):
            mem = Memory(shape=WORD_BITS, depth=BANK_DEPTH, init=[])
            m.submodules[f"bank{q}"] = mem
            banks.append((mem.write_port(), mem.read_port()))

        # --- load: vertex (b, g, r) in raster order into bank (b&1, g&1, r&1) ----------------
        loaded = self.loaded
        lb, lg, lr = (Signal(range(DIM), name=f"load_{n}") for n in "bgr")
        take = self.load.valid & self.load.ready
        waddr = Signal(range(BANK_DEPTH))
        m.d.comb += [self.load.ready.eq(~loaded),
                     waddr.eq(_bank_address(lb[1:], lg[1:], lr[1:]))]
        for q, (wp, _) in enumerate(banks):
            m.d.comb += [wp.addr.eq(waddr), wp.data.eq(self.load.payload),
                         wp.en.eq(take & (Cat(lr[0], lg[0], lb[0]) == q))]
        with m.If(take):
            m.d.sync += lr.eq(Mux(lr == DIM - 1, 0, lr + 1))
            with m.If(lr == DIM - 1):
                m.d.sync += lg.eq(Mux(lg == DIM - 1, 0, lg + 1))
                with m.If(lg == DIM - 1):
                    m.d.sync += lb.eq(Mux(lb == DIM - 1, 0, lb + 1))
                    with m.If(lb == DIM - 1):
                        m.d.sync += loaded.eq(1)

        # --- stage 0: the cell's 8 corners, one per bank -------------------------------------
        m.d.comb += self.i.ready.eq(advance & loaded)
        accept = self.i.valid & self.i.ready
        with m.If(accept & self.i.payload.last):
            m.d.sync += loaded.eq(0)
        px = self.i.payload.data
        cell = [px[ch][4:] for ch in range(3)]                        # R, G, B
        for q, (_, rp) in enumerate(banks):
            # Corner d = q ^ (i & 1) sits at (i + d) >> 1 = (i >> 1) + (i & 1 & ~q).
            half = [cell[ch][1:] + (0 if q >> ch & 1 else cell[ch][0]) for ch in range(3)]
            m.d.comb += [rp.addr.eq(_bank_address(half[2], half[1], half[0])),
                         rp.en.eq(advance)]

        v1, last1 = Signal(), Signal()
        pix1 = Signal.like(px)
        with m.If(advance):
            m.d.sync += [v1.eq(accept), last1.eq(self.i.payload.last), pix1.eq(px)]

        # --- stage 1: weights and the vertices they apply to ---------------------------------
        frac = [pix1[ch][:4] for ch in range(3)]
        parity = Cat(pix1[0][4], pix1[1][4], pix1[2][4])
        bank_data = Array(rp.data for _, rp in banks)
        if tetra:
            # Rank network (SR-LUT's simplex in 3-D): rank 0 is the largest fraction, ties go
            # to the lower channel as in the golden's stable argsort.
            ranks = []
            for ch in range(3):
                before = [(frac[o] > frac[ch]) if o > ch else (frac[o] >= frac[ch])
                          for o in range(3) if o != ch]
                rank = Signal(2, name=f"rank{ch}")
                m.d.comb += rank.eq(sum(x.as_unsigned() for x in before))
                ranks.append(rank)
            fs = []
            for j in range(3):
                f = Signal(5, name=f"fs{j}")
                m.d.comb += f.eq(sum(Mux(ranks[ch] == j, frac[ch], 0) for ch in range(3)))
                fs.append(f)
            weights = [16 - fs[0], fs[0] - fs[1], fs[1] - fs[2], fs[2]]
            # Vertex j steps +1 along the j largest fractions' axes: corner mask_j.
            corners = [Cat(*(ranks[ch] < j for ch in range(3))) for j in range(4)]
            terms = [(w, bank_data[c ^ parity]) for w, c in zip(weights, corners)]
            wbits = 5
        else:
            terms = []
            for q in range(BANKS):
                corner = Const(q, 3) ^ parity
                w = [Signal(5, name=f"w{q}_{ch}") for ch in range(3)]
                m.d.comb += [w[ch].eq(Mux(corner[ch], frac[ch], 16 - frac[ch]))
                             for ch in range(3)]
                terms.append((_mul(w[2], _mul(w[1], w[0])), banks[q][1].data))
            wbits = 13

        v2, last2 = Signal(), Signal()
        pix2 = Signal.like(px)
        w2 = [Signal(wbits, name=f"w2_{t}") for t in range(len(terms))]
        d2 = [Signal(WORD_BITS, name=f"d2_{t}") for t in range(len(terms))]
        with m.If(advance):
            m.d.sync += [v2.eq(v1), last2.eq(last1), pix2.eq(pix1)]
            for t, (w, d) in enumerate(terms):
                m.d.sync += [w2[t].eq(w), d2[t].eq(d)]

        # --- stage 2: products ---------------------------------------------------------------
        pbits = RES_BITS + wbits
        v3, last3 = Signal(), Signal()
        pix3 = Signal.like(px)
        prod3 = [[Signal(signed(pbits), name=f"p3_{t}_{ch}") for ch in range(3)]
                 for t in range(len(terms))]
        with m.If(advance):
            m.d.sync += [v3.eq(v2), last3.eq(last2), pix3.eq(pix2)]
            for t in range(len(terms)):
                for ch in range(3):
                    res = d2[t].word_select(ch, RES_BITS).as_signed()
                    m.d.sync += prod3[t][ch].eq(_mul(w2[t], res))

        # --- stage 3: sums (|Σ| ≤ 256·2^shift) -----------------------------------------------
        v4, last4 = Signal(), Signal()
        pix4 = Signal.like(px)
        acc4 = [Signal(signed(RES_BITS + shift + 1), name=f"acc4_{ch}") for ch in range(3)]
        with m.If(advance):
            m.d.sync += [v4.eq(v3), last4.eq(last3), pix4.eq(pix3)]
            for ch in range(3):
                m.d.sync += acc4[ch].eq(sum(prod3[t][ch] for t in range(len(terms))))

        # --- stage 4: round half up, add the pixel, clamp -------------------------------------
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v4), self.o.payload.last.eq(last4)]
            for ch in range(3):
                res = Signal(signed(RES_BITS + 1), name=f"res{ch}")
                out = Signal(signed(RES_BITS + 2), name=f"out{ch}")
                m.d.comb += [res.eq((acc4[ch] + (1 << (shift - 1))) >> shift),
                             out.eq(pix4[ch] + res)]
                m.d.sync += self.o.payload.data[ch].eq(
                    Mux(out < 0, 0, Mux(out > 255, 255, out[:8])))

        count_frame_cycles(m, self)
        return m
