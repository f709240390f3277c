"""A SMURF unit goes through Yosys and nextpnr (YoWASP) out of context."""

import pytest

from flows.commands.smurf import synthesize_component
from rtl_gen.smurf import design
from rtl_gen.smurf.unit import SmurfUnit

pytestmark = pytest.mark.synth


def test_tanh_unit_synthesizes_on_ice40(tmp_path):
    plan, _ = design(["tanh(4*x)"], radix=8, length=1024)
    rep = synthesize_component(SmurfUnit(plan), "smurf_tanh", "ice40", tmp_path)
    # Everything is logic: no block RAM, no DSP; a clock the board (12 MHz) can run.
    assert rep["lut4"] > 0 and rep["ff"] >= 16 + 16 + 3 + 11
    assert rep["ram"] == 0 and rep["dsp"] == 0
    assert rep["fmax_mhz"] > 12
