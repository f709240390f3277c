"""``rtl_gen.emit``: a memory's initial value reaches the Verilog in blocks Yosys reads in
linear time, word for word the value Amaranth gave it."""

import re

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_gen.emit import INIT_WORDS, emit_verilog, split_memory_inits

WORD = re.compile(r"^\s+(\S+)\[(\d+)\] = (\d+'h[0-9a-f]+);$", re.MULTILINE)


class _Rom(wiring.Component):
    addr: In(8)
    data: Out(16)

    def __init__(self, words: list[int]):
        self.words = words
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = Memory(shape=16, depth=len(self.words), init=self.words)
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
        return m


def _blocks(text: str) -> list[list[str]]:
    return [WORD.findall(b) for b in re.findall(r"initial begin\n(.*?)\n\s*end\n", text, re.S)]


def test_a_large_initial_value_is_cut_into_blocks_of_the_same_words():
    words = [(i * 7919) & 0xFFFF for i in range(200)]
    text = emit_verilog(_Rom(words), "rom")
    blocks = [b for b in _blocks(text) if b]
    assert len(blocks) == -(-len(words) // INIT_WORDS)
    assert all(len(b) <= INIT_WORDS for b in blocks)
    found = {int(i): int(v.split("'h")[1], 16) for b in blocks for _, i, v in b}
    assert found == dict(enumerate(words))


def test_other_initial_blocks_are_left_as_they_are():
    text = (
        "  initial begin\n    m[0] = 8'h01;\n    m[1] = 8'h02;\n  end\n"
        "  initial begin\n    m[0] = 8'h01;\n    x = 1'h0;\n    m[1] = 8'h02;\n  end\n"
    )
    assert split_memory_inits(text, words=4) == text  # short, and not only memory words
    cut = split_memory_inits(text, words=1)
    assert cut.count("initial begin") == 3
    assert cut.endswith(text.split("  end\n", 1)[1])  # the mixed block untouched
