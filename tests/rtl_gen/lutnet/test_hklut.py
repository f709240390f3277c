"""HKLUT hardware arithmetic: the division by six, LSB lane widths, SPRAM initial contents."""

import numpy as np


def test_division_by_six_is_exact_where_the_hardware_divides():
    from rtl_gen.lutnet.hklut.stage import div6_floor

    u = np.arange(0, 6 * 255 + 6)  # the RTL clamps V ≥ 1530 to 255 before dividing
    np.testing.assert_array_equal(div6_floor(u), u // 6)


def test_released_lsb_lanes_are_5_bits(hklut_released):
    from rtl_gen.lutnet.hklut.stage import lsb_lane_bits

    plan = hklut_released
    assert [lsb_lane_bits(s.lsb) for s in plan.stages] == [5, 5]  # entries -11..8, -7..8


def test_lsb_lanes_are_as_narrow_as_the_entries():
    from rtl_gen.lutnet.hklut.stage import lsb_lane_bits, lsb_words

    assert lsb_lane_bits([np.array([[-8, 7]] * 256)]) == 4
    assert lsb_lane_bits([np.array([[-9, 7]] * 256)]) == 5
    t = np.array([[-16, 15, 0, -1]] * 256)
    assert lsb_lane_bits([t]) == 5
    word = lsb_words([t], 5)[0]
    lanes = [(word >> (5 * l)) & 31 for l in range(4)]
    assert [v - 32 if v >= 16 else v for v in lanes] == [-16, 15, 0, -1]


def test_spram_memories_lose_their_initial_zeros_only():
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    from rtl_gen.emit import emit_verilog
    from rtl_gen.lutnet.memories import strip_spram_init

    class Two(wiring.Component):
        a: In(3)
        x: Out(16)
        y: Out(16)

        def elaborate(self, platform):
            m = Module()
            m.submodules.msb = msb = Memory(shape=16, depth=8, init=[])
            m.submodules.lsb = lsb = Memory(shape=16, depth=8, init=[0, 5])
            wp, rp, rl = msb.write_port(), msb.read_port(), lsb.read_port()
            m.d.comb += [
                wp.addr.eq(self.a),
                wp.data.eq(self.a),
                wp.en.eq(1),
                rp.addr.eq(self.a),
                rl.addr.eq(self.a),
                self.x.eq(rp.data),
                self.y.eq(rl.data),
            ]
            return m

    text = emit_verilog(Two(), "two")
    assert "msb[7] = " in text
    stripped = strip_spram_init(text)
    assert "msb[" in stripped and "msb[0] = " not in stripped
    assert "lsb[1] = " in stripped and "lsb[7] = " in stripped
