"""The integer neuron models: ST-BIF's settled tracer is the quantized activation whatever the
input order and timing; IF/LIF comparators, resets and leaks."""

import numpy as np
import pytest

from frontends.snn import cuba_lif_step, if_step, lif_step, qann, stbif_step


def run_stbif(xs, *, theta, smin, smax, v0, extra=40):
    v = np.full(xs.shape[1], v0, np.int64)
    s = np.zeros(xs.shape[1], np.int64)
    total = np.zeros(xs.shape[1], np.int64)
    for x in list(xs) + [np.zeros(xs.shape[1], np.int64)] * (smax - smin + extra):
        v, s, spike = stbif_step(v, s, x, theta=theta, smin=smin, smax=smax)
        total += spike
    return s, total, v


@pytest.mark.parametrize("theta", [1, 2, 7, 8, 255])
@pytest.mark.parametrize("smin,smax", [(0, 15), (-8, 7), (-1, 1), (0, 255)])
def test_stbif_tracer_equals_qann_for_any_schedule(theta, smin, smax):
    rng = np.random.default_rng(theta * 100 + smax)
    n, steps = 2000, 6
    xs = rng.integers(-6 * theta * max(smax, 1), 6 * theta * max(smax, 1) + 1, size=(steps, n))
    xs[:, : n // 4] = 0  # quiet neurons
    xs[1:, n // 4 : n // 2] = 0  # all input at t = 0
    xs[:, -8:] = [[theta * smax * 3], [-theta * smax * 7], [0], [1], [-1], [0]]  # reversals
    s, total, v = run_stbif(xs, theta=theta, smin=smin, smax=smax, v0=theta // 2)
    want = qann(xs.sum(axis=0), theta=theta, v0=theta // 2, smin=smin, smax=smax)
    assert (s == want).all()
    assert (total == s).all()  # tracer = summed spikes
    settled = (0 <= v) & (v < theta) | (s == smax) | (s == smin)
    assert settled.all()


def test_stbif_is_bipolar_and_bounded():
    v, s, spike = stbif_step(
        np.array([10, -1, -1, 20]), np.array([0, 1, 0, 3]), 0, theta=4, smin=0, smax=3
    )
    assert spike.tolist() == [1, -1, 0, 0]  # -1 only above smin, +1 below smax
    assert v.tolist() == [6, 3, -1, 20] and s.tolist() == [1, 0, 0, 3]


def test_if_comparator_and_reset():
    _, spike = if_step(np.array([0, 0]), np.array([5, 6]), theta=5, cmp=">")
    assert spike.tolist() == [0, 1]
    v, spike = if_step(np.array([0, 0]), np.array([5, 9]), theta=5, cmp=">=")
    assert spike.tolist() == [1, 1] and v.tolist() == [0, 4]  # subtract
    v, _ = if_step(np.array([0]), np.array([9]), theta=5, reset="value", v_reset=-2)
    assert v.tolist() == [-2]
    with pytest.raises(ValueError, match=r"^comparator '<' is not one of >, >=$"):
        if_step(0, 1, theta=1, cmp="<")


def test_lif_shift_leak_equals_general_beta_when_exact():
    v = np.array([64, -64, 0, 96])
    shifted, _ = lif_step(v, 0, theta=1000, leak_shift=2)
    general, _ = lif_step(v, 0, theta=1000, beta=3, beta_bits=2)  # 3/4 = 1 - 2**-2
    assert shifted.tolist() == general.tolist() == [48, -48, 0, 72]
    leaked, _ = lif_step(np.array([7]), 0, theta=1000, leak_shift=1)  # 7 - (7 >> 1) = 4
    assert leaked.tolist() == [4]


def test_lif_delayed_reset_subtracts_undecayed_theta():
    # snnTorch reset_delay: mem_t = beta*mem_{t-1} + x_t - theta*spike_{t-1}
    v, spike = lif_step(
        np.array([100]), np.array([0]), theta=10, leak_shift=1, prev_spike=np.array([1])
    )
    assert v.tolist() == [40] and spike.tolist() == [1]
    v, spike = lif_step(np.array([100]), np.array([0]), theta=10, leak_shift=1)
    assert v.tolist() == [40] and spike.tolist() == [1]  # reset in the firing step
    v, spike = lif_step(np.array([12]), np.array([0]), theta=10, leak_shift=1)
    assert v.tolist() == [6] and spike.tolist() == [0]


def test_cuba_lif_current_then_membrane():
    # I = 8 - (8 >> 2) + 4 = 10; V = 0 - (0 >> 1) + 10 = 10
    v, i, spike = cuba_lif_step(
        np.array([0]), np.array([8]), np.array([4]), theta=100, syn_shift=2, leak_shift=1
    )
    assert (v.tolist(), i.tolist(), spike.tolist()) == ([10], [10], [0])
    # the membrane takes this step's current: one input spike fires at once (snnTorch order)
    v, i, spike = cuba_lif_step(
        np.array([0]), np.array([0]), np.array([5]), theta=4, syn_shift=2, leak_shift=1
    )
    assert (v.tolist(), i.tolist(), spike.tolist()) == ([1], [5], [1])
    # the reset acts on V only; the current carries on
    v, i, spike = cuba_lif_step(
        np.array([3]),
        np.array([6]),
        np.array([0]),
        theta=4,
        syn_shift=1,
        leak_shift=2,
        reset="value",
        v_reset=-1,
    )
    assert (v.tolist(), i.tolist(), spike.tolist()) == ([-1], [3], [1])


def test_cuba_lif_threshold_edge_and_general_decays():
    # H = 6 - (6 >> 1) + 4 - (4 >> 2) + 0 = 3 + 3 = 6 = theta: '>' holds, '>=' fires
    args = dict(theta=6, syn_shift=2, leak_shift=1)
    assert cuba_lif_step(np.array([6]), np.array([4]), 0, cmp=">", **args)[2].tolist() == [0]
    assert cuba_lif_step(np.array([6]), np.array([4]), 0, cmp=">=", **args)[2].tolist() == [1]
    v = np.array([64, -64, 0, 96, 5])
    i = np.array([-40, 40, 9, 0, 13])
    shifted = cuba_lif_step(v, i, 3, theta=10**6, syn_shift=2, leak_shift=3)
    general = cuba_lif_step(v, i, 3, theta=10**6, alpha=6, beta=7, beta_bits=3)
    assert shifted[1].tolist() == [-27, 33, 10, 3, 13]  # floor shifts
    assert general[1].tolist() == [-27, 33, 10, 3, 13]  # (6 i + 4) >> 3
    assert shifted[0].tolist() == [29, -23, 10, 87, 18]  # 5 - (5 >> 3) = 5
    assert general[0].tolist() == [29, -23, 10, 87, 17]  # (7*5 + 4) >> 3 = 4
    with pytest.raises(ValueError, match=r"^give exactly one of leak_shift= or beta=$"):
        cuba_lif_step(v, i, 0, theta=1, leak_shift=1, beta=3, syn_shift=1)
