"""cocotb on Verilator: the streaming SR-LUT engine equals the golden bit for bit.

Small frames and coarse (6-/5-bit) seeded tables keep the Verilog and the simulation short;
the released tables run through the same golden in ``test_srlut.py``.
"""

import pytest

from frontends.lutnet.srlut import random_plan
from rtl_gen.lutnet.artefact import write_srlut_artefact

from .simcheck import check

pytestmark = pytest.mark.sim


def test_srlut_s_matches_golden(tmp_path):
    plan = random_plan("S", 6, seed=3)
    h, w = 9, 13
    cycles = check(
        write_srlut_artefact, plan, tmp_path, h=h, w=w, ports=1, backpressure=False, seed=3
    )
    steps = 4 * (plan.n + 1)
    # One LR pixel per 20 cycles once streaming. Frame 0 adds filling the first two rows and
    # draining the last row's HR pixels (16 per LR pixel, one a cycle); a later frame's
    # period adds refilling two rows, as the line buffer holds one frame at a time.
    assert h * w * steps <= cycles[0] <= h * w * steps + 2 * (w + 2) + 16 * w + 20, cycles
    assert (cycles[1:] >= h * w * steps).all(), cycles
    assert (cycles[1:] <= h * w * steps + 2 * (w + 2) + 20).all(), cycles


def test_srlut_f_two_ports_with_backpressure(tmp_path):
    plan = random_plan("F", 5, seed=5)
    check(write_srlut_artefact, plan, tmp_path, h=10, w=11, ports=2, backpressure=True, seed=5)
