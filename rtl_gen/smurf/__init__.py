"""SMURF: stochastic-computing function units (issue #5, specs/smurf.md).

``design(["tanh(4*x)"], radix=8, length=1024)`` fits a ``SmurfPlan``; the plan's
``reference()`` is the bit-exact cycle model, ``analytic()`` the steady-state output;
``SmurfUnit(plan)`` is the function unit and ``SmurfEngine(plan)`` the unit behind the element
streams a board top drives; ``write_smurf_artefact`` writes an artefact folder whose top is
the engine.
"""

from .basis import BernsteinBasis, FsmBasis
from .design import DesignError, FitReport, design, sweep_codes
from .emit import write_smurf_artefact
from .expr import ExpressionError, parse
from .plan import SmurfOutput, SmurfPlan

__all__ = [
    "BernsteinBasis",
    "DesignError",
    "ExpressionError",
    "FitReport",
    "FsmBasis",
    "SmurfOutput",
    "SmurfPlan",
    "design",
    "parse",
    "sweep_codes",
    "write_smurf_artefact",
]
