"""``ConvTaps``: the address generator that scatters one input spike through a shared
convolution kernel (``frontends.snn.nir_import.ConvSynapse``), with no multiplier.

A spike of source neuron ``src`` (a position ``(c, y, x)`` of the source map, before the
non-overlapping sum pool) reaches the output neurons ``(co, oy, ox)`` with
``oy * sy + ky = y // ph + pad_y`` (and the same in x) through kernel weight
``kernel[co, c, ky, kx]``. For each ``src`` a ROM holds where its taps start and how many
there are per axis (the valid ``ky`` are one residue class mod ``sy``, a contiguous run);
then per output channel, per valid ``ky``, per valid ``kx`` one tap a cycle leaves as
``(n, w)`` -- neuron address ``(co * Ho + oy) * Wo + ox`` and weight address
``((co * C + c) * KH + ky) * KW + kx`` -- each stepped from the last by a constant.

Timing: ``start`` with ``src`` in cycle 0 (the ROM read), the first tap in cycle 1, then one
tap a cycle, ``taps(src)`` in all, none for a source no output sees. ``busy`` is high from
cycle 1 until the last tap has left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

if TYPE_CHECKING:
    from frontends.snn.nir_import import ConvSynapse

__all__ = ["ConvTaps", "tap_table", "taps", "table_bits"]


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


def _axis(pos: int, pad: int, stride: int, kernel: int, size: int) -> tuple[int, int, int]:
    """The valid kernel offsets of input position ``pos`` on one axis: ``(first k, first
    output position, count)``; offsets step by ``stride``, outputs by -1."""
    ks = [
        k
        for k in range(kernel)
        if (pos + pad - k) % stride == 0 and 0 <= (pos + pad - k) // stride < size
    ]
    if not ks:
        return 0, 0, 0
    assert ks == list(range(ks[0], ks[0] + stride * len(ks), stride))
    return ks[0], (pos + pad - ks[0]) // stride, len(ks)


def tap_table(conv: ConvSynapse) -> list[tuple[int, int, int, int]]:
    """Per source neuron: ``(w0, n0, ny, nx)`` -- the first tap's weight and neuron address
    in output channel 0 and the taps per axis (0: the spike reaches no output)."""
    c_n, h, w = conv.src_shape
    ph, pw = conv.pool
    _, hp, wp = conv.pooled_shape
    cout, _, kh, kw = conv.kernel.shape
    _, ho, wo = conv.out_shape
    table = []
    for c in range(c_n):
        for y in range(h):
            for x in range(w):
                py, px = y // ph, x // pw
                if py >= hp or px >= wp:
                    table.append((0, 0, 0, 0))
                    continue
                ky, oy, ny = _axis(py, conv.padding[0], conv.stride[0], kh, ho)
                kx, ox, nx = _axis(px, conv.padding[1], conv.stride[1], kw, wo)
                if ny == 0 or nx == 0:
                    table.append((0, 0, 0, 0))
                    continue
                table.append(((c * kh + ky) * kw + kx, oy * wo + ox, ny, nx))
    return table


def _entry_bits(conv, table) -> int:
    n_w, n_out = int(conv.kernel.size), int(np.prod(conv.out_shape))
    return (
        _bits(max(n_w - 1, 1))
        + _bits(max(n_out - 1, 1))
        + _bits(max(t[2] for t in table))
        + _bits(max(t[3] for t in table))
    )


def table_bits(conv: ConvSynapse) -> int:
    """Bits of ``ConvTaps``' ROM: one entry per source neuron."""
    table = tap_table(conv)
    return len(table) * _entry_bits(conv, table)


def taps(conv: ConvSynapse, src: int) -> list[tuple[int, int]]:
    """The ``(n, w)`` pairs ``ConvTaps`` emits for ``src``, in order (its Python model)."""
    w0, n0, ny, nx = tap_table(conv)[src]
    cout, c_n, kh, kw = conv.kernel.shape
    _, ho, wo = conv.out_shape
    sy, sx = conv.stride
    return [
        (co * ho * wo + n0 - a * wo - b, co * c_n * kh * kw + w0 + a * sy * kw + b * sx)
        for co in range(cout)
        for a in range(ny)
        for b in range(nx)
    ]


class ConvTaps(wiring.Component):
    """Emits the taps of one source spike (see the module docstring)."""

    def __init__(self, conv: ConvSynapse):
        self.conv = conv
        cout, c_n, kh, kw = conv.kernel.shape
        n_src = int(np.prod(conv.src_shape))
        n_out = int(np.prod(conv.out_shape))
        self.n_src, self.n_out, self.n_w = n_src, n_out, int(conv.kernel.size)
        super().__init__(
            {
                "start": In(1),
                "src": In(range(max(n_src, 2))),
                "busy": Out(1),
                "valid": Out(1),
                "n": Out(range(max(n_out, 2))),
                "w": Out(range(max(self.n_w, 2))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        conv = self.conv
        cout, c_n, kh, kw = conv.kernel.shape
        _, ho, wo = conv.out_shape
        sy, sx = conv.stride
        table = tap_table(conv)
        max_ny = max(max(t[2] for t in table), 1)
        max_nx = max(max(t[3] for t in table), 1)
        entry = data.StructLayout(
            {
                "w0": range(max(self.n_w, 2)),
                "n0": range(max(self.n_out, 2)),
                "ny": range(max_ny + 1),
                "nx": range(max_nx + 1),
            }
        )
        m.submodules.table = rom = Memory(
            shape=entry,
            depth=len(table),
            init=[{"w0": w0, "n0": n0, "ny": ny, "nx": nx} for w0, n0, ny, nx in table],
        )
        rd = rom.read_port()
        m.d.comb += rd.addr.eq(self.src)

        decoding, issuing = Signal(), Signal()
        ny, nx = Signal(range(max_ny + 1)), Signal(range(max_nx + 1))
        co, a, b = Signal(range(max(cout, 2))), Signal(range(max_ny)), Signal(range(max_nx))
        w_wide = range(self.n_w + c_n * kh * kw + sy * kw + 1)
        n_wide = range(-wo - 1, self.n_out + ho * wo + 1)
        w_ch, w_row, w_cur = Signal(w_wide), Signal(w_wide), Signal(w_wide)
        n_ch, n_row, n_cur = Signal(n_wide), Signal(n_wide), Signal(n_wide)
        m.d.sync += decoding.eq(self.start)
        m.d.comb += [
            self.busy.eq(decoding | issuing),
            self.valid.eq(issuing),
            self.n.eq(n_cur),
            self.w.eq(w_cur),
        ]
        with m.If(decoding):
            e = rd.data
            m.d.sync += [
                issuing.eq((e.ny != 0) & (e.nx != 0)),
                ny.eq(e.ny),
                nx.eq(e.nx),
                co.eq(0),
                a.eq(0),
                b.eq(0),
                w_ch.eq(e.w0),
                w_row.eq(e.w0),
                w_cur.eq(e.w0),
                n_ch.eq(e.n0),
                n_row.eq(e.n0),
                n_cur.eq(e.n0),
            ]
        with m.Elif(issuing):
            with m.If(b != nx - 1):
                m.d.sync += [b.eq(b + 1), w_cur.eq(w_cur + sx), n_cur.eq(n_cur - 1)]
            with m.Elif(a != ny - 1):
                m.d.sync += [
                    a.eq(a + 1),
                    b.eq(0),
                    w_row.eq(w_row + sy * kw),
                    w_cur.eq(w_row + sy * kw),
                    n_row.eq(n_row - wo),
                    n_cur.eq(n_row - wo),
                ]
            with m.Elif(co != cout - 1):
                step_w, step_n = c_n * kh * kw, ho * wo
                m.d.sync += [
                    co.eq(co + 1),
                    a.eq(0),
                    b.eq(0),
                    w_ch.eq(w_ch + step_w),
                    w_row.eq(w_ch + step_w),
                    w_cur.eq(w_ch + step_w),
                    n_ch.eq(n_ch + step_n),
                    n_row.eq(n_ch + step_n),
                    n_cur.eq(n_ch + step_n),
                ]
            with m.Else():
                m.d.sync += issuing.eq(0)
        return m
