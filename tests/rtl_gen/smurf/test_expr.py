"""Target expressions: a whitelist walk of the AST, never eval."""

import numpy as np
import pytest

from rtl_gen.smurf.expr import ExpressionError, parse


def test_values_and_inputs():
    e = parse("tanh(4*x) + 0.5 * sigmoid(y) - gelu(x) ** 2")
    assert e.inputs == ("x", "y")
    x, y = np.array([0.3, -0.7]), np.array([1.0, 2.0])
    gelu = 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))
    assert np.allclose(e(x, y), np.tanh(4 * x) + 0.5 / (1 + np.exp(-y)) - gelu**2)
    assert np.allclose(parse("exp(-x) + pi")(np.zeros(3)), 1 + np.pi)
    assert parse("z", inputs=("x", "z")).inputs == ("x", "z")


@pytest.mark.parametrize(
    "text, message",
    [
        ("__import__('os').system('true')", r"'__import__\('os'\).system' is not an allowed"),
        ("__import__('os')", r"'__import__' is not an allowed function"),
        ("x.real", r"'x.real' is not allowed"),
        ("np.tanh(x)", r"'np.tanh' is not an allowed function"),
        ("x[0]", r"'x\[0\]' is not allowed"),
        ("x // 2", r"operator 'x // 2' is not allowed"),
        ("(lambda: 1)()", r"'lambda: 1' is not an allowed function"),
        ("tanh(x, out=x)", r"keyword arguments"),
        ("tanh", r"'tanh' is a function; call it"),
        ("'a' + x", r"constant 'a' is not a number"),
        ("tanh(4*x", r"is not a valid expression"),
        ("a + b + c + d", r"has 4 inputs \(a, b, c, d\); a SMURF unit takes 1 to 3"),
        ("2 + 3", r"has 0 inputs"),
    ],
)
def test_rejections_name_the_piece(text, message):
    with pytest.raises(ExpressionError, match=message):
        parse(text)


def test_unknown_input_name():
    with pytest.raises(
        ExpressionError,
        match=r"^in 'x \+ w': name 'w' is not one of the "
        r"inputs \(x, y\)$",
    ):
        parse("x + w", inputs=("x", "y"))
