"""The float functions the importer knows by name (``nonlinear`` nodes' ``function``):
``FUNCTIONS[name](real values, attrs)``, evaluated in float64 to build a node's code table
(``ops._emit_nonlinear``) and to recognise a float island as one of them (``island``)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FUNCTIONS"]


def _gelu(v):
    from scipy.special import erf

    return 0.5 * v * (1.0 + erf(v / math.sqrt(2.0)))


FUNCTIONS = {
    "sigmoid": lambda v, a: 1.0 / (1.0 + np.exp(-v)),
    "tanh": lambda v, a: np.tanh(v),
    "exp": lambda v, a: np.exp(v),
    "gelu": lambda v, a: _gelu(v),
    "gelu_tanh": lambda v, a: (
        0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    ),
    "leaky_relu": lambda v, a: np.where(v >= 0, v, a.get("alpha", 0.01) * v),
    "hard_sigmoid": lambda v, a: np.clip(a.get("alpha", 0.2) * v + a.get("beta", 0.5), 0, 1),
    "hard_swish": lambda v, a: v * np.clip(v / 6.0 + 0.5, 0, 1),
}
