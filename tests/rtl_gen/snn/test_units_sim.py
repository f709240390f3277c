"""The spiking transformer's hardware units under cocotb + Verilator against the integer
spiking graph (``frontends.snn.graph``), bit for bit at every time step: the residual
increment adder and the differential GELU table on the tiny transformer block, SESA on its
Q x K^T, the differential max on the tiny CNN's max-pool; 20 vectors each (edge codes and
random); cycles per step equal the model's (``cycles_per_step``, ``step_cycles``)."""

from pathlib import Path

import numpy as np
import pytest

from frontends.snn.graph import convert_graph, run_graph
from rtl_gen.emit import emit_verilog
from rtl_gen.snn.diffmax import DifferentialMax
from rtl_gen.snn.difftable import DifferentialTable
from rtl_gen.snn.increment import IncrementAdder
from rtl_gen.snn.sesa import SesaUnit
from tests.frontends.snn.op_graphs import cnn_graph, transformer_graph
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
@pytest.mark.slow  # the sim tier keeps one of these Verilator builds (SESA)
def test_increment_adder_equals_the_spiking_graph(tmp_path, monkeypatch):
    unit, ranges, da, db, spikes = _adder_case()
    assert len(da) >= 16
    adder = IncrementAdder(unit, ranges)
    vectors = dict(
        da=da, db=db, spikes=spikes, latency=adder.latency, cycles_per_step=adder.cycles_per_step
    )
    _simulate(tmp_path, monkeypatch, adder, "increment_adder", vectors, "adder_matches_golden")


def _max_case(seed=0, count=20):
    graph = cnn_graph(seed=seed)
    sg = convert_graph(graph)
    unit = _unit(sg, "pool1")
    (x_name,) = unit.node.inputs
    x = _inputs(graph, count - 4, seed)
    run = run_graph(sg, x, trace=(x_name, unit.node.outputs[0]))
    assert run.silent.all()
    steps = run.steps.max()
    d = np.moveaxis(run.trace[x_name], 0, 1).reshape(len(x), steps, -1)
    out = np.moveaxis(run.trace[unit.node.outputs[0]], 0, 1).reshape(len(x), steps, -1)
    t = graph.tensor(x_name)
    zp = sg.zero_points[x_name]
    return unit, (t.dtype.min - zp, t.dtype.max - zp), d, out


def test_diffmax_model():
    unit, in_range, d, out = _max_case()
    assert np.abs(d).max() == 1 and (out == 1).any() and (out == -1).any()  # a max falls too
    dm = DifferentialMax(unit, in_range)
    assert (dm.windows, dm.taps, dm.n_in) == (27, 4, 108)
    assert dm.cycles_per_step == 108 + 1 + 27 * 4
    assert " * " not in emit_verilog(dm, "differential_max")


@pytest.mark.sim
@pytest.mark.slow  # the sim tier keeps one of these Verilator builds (SESA)
def test_differential_max_equals_the_spiking_graph(tmp_path, monkeypatch):
    unit, in_range, d, out = _max_case()
    assert len(d) >= 16
    dm = DifferentialMax(unit, in_range)
    vectors = dict(d=d, out=out, cycles_per_step=dm.cycles_per_step)
    _simulate(tmp_path, monkeypatch, dm, "differential_max", vectors, "diffmax_matches_golden")


def _sesa_case(seed=0, count=20, name="qk"):
    graph = transformer_graph(seed=seed)
    sg = convert_graph(graph)
    unit = _unit(sg, name)
    a, b = unit.node.inputs
    x = _inputs(graph, count - 4, seed)
    run = run_graph(sg, x, trace=(a, b, unit.node.outputs[0]))
    assert run.silent.all()
    ranges = tuple(
        (
            graph.tensor(t).dtype.min - sg.zero_points[t],
            graph.tensor(t).dtype.max - sg.zero_points[t],
        )
        for t in (a, b)
    )
    top = max(int(np.abs(run.trace[t]).max()) for t in (a, b))
    sesa = SesaUnit(unit, ranges, shift_bits=(top.bit_length() - 1).bit_length())
    commands, step_cycles = [], []
    for v in range(len(x)):
        commands.append((2, 0, 0, 0, 0, 0, 0))
        for t in range(run.steps.max()):
            counts = [0, 0]
            for side, name_ in ((0, a), (1, b)):
                da = run.trace[name_][t, v]
                for index in zip(*np.nonzero(da)):
                    e = sesa.event(bool(side), tuple(int(i) for i in index))
                    for neg, shift in sesa.planes(int(da[index])):
                        commands.append(
                            (0, side, int(neg), e["own"], e["p_base"], e["o_base"], shift)
                        )
                        counts[side] += 1
            step_cycles.append(sesa.step_cycles(*counts))
            commands.append((1, 0, 0, 0, 0, 0, 0))
    spikes = np.moveaxis(run.trace[unit.node.outputs[0]], 0, 1).reshape(len(x), run.steps.max(), -1)
    return sesa, np.array(commands), spikes, np.array(step_cycles), run.trace[a], run.trace[b]


def test_sesa_model():
    sesa, commands, spikes, step_cycles, da, db = _sesa_case()
    assert np.abs(da).max() == 1 and np.abs(db).max() == 1  # spikes on both operands
    assert ((da != 0) & (np.abs(db).sum() > 0)).any()
    assert (sesa.heads, sesa.m_rows, sesa.k, sesa.n_cols) == (2, 4, 4, 4)
    assert " * " not in emit_verilog(sesa, "sesa")


def test_sesa_av_model():
    """A x V: A is the differential softmax's output, several codes a step."""
    sesa, commands, spikes, step_cycles, da, db = _sesa_case(name="av")
    assert np.abs(da).max() > 1 and np.abs(db).max() == 1
    assert sesa.shift_bits >= 1 and (commands[:, 6] > 0).any()
    assert (sesa.heads, sesa.m_rows, sesa.k, sesa.n_cols) == (2, 4, 4, 4)
    assert " * " not in emit_verilog(sesa, "sesa")  # shifts and adds: 0 DSP


@pytest.mark.sim
@pytest.mark.parametrize(
    "name",
    ["qk", pytest.param("av", marks=pytest.mark.slow)],  # the sim tier keeps one build
)
def test_sesa_equals_the_spiking_graph(tmp_path, monkeypatch, name):
    sesa, commands, spikes, step_cycles, _, _ = _sesa_case(name=name)
    assert len(spikes) >= 16
    vectors = dict(commands=commands, spikes=spikes, step_cycles=step_cycles)
    _simulate(tmp_path, monkeypatch, sesa, "sesa", vectors, "sesa_matches_golden")


def _table_case(seed=0, count=20):
    graph = transformer_graph(seed=seed)
    sg = convert_graph(graph)
    unit = _unit(sg, "gelu")
    (x_name,) = unit.node.inputs
    x = _inputs(graph, count - 4, seed)
    run = run_graph(sg, x, trace=(x_name, unit.node.outputs[0]))
    assert run.silent.all()
    steps = run.steps.max()
    d = np.moveaxis(run.trace[x_name], 0, 1).reshape(len(x), steps, -1)
    out = np.moveaxis(run.trace[unit.node.outputs[0]], 0, 1).reshape(len(x), steps, -1)
    return unit, d, out


def test_table_model():
    unit, d, out = _table_case()
    assert np.abs(d).max() == 1 and (out[:, 0] != 0).any() and (out[:, 1:] != 0).any()
    table = DifferentialTable(unit)
    assert table.cycles_per_step == 64 and table.latency == 2
    assert " * " not in emit_verilog(table, "differential_table")


@pytest.mark.sim
@pytest.mark.slow  # the sim tier keeps one of these Verilator builds (SESA)
def test_differential_table_equals_the_spiking_graph(tmp_path, monkeypatch):
    unit, d, out = _table_case()
    assert len(d) >= 16
    table = DifferentialTable(unit)
    vectors = dict(d=d, out=out, latency=table.latency, cycles_per_step=table.cycles_per_step)
    _simulate(tmp_path, monkeypatch, table, "differential_table", vectors, "table_matches_golden")
