"""``SnnEngine`` in Amaranth's simulator: output codes, cycles and time steps equal the plan's
golden run and cycle model, bit for bit; a broken engine is caught."""

import dataclasses

import numpy as np
import pytest

from frontends import reference
from frontends.ir import IntType
from rtl_gen.snn import SnnPlan
from tests.frontends.snn.graphs import random_graph

from ..stream_sim import run_stream


def simulate(plan, inputs, *, hardware=None, stall_seed=None):
    dut = (hardware or plan).create()
    got, counters = run_stream(
        dut, inputs, plan.n_out, counters=("cycles", "steps"), stall_seed=stall_seed
    )
    return got, np.array(counters["cycles"]), np.array(counters["steps"])


CASES = [
    dict(sizes=(6, 5, 3), bits=3, seed=1),
    dict(sizes=(4, 1, 3), bits=2, seed=3),  # a one-neuron layer
    dict(sizes=(5, 3, 1), bits=4, signed_act=True, seed=4, rounding="floor"),
    dict(
        sizes=(7, 4, 4, 2),
        bits=3,
        signed_act=True,
        seed=5,
        rounding="ceil",
        in_dtype=IntType(8, False),
    ),
    dict(sizes=(3, 6, 2), bits=5, seed=6, in_dtype=IntType(4, True)),
    dict(sizes=(8, 6, 4), bits=4, seed=8, pow2=True, weight_range=(-8, 8), bias=100),
]


@pytest.mark.parametrize("case", CASES)
def test_engine_equals_golden_cycles_and_steps(case):
    graph = random_graph(**case)
    plan = SnnPlan.from_graph(graph)
    x_t = graph.tensor("in")
    x = np.random.default_rng(1).integers(
        x_t.dtype.min, x_t.dtype.max + 1, size=(5, case["sizes"][0])
    )
    x[0] = x_t.dtype.min
    x[1] = x_t.dtype.max
    got, cycles, steps = simulate(plan, x)
    run = plan.run(x)
    assert (got == reference.run(graph, x)[graph.outputs[0]]).all()
    assert (got == run.codes[-1]).all()
    assert steps.tolist() == run.steps.tolist()
    assert cycles.tolist() == plan.cycles(x, run).tolist()


def test_engine_under_backpressure():
    graph = random_graph((6, 5, 3), bits=4, seed=8)
    plan = SnnPlan.from_graph(graph)
    x = np.random.default_rng(2).integers(-128, 128, size=(4, 6))
    got, _, steps = simulate(plan, x, stall_seed=3)
    assert (got == reference.run(graph, x)[graph.outputs[0]]).all()
    assert steps.tolist() == plan.run(x).steps.tolist()


def test_t_max_cut_runs_the_same_schedule():
    graph = random_graph((6, 5, 3), bits=4, seed=9)
    plan = SnnPlan.from_graph(graph, t_max=3)
    assert not plan.exact
    x = np.random.default_rng(4).integers(-128, 128, size=(4, 6))
    got, cycles, steps = simulate(plan, x)
    run = plan.run(x)
    assert (got == run.codes[-1]).all() and (steps == 3).all()
    assert cycles.tolist() == plan.cycles(x, run).tolist()


def test_a_broken_engine_is_caught():
    """Mutation check: hardware whose first threshold is off by one must not pass. (With the
    usual theta of 2**20 or so, off by one is invisible; small thresholds make it show.)"""
    graph = random_graph((8, 6, 4), bits=4, seed=8, pow2=True, weight_range=(-8, 8), bias=100)
    plan = SnnPlan.from_graph(graph)
    net = plan.network
    broken_layer = dataclasses.replace(net.layers[-1], theta=net.layers[-1].theta + 1)
    broken = dataclasses.replace(
        plan, network=dataclasses.replace(net, layers=net.layers[:-1] + (broken_layer,))
    )
    x = np.random.default_rng(1).integers(-128, 128, size=(6, 8))
    got, cycles, _ = simulate(plan, x, hardware=broken)
    run = plan.run(x)
    assert not ((got == run.codes[-1]).all() and cycles.tolist() == plan.cycles(x, run).tolist())


def test_small_cnn_via_toeplitz_synapses():
    """A conv layer (IR ``conv``, im2col) as dense synapses, then a dense layer."""
    pytest.importorskip("torch")
    import tempfile
    from pathlib import Path

    import torch
    from torch import nn

    from frontends.onnx_import import import_onnx
    from tests.models import torch_qdq

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 4)
    )
    with tempfile.TemporaryDirectory() as tmp:
        graph = import_onnx(torch_qdq(module, (1, 6, 6), Path(tmp) / "cnn.onnx", low=0.0))
    assert [n.op for n in graph.nodes] == ["conv", "dense"]
    plan = SnnPlan.from_graph(graph)
    x = np.random.default_rng(5).integers(-128, 128, size=(3, 36))
    got, cycles, steps = simulate(plan, x)
    run = plan.run(x)
    assert (
        got == reference.run(graph, x.reshape(3, 1, 6, 6))[graph.outputs[0]].reshape(3, -1)
    ).all()
    assert cycles.tolist() == plan.cycles(x, run).tolist()
