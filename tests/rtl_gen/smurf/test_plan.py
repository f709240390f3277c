"""The golden model: solver, design choices, cycle model against analytic and hand cases."""

import dataclasses

import numpy as np
import pytest

from rtl_gen.smurf import DesignError, FsmBasis, SmurfOutput, SmurfPlan, design
from rtl_gen.smurf.basis import BernsteinBasis
from rtl_gen.smurf.solver import joint, probability_grid, solve


def stanh_plan(n=8, length=10, warmup=0):
    w = tuple(256 if i >= n // 2 else 0 for i in range(n))
    return SmurfPlan(
        inputs=("x",),
        ranges=((-1.0, 1.0),),
        bases=(FsmBasis(n),),
        outputs=(SmurfOutput("stanh", -1.0, 1.0, w),),
        length=length,
        warmup=warmup,
    )


def test_solver_recovers_a_representable_target():
    bases = (FsmBasis(5), BernsteinBasis(3))
    w_true = np.random.default_rng(3).uniform(0, 1, 5 * 4)
    grid = probability_grid(2, 21)
    target = joint(bases, grid) @ w_true
    w = solve(bases, target, grid)
    assert np.abs(joint(bases, grid) @ w - target).max() < 1e-9


def test_stanh_by_hand():
    # Code 0: X is always 0, the counter walks 4, 3, 2, 1, 0, 0, ...; only state 4 >= N/2.
    plan = stanh_plan()
    assert plan.deterministic_gate
    assert plan.reference(np.array([[0]])).tolist() == [[1]]
    # With 3 warmup clocks the walk is counted from state 1: nothing.
    assert dataclasses.replace(plan, warmup=3).reference(np.array([[0]])).tolist() == [[0]]


def test_address_concatenates_index_fields():
    plan = SmurfPlan(
        inputs=("x", "y"),
        ranges=((0.0, 1.0),) * 2,
        bases=(FsmBasis(3), BernsteinBasis(4)),
        outputs=(SmurfOutput("f", 0.0, 1.0, tuple(range(15))),),
    )
    # s_0 in 0..2 takes 2 bits, s_1 in 0..4 takes 3: address = s_0 | s_1 << 2.
    assert plan.address_bits == 5
    assert plan.addresses().tolist() == [s0 | s1 << 2 for s1 in range(5) for s0 in range(3)]
    rom = plan.rom(0)
    assert rom[2 | 4 << 2] == 14 and rom[3] == 0 and len(rom) == 32


@pytest.mark.parametrize(
    "texts, kw",
    [
        (["tanh(4*x)"], {"radix": 8}),
        (
            ["sqrt(x**2 + y**2) / sqrt(2)"],
            {"radix": 4, "ranges": {"x": (0, 1), "y": (0, 1)}, "length": 256},
        ),
        (["x*y"], {"basis": "bernstein", "radix": 3, "length": 256}),
    ],
)
def test_monte_carlo_mean_agrees_with_analytic_within_3_sigma(texts, kw):
    plan, _ = design(texts, **kw)
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 256, size=(6, plan.m))
    codes[0] = 0
    runs = 48
    seeds = rng.integers(1, 1 << 16, size=(runs, plan.n_lfsrs))
    p = plan.simulate(codes, seeds)[..., 0] / plan.length
    mean, sigma = p.mean(axis=0), p.std(axis=0, ddof=1) / np.sqrt(runs)
    expected = plan.analytic(codes)[:, 0]
    assert (np.abs(mean - expected) <= 3 * sigma + 1e-12).all(), (mean - expected) / sigma


def test_fit_errors_match_the_spec_scale():
    # specs/smurf.md §1.6: tanh(4x), N = 8, about 1e-3 before coefficient quantisation;
    # 8-bit thresholds add about 1.7e-3 (§1.6, "coefficient bits").
    _, fit = design(["tanh(4*x)"], radix=8)
    assert fit.basis == "fsm" and fit.points == 256
    assert fit.rmse[0] < 3e-3
    _, coarse = design(["tanh(4*x)"], radix=4)
    assert coarse.rmse[0] > 10 * fit.rmse[0]


def test_auto_picks_bernstein_where_the_fsm_cannot_fit():
    plan, fit = design(["sin(pi*x)"], basis="auto", ranges={"x": (0, 1)})
    assert fit.basis == "bernstein" and isinstance(plan.bases[0], BernsteinBasis)
    assert fit.alternatives["fsm"][0] > 2 * fit.alternatives["bernstein"][0]
    plan, fit = design(["tanh(4*x)"], basis="auto")
    assert fit.basis == "fsm"


def test_output_encodings():
    plan, _ = design(["exp(-x)"], ranges={"x": (0, 1)})
    assert (plan.outputs[0].lo, plan.outputs[0].hi) == (0.0, 1.0)
    plan, _ = design(["tanh(x)"])
    assert (plan.outputs[0].lo, plan.outputs[0].hi) == (-1.0, 1.0)
    plan, _ = design(["exp(x)"])
    assert np.isclose(plan.outputs[0].lo, np.exp(-1)) and np.isclose(plan.outputs[0].hi, np.e)


@pytest.mark.parametrize(
    "texts, kw, message",
    [
        (
            ["exp(x)"],
            {"encoding": "bipolar"},
            r"^'exp\(x\)' spans \[0\.3679, 2\.718\] on x in \[-1, 1\], outside the output range "
            r"\[-1, 1\]; use --encoding auto or --out-range LO:HI$",
        ),
        (["log(x)"], {}, r"^'log\(x\)' is not finite everywhere on x in \[-1, 1\]; narrow"),
        (["tanh(x)"], {"ranges": {"y": (0, 1)}}, r"^--range names 'y', which is not an input"),
        (["tanh(x)"], {"ranges": {"x": (1, 0)}}, r"^input 'x': range 1:0 is empty"),
        (["x*y"], {"radix": [4, 4, 4]}, r"^3 radices given for 2 inputs \(x, y\)"),
        (["tanh(x)"], {"basis": "cordic"}, r"^unknown basis 'cordic'; choose one of fsm, "),
        (["x+"], {}, r"^'x\+' is not a valid expression"),
    ],
)
def test_design_errors_name_the_cause(texts, kw, message):
    with pytest.raises(DesignError, match=message):
        design(texts, **kw)


def test_plan_round_trips_through_its_dict():
    plan, _ = design(["sigmoid(4*(x-y))", "sigmoid(4*(y-x))"], radix=[4, 6], length=128)
    again = SmurfPlan.from_dict(plan.to_dict())
    assert again == plan
    codes = np.array([[3, 250], [128, 128]])
    assert (again.reference(codes) == plan.reference(codes)).all()


def test_auto_keeps_the_fsm_when_it_fits_well_enough():
    # exp(-x) on [0, 1]: FSM fit about 1.1e-3, Bernstein about 4e-4; both far below the
    # stochastic noise, so the cheaper FSM stays.
    _, fit = design(["exp(-x)"], basis="auto", ranges={"x": (0, 1)})
    assert fit.alternatives["bernstein"][0] * 2 < fit.alternatives["fsm"][0] < 0.01
    assert fit.basis == "fsm"


def test_bernstein_draws_share_lfsrs_two_to_one_fsm_draws_do_not():
    plan = SmurfPlan(
        inputs=("x", "y"),
        ranges=((0.0, 1.0),) * 2,
        bases=(BernsteinBasis(3), FsmBasis(4)),
        outputs=(SmurfOutput("f", 0.0, 1.0, (128,) * 16),),
    )
    assert plan.draw_map == (((0, 0), (0, 8), (1, 0)), ((0, 0),))
    assert [[l.leap for l in g] for g in plan.lfsrs] == [[16, 8], [8], [8]]
    assert plan.n_lfsrs == 4 and len({l.taps for g in plan.lfsrs for l in g}) == 4
