"""SMURF units for the elementwise ``nonlinear`` nodes of the IR (sigmoid, tanh, GELU, exp).

The target is the node's own table (``frontends/ir.py``: ``y = table[x - in.min]``),
dequantized: ``s_out * (table[c] - z_out)`` for input code ``c = x - in.min``. A SMURF input
code is the same ``c``, so the unit's input range is ``[s_in (min - z_in), s_in (min - z_in +
2^B))`` with ``B`` the input width. The unit approximates the table stochastically; its golden
vectors are its own cycle model, not the node's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from frontends.errors import ModelError

from .design import FitReport, design
from .plan import SmurfPlan

if TYPE_CHECKING:
    from frontends.ir import Graph, Node

__all__ = ["TableTarget", "plan_for_node", "nonlinear_nodes", "SUPPORTED"]

SUPPORTED = ("sigmoid", "tanh", "gelu", "gelu_tanh", "exp")


@dataclass(frozen=True, eq=False)
class TableTarget:
    """The dequantized table of a node as a function of the real input (nearest code)."""

    text: str
    values: np.ndarray  # real output per input code
    lo: float  # real value of code 0
    step: float  # input scale
    inputs: tuple[str, ...] = ("x",)

    def __call__(self, x):
        c = np.clip(
            np.rint((np.asarray(x, dtype=float) - self.lo) / self.step), 0, len(self.values) - 1
        ).astype(np.int64)
        return self.values[c]


def nonlinear_nodes(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op == "nonlinear"]


def plan_for_node(graph: Graph, node: Node, **options: Any) -> tuple[SmurfPlan, FitReport]:
    """Fit a one-input SMURF unit to ``node``'s table; ``options`` go to ``design``."""
    function = node.attrs["function"]
    if function not in SUPPORTED:
        raise ModelError(
            f"{node.describe()}: function '{function}' cannot be generated as a "
            f"SMURF unit; supported: {', '.join(SUPPORTED)}"
        )
    x_t, y_t = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
    s_in, z_in = float(node.attrs["input_scale"]), float(node.attrs["input_zero_point"])
    s_out = float(np.asarray(y_t.quant.scale).ravel()[0])
    z_out = float(np.asarray(y_t.quant.zero_point).ravel()[0])
    bits = x_t.dtype.width
    lo = s_in * (x_t.dtype.min - z_in)
    values = s_out * (np.asarray(node.weights["table"], dtype=float) - z_out)
    values = np.concatenate([values, np.full((1 << bits) - len(values), values[-1])])
    target = TableTarget(f"{node.name} ({function})", values, lo, s_in)
    return design([target], ranges={"x": (lo, lo + s_in * (1 << bits))}, input_bits=bits, **options)
