"""``nnloom bench smurf`` bookkeeping, with the synthesizer replaced by a recorder."""

import json

import pytest

from rtl_gen.smurf.benchmark import SYNTH_ROM_BITS, run_bench


def _fake_synth(calls):
    def synthesize(component, name, family, out_dir):
        calls.append((name, family))
        return {"lut4": 100, "ff": 50, "ram": 1, "dsp": 0, "fmax_mhz": 50.0}

    return synthesize


@pytest.mark.slow  # the fit, Monte-Carlo and baseline matching: ~15 s of CPU
def test_two_input_lut_baseline_is_estimated_not_synthesized(tmp_path):
    calls = []
    results = run_bench(
        tmp_path,
        synthesize=_fake_synth(calls),
        families=("ecp5",),
        functions=["euclid"],
        runs=2,
        plots=False,
        console=type("Quiet", (), {"print": lambda self, *a, **k: None})(),
    )
    row = results["euclid"]
    assert row["lut"]["rom_bits"] > SYNTH_ROM_BITS  # 2 x 8-bit inputs: 64 Ki entries
    lut = row["synth"]["ecp5"]["lut"]
    assert lut["estimated"] and lut["area_lut4eq"] == row["lut"]["rom_bits"] / 16
    assert ("euclid_lut", "ecp5") not in calls and ("euclid_smurf", "ecp5") in calls
    smurf_area = row["synth"]["ecp5"]["smurf"]["area_lut4eq"]
    assert row["synth"]["ecp5"]["smurf_over_lut"] == smurf_area / lut["area_lut4eq"]
    assert json.loads((tmp_path / "results.json").read_text())["euclid"]["synth"]["ecp5"]


def test_area_breakdown_groups_submodules_by_part():
    from rtl_gen.smurf.benchmark import parts_area
    from rtl_gen.smurf.unit import RANDOM_PARTS

    cell = {"lut4": 2, "ff": 1}
    modules = {
        p: dict(cell)
        for p in (
            "",
            "sng0_0",
            "sng0_0.lfsr",
            "sng1_0.lfsr",
            "basis0",
            "gate_rng",
            "gate0",
            "gate1.rom",
            "ones0",
            "ones1",
        )
    }
    parts = parts_area(modules)
    assert {p: v["area"] for p, v in parts.items()} == {
        "input SNGs": 9,
        "basis": 3,
        "gate LFSR": 3,
        "ROM + gate": 6,
        "output counters": 6,
        "control": 3,
    }
    assert RANDOM_PARTS == ("input SNGs", "gate LFSR")
