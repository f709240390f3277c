"""The graph spiking engine (``rtl_gen.snn.graph_plan``/``graph_engine``): the tiny pre-LN
transformer block (attention with SESA for Q x K^T and A x V, differential softmax and
LayerNorm, residual increment adders, GELU table, dense layers on tokens) under Verilator
through ``nnloom sim``'s bench, every output code equal to the integer golden's and every
inference's cycles and time steps equal to the model's; units the engine has no hardware
for are refused by name."""

import json

import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from rtl_gen.snn.graph_plan import GraphPlan
from tests.frontends.snn.op_graphs import cnn_graph, transformer_graph
from tests.frontends.snn.test_convert_graph import _inputs


def test_block_drivers_and_cycle_model():
    graph = transformer_graph(seed=0)
    plan = GraphPlan.from_graph(graph)
    kinds = {d.name: d.unit_kind for d in plan.drivers}
    assert kinds["qk"] == kinds["av"] == "sesa" and kinds["softmax"] == kinds["ln2"] == "row"
    assert kinds["res1"] == "add" and kinds["gelu"] == "table" and kinds["head"] == "dense"
    assert "qh" not in kinds and plan.views["cls"][0] == "res2"  # moves are index tables
    x = _inputs(graph, 2, 0)
    cycles, steps = plan.cycles(x)
    assert (steps == plan.run(x).steps).all()
    # a step costs at least every unit's sweep over its outputs
    assert (cycles > steps * sum(d.n_elements for d in plan.drivers)).all()
    assert np.array_equal(plan.reference(x), reference.run(graph, x)[graph.outputs[0]])


def test_synaptic_additions_are_events_times_fan_out():
    graph = transformer_graph(seed=0)
    plan = GraphPlan.from_graph(graph)
    x = _inputs(graph, 3, 1)
    cycles, steps, synops = plan.costs(x)
    assert np.array_equal(cycles, plan.cycles(x)[0]) and np.array_equal(steps, plan.run(x).steps)
    scans = [d for d in plan.drivers if d.kind == "scan"]
    run = plan.run(x, trace=tuple({i for d in scans for i in d.inputs}))
    want = np.zeros(len(x), np.int64)
    for d in scans:
        hw = plan.create_unit(d)
        fans = [hw.n_out] if d.unit_kind == "dense" else [hw.n_cols, hw.m_rows]
        for fan, name in zip(fans, d.inputs):
            for b in range(len(x)):  # one addition per set bit of |increment| per fan-out
                bits = sum(bin(abs(int(v))).count("1") for v in run.trace[name][:, b].ravel())
                want[b] += bits * fan
    assert (want > 0).all() and np.array_equal(synops, want)


def test_a_unit_without_hardware_is_refused_by_name():
    with pytest.raises(ModelError, match=r"node 'conv1' \(Conv\): an ST-BIF 'conv' has no unit"):
        GraphPlan.from_graph(cnn_graph(seed=0))


@pytest.mark.sim
@pytest.mark.slow  # a Verilator build of the whole block and ~80 k cycles per vector
@pytest.mark.parametrize("bits", [4, 8])  # 8: increments of up to 8 bit planes (SESA shifts)
def test_block_rtl_equals_the_spiking_golden(tmp_path, bits):
    from rtl_gen.artefact import Artefact
    from rtl_gen.snn.emit import write_from_graph
    from sim.runner import run_sim

    graph = transformer_graph(seed=0, bits=bits)
    x = _inputs(graph, 12, 0)
    want = reference.run(graph, x)[graph.outputs[0]].reshape(len(x), -1)
    vectors = {"inputs": x.reshape(len(x), -1), "outputs": want}
    art = Artefact(write_from_graph(graph, tmp_path / "block", vectors=vectors))
    assert art.manifest["parameters"]["schedule"].startswith("unit-sequential")
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
    summary = json.loads((art.path / "sim" / "summary.json").read_text())
    assert summary["vectors"] == 16 and summary["mismatching_elements"] == 0
    with np.load(result.outputs) as f:
        assert (f["steps"] == art.vectors()["snn_steps"]).all()
        assert (f["cycles"] == art.vectors()["snn_cycles"]).all()


def _half_even_graph():
    """embed -> requant -> add of a constant -> dense -> residual add (all round half to
    even, as onnxruntime's QDQ requants and adds) -> mean over the tokens (half to even) ->
    head."""
    from frontends.ir import Node
    from tests.frontends.snn.op_graphs import Builder

    def half_even(g):
        n = g.nodes[-1]
        g.nodes[-1] = Node(
            n.name,
            n.op,
            n.inputs,
            n.outputs,
            dict(n.attrs, rounding="half_even"),
            n.weights,
            n.source_op,
        )

    tokens, embed = 4, 8
    g = Builder((tokens, 6), bits=4, seed=0)
    x = g.dense("embed", g.input, embed, tokens=tokens)
    x = g.requant("rq", x)
    half_even(g)
    x = g.add("pos", x)
    half_even(g)
    y = g.dense("q", x, embed, tokens=tokens)
    x = g.add("res", x, y, shape=(tokens, embed))
    half_even(g)
    out = g.act("mean", (embed,))
    im2col = np.arange(tokens * embed).reshape(tokens, embed).T.reshape(embed, 1, tokens)
    attrs, m = g._requant(
        out,
        np.array([g.scale[x] / g.scale[out] / tokens]),
        dict(input_zero_point=g.zp[x], output_shape=(embed,), rounding="half_even"),
    )
    g.node("mean", "avgpool", [x], out, attrs, dict(im2col=im2col, multiplier=m), "ReduceMean")
    return g.graph(g.dense("head", out, 5))


def test_half_even_units_are_differential():
    plan = GraphPlan.from_graph(_half_even_graph())
    kinds = {d.name: d.unit_kind for d in plan.drivers}
    assert kinds == {
        "embed": "dense",
        "rq": "dadd",
        "pos": "dadd",
        "q": "dense",
        "res": "dadd",
        "mean": "pool",
        "head": "dense",
    }


@pytest.mark.sim
@pytest.mark.slow
def test_half_even_adds_and_mean_rtl_equal_the_golden(tmp_path):
    from rtl_gen.artefact import Artefact
    from rtl_gen.snn.emit import write_from_graph
    from sim.runner import run_sim

    graph = _half_even_graph()
    x = _inputs(graph, 12, 1)
    want = reference.run(graph, x)[graph.outputs[0]].reshape(len(x), -1)
    vectors = {"inputs": x.reshape(len(x), -1), "outputs": want}
    art = Artefact(write_from_graph(graph, tmp_path / "he", vectors=vectors))
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
