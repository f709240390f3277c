"""cocotb on Verilator: the streaming ICELUT apply engine equals the golden bit for bit.

Each frame's residual LUT is streamed into ``load`` before its pixels (the statistics path
runs on the host, in the golden). Frames: crops of astronaut, chelsea and coffee, constant 0
and 255, and every combination of the edge values 0, 15, 16, 240, 255 per channel.
"""

import numpy as np
import pytest

from frontends.lutnet.icelut import random_plan
from rtl_gen.lutnet.artefact import write_icelut_artefact
from rtl_gen.lutnet.icelut.engine import LOAD_WORDS, PIPELINE_LATENCY, pixel_latency
from sim.runner import run_sim

from .simcheck import extreme_luts, rgb_frames

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """One Verilator build per distinct Verilog for the whole module (the RTL does not
    depend on the tables)."""
    return tmp_path_factory.mktemp("icelut_builds")


def check(tmp_path, builds, plan, frames, luts, *, backpressure, seed):
    art = write_icelut_artefact(plan, tmp_path / "art", frames=frames, luts=luts)
    result = run_sim(art, backpressure=backpressure, seed=seed, build_root=builds)
    assert result.passed, result.mismatches
    assert result.mismatching_elements == 0 and result.vectors == len(frames)
    with np.load(result.outputs, allow_pickle=False) as f:
        got, cycles = f["outputs"], f["cycles"]
    if luts is None:
        want = np.stack([plan.reference(x) for x in frames])
    else:
        want = np.stack([plan.apply(x, t) for x, t in zip(frames, luts)])
    np.testing.assert_array_equal(got, want)
    return got, cycles


def test_tetrahedral_random_extreme_luts(tmp_path, builds):
    frames = rgb_frames(32)
    luts = extreme_luts(len(frames), seed=11)
    got, cycles = check(tmp_path, builds, random_plan(1), frames, luts, backpressure=False, seed=3)
    assert (got == 0).any() and (got == 255).any()
    # One pixel a cycle after the frame's LUT (4913 words, one a cycle); the next LUT's load
    # overlaps the pipeline's drain, so a frame's period is exactly load + pixels.
    pixels = 32 * 32
    assert cycles[0] == LOAD_WORDS + pixels + PIPELINE_LATENCY, cycles
    assert (cycles[1:] == LOAD_WORDS + pixels).all(), cycles


def test_statistics_path_luts_with_backpressure(tmp_path, builds):
    # Each frame's LUT from the golden's statistics path (thumbnail, features, split FC,
    # fusion), as `nnloom generate` makes them; random input gaps and output stalls.
    frames = rgb_frames(32)[[0, 1, 2, 5]]
    check(tmp_path, builds, random_plan(2), frames, None, backpressure=True, seed=5)


@pytest.mark.slow
def test_trilinear(tmp_path, builds):
    # Slow: its own Verilator build (about 2 minutes on a loaded 2-core machine).
    frames = rgb_frames(32)[[0, 4, 5]]
    check(
        tmp_path,
        builds,
        random_plan(3, interpolation="trilinear"),
        frames,
        extreme_luts(len(frames), seed=12),
        backpressure=False,
        seed=7,
    )


def test_up5k_spram_two_cycles_a_pixel(tmp_path, builds):
    # R3 in two SPRAM copies (UP5K): two vertices a cycle, a pixel every 2 cycles.
    frames = rgb_frames(32)[[0, 3, 4, 5]]
    luts = extreme_luts(len(frames), seed=13)
    art = write_icelut_artefact(
        random_plan(4), tmp_path / "art", frames=frames, luts=luts, family="ice40"
    )
    result = run_sim(art, backpressure=False, seed=9, build_root=builds)
    assert result.passed, result.mismatches
    with np.load(result.outputs, allow_pickle=False) as f:
        got, cycles = f["outputs"], f["cycles"]
    plan = random_plan(4)
    np.testing.assert_array_equal(got, np.stack([plan.apply(x, t) for x, t in zip(frames, luts)]))
    # Frame 0: the load, a pixel every 2 cycles, the last one's latency. Later frames: the
    # next load starts 2 cycles after a frame's last pixel is taken (its second step, then
    # the read of its registered addresses), so the period is load + 2 per pixel + 2.
    pixels, latency = 32 * 32, pixel_latency(memory="spram")
    assert cycles[0] == LOAD_WORDS + 2 * (pixels - 1) + latency + 1, cycles
    assert (cycles[1:] == LOAD_WORDS + 2 * pixels + 2).all(), cycles
    # The same Verilog with random input, load and output gaps.
    result = run_sim(art, backpressure=True, seed=10, limit=2, build_root=builds)
    assert result.passed and result.vectors == 2, result.mismatches
