"""QANN -> ST-BIF conversion: the settled tracers equal the IR golden's codes exactly, on
random graphs and on the digits MLP; what cannot convert is refused by name."""

import dataclasses

import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from frontends.ir import IntType
from frontends.snn import convert, run_network

from .graphs import digits_model, random_graph


@pytest.mark.parametrize(
    "case",
    [
        dict(sizes=(9, 7, 3), bits=4, seed=1),
        dict(sizes=(12, 5, 6, 4), bits=3, signed_act=True, seed=2, rounding="floor"),
        dict(
            sizes=(8, 8, 2),
            bits=8,
            signed_act=True,
            seed=3,
            rounding="ceil",
            in_dtype=IntType(8, False),
        ),
        dict(sizes=(5, 1, 3), bits=2, seed=4, per_channel=False),
        dict(sizes=(6, 4, 3), bits=5, seed=5, scale=(0.02, 0.2)),  # large multipliers: saturation
        dict(sizes=(8, 6, 4), bits=4, seed=8, pow2=True, weight_range=(-8, 8), bias=100),
    ],
)
def test_tracers_equal_ir_golden(case):
    graph = random_graph(**case)
    net = convert(graph)
    x_t = graph.tensor("in")
    x = np.random.default_rng(7).integers(
        x_t.dtype.min, x_t.dtype.max + 1, size=(400, case["sizes"][0])
    )
    run = run_network(net, x)
    env = reference.run(graph, x)
    for node, codes, spikes in zip(graph.nodes, run.codes, run.spikes):
        assert (codes == env[node.outputs[0]]).all(), node.name
        assert (spikes >= np.abs(codes - node.attrs["output_zero_point"]).sum(axis=1)).all()
    assert run.silent.all() and (run.steps <= net.t_max()).all()


def test_theta_is_a_power_of_two_with_shared_factors_removed():
    graph = random_graph((4, 3), bits=4, seed=0, per_channel=False)
    node = graph.nodes[0]
    m = int(node.weights["multiplier"][0])
    tz = (m & -m).bit_length() - 1
    layer = convert(graph).layers[0]
    assert layer.theta == 1 << (node.attrs["shift"] - tz)
    assert (layer.weight == node.weights["weight"] * (m >> tz)).all()


def test_stops_early_only_when_t_max_is_cut():
    graph = random_graph((9, 7, 3), bits=4, seed=1)
    net = convert(graph)
    x = np.random.default_rng(0).integers(-128, 128, size=(50, 9))
    run = run_network(net, x, t_max=2)
    assert not run.silent.all() and (run.steps == 2).all()


def _with_attrs(graph, index, **attrs):
    node = graph.nodes[index]
    node = dataclasses.replace(node, attrs={**node.attrs, **attrs})
    nodes = list(graph.nodes)
    nodes[index] = node
    return dataclasses.replace(graph, nodes=tuple(nodes))


@pytest.mark.parametrize(
    "attrs,message",
    [
        (
            dict(rounding="half_even"),
            r"^node 'fc1' \(Gemm\): requantization rounds 'half_even'; "
            r"an ST-BIF neuron rounds half up, floor or ceil",
        ),
        (dict(sign=True), r"^node 'fc1' \(Gemm\): a bipolar \(sign\) output has no ST-BIF form"),
        (
            dict(lo=3, hi=15),
            r"^node 'fc1' \(Gemm\): output range \[3, 15\] does not contain the "
            r"zero point 0; an ST-BIF tracer starts at 0",
        ),
    ],
)
def test_refuses_what_has_no_stbif_form(attrs, message):
    graph = _with_attrs(random_graph((4, 3, 2), bits=4, seed=0), 1, **attrs)
    with pytest.raises(ModelError, match=message):
        convert(graph)


def test_digits_mlp_spikes_sum_to_qann_codes(tmp_path_factory):
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors

    made = digits_model(tmp_path_factory)
    graph = import_onnx(made.quantized)
    with np.load(made.test_data) as f:
        vectors = golden_vectors(graph, data_x=f["x"], data_y=f["y"])
    assert len(vectors["inputs"]) >= 500
    run = run_network(convert(graph), vectors["inputs"])
    for i in range(len(graph.nodes)):
        assert np.array_equal(run.codes[i], vectors[f"layer{i}"])
    assert run.silent.all()
