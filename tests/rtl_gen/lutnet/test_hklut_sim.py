"""cocotb on Verilator: the streaming HKLUT ×4 engine equals the golden bit for bit.

Seeded tables of the released ones' size run in full (the engine's tables have a fixed size), so
each build takes
about a minute of CPU: both are slow. The default tier checks the stage unit against the
golden in Amaranth's simulator (``test_hkstage.py``). The UP5K variant has its MSB tables in
SPRAM, streamed into ``load`` first; the ECP5 variant has them as block-RAM ROM and runs
with random input gaps and output stalls.
"""

import pytest

from frontends.lutnet.hklut import random_plan
from rtl_gen.lutnet.artefact import write_hklut_artefact

from .simcheck import check

pytestmark = pytest.mark.sim


@pytest.mark.slow
def test_hklut_up5k_spram_matches_golden(tmp_path):
    plan = random_plan(3)
    h, w = 6, 7
    cycles = check(
        write_hklut_artefact, plan, tmp_path, h=h, w=w, family="ice40", backpressure=False, seed=3
    )
    # Stage 1 takes 12 cycles per intermediate pixel, 48 per LR pixel; a later frame's period
    # adds refilling the line buffers (3 LR rows through stage 0, 12 cycles a pixel).
    period = 48 * h * w
    assert (cycles[1:] >= period).all(), cycles
    assert (cycles[1:] <= period + 12 * 3 * (w + 4) + 8 * w + 40).all(), cycles


@pytest.mark.slow
def test_hklut_ecp5_rom_with_backpressure(tmp_path):
    plan = random_plan(5)
    check(write_hklut_artefact, plan, tmp_path, h=7, w=5, family="ecp5", backpressure=True, seed=5)
