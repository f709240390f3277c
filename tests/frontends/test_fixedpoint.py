from fractions import Fraction

import numpy as np
import pytest

from frontends.fixedpoint import (
    MULTIPLIER_BITS,
    quantize_linear,
    quantize_multipliers,
    requantize,
    signed_bits,
)


def _exact_requant(acc, m, shift, zp, lo, hi):
    """Round half up of acc*m/2**shift with Fractions: an independent statement of the rule."""
    v = Fraction(acc * m, 2**shift)
    floor = v.numerator // v.denominator
    r = floor + (1 if v - floor >= Fraction(1, 2) else 0)
    return min(hi, max(lo, r + zp))


@pytest.mark.parametrize("real", [1e-4, 3.3e-3, 0.0178, 0.25, 0.5, 0.999, 1.7, 100.0])
def test_multiplier_precision(real):
    (m,), s = quantize_multipliers(np.array([real]))
    assert 2 ** (MULTIPLIER_BITS - 1) <= m < 2**MULTIPLIER_BITS
    assert abs(m * 2.0**-s - real) / real < 2.0**-MULTIPLIER_BITS


def test_shared_shift_per_channel():
    m, s = quantize_multipliers(np.array([0.01, 0.002, 0.0101]))
    assert m.max() < 2**MULTIPLIER_BITS and m.max() >= 2 ** (MULTIPLIER_BITS - 1)
    assert np.allclose(m * 2.0**-s, [0.01, 0.002, 0.0101], rtol=2e-3)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_multiplier_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="positive and finite"):
        quantize_multipliers(np.array([bad]))


def test_requantize_matches_exact_rounding_on_ties_and_edges():
    rng = np.random.default_rng(3)
    m, shift = 3, 2  # acc*3/4: every residue mod 4, ties at acc*3 % 4 == 2
    accs = list(range(-20, 21)) + [-(2**30), 2**30 - 1]
    for acc in accs:
        assert requantize(acc, m, shift, 0, -(2**40), 2**40) == _exact_requant(
            acc, m, shift, 0, -(2**40), 2**40
        )
    for _ in range(2000):
        acc = int(rng.integers(-(2**24), 2**24))
        mm = int(rng.integers(1, 2**15))
        sh = int(rng.integers(1, 30))
        zp = int(rng.integers(-128, 128))
        assert requantize(acc, mm, sh, zp, -128, 127) == _exact_requant(acc, mm, sh, zp, -128, 127)


def test_requantize_rounds_half_up_not_to_even():
    # 5/2 = 2.5 -> 3 and -5/2 = -2.5 -> -2 (toward +inf); half-to-even would give 2 and -2.
    assert requantize(5, 1, 1, 0, -100, 100) == 3
    assert requantize(-5, 1, 1, 0, -100, 100) == -2


def test_requantize_saturates():
    assert requantize(10**6, 2**14, 10, 0, -128, 127) == 127
    assert requantize(-(10**6), 2**14, 10, 0, -128, 127) == -128
    assert requantize(0, 1, 1, -128, -128, 127) == -128


def test_quantize_linear_is_onnx():
    # ONNX QuantizeLinear examples with scale 0.5: round half to even, then saturate.
    q = quantize_linear(np.array([0.25, 0.75, -0.75, 100.0, -100.0]), 0.5, 0, -128, 127)
    assert q.tolist() == [0, 2, -2, 127, -128]


def test_signed_bits():
    assert signed_bits(-128, 127) == 8
    assert signed_bits(-129, 0) == 9
    assert signed_bits(0, 128) == 9
    assert signed_bits(0, 0) == 1


def test_rounding_modes_at_ties_and_signs():
    from frontends.fixedpoint import rounded_div

    acc = np.array([-7, -6, -5, -3, -1, 1, 3, 5, 6, 7])  # /2: ties at every odd value
    assert requantize(acc, 1, 1, 0, -99, 99, "half_even").tolist() == [
        -4,
        -3,
        -2,
        -2,
        0,
        0,
        2,
        2,
        3,
        4,
    ]
    assert requantize(acc, 1, 1, 0, -99, 99, "half_up").tolist() == [
        -3,
        -3,
        -2,
        -1,
        0,
        1,
        2,
        3,
        3,
        4,
    ]
    assert requantize(acc, 1, 1, 0, -99, 99, "floor").tolist() == [
        -4,
        -3,
        -3,
        -2,
        -1,
        0,
        1,
        2,
        3,
        3,
    ]
    assert requantize(acc, 1, 1, 0, -99, 99, "ceil").tolist() == [-3, -3, -2, -1, 0, 1, 2, 3, 3, 4]
    for mode in ("half_even", "half_up", "floor", "ceil"):
        assert (rounded_div(acc, 2, mode) == requantize(acc, 1, 1, 0, -99, 99, mode)).all()
    assert rounded_div(np.array([15, 21, -15]), 6, "half_even").tolist() == [2, 4, -2]


def test_qonnx_rounding_table():
    """The table of docs/qonnx-custom-ops/quant_op.md, row by row."""
    from frontends.fixedpoint import round_qonnx

    x = np.array([5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5])
    table = {
        "ROUND": [6, 2, 2, 1, 1, -1, -1, -2, -2, -6],
        "CEIL": [6, 3, 2, 2, 1, -1, -1, -1, -2, -5],
        "FLOOR": [5, 2, 1, 1, 1, -1, -2, -2, -3, -6],
        "UP": [6, 3, 2, 2, 1, -1, -2, -2, -3, -6],
        "DOWN": [5, 2, 1, 1, 1, -1, -1, -1, -2, -5],
        "HALF_UP": [6, 3, 2, 1, 1, -1, -1, -2, -3, -6],
        "HALF_DOWN": [5, 2, 2, 1, 1, -1, -1, -2, -2, -5],
    }
    for mode, want in table.items():
        assert round_qonnx(x, mode).tolist() == want, mode
