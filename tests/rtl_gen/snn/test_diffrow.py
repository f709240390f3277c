"""The differential softmax and LayerNorm units (``rtl_gen.snn.diffrow``: the GEMM overlay's
row units behind change detection, an ``X`` and a ``Y_prev`` memory) against the integer
spiking graph, bit for bit at every time step on the tiny transformer block (20 vectors:
edge codes and random), with the cycles of every step equal to ``step_cycles``."""

import numpy as np
import pytest

from frontends.fixedpoint import signed_bits
from frontends.snn.graph import convert_graph, run_graph
from rtl_gen.emit import emit_verilog
from rtl_gen.snn.diffrow import DifferentialRow
from tests.frontends.snn.op_graphs import transformer_graph
from tests.frontends.snn.test_convert_graph import _inputs
from tests.rtl_gen.snn.test_units_sim import _simulate, _unit


def _row_case(name, seed=0, count=20):
    graph = transformer_graph(seed=seed)
    sg = convert_graph(graph)
    unit = _unit(sg, name)
    (x_name,) = unit.node.inputs
    y_name = unit.node.outputs[0]
    x = _inputs(graph, count - 4, seed)
    run = run_graph(sg, x, trace=(x_name, y_name))
    assert run.silent.all()
    steps = run.steps.max()
    d = np.moveaxis(run.trace[x_name], 0, 1).reshape(len(x), steps, -1)
    out = np.moveaxis(run.trace[y_name], 0, 1).reshape(len(x), steps, -1)
    d_bits = signed_bits(-int(np.abs(d).max()), int(np.abs(d).max()))
    dr = DifferentialRow(unit, graph, d_bits=d_bits)
    rows = d.reshape(len(x), steps, dr.rows, dr.length).any(axis=3)
    rows[:, 0] = True  # the first step recomputes every row
    step_cycles = np.array([dr.step_cycles(int(c)) for c in rows.sum(axis=2).reshape(-1)])
    return dr, d, out, step_cycles


@pytest.mark.parametrize("name", ["softmax", "ln1"])
def test_diffrow_model(name):
    dr, d, out, step_cycles = _row_case(name)
    assert (out[:, 1:] != 0).any()  # later steps change the output too
    assert (dr.rows, dr.length) == {"softmax": (8, 4), "ln1": (4, 8)}[name]
    # rows that did not change cost one cycle: later steps are cheaper than the first
    assert step_cycles.min() < dr.step_cycles(dr.rows)
    assert "out_valid" in emit_verilog(dr, "diffrow")


@pytest.mark.sim
@pytest.mark.slow  # the sim tier keeps one Verilator build of the spiking units (SESA)
@pytest.mark.parametrize("name", ["softmax", "ln1"])
def test_diffrow_equals_the_spiking_graph(tmp_path, monkeypatch, name):
    dr, d, out, step_cycles = _row_case(name)
    assert len(d) >= 16
    vectors = dict(d=d, out=out, step_cycles=step_cycles)
    _simulate(tmp_path, monkeypatch, dr, "diffrow", vectors, "diffrow_matches_golden")
