"""Steady-state laws of the bases against closed forms derived independently (smurf.md §1.5)."""

import numpy as np
import pytest
from scipy.stats import binom

from rtl_gen.smurf.basis import BernsteinBasis, FsmBasis
from rtl_gen.smurf.solver import joint

P = np.linspace(0, 1, 101)


@pytest.mark.parametrize("n", [2, 5, 8, 16])
def test_fsm_law_is_a_distribution_and_exact_at_the_ends(n):
    pi = FsmBasis(n).stationary(P)
    assert np.allclose(pi.sum(axis=1), 1)
    assert pi[0, 0] == 1 and pi[-1, -1] == 1
    assert np.allclose(pi[50], 1 / n)  # p = 1/2: uniform


def test_fsm_law_satisfies_detailed_balance():
    pi = FsmBasis(6).stationary(P[1:-1])
    p = P[1:-1, None]
    assert np.allclose(p * pi[:, :-1], (1 - p) * pi[:, 1:])


@pytest.mark.parametrize("n", [4, 8, 16])
def test_stanh_closed_form(n):
    # Brown-Card Stanh: w_i = [i >= N/2]; bipolar y = tanh((N/2) artanh x).
    x = np.linspace(-0.95, 0.95, 39)
    pi = FsmBasis(n).stationary((x + 1) / 2)
    y = 2 * pi[:, n // 2 :].sum(axis=1) - 1
    assert np.allclose(y, np.tanh(n / 2 * np.arctanh(x)), atol=1e-12)


def test_alternating_weights_give_identity_and_and():
    w = np.arange(8) % 2
    assert np.allclose(FsmBasis(8).stationary(P) @ w, P, atol=1e-12)
    q = P[::-1]
    both = joint((FsmBasis(8), FsmBasis(4)), [P, q]) @ np.outer(np.arange(4) % 2, w).ravel()
    assert np.allclose(both, P * q, atol=1e-12)


def test_bernstein_is_the_binomial_law():
    b = BernsteinBasis(5)
    assert np.allclose(b.stationary(P), binom.pmf(np.arange(6)[None], 5, P[:, None]))


def test_fsm_step_saturates():
    b = FsmBasis(4)
    s = np.array([0, 3, 1, 3, 0])
    bits = np.array([[0, 1, 1, 0, 1]], dtype=bool)
    assert b.step(s, bits).tolist() == [0, 3, 2, 2, 1]
    assert b.reset(2).tolist() == [2, 2]
    with pytest.raises(ValueError, match=r"^radix 1 is out of range"):
        FsmBasis(1)
