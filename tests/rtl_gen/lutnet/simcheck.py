"""Frames and the RTL-equals-golden check shared by the lutnet engines' Verilator tests."""

import numpy as np
from skimage import data as skdata

from sim.runner import run_sim


def frames(h, w, seed):
    """Natural crops (camera man's edges, astronaut's green channel), constant 0 and 255, and
    noise in which every border pixel differs."""
    rng = np.random.default_rng(seed)
    return np.stack([
        skdata.camera()[180:180 + h, 240:240 + w],
        skdata.astronaut()[90:90 + h, 190:190 + w, 1],
        np.zeros((h, w), np.uint8),
        np.full((h, w), 255, np.uint8),
        rng.integers(0, 256, (h, w), dtype=np.uint8),
    ])


def check(write, plan, tmp_path, *, h, w, backpressure, seed, **options):
    """Write ``plan``'s artefact with ``write(plan, dir, width=, height=, frames=,
    **options)``, simulate it and compare every output with ``plan.reference``; returns the
    cycles per frame."""
    x = frames(h, w, seed)
    art = write(plan, tmp_path / "art", width=w, height=h, frames=x, **options)
    result = run_sim(art, backpressure=backpressure, seed=seed)
    assert result.passed, result.mismatches
    assert result.mismatching_elements == 0 and result.vectors == len(x)
    with np.load(result.outputs, allow_pickle=False) as f:
        got, cycles = f["outputs"], f["cycles"]
    np.testing.assert_array_equal(got, np.stack([plan.reference(f) for f in x]))
    return cycles
