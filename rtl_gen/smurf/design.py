"""From target expressions to a ``SmurfPlan``: ranges, output encoding, basis choice, fit.

``design(["tanh(4*x)"], radix=8, length=1024)`` parses the expressions, picks each output's
range, fits the sampling-gate thresholds in the requested basis (or, with ``basis="auto"``,
in both the FSM and the Bernstein basis, keeping the FSM unless it fits clearly worse) and
returns the plan with its ``FitReport``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from frontends.errors import NnloomError

from .basis import BernsteinBasis, FsmBasis
from .expr import Expression, ExpressionError, parse
from .plan import SmurfOutput, SmurfPlan
from .solver import probability_grid, quantize, solve

__all__ = ["design", "FitReport", "DesignError", "sweep_codes", "fit_error", "BASES", "ENCODINGS"]

log = logging.getLogger(__name__)

BASES = ("fsm", "bernstein", "auto")
ENCODINGS = ("auto", "bipolar", "unipolar")
# ``auto`` keeps the (cheaper) FSM basis unless its fit RMSE exceeds AUTO_TOLERANCE of the
# output span (below the stochastic noise of any L <= 4096) and Bernstein fits AUTO_MARGIN
# times better.
AUTO_MARGIN = 2.0
AUTO_TOLERANCE = 0.01


class DesignError(NnloomError, ValueError):
    """A request that cannot become a SMURF unit; the message names the cause and the fix."""


@dataclass(frozen=True)
class FitReport:
    """Errors of the quantised analytic output against the target, in output units."""

    rmse: tuple[float, ...]
    max_error: tuple[float, ...]
    points: int
    basis: str
    alternatives: dict  # basis kind -> per-output RMSE of that basis' fit

    def to_dict(self) -> dict:
        return {
            "rmse": list(self.rmse),
            "max_error": list(self.max_error),
            "points": self.points,
            "basis": self.basis,
            "alternatives": {k: list(v) for k, v in self.alternatives.items()},
        }


def sweep_codes(m: int, bits: int, per_axis: int | None = None) -> np.ndarray:
    """Every code for one input; an evenly spaced grid (ends included) for two or three."""
    full = 1 << bits
    if per_axis is None:
        per_axis = full if m == 1 else {2: 33, 3: 9}[m]
    axis = np.unique(np.rint(np.linspace(0, full - 1, min(per_axis, full))).astype(np.int64))
    mesh = np.meshgrid(*([axis] * m), indexing="ij")
    return np.stack([a.ravel() for a in mesh], axis=1)


def fit_error(
    plan: SmurfPlan, exprs: list[Expression], codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RMSE and max |error| per output of the analytic model on ``codes``."""
    x = plan.decode_inputs(codes)
    target = np.stack([e(*x.T) for e in exprs], axis=1)
    got = plan.decode_outputs(plan.analytic(codes) * plan.length)
    err = got - target
    return np.sqrt((err**2).mean(axis=0)), np.abs(err).max(axis=0)


def _output_range(
    expr: Expression, values: np.ndarray, encoding: str, ranges, out_range
) -> tuple[float, float]:
    where = ", ".join(f"{n} in [{a:g}, {b:g}]" for n, (a, b) in zip(expr.inputs, ranges))
    if not np.isfinite(values).all():
        raise DesignError(
            f"'{expr.text}' is not finite everywhere on {where}; narrow the "
            f"input ranges with --range NAME=LO:HI"
        )
    lo_f, hi_f = float(values.min()), float(values.max())
    if out_range is not None:
        lo, hi = out_range
    elif encoding == "bipolar":
        lo, hi = -1.0, 1.0
    elif encoding == "unipolar":
        lo, hi = 0.0, 1.0
    elif lo_f >= 0.0 and hi_f <= 1.0:
        lo, hi = 0.0, 1.0
    elif lo_f >= -1.0 and hi_f <= 1.0:
        lo, hi = -1.0, 1.0
    else:
        lo, hi = lo_f, hi_f
    if hi <= lo:
        raise DesignError(f"'{expr.text}' is constant ({lo_f:g}) on {where}; nothing to fit")
    tol = 1e-9 * (hi - lo)
    if lo_f < lo - tol or hi_f > hi + tol:
        raise DesignError(
            f"'{expr.text}' spans [{lo_f:.4g}, {hi_f:.4g}] on {where}, outside "
            f"the output range [{lo:g}, {hi:g}]; use --encoding auto or "
            f"--out-range LO:HI"
        )
    return float(lo), float(hi)


def _fit(exprs, ranges, bases, out_ranges, coef_bits, grid):
    targets = []
    x = [a + (b - a) * p for (a, b), p in zip(ranges, grid)]
    weights = []
    for e, (lo, hi) in zip(exprs, out_ranges):
        g = (e(*x) - lo) / (hi - lo)
        weights.append(tuple(int(v) for v in quantize(solve(bases, g, grid), coef_bits)))
        targets.append(g)
    return weights


def design(
    texts: list[str],
    *,
    inputs: tuple[str, ...] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    radix: int | list[int] = 8,
    basis: str = "fsm",
    degree: int | None = None,
    input_bits: int = 8,
    coef_bits: int = 8,
    length: int = 1024,
    warmup: int | None = None,
    seed: int = 1,
    encoding: str = "auto",
    out_range: tuple[float, float] | None = None,
    names: list[str] | None = None,
) -> tuple[SmurfPlan, FitReport]:
    """Fit a unit computing every expression in ``texts`` (they share the inputs).

    ``warmup`` defaults to the largest radix for the FSM basis: the clocks a counter needs to
    leave its reset state for a saturated input, without which the ends of the range are
    biased by the start (measured: 47 sigma at code 0 for tanh(4x), N = 8, L = 1024).
    """
    if basis not in BASES:
        raise DesignError(f"unknown basis '{basis}'; choose one of {', '.join(BASES)}")
    if encoding not in ENCODINGS:
        raise DesignError(f"unknown encoding '{encoding}'; choose one of {', '.join(ENCODINGS)}")
    if not texts:
        raise DesignError('give at least one expression, e.g. "tanh(4*x)"')
    try:
        if inputs is None:
            found = sorted(
                {n for t in texts for n in (parse(t).inputs if isinstance(t, str) else t.inputs)}
            )
            inputs = tuple(found)
        # A non-string target is any callable with ``text`` and ``inputs`` (see from_ir).
        exprs = [parse(t, inputs) if isinstance(t, str) else t for t in texts]
        texts = [e.text for e in exprs]
    except ExpressionError as exc:
        raise DesignError(str(exc)) from None
    ranges = dict(ranges or {})
    for name in ranges:
        if name not in inputs:
            raise DesignError(
                f"--range names '{name}', which is not an input of the "
                f"expression (inputs: {', '.join(inputs)})"
            )
    default = (0.0, 1.0) if encoding == "unipolar" else (-1.0, 1.0)
    rng = tuple(tuple(float(v) for v in ranges.get(n, default)) for n in inputs)
    for n, (a, b) in zip(inputs, rng):
        if not b > a:
            raise DesignError(f"input '{n}': range {a:g}:{b:g} is empty; give LO:HI with LO < HI")
    m = len(inputs)
    radices = [radix] * m if isinstance(radix, int) else list(radix)
    if len(radices) != m:
        raise DesignError(
            f"{len(radices)} radices given for {m} inputs "
            f"({', '.join(inputs)}); give one, or one per input"
        )
    for r in radices:
        if not 2 <= r <= 64:
            raise DesignError(f"radix {r} is out of range; choose 2..64")
    grid = probability_grid(m)
    x = [a + (b - a) * p for (a, b), p in zip(rng, grid)]
    out_ranges = [_output_range(e, e(*x), encoding, rng, out_range) for e in exprs]

    candidates = {}
    if basis in ("fsm", "auto"):
        candidates["fsm"] = tuple(FsmBasis(r) for r in radices)
    if basis in ("bernstein", "auto"):
        candidates["bernstein"] = tuple(BernsteinBasis(degree or r - 1) for r in radices)
    codes = sweep_codes(m, input_bits)
    plans, errors = {}, {}
    for kind, bases in candidates.items():
        weights = _fit(exprs, rng, bases, out_ranges, coef_bits, grid)
        outputs = tuple(
            SmurfOutput(name, lo, hi, w)
            for name, (lo, hi), w in zip(names or texts, out_ranges, weights)
        )
        warm = warmup if warmup is not None else (max(radices) if kind == "fsm" else 0)
        try:
            plans[kind] = SmurfPlan(
                inputs=inputs,
                ranges=rng,
                bases=bases,
                outputs=outputs,
                input_bits=input_bits,
                coef_bits=coef_bits,
                length=length,
                warmup=warm,
                seed=seed,
                encoding=encoding,
            )
        except ValueError as exc:
            raise DesignError(str(exc)) from None
        errors[kind] = fit_error(plans[kind], exprs, codes)
    if basis == "auto":
        span = min(hi - lo for lo, hi in out_ranges)
        fsm, bern = errors["fsm"][0].max(), errors["bernstein"][0].max()
        chosen = "bernstein" if fsm > AUTO_TOLERANCE * span and bern * AUTO_MARGIN < fsm else "fsm"
        if chosen == "bernstein":
            log.info(
                "the FSM basis fits %s with RMSE %.3g; the Bernstein basis fits it with "
                "%.3g and was picked",
                ", ".join(texts),
                fsm,
                bern,
            )
    else:
        chosen = basis
    rmse, mx = errors[chosen]
    report = FitReport(
        rmse=tuple(float(v) for v in rmse),
        max_error=tuple(float(v) for v in mx),
        points=len(codes),
        basis=chosen,
        alternatives={k: tuple(float(v) for v in e[0]) for k, e in errors.items()},
    )
    return plans[chosen], report
