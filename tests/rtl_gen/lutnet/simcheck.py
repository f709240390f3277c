"""Frames and the RTL-equals-golden check shared by the lutnet engines' Verilator tests."""

import numpy as np
from skimage import data as skdata

from sim.runner import run_sim


def frames(h, w, seed):
    """Natural crops (camera man's edges, astronaut's green channel), constant 0 and 255, and
    noise in which every border pixel differs."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            skdata.camera()[180 : 180 + h, 240 : 240 + w],
            skdata.astronaut()[90 : 90 + h, 190 : 190 + w, 1],
            np.zeros((h, w), np.uint8),
            np.full((h, w), 255, np.uint8),
            rng.integers(0, 256, (h, w), dtype=np.uint8),
        ]
    )


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


EDGE_VALUES = (0, 15, 16, 240, 255)


def rgb_frames(side=32):
    """RGB frames for the ICELUT engine: crops of astronaut, chelsea and coffee, constant 0
    and 255, and every (R, G, B) combination of the edge values 0, 15, 16, 240, 255 (cell and
    fraction limits) tiled over the frame."""
    combos = np.array(
        [[r, g, b] for r in EDGE_VALUES for g in EDGE_VALUES for b in EDGE_VALUES], np.uint8
    )
    edges = np.resize(combos, (side * side, 3)).reshape(side, side, 3)
    return np.stack(
        [
            skdata.astronaut()[100 : 100 + side, 200 : 200 + side],
            skdata.chelsea()[150 : 150 + side, 220 : 220 + side],
            skdata.coffee()[200 : 200 + side, 300 : 300 + side],
            np.zeros((side, side, 3), np.uint8),
            np.full((side, side, 3), 255, np.uint8),
            edges,
        ]
    )


def extreme_luts(n, seed):
    """``n`` seeded random residual LUTs (3, 17, 17, 17) whose entries include -256 and 255
    at every vertex the edge values reach, so the clamp is exercised in both directions."""
    rng = np.random.default_rng(seed)
    luts = rng.integers(-256, 256, (n, 3, 17, 17, 17))
    corner = [0, 1, 15, 16]
    sel = np.ix_(range(3), corner, corner, corner)
    for k in range(n):
        luts[k][sel] = rng.choice([-256, 255], size=(3, 4, 4, 4))
    return luts
