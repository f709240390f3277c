"""The streaming ICELUT-style apply engine: RGB raster pixels in, enhanced RGB pixels out.

The per-pixel path of spec ``lutnet.md`` §5.3 step 6 in RTL, bit-exact to
``IcelutPlan.apply``. The statistics path (thumbnail, feature tables, split FC, fusion of the
bases; steps 1–5) is *not* in RTL: the host computes each frame's residual LUT R3 with the
golden (``IcelutPlan.lut``) and streams it into ``load`` before the frame (4913 words, one a
cycle). One bitstream serves every image and every table set. Why not on chip: its tables
(FM + FL 160 KiB, split FC 200 KiB, bases 144 KiB: 516,030 bytes) exceed all the block RAM
of an ECP5-85F (208 EBR, 416 KiB at 16 bits a word) and the UP5K's 128 KiB of SPRAM, and
fusing the bases with one multiplier takes 10·3·17³ = 147,390 cycles a frame against the
4913 of loading R3.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.lutnet.icelut import DIM

from ...cycles import count_frame_cycles
from ..memories import strip_spram_init
from ..streams import RGB_PIXEL

__all__ = [
    "IcelutEngine",
    "pixel_steps",
    "pixel_latency",
    "lut_words",
    "emit_icelut_verilog",
    "RES_BITS",
    "WORD_BITS",
    "LOAD_WORDS",
    "BANKS",
    "BANK_DEPTH",
    "MEMORY_KINDS",
    "MEMORY_BY_FAMILY",
    "PIPELINE_LATENCY",
]

RES_BITS = 9  # one R3 entry, -256..255
WORD_BITS = 3 * RES_BITS  # one LUT vertex: R, G, B residuals
LOAD_WORDS = DIM**3  # 4913 vertices per frame
HALF = (DIM + 1) // 2  # 9 vertex indices of one parity per axis
BANKS = 8
BANK_DEPTH = HALF**3  # 729
MEMORY_KINDS = ("ebr", "spram")
# ECP5: 8 parity banks, 16 EBR. UP5K: the banks would take 48 of its 30 EBR; SPRAM instead.
MEMORY_BY_FAMILY = {"ecp5": "ebr", "ice40": "spram"}
SPRAM_NAMES = ("spram_a", "spram_b")
# Cycles from a pixel's input transfer to its output transfer with the banks (no stalls).
PIPELINE_LATENCY = 5


def _check(interpolation: str, memory: str) -> None:
    if interpolation not in ("tetrahedral", "trilinear"):
        raise ValueError(f"interpolation '{interpolation}' is not tetrahedral or trilinear")
    if memory not in MEMORY_KINDS:
        raise ValueError(f"ICELUT memory kind must be one of {MEMORY_KINDS}, got '{memory}'")


def pixel_steps(*, interpolation: str = "tetrahedral", memory: str = "ebr") -> int:
    """Cycles per pixel of ``IcelutEngine(interpolation=..., memory=...)``: 1 with the banks;
    with SPRAM 2 (tetrahedral) or 4 (trilinear). No component is built."""
    _check(interpolation, memory)
    if memory == "ebr":
        return 1
    return 2 if interpolation == "tetrahedral" else 4


def pixel_latency(*, interpolation: str = "tetrahedral", memory: str = "ebr") -> int:
    """Cycles from a pixel's input to its output transfer (no stalls) of
    ``IcelutEngine(interpolation=..., memory=...)``: ``PIPELINE_LATENCY`` with the banks,
    ``steps + PIPELINE_LATENCY + 1`` with SPRAM. No component is built."""
    steps = pixel_steps(interpolation=interpolation, memory=memory)
    return PIPELINE_LATENCY if memory == "ebr" else steps + PIPELINE_LATENCY + 1


def lut_words(lut: np.ndarray) -> np.ndarray:
    """The ``load`` words of one residual LUT ``(3, 17, 17, 17)`` ``[c, b, g, r]``: vertex
    ``(b, g, r)`` at position ``b·289 + g·17 + r``, channel ``c`` (R, G, B) in bits
    ``[9c, 9c + 9)``, two's complement."""
    a = np.asarray(lut, dtype=np.int64)
    if a.shape != (3, DIM, DIM, DIM) or a.min() < -256 or a.max() > 255:
        raise ValueError(
            f"residual LUT has shape {a.shape} and values in [{a.min()}, "
            f"{a.max()}]; expected (3, {DIM}, {DIM}, {DIM}) in -256..255"
        )
    a = a.reshape(3, -1) & ((1 << RES_BITS) - 1)
    return (a[0] | (a[1] << RES_BITS) | (a[2] << 2 * RES_BITS)).astype(np.uint32)


def emit_icelut_verilog(component: IcelutEngine, top: str) -> str:
    """The engine's Verilog; SPRAM copies without initial contents (``strip_spram_init``)."""
    from ...emit import emit_verilog

    text = emit_verilog(component, top)
    return strip_spram_init(text, SPRAM_NAMES) if component.memory == "spram" else text


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
    Once the pixel with ``last`` has had its vertices read, ``loaded`` falls and ``load``
    takes the next frame's LUT while the pipeline drains. ``cycles`` counts from a frame's
    first pixel transfer to its last output transfer; ``busy`` is high in between.

    Memory ``"ebr"`` (ECP5): R3 lives in 8 parity banks, bank ``q = (b&1, g&1, r&1)`` holding
    the vertices of that index parity (9³ = 729 words of 27 bits, block RAM: two 18 Kb EBR
    each). The 8 corners of any LUT cell lie in 8 different banks, so every cell is read
    whole in one cycle: corner ``d`` comes from bank ``d ^ (i & 1)``, at half-index
    ``(i >> 1) + (i & 1 & d)``. Throughput 1 pixel a cycle.

    Memory ``"spram"`` (iCE40 UP5K, whose 30 EBR cannot hold the 8 banks): two copies of R3,
    4913 words of 32 bits each, marked for SB_SPRAM256KA (two per copy, all four the UP5K
    has; ``emit_icelut_verilog`` drops their zero initial contents). Each copy reads one
    vertex a cycle, so a pixel takes ``steps`` = 2 cycles (tetrahedral) or 4 (trilinear).

    Either way, plus 4913 load cycles per frame. ``latency`` (cycles from a pixel's input to
    its output transfer, no stalls): 5 with the banks (bank read → weights and vertex select
    → products → sums → round, add, clamp), ``steps`` + 6 with SPRAM (step register,
    registered vertex addresses, read, then as with the banks; sums accumulated over the
    steps). The whole pipeline holds while ``o``
    stalls.
    """

    def __init__(self, *, interpolation: str = "tetrahedral", memory: str = "ebr"):
        try:
            _check(interpolation, memory)
        except ValueError:
            self._MustUse__silence = True  # refused: nothing to elaborate, nothing to warn
            raise
        self.interpolation, self.memory = interpolation, memory
        super().__init__(
            {
                "i": In(stream.Signature(RGB_PIXEL)),
                "o": Out(stream.Signature(RGB_PIXEL)),
                "load": In(stream.Signature(unsigned(WORD_BITS))),
                "loaded": Out(1),
                "cycles": Out(32),
                "busy": Out(1),
            }
        )

    @property
    def steps(self) -> int:
        """Cycles per pixel (``pixel_steps``)."""
        return pixel_steps(interpolation=self.interpolation, memory=self.memory)

    @property
    def pixels_per_cycle(self) -> float:
        return 1.0 / self.steps

    @property
    def latency(self) -> int:
        """Cycles from a pixel's input to its output transfer (``pixel_latency``)."""
        return pixel_latency(interpolation=self.interpolation, memory=self.memory)

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # --- load: vertex (b, g, r) in raster order ------------------------------------------
        loaded = self.loaded
        lb, lg, lr = (Signal(range(DIM), name=f"load_{n}") for n in "bgr")
        take = self.load.valid & self.load.ready
        m.d.comb += self.load.ready.eq(~loaded)
        with m.If(take):
            m.d.sync += lr.eq(Mux(lr == DIM - 1, 0, lr + 1))
            with m.If(lr == DIM - 1):
                m.d.sync += lg.eq(Mux(lg == DIM - 1, 0, lg + 1))
                with m.If(lg == DIM - 1):
                    m.d.sync += lb.eq(Mux(lb == DIM - 1, 0, lb + 1))
                    with m.If(lb == DIM - 1):
                        m.d.sync += loaded.eq(1)

        if self.memory == "ebr":
            stage2 = self._banked(m, advance, take, (lb, lg, lr))
        else:
            stage2 = self._spram(m, advance, take)
        self._tail(m, advance, *stage2)
        count_frame_cycles(m, self)
        return m

    def _terms(self, m, pix):
        """(weight, corner) pairs of pixel ``pix``: the 4 simplex vertices (tetrahedral) or
        the 8 cube corners (trilinear); a corner is the (r, g, b) step mask, bit 0 = R."""
        frac = [pix[ch][:4] for ch in range(3)]
        if self.interpolation == "tetrahedral":
            # Rank network (SR-LUT's simplex in 3-D): rank 0 is the largest fraction, ties go
            # to the lower channel as in the golden's stable argsort.
            ranks = []
            for ch in range(3):
                before = [
                    (frac[o] > frac[ch]) if o > ch else (frac[o] >= frac[ch])
                    for o in range(3)
                    if o != ch
                ]
                rank = Signal(2, name=f"rank{ch}")
                m.d.comb += rank.eq(sum(x.as_unsigned() for x in before))
                ranks.append(rank)
            fs = []
            for j in range(3):
                f = Signal(5, name=f"fs{j}")
                m.d.comb += f.eq(sum(Mux(ranks[ch] == j, frac[ch], 0) for ch in range(3)))
                fs.append(f)
            weights = [16 - fs[0], fs[0] - fs[1], fs[1] - fs[2], fs[2]]
            # Vertex j steps +1 along the j largest fractions' axes.
            corners = [Cat(*(ranks[ch] < j for ch in range(3))) for j in range(4)]
            return list(zip(weights, corners)), 5
        terms = []
        for d in range(BANKS):
            w = [Signal(5, name=f"w{d}_{ch}") for ch in range(3)]
            m.d.comb += [w[ch].eq(Mux(d >> ch & 1, frac[ch], 16 - frac[ch])) for ch in range(3)]
            terms.append((_mul(w[2], _mul(w[1], w[0])), Const(d, 3)))
        return terms, 13

    def _banked(self, m, advance, take, load_bgr):
        """8 parity banks: a cell's corners in one cycle. Stage 0 reads the banks with the
        input pixel's addresses; stage 1 pairs weights with bank words."""
        lb, lg, lr = load_bgr
        banks = []
        for q in range(BANKS):
            mem = Memory(shape=WORD_BITS, depth=BANK_DEPTH, init=[])
            m.submodules[f"bank{q}"] = mem
            banks.append((mem.write_port(), mem.read_port()))
        waddr = Signal(range(BANK_DEPTH))
        m.d.comb += waddr.eq(_bank_address(lb[1:], lg[1:], lr[1:]))
        for q, (wp, _) in enumerate(banks):
            m.d.comb += [
                wp.addr.eq(waddr),
                wp.data.eq(self.load.payload),
                wp.en.eq(take & (Cat(lr[0], lg[0], lb[0]) == q)),
            ]

        # --- stage 0: the cell's 8 corners, one per bank -------------------------------------
        m.d.comb += self.i.ready.eq(advance & self.loaded)
        accept = self.i.valid & self.i.ready
        with m.If(accept & self.i.payload.last):
            m.d.sync += self.loaded.eq(0)
        px = self.i.payload.data
        cell = [px[ch][4:] for ch in range(3)]  # R, G, B
        for q, (_, rp) in enumerate(banks):
            # Corner d = q ^ (i & 1) sits at (i + d) >> 1 = (i >> 1) + (i & 1 & ~q).
            half = [cell[ch][1:] + (0 if q >> ch & 1 else cell[ch][0]) for ch in range(3)]
            m.d.comb += [rp.addr.eq(_bank_address(half[2], half[1], half[0])), rp.en.eq(advance)]

        v1, last1 = Signal(), Signal()
        pix1 = Signal.like(px)
        with m.If(advance):
            m.d.sync += [v1.eq(accept), last1.eq(self.i.payload.last), pix1.eq(px)]

        # --- stage 1: weights and the bank words they apply to -------------------------------
        parity = Cat(pix1[0][4], pix1[1][4], pix1[2][4])
        bank_data = Array(rp.data for _, rp in banks)
        terms, wbits = self._terms(m, pix1)
        v2, last2 = Signal(), Signal()
        pix2 = Signal.like(px)
        w2 = [Signal(wbits, name=f"w2_{t}") for t in range(len(terms))]
        d2 = [Signal(WORD_BITS, name=f"d2_{t}") for t in range(len(terms))]
        with m.If(advance):
            m.d.sync += [v2.eq(v1), last2.eq(last1), pix2.eq(pix1)]
            for t, (w, corner) in enumerate(terms):
                m.d.sync += [w2[t].eq(w), d2[t].eq(bank_data[corner ^ parity])]
        return v2, Const(1), Const(1), last2, pix2, w2, d2

    def _spram(self, m, advance, take):
        """Two copies of R3 (iCE40 UP5K: two SB_SPRAM256KA each, 32-bit words), one vertex
        each a cycle: a pixel takes ``steps`` cycles. SPRAM has one address for reads and
        writes, so loading and reading share it; reads are off while writing."""
        terms_n = 4 if self.interpolation == "tetrahedral" else 8
        steps = terms_n // 2
        copies = []
        flat = Signal(range(LOAD_WORDS))
        writing = take
        for name in SPRAM_NAMES:
            mem = Memory(shape=32, depth=LOAD_WORDS, init=[], attrs={"ram_style": "huge"})
            m.submodules[name] = mem
            copies.append((mem.write_port(), mem.read_port()))
        with m.If(take):
            m.d.sync += flat.eq(Mux(flat == LOAD_WORDS - 1, 0, flat + 1))

        # --- step sequencer: the pixel in ``cur`` reads 2 vertices a step ---------------------
        cur = Signal.like(self.i.payload.data)
        cur_last, have, draining = Signal(), Signal(), Signal()
        s = Signal(range(steps))
        last_step = s == steps - 1
        # A frame's first pixel waits for its LUT: none is taken beside or after the frame's
        # last step until the next LUT is in.
        m.d.comb += self.i.ready.eq(
            advance & self.loaded & ~draining & (~have | (last_step & ~cur_last))
        )
        accept = self.i.valid & self.i.ready
        with m.If(advance & have):
            m.d.sync += s.eq(Mux(last_step, 0, s + 1))
            with m.If(last_step):
                m.d.sync += have.eq(0)
                with m.If(cur_last):
                    m.d.sync += draining.eq(1)
        # The weights and corners (rank network) are made from the input and held with it.
        in_terms, wbits = self._terms(m, self.i.payload.data)
        terms = [(Signal(wbits, name=f"tw{t}"), Signal(3, name=f"tc{t}")) for t in range(terms_n)]
        with m.If(accept):
            m.d.sync += [
                cur.eq(self.i.payload.data),
                cur_last.eq(self.i.payload.last),
                have.eq(1),
                s.eq(0),
            ]
            for (w, c), (win, cin) in zip(terms, in_terms):
                m.d.sync += [w.eq(win), c.eq(cin)]
        with m.If(take):
            m.d.sync += draining.eq(0)

        # --- stage a: the step's vertex addresses and weights, registered --------------------
        cell = [cur[ch][4:] for ch in range(3)]
        va, firsta, enda, lasta = Signal(), Signal(), Signal(), Signal()
        pixa = Signal.like(cur)
        wa = [Signal(wbits, name=f"wa_{c}") for c in range(2)]
        addra = [Signal(range(LOAD_WORDS), name=f"addra_{c}") for c in range(2)]
        with m.If(advance):
            m.d.sync += [
                va.eq(have),
                firsta.eq(s == 0),
                enda.eq(last_step),
                lasta.eq(cur_last),
                pixa.eq(cur),
            ]
            for c in range(2):
                corner = Array(terms[2 * k + c][1] for k in range(steps))[s]
                idx = [cell[ch] + corner[ch] for ch in range(3)]
                m.d.sync += [
                    wa[c].eq(Array(terms[2 * k + c][0] for k in range(steps))[s]),
                    addra[c].eq(_times(idx[2], DIM * DIM) + _times(idx[1], DIM) + idx[0]),
                ]
        # The frame's last read is issued now: the next LUT may be written from next cycle.
        with m.If(advance & va & enda & lasta):
            m.d.sync += self.loaded.eq(0)

        # --- stage 1: the copies read (one address for reads and writes) ---------------------
        for c, (wp, rp) in enumerate(copies):
            m.d.comb += [
                wp.addr.eq(Mux(self.loaded, addra[c], flat)),
                rp.addr.eq(wp.addr),
                wp.data.eq(self.load.payload),
                wp.en.eq(writing),
                rp.en.eq(advance & ~writing),
            ]
        v1, first1, end1, last1 = Signal(), Signal(), Signal(), Signal()
        pix1 = Signal.like(cur)
        w1 = [Signal(wbits, name=f"w1_{c}") for c in range(2)]
        with m.If(advance):
            m.d.sync += [
                v1.eq(va),
                first1.eq(firsta),
                end1.eq(enda),
                last1.eq(lasta),
                pix1.eq(pixa),
            ]
            m.d.sync += [w1[c].eq(wa[c]) for c in range(2)]

        # --- stage 2: the vertices' words, weights beside them -------------------------------
        v2, first2, end2, last2 = Signal(), Signal(), Signal(), Signal()
        pix2 = Signal.like(cur)
        w2 = [Signal(wbits, name=f"w2_{c}") for c in range(2)]
        d2 = [Signal(WORD_BITS, name=f"d2_{c}") for c in range(2)]
        with m.If(advance):
            m.d.sync += [
                v2.eq(v1),
                first2.eq(first1),
                end2.eq(end1),
                last2.eq(last1),
                pix2.eq(pix1),
            ]
            for c, (_, rp) in enumerate(copies):
                m.d.sync += [w2[c].eq(w1[c]), d2[c].eq(rp.data[:WORD_BITS])]
        return v2, first2, end2, last2, pix2, w2, d2

    def _tail(self, m, advance, v2, first2, end2, last2, pix2, w2, d2):
        """Products → sums (accumulated over a pixel's steps) → round half up, add the pixel,
        clamp; three stages after stage 2."""
        shift = 4 if self.interpolation == "tetrahedral" else 12
        wbits = len(w2[0])
        n = len(w2)
        # --- stage 2: products ---------------------------------------------------------------
        v3, first3, end3, last3 = Signal(), Signal(), Signal(), Signal()
        pix3 = Signal.like(pix2)
        prod3 = [
            [Signal(signed(RES_BITS + wbits), name=f"p3_{t}_{ch}") for ch in range(3)]
            for t in range(n)
        ]
        with m.If(advance):
            m.d.sync += [
                v3.eq(v2),
                first3.eq(first2),
                end3.eq(end2),
                last3.eq(last2),
                pix3.eq(pix2),
            ]
            for t in range(n):
                for ch in range(3):
                    res = d2[t].word_select(ch, RES_BITS).as_signed()
                    m.d.sync += prod3[t][ch].eq(_mul(w2[t], res))

        # --- stage 3: sums (|Σ| ≤ 256·2^shift) -----------------------------------------------
        v4, last4 = Signal(), Signal()
        pix4 = Signal.like(pix2)
        acc4 = [Signal(signed(RES_BITS + shift + 1), name=f"acc4_{ch}") for ch in range(3)]
        with m.If(advance):
            m.d.sync += [v4.eq(v3 & end3), last4.eq(last3), pix4.eq(pix3)]
            with m.If(v3):
                for ch in range(3):
                    m.d.sync += acc4[ch].eq(
                        Mux(first3, 0, acc4[ch]) + sum(prod3[t][ch] for t in range(n))
                    )

        # --- stage 4: round half up, add the pixel, clamp -------------------------------------
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v4), self.o.payload.last.eq(last4)]
            for ch in range(3):
                res = Signal(signed(RES_BITS + 1), name=f"res{ch}")
                out = Signal(signed(RES_BITS + 2), name=f"out{ch}")
                m.d.comb += [
                    res.eq((acc4[ch] + (1 << (shift - 1))) >> shift),
                    out.eq(pix4[ch] + res),
                ]
                m.d.sync += self.o.payload.data[ch].eq(
                    Mux(out < 0, 0, Mux(out > 255, 255, out[:8]))
                )
