"""The spiking transformer's hardware units under cocotb + Verilator against the integer
spiking graph (``frontends.snn.graph``), bit for bit at every time step: the residual
increment adder on the tiny transformer block's residual add, 20 vectors (edge codes and
random), one element a cycle (cycles per step = the model's ``cycles_per_step``)."""

from pathlib import Path

import numpy as np
import pytest

from frontends.snn.graph import convert_graph, run_graph
from rtl_gen.emit import emit_verilog
from rtl_gen.snn.increment import IncrementAdder
from tests.frontends.snn.op_graphs import transformer_graph
from tests.frontends.snn.test_convert_graph import _inputs


def _unit(sg, name):
    (unit,) = [u for u in sg.units if u.node.name == name]
    return unit


def _simulate(tmp_path, monkeypatch, component, top, vectors, test):
    from cocotb_tools.runner import get_results, get_runner

    from sim.runner import VERILATOR_ARGS, verilator_env

    src = tmp_path / f"{top}.v"
    src.write_text(emit_verilog(component, top))
    np.savez(tmp_path / "vectors.npz", **vectors)
    for key, value in verilator_env().items():
        monkeypatch.setenv(key, value)
    runner = get_runner("verilator")
    runner.build(
        sources=[str(src)],
        hdl_toplevel=top,
        build_dir=str(tmp_path / "build"),
        build_args=VERILATOR_ARGS,
        log_file=str(tmp_path / "build.log"),
    )
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    results = runner.test(
        test_module="units_cocotb",
        testcase=test,
        hdl_toplevel=top,
        build_dir=str(tmp_path / "build"),
        test_dir=str(tmp_path),
        extra_env={"UNIT_VECTORS": str(tmp_path / "vectors.npz")},
        log_file=str(tmp_path / "sim.log"),
    )
    tests, fails = get_results(results)
    assert tests == 1 and fails == 0, (tmp_path / "sim.log").read_text()[-3000:]


def _adder_case(seed=0, count=20):
    graph = transformer_graph(seed=seed)
    sg = convert_graph(graph)
    unit = _unit(sg, "res1")
    a, b = unit.node.inputs
    x = _inputs(graph, count - 4, seed)
    run = run_graph(sg, x, trace=(a, b, unit.node.outputs[0]))
    assert run.silent.all()
    flat = lambda name: np.moveaxis(run.trace[name], 0, 1).reshape(len(x), run.steps.max(), -1)  # noqa: E731
    ranges = tuple(
        (
            graph.tensor(t).dtype.min - sg.zero_points[t],
            graph.tensor(t).dtype.max - sg.zero_points[t],
        )
        for t in (a, b)
    )
    return unit, ranges, flat(a), flat(b), flat(unit.node.outputs[0])


def test_adder_inputs_are_spikes_and_the_model_is_exact():
    unit, ranges, da, db, spikes = _adder_case()
    assert np.abs(da).max() == 1 and np.abs(db).max() == 1 and np.abs(spikes).max() == 1
    adder = IncrementAdder(unit, ranges)
    assert adder.cycles_per_step == 32 and adder.latency == 2
    # 0 DSP: the synapse is two selects of constants, no multiplier in the netlist
    assert " * " not in emit_verilog(adder, "increment_adder")


@pytest.mark.sim
def test_increment_adder_equals_the_spiking_graph(tmp_path, monkeypatch):
    unit, ranges, da, db, spikes = _adder_case()
    assert len(da) >= 16
    adder = IncrementAdder(unit, ranges)
    vectors = dict(
        da=da, db=db, spikes=spikes, latency=adder.latency, cycles_per_step=adder.cycles_per_step
    )
    _simulate(tmp_path, monkeypatch, adder, "increment_adder", vectors, "adder_matches_golden")
