"""``ConvTaps``: its tap table scatters every source spike exactly where the dense matrix of
the convolution says (strides, paddings, pools, maps that do not divide), and the RTL emits
the table's taps, one a cycle."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from frontends.snn.nir_import import ConvSynapse
from rtl_gen.snn.conv_taps import ConvTaps, taps


def synapse(src, pool, cout, k, stride, padding, seed=0):
    c, h, w = src
    hp, wp = h // pool[0], w // pool[1]
    out = (
        cout,
        (hp + 2 * padding[0] - k[0]) // stride[0] + 1,
        (wp + 2 * padding[1] - k[1]) // stride[1] + 1,
    )
    kernel = np.random.default_rng(seed).integers(-127, 128, (cout, c) + tuple(k))
    kernel[kernel == 0] = 1  # a zero weight would hide a tap at the wrong place
    return ConvSynapse(
        src_shape=src, pool=pool, kernel=kernel, stride=stride, padding=padding, out_shape=out
    )


CASES = [
    synapse((2, 9, 9), (1, 1), 3, (5, 5), (2, 2), (1, 1)),
    synapse((2, 7, 6), (1, 1), 2, (3, 3), (1, 1), (1, 1)),
    synapse((3, 9, 8), (2, 2), 2, (3, 3), (1, 1), (1, 1)),  # odd map: a dropped row
    synapse((1, 10, 10), (1, 1), 2, (3, 2), (3, 2), (2, 0)),
    synapse((2, 6, 9), (3, 3), 2, (2, 2), (1, 1), (0, 0)),
]


@pytest.mark.parametrize("conv", CASES, ids=range(len(CASES)))
def test_taps_rebuild_the_dense_matrix(conv):
    mat = np.zeros((int(np.prod(conv.out_shape)), int(np.prod(conv.src_shape))), np.int64)
    flat = conv.kernel.reshape(-1)
    for src in range(mat.shape[1]):
        hit = [n for n, _ in taps(conv, src)]
        assert len(hit) == len(set(hit))  # one tap per output neuron
        for n, w in taps(conv, src):
            mat[n, src] += flat[w]
    assert np.array_equal(mat, conv.dense())


def test_rtl_emits_the_taps_one_a_cycle():
    conv = CASES[2]
    dut = ConvTaps(conv)
    n_src = int(np.prod(conv.src_shape))
    seen, cycles = {}, {}

    async def bench(ctx):
        for src in range(n_src):
            ctx.set(dut.src, src)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got, busy_cycles = [], 0
            while True:
                _, _, busy, valid, n, w = await ctx.tick().sample(dut.busy, dut.valid, dut.n, dut.w)
                if not busy:
                    break
                busy_cycles += 1
                if valid:
                    got.append((n, w))
            seen[src], cycles[src] = got, busy_cycles

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for src in range(n_src):
        assert seen[src] == taps(conv, src), src
        assert cycles[src] == len(taps(conv, src)) + 1  # the table read, then the taps
