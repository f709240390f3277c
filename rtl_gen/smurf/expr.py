"""Safe parsing of a target function such as ``"tanh(4*x)"`` into a numpy callable.

The text is parsed with ``ast`` and walked against a whitelist: numbers, the constants ``pi``
and ``e``, ``+ - * / **``, unary minus and calls of the functions in ``FUNCTIONS``. Every other
name is an input. Nothing is ``eval``-ed, so attribute access, subscripts, lambdas, keywords
and imports are rejected with the offending piece named.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
from scipy import special

from frontends.errors import NnloomError

__all__ = ["Expression", "ExpressionError", "parse", "FUNCTIONS"]


class ExpressionError(NnloomError, ValueError):
    """A target expression that cannot be parsed or is not allowed."""


def _gelu(x):
    return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


FUNCTIONS = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arctanh": np.arctanh,
    "exp": np.exp,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "erf": special.erf,
    "sigmoid": special.expit,
    "gelu": _gelu,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.logaddexp(0, x),
    "minimum": np.minimum,
    "maximum": np.maximum,
    "hypot": np.hypot,
    "arctan2": np.arctan2,
}
CONSTANTS = {"pi": np.pi, "e": np.e}
_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive}


@dataclass(frozen=True)
class Expression:
    """A parsed target: ``text``, its ``inputs`` (in argument order) and ``__call__``."""

    text: str
    inputs: tuple[str, ...]
    tree: ast.Expression

    def __call__(self, *args: np.ndarray) -> np.ndarray:
        env = dict(zip(self.inputs, (np.asarray(a, dtype=float) for a in args)))
        with np.errstate(all="ignore"):
            out = _eval(self.tree.body, env)
        return np.broadcast_to(np.asarray(out, dtype=float), np.shape(args[0])).copy()


def _eval(node, env):
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id] if node.id in env else CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env))
    return FUNCTIONS[node.func.id](*(_eval(a, env) for a in node.args))


def _check(node, text: str, names: list[str]):
    where = f"in '{text}'"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"{where}: constant {node.value!r} is not a number")
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExpressionError(f"{where}: '{node.id}' is a function; call it, e.g. {node.id}(x)")
        if node.id not in CONSTANTS and node.id not in names:
            names.append(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError(
                f"{where}: operator '{ast.unparse(node)}' is not allowed; use + - * / **"
            )
        _check(node.left, text, names)
        _check(node.right, text, names)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"{where}: operator in '{ast.unparse(node)}' is not allowed")
        _check(node.operand, text, names)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(
                f"{where}: '{ast.unparse(node.func)}' is not an allowed function; allowed: "
                f"{', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise ExpressionError(
                f"{where}: keyword arguments in '{ast.unparse(node)}' are not allowed"
            )
        for a in node.args:
            _check(a, text, names)
    else:
        raise ExpressionError(
            f"{where}: '{ast.unparse(node)}' is not allowed; use numbers, "
            f"input names, + - * / ** and functions such as tanh(x)"
        )


def parse(text: str, inputs: tuple[str, ...] | None = None) -> Expression:
    """Parse ``text``; its inputs are ``inputs`` when given, else its free names, sorted."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"'{text}' is not a valid expression: {exc.msg}") from None
    names: list[str] = []
    _check(tree.body, text, names)
    if inputs is None:
        inputs = tuple(sorted(names))
    else:
        unknown = [n for n in names if n not in inputs]
        if unknown:
            raise ExpressionError(
                f"in '{text}': name '{unknown[0]}' is not one of the inputs ({', '.join(inputs)})"
            )
    if not 1 <= len(inputs) <= 3:
        raise ExpressionError(
            f"'{text}' has {len(inputs)} inputs "
            f"({', '.join(inputs) or 'none'}); a SMURF unit takes 1 to 3"
        )
    return Expression(text, tuple(inputs), tree)
