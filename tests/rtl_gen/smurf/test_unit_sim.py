"""The SMURF artefact's Verilog (``SmurfEngine`` around ``SmurfUnit``) on Verilator (cocotb)
equals the cycle model bit for bit: counts, 8-bit output codes and latency."""

import json

import numpy as np
import pytest

from rtl_gen.smurf import BernsteinBasis, FsmBasis, SmurfOutput, SmurfPlan, design
from rtl_gen.smurf.design import sweep_codes
from rtl_gen.smurf.emit import write_smurf_artefact
from sim.runner import run_sim

pytestmark = pytest.mark.sim


def _check(plan, tmp_path, codes=None, **kw):
    art = write_smurf_artefact(plan, tmp_path / "unit", codes=codes)
    result = run_sim(art, **kw)
    assert result.passed, result.mismatches
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["parameters"]["unit_latency_cycles"] == plan.warmup + plan.length + 1
    assert manifest["latency_cycles"] == plan.m + plan.warmup + plan.length + 1 + len(plan.outputs)
    if not kw.get("backpressure"):
        assert result.cycles == manifest["latency_cycles"]
    with np.load(result.outputs) as f:
        with np.load(art / "vectors" / "golden.npz") as g:
            assert (f["outputs"] == g["outputs"]).all() and (f["counts"] == g["counts"]).all()
            assert (g["outputs"] == plan.output_codes(plan.reference(g["inputs"]))).all()
            return g["inputs"], f["counts"]


def test_one_input_every_code(tmp_path):
    plan, _ = design(["tanh(4*x)"], radix=8, length=256, warmup=8)
    codes, counts = _check(plan, tmp_path)
    assert codes[:2, 0].tolist() == [0, 255] and sorted(codes[:, 0]) == list(range(256))
    # The run computes the function, not just the model's quirks: over 32 seed sets the
    # Monte-Carlo RMSE at L = 256 is 0.13 (bipolar units); single runs (seeds 1-5) have RMSE
    # 0.05-0.11 and a worst code 0.16-0.34 off, on the steep middle of tanh(4x).
    err = plan.decode_outputs(counts)[:, 0] - np.tanh(4 * plan.decode_inputs(codes)[:, 0])
    assert np.sqrt((err**2).mean()) < 0.15 and np.abs(err).max() < 0.45


def test_two_inputs_grid_two_outputs_mixed_bases(tmp_path):
    rng = np.random.default_rng(5)
    bases = (FsmBasis(5), BernsteinBasis(3))  # radix 5: a non-power-of-two counter
    outputs = tuple(
        SmurfOutput(f"f{k}", 0.0, 1.0, tuple(rng.integers(0, 65, 20).tolist())) for k in range(2)
    )
    plan = SmurfPlan(
        inputs=("x", "y"),
        ranges=((0.0, 1.0),) * 2,
        bases=bases,
        outputs=outputs,
        input_bits=7,
        coef_bits=6,
        length=100,
        warmup=3,
        seed=9,
    )
    codes, _ = _check(
        plan, tmp_path, codes=sweep_codes(2, 7, per_axis=17), backpressure=True, seed=3
    )
    assert len(codes) == 17 * 17
