"""Simplex interpolation over the 4-rotation ensemble: one window in, one r×r HR block out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.lutnet.pattern import BLOCK_ROT, rotated_pattern

if TYPE_CHECKING:
    from frontends.lutnet.srlut import SrlutPlan

from ..memories import table_words
from ..streams import block_layout, window_layout

__all__ = ["SimplexInterpolator"]


class SimplexInterpolator(wiring.Component):
    """SR-LUT eq. 3–6 for one LR pixel: ``S = Σ_k rot90(Σ_j w_j·T[v_j], BLOCK_ROT[k])``, then
    ``clamp(round_half_even(S / q), 0, 255)`` per HR pixel (``SrlutPlan.reference``).

    The table is one ROM of ``L^n`` words of r² bytes with ``ports`` read ports. Each cycle
    reads ``ports`` simplex vertices, so a window takes ``steps = 4·ceil((n+1)/ports)`` cycles
    and ``i`` accepts one window every ``steps`` cycles. The fraction sort is a rank network:
    ``rank_i = #{m : f_m > f_i or (f_m = f_i and m < i)}`` (n(n-1)/2 comparators), vertex ``j``
    is ``base + Σ_i [rank_i < j]·stride_i``. Pipeline: rank/base registers → vertex address
    (ROM read) → weighted, rotated products → accumulator → rounded block in ``o``; a block
    leaves 5 cycles after its window's last step. The whole pipeline holds while ``o`` stalls.
    """

    def __init__(self, plan: SrlutPlan, *, ports: int = 1):
        if ports not in (1, 2):
            raise ValueError(f"ports must be 1 or 2, got {ports}")
        self.plan, self.ports = plan, ports
        self.per_rotation = -(-(plan.n + 1) // ports)
        self.steps = 4 * self.per_rotation
        super().__init__(
            {
                "i": In(stream.Signature(window_layout(plan.radius))),
                "o": Out(stream.Signature(block_layout(plan.scale))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan, P = self.plan, self.ports
        n, b, q, r, p = plan.n, plan.interval_bits, plan.q, plan.scale, plan.radius
        side = 2 * p + 1
        lanes = r * r
        strides = plan.strides
        depth = plan.levels**n

        m.submodules.table = table = Memory(
            shape=unsigned(8 * lanes), depth=depth, init=table_words(plan.table)
        )
        rports = [table.read_port() for _ in range(P)]

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        for rp in rports:
            m.d.comb += rp.en.eq(advance)

        # --- step sequencer -----------------------------------------------------------------
        win = Signal(window_layout(p))
        have = Signal()
        k = Signal(2)
        s = Signal(range(self.per_rotation))
        last_step = (k == 3) & (s == self.per_rotation - 1)
        m.d.comb += self.i.ready.eq(advance & (~have | last_step))
        with m.If(advance & have):
            with m.If(s == self.per_rotation - 1):
                m.d.sync += [s.eq(0), k.eq(k + 1)]
            with m.Else():
                m.d.sync += s.eq(s + 1)
            with m.If(last_step):
                m.d.sync += have.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [win.eq(self.i.payload), have.eq(1), k.eq(0), s.eq(0)]

        # --- stage 0: pattern pixels of rotation k, ranks, base index ------------------------
        def tap(dy, dx):
            return win[(dy + p) * side + (dx + p)]

        pix = []
        for i in range(n):
            taps = Array(tap(*rotated_pattern(plan.offsets, kk)[i]) for kk in range(4))
            v = Signal(8, name=f"v{i}")
            m.d.comb += v.eq(taps[k])
            pix.append(v)
        frac = [v[:b] if b else Const(0, 1) for v in pix]
        msb = [v[b:] for v in pix]
        ranks = []
        for i in range(n):
            before = [
                (frac[j] > frac[i]) if j > i else (frac[j] >= frac[i]) for j in range(n) if j != i
            ]
            rank = Signal(range(n), name=f"rank{i}")
            m.d.comb += rank.eq(sum(x.as_unsigned() for x in before) if before else 0)
            ranks.append(rank)
        base = Signal(range(depth), name="base")
        m.d.comb += base.eq(sum(msb[i] * strides[i] for i in range(n)))
        sorted_f = []
        for j in range(n):
            fj = Signal(b + 1, name=f"fs{j}")
            m.d.comb += fj.eq(sum(Mux(ranks[i] == j, frac[i], 0) for i in range(n)))
            sorted_f.append(fj)

        v0 = Signal(name="v0_valid")
        r0 = [Signal(range(n), name=f"r0_rank{i}") for i in range(n)]
        f0 = [Signal(b + 1, name=f"r0_fs{j}") for j in range(n)]
        base0, k0, s0 = Signal.like(base), Signal(2), Signal.like(s)
        first0, last0 = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [
                v0.eq(have),
                base0.eq(base),
                k0.eq(k),
                s0.eq(s),
                first0.eq((k == 0) & (s == 0)),
                last0.eq(last_step),
            ]
            m.d.sync += [a.eq(x) for a, x in zip(r0, ranks)]
            m.d.sync += [a.eq(x) for a, x in zip(f0, sorted_f)]

        # --- stage 1: vertex addresses and weights -> ROM ------------------------------------
        weights_by_j = Array(
            [q - f0[0]] + [f0[j - 1] - f0[j] for j in range(1, n)] + [f0[n - 1]] + [Const(0)] * P
        )
        w1 = [Signal(b + 1, name=f"r1_w{l}") for l in range(P)]
        v1, k1, first1, last1 = Signal(), Signal(2), Signal(), Signal()
        for l, rp in enumerate(rports):
            j = Signal(range(self.per_rotation * P + 1), name=f"j{l}")
            m.d.comb += j.eq(s0 * P + l)
            idx = Signal(range(depth), name=f"idx{l}")
            m.d.comb += idx.eq(base0 + sum(Mux(r0[i] < j, strides[i], 0) for i in range(n)))
            m.d.comb += rp.addr.eq(idx)
            with m.If(advance):
                m.d.sync += w1[l].eq(Mux(j <= n, weights_by_j[j], 0))
        with m.If(advance):
            m.d.sync += [v1.eq(v0), k1.eq(k0), first1.eq(first0), last1.eq(last0)]

        # --- stage 2: products, rotated back into the upright block ---------------------------
        prod_bits = 8 + b + 2
        unrot = []
        for lane in range(lanes):
            pr = Signal(signed(prod_bits), name=f"prod{lane}")
            m.d.comb += pr.eq(
                sum(
                    w1[l] * rp.data[8 * lane : 8 * lane + 8].as_signed()
                    for l, rp in enumerate(rports)
                )
            )
            unrot.append(pr)
        perms = [np.rot90(np.arange(lanes).reshape(r, r), BLOCK_ROT[kk]).ravel() for kk in range(4)]
        prod2 = [Signal(signed(prod_bits), name=f"r2_prod{lane}") for lane in range(lanes)]
        v2, first2, last2 = Signal(), Signal(), Signal()
        with m.If(advance):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1)]
            for lane in range(lanes):
                choice = Array(unrot[int(perms[kk][lane])] for kk in range(4))
                m.d.sync += prod2[lane].eq(choice[k1])

        # --- stage 3: accumulate the 4(n+1) terms ------------------------------------------
        acc = [Signal(signed(plan.sum_bits + 1), name=f"acc{lane}") for lane in range(lanes)]
        done3 = Signal()
        with m.If(advance):
            m.d.sync += done3.eq(v2 & last2)
            with m.If(v2):
                for lane in range(lanes):
                    m.d.sync += acc[lane].eq(Mux(first2, 0, acc[lane]) + prod2[lane])

        # --- stage 4: round half to even, clamp ---------------------------------------------
        with m.If(advance):
            m.d.sync += self.o.valid.eq(done3)
            for lane in range(lanes):
                a = acc[lane]
                odd = a[b] if b else Const(0, 1)
                rounded = Signal(signed(plan.sum_bits + 1), name=f"round{lane}")
                m.d.comb += rounded.eq((a + ((1 << b >> 1) - (1 if b else 0)) + odd) >> b)
                m.d.sync += self.o.payload[lane].eq(
                    Mux(rounded < 0, 0, Mux(rounded > 255, 255, rounded[:8]))
                )
        return m
