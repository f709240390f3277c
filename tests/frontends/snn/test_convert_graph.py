"""The spiking graph converter (ST-BIF units, increment adders, differential max/softmax/
LayerNorm/tables, SESA, data movement): run to silence, every tensor's settled code equals
the integer golden's exactly, on random and edge inputs; what cannot convert is refused."""

import dataclasses

import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from frontends.snn.graph import SNN_OPS, convert_graph, run_graph

from .op_graphs import cnn_graph, transformer_graph


def _inputs(graph, n, seed):
    """Random codes plus the edge cases: all min, all max, all zero point, alternating."""
    t = graph.tensor(graph.inputs[0])
    lo, hi = t.dtype.min, t.dtype.max
    x = np.random.default_rng(seed).integers(lo, hi + 1, size=(n, *t.shape))
    zp = int(graph.nodes[0].attrs.get("input_zero_point", 0))
    alt = np.where(np.indices(t.shape).sum(axis=0) % 2 == 0, lo, hi)
    return np.concatenate(
        [np.stack([np.full(t.shape, lo), np.full(t.shape, hi), np.full(t.shape, zp), alt]), x]
    )


def _assert_exact(graph, x):
    sg = convert_graph(graph)
    run = run_graph(sg, x)
    env = reference.run(graph, x)
    for node in graph.nodes:
        name = node.outputs[0]
        bad = (run.codes[name] != env[name]).reshape(len(x), -1).any(axis=1).sum()
        assert bad == 0, f"{node.name}: {bad} of {len(x)} samples differ"
    assert run.silent.all() and (run.steps <= sg.t_max).all()
    return sg, run


@pytest.mark.parametrize("seed", [0, 1])
def test_cnn_ops_settle_on_the_golden_codes(seed):
    graph = cnn_graph(seed=seed)
    assert {n.op for n in graph.nodes} == {
        "conv",
        "maxpool",
        "avgpool",
        "concat",
        "requant",
        "add",
        "dense",
    }
    _assert_exact(graph, _inputs(graph, 60, seed))


@pytest.mark.parametrize("seed,bits", [(0, 4), (1, 4), (2, 3)])
def test_transformer_block_settles_on_the_golden_codes(seed, bits):
    graph = transformer_graph(seed=seed, bits=bits)
    ops = {n.op for n in graph.nodes}
    assert {"matmul", "layernorm", "nonlinear", "transpose", "slice", "add"} <= ops
    sg, run = _assert_exact(graph, _inputs(graph, 40, seed))
    # the differential units recomputed after t = 0 (their inputs kept changing) and the
    # attention produced corrections: the run is not a single-step pass
    assert run.steps.max() > 3
    assert run.changes["softmax"].sum() > 0 and run.spikes["qk"].sum() > 0


def test_spikes_at_least_the_codes_moved():
    graph = transformer_graph(seed=3)
    x = _inputs(graph, 20, 3)
    run = run_graph(convert_graph(graph), x)
    env = reference.run(graph, x)
    for node in graph.nodes:
        if node.name in run.spikes:
            moved = np.abs(env[node.outputs[0]] - node.attrs["output_zero_point"])
            assert (run.spikes[node.name] >= moved.reshape(len(x), -1).sum(axis=1)).all()


def test_cut_short_run_is_not_silent():
    graph = transformer_graph(seed=0)
    run = run_graph(convert_graph(graph), _inputs(graph, 10, 0), t_max=2)
    assert not run.silent.all()


def _replace(graph, name, **attrs):
    nodes = tuple(
        dataclasses.replace(n, attrs={**n.attrs, **attrs}) if n.name == name else n
        for n in graph.nodes
    )
    return dataclasses.replace(graph, nodes=nodes)


@pytest.mark.parametrize(
    "name,attrs,message",
    [
        ("fc1", dict(sign=True), r"^node 'fc1' \(Gemm\): a bipolar \(sign\) output"),
        (
            "res1",
            dict(lo=5, hi=7),
            r"^node 'res1' \(Add\): output range \[5, 7\] does not contain the zero point",
        ),
    ],
)
def test_refuses_what_has_no_stbif_form(name, attrs, message):
    graph = _replace(transformer_graph(seed=0), name, **attrs)
    with pytest.raises(ModelError, match=message):
        convert_graph(graph)


def test_refuses_an_op_it_does_not_take():
    graph = transformer_graph(seed=0)
    nodes = tuple(
        dataclasses.replace(n, op="mystery") if n.name == "gelu" else n for n in graph.nodes
    )
    with pytest.raises(ModelError, match=r"^node 'gelu' \(Gelu\): op 'mystery' has no exact "):
        convert_graph(dataclasses.replace(graph, nodes=nodes))
    assert "mystery" not in SNN_OPS


def _half_even(graph, names):
    for name in names:
        graph = _replace(graph, name, rounding="half_even")
    return graph


@pytest.mark.parametrize(
    "make,names",
    [
        (transformer_graph, ("pos", "res1", "res2", "qk")),
        (cnn_graph, ("gap1", "cat", "rq", "res")),
    ],
)
def test_half_even_requantizers_are_differential_and_exact(make, names):
    from frontends.snn.units import DifferentialUnit

    graph = _half_even(make(seed=1), names)
    sg, _ = _assert_exact(graph, _inputs(graph, 30, 1))
    kinds = {u.node.name: type(u) for u in sg.units}
    assert all(kinds[n] is DifferentialUnit for n in names)
