"""``rtl_gen.gemm.spram``: the SB_SPRAM256KA memories as synthesized (Yosys' model of the
primitive under Verilator) and as Amaranth simulates them agree with a reference dictionary
on random reads and writes; block counts."""

from pathlib import Path

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.emit import emit_verilog
from rtl_gen.gemm.spram import SIM_MODEL_NAME, SpramMemory, sim_model_text, spram_blocks

WIDTHS = {8: 65536, 16: 16384, 32: 16384}


def test_blocks():
    assert spram_blocks(8, 32768) == 1
    assert spram_blocks(8, 32769) == 2
    assert spram_blocks(16, 16384) == 1
    assert spram_blocks(32, 16384) == 2
    assert spram_blocks(32, 16385) == 4
    with pytest.raises(ValueError):
        spram_blocks(24, 10)


class _Pair(wiring.Component):
    """Each width's memory as the primitive and as the behavioural model, same inputs."""

    def __init__(self):
        ports = {"we": In(1), "re": In(1)}
        for w, d in WIDTHS.items():
            ports[f"addr{w}"] = In((d - 1).bit_length())
            ports[f"wdata{w}"] = In(w)
            ports[f"rdata{w}_prim"] = Out(w)
            ports[f"rdata{w}_model"] = Out(w)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for w, d in WIDTHS.items():
            for kind in ("prim", "model"):
                mem = SpramMemory(w, d, primitive=kind == "prim")
                m.submodules[f"m{w}_{kind}"] = mem
                m.d.comb += [
                    mem.addr.eq(getattr(self, f"addr{w}")),
                    mem.wdata.eq(getattr(self, f"wdata{w}")),
                    mem.we.eq(self.we),
                    mem.re.eq(self.re),
                    getattr(self, f"rdata{w}_{kind}").eq(mem.rdata),
                ]
        return m


@pytest.mark.sim
def test_spram_memories_match_reference(tmp_path, monkeypatch):
    from cocotb_tools.runner import get_runner

    from sim.runner import VERILATOR_ARGS, verilator_env

    src = tmp_path / "spram_pair.v"
    src.write_text(emit_verilog(_Pair(), "spram_pair"))
    model = tmp_path / SIM_MODEL_NAME
    model.write_text(sim_model_text())
    for key, value in verilator_env().items():
        monkeypatch.setenv(key, value)
    runner = get_runner("verilator")
    runner.build(
        sources=[str(src), str(model)],
        hdl_toplevel="spram_pair",
        build_dir=str(tmp_path / "build"),
        build_args=VERILATOR_ARGS,
        log_file=str(tmp_path / "build.log"),
    )
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the runner passes sys.path on
    results = runner.test(
        test_module="spram_cocotb",
        hdl_toplevel="spram_pair",
        build_dir=str(tmp_path / "build"),
        test_dir=str(tmp_path),
        extra_env={"SPRAM_SEED": "3"},
        log_file=str(tmp_path / "sim.log"),
    )
    from cocotb_tools.runner import get_results

    tests, fails = get_results(results)
    assert tests == 1 and fails == 0, (tmp_path / "sim.log").read_text()[-3000:]
