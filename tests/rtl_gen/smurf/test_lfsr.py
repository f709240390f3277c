"""Leap-forward LFSRs: maximal period, the hardware's leap matrix, the Amaranth register."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.smurf.lfsr import LeapLfsr, Lfsr, leap_matrix, primitive_taps


def _period(taps, width=16):
    """Brute force, plain ints: steps until the seed 1 comes back."""
    s, n = 1, 0
    while True:
        fb = 0
        for t in taps:
            fb ^= (s >> (t - 1)) & 1
        s = ((s << 1) | fb) & ((1 << width) - 1)
        n += 1
        if s == 1 or n > 1 << width:
            return n


def test_xapp052_taps_come_first_and_are_maximal():
    taps = primitive_taps(16, 4)
    assert taps[0] == (16, 15, 13, 4)  # Xilinx XAPP052's 16-bit entry
    assert len(set(taps)) == 4
    assert _period(taps[0]) == _period(taps[3]) == 65535
    plain = [1]
    for _ in range(99):
        fb = 0
        for t in taps[0]:
            fb ^= (plain[-1] >> (t - 1)) & 1
        plain.append(((plain[-1] << 1) | fb) & 0xFFFF)
    assert Lfsr(16, taps[0], 1, 1).states(100).tolist() == plain


def test_a_non_primitive_tap_set_is_skipped():
    # x^16 + x^8 + x^4 + x^2 + 1 is reducible: (16, 8, 4, 2) has a short period.
    assert _period((16, 8, 4, 2)) < 65535
    assert (16, 8, 4, 2) not in primitive_taps(16, 60)


@pytest.mark.parametrize("leap", [1, 5, 8, 16])
def test_leap_matrix_equals_stepping(leap):
    taps = primitive_taps(16, 3)[2]
    matrix = leap_matrix(16, taps, leap)
    seq = Lfsr(16, taps, 0x1234, leap).states(50)
    for a, b in zip(seq[:-1], seq[1:]):
        bits = (a >> np.arange(16)) & 1
        nxt = (matrix.astype(int) @ bits) & 1
        assert int((nxt << np.arange(16)).sum()) == b


def test_values_are_the_low_bits_and_need_fresh_bits():
    lfsr = Lfsr(16, primitive_taps(16, 1)[0], 0xACE1, 8)
    assert (lfsr.values(20, 8) == lfsr.states(20) & 0xFF).all()
    with pytest.raises(ValueError, match=r"^a 9-bit value needs at least 9 fresh bits"):
        lfsr.values(4, 9)
    with pytest.raises(ValueError, match="non-zero"):
        Lfsr(16, (16, 15, 13, 4), 0, 8)


def test_leap_lfsr_register_matches_model():
    spec = Lfsr(16, primitive_taps(16, 2)[1], 0xBEEF, 8)
    dut = LeapLfsr(spec)
    expected = spec.states(12)
    seen = []

    async def bench(ctx):
        assert ctx.get(dut.state) == 0  # no reset value: 0 until the first load
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        ctx.set(dut.advance, 1)
        for _ in range(12):
            seen.append(ctx.get(dut.state))
            await ctx.tick()
        ctx.set(dut.load, 1)
        await ctx.tick()
        seen.append(ctx.get(dut.state))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen[:12] == expected.tolist()
    assert seen[12] == 0xBEEF


def test_with_a_leap_the_cheapest_maps_come_first():
    from rtl_gen.smurf.lfsr import leap_cost

    cheap = primitive_taps(16, 4, leap=8)
    # XAPP052's taps need 12 LUT4s for an 8-step map; these one LUT4 per fresh bit
    assert leap_cost(16, (16, 15, 13, 4), 8) == 12
    assert [leap_cost(16, t, 8) for t in cheap] == [8, 8, 8, 8]
    assert all(_period(t) == 65535 for t in cheap) and len(set(cheap)) == 4
