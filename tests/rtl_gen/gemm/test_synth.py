"""The overlay through Yosys and nextpnr out of context: it maps its DSP lanes and the
requantizer onto SB_MAC16s and places and routes on the UP5K."""

import pytest

from flows.synth import synthesize
from rtl_gen.emit import emit_verilog
from rtl_gen.gemm import GemmConfig, compile_graph
from rtl_gen.gemm.emit import TOP, create_engine

from .nets import dense_chain

pytestmark = pytest.mark.synth


def test_small_overlay_on_up5k(tmp_path):
    program = compile_graph(dense_chain((12, 6, 4)), GemmConfig(dsp_lanes=2, lut_lanes=2),
                            split=0.5)
    (tmp_path / f"{TOP}.v").write_text(emit_verilog(create_engine(program), TOP))
    report = synthesize([tmp_path / f"{TOP}.v"], TOP, family="ice40", out_dir=tmp_path / "s",
                        clock_mhz=24)
    assert report.cells.get("SB_MAC16", 0) >= 3        # 2 DSP lanes + the requantizer
    assert report.utilisation["ICESTORM_LC"]["used"] < 5280
    assert report.fmax_mhz > 0
