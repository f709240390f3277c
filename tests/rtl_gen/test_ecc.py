"""Parity and SECDED: the golden code against its definition, the decoder against the golden."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.errors import UsageError
from rtl_gen.ecc import EccCode, EccDecoder


@pytest.mark.parametrize("k", [1, 4, 8, 11, 26, 32, 57])
def test_secded_corrects_every_single_and_detects_every_double_flip(k):
    code = EccCode("secded", k)
    rng = np.random.default_rng(k)
    words = [int(w) for w in rng.integers(0, 1 << k, size=6, dtype=np.uint64)] + [0, (1 << k) - 1]
    enc = code.encode_words(words)
    data, corr, unc = code.decode_words(enc)
    assert data == words and not corr.any() and not unc.any()
    n = code.word_bits
    for w, c in zip(words, enc):
        singles = [c ^ (1 << b) for b in range(n)]
        data, corr, unc = code.decode_words(singles)
        assert data == [w] * n and corr.all() and not unc.any()
        doubles = [c ^ (1 << a) ^ (1 << b) for a in range(n) for b in range(a + 1, n)]
        data, corr, unc = code.decode_words(doubles)
        assert unc.all() and not corr.any()


def test_check_bit_counts_are_the_least_that_work():
    # r (r - 1) / 2 >= k two-bit columns: 1 data bit needs 2 check bits, 3 need 3, 4 and
    # 6 need 4, 8 need 5, 11 and 12 need 6, 26 need 8, 57 need 12, 96 need 15; +1 overall
    ks = (1, 3, 4, 6, 8, 11, 12, 26, 57, 96)
    assert [EccCode("secded", k).check_bits for k in ks] == [3, 4, 5, 5, 6, 7, 7, 9, 13, 16]
    assert EccCode("parity", 13).check_bits == 1 and EccCode("none", 13).check_bits == 0


def test_parity_detects_odd_flip_counts_only():
    code = EccCode("parity", 8)
    (c,) = code.encode_words([0xA5])
    assert code.decode_words([c ^ 1])[2].all()
    assert code.decode_words([c ^ 0b111])[2].all()
    assert not code.decode_words([c ^ 0b11])[2].any()


def test_unknown_protection_is_refused_by_name():
    with pytest.raises(UsageError, match="--protect hamming"):
        EccCode("hamming", 8)


@pytest.mark.parametrize("protect,k", [("secded", 8), ("secded", 26), ("parity", 16)])
def test_decoder_hardware_equals_golden(protect, k):
    code = EccCode(protect, k)
    dut = EccDecoder(code)
    rng = np.random.default_rng(1)
    words = [int(w) for w in rng.integers(0, 1 << k, size=40, dtype=np.uint64)]
    cases = []
    for i, c in enumerate(code.encode_words(words)):
        flips = rng.choice(code.word_bits, size=i % 4, replace=False)
        for b in flips:
            c ^= 1 << int(b)
        cases.append(c)
    data, corr, unc = code.decode_words(cases)

    async def bench(ctx):
        for c, d, co, un in zip(cases, data, corr, unc):
            ctx.set(dut.word, c)
            assert (ctx.get(dut.data), ctx.get(dut.corrected), ctx.get(dut.error)) == (
                d,
                int(co),
                int(un),
            ), hex(c)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("protect,k", [("secded", 26), ("secded", 96), ("parity", 16)])
def test_pipelined_decoder_equals_golden_stages_later(protect, k):
    from rtl_gen.ecc import PipelinedDecoder

    code = EccCode(protect, k)
    dut = PipelinedDecoder(code)
    rng = np.random.default_rng(2)
    words = [int(rng.integers(0, 1 << 62)) % (1 << k) for _ in range(30)]
    cases = []
    for i, c in enumerate(code.encode_words(words)):
        for b in rng.choice(code.word_bits, size=i % 4, replace=False):
            c ^= 1 << int(b)
        cases.append(c)
    data, corr, unc = code.decode_words(cases)
    want = list(zip(data, corr.astype(int), unc.astype(int)))
    got = []

    async def bench(ctx):
        for c in cases + [0] * code.stages:
            ctx.set(dut.word, c)
            await ctx.tick()
            got.append((ctx.get(dut.data), ctx.get(dut.corrected), ctx.get(dut.error)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # the word set before tick t is out after `stages` ticks
    assert got[code.stages - 1 : code.stages - 1 + len(cases)] == want
    assert code.stages == {"parity": 1, "secded": 2}[protect]
