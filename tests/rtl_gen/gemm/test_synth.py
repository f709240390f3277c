"""The overlay through Yosys and nextpnr out of context: its DSP lanes run in pairs on
SB_MAC16 instances (dual 8x8), the requantizer's multipliers are inferred onto more, and it
places and routes on the UP5K."""

import pytest

from flows.synth import synthesize
from rtl_gen.emit import emit_verilog
from rtl_gen.gemm import GemmConfig, compile_graph
from rtl_gen.gemm.emit import TOP, create_engine

from .nets import dense_chain

pytestmark = pytest.mark.synth


def test_small_overlay_on_up5k(tmp_path):
    program = compile_graph(
        dense_chain((12, 6, 4)), GemmConfig(dsp_lanes=4, lut_lanes=2, dsp_pack=True), split=0.5
    )
    (tmp_path / f"{TOP}.v").write_text(emit_verilog(create_engine(program), TOP))
    report = synthesize(
        [tmp_path / f"{TOP}.v"], TOP, family="ice40", out_dir=tmp_path / "s", clock_mhz=24
    )
    # 4 DSP lanes on 2 SB_MAC16s, the requantizer on 1 or 2 more (ADD's multiplier absent)
    assert 3 <= report.cells.get("SB_MAC16", 0) <= 4
    assert report.utilisation["ICESTORM_DSP"]["used"] == report.cells["SB_MAC16"]
    assert report.utilisation["ICESTORM_LC"]["used"] < 5280
    assert report.fmax_mhz > 0
