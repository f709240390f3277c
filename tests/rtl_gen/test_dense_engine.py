"""The dense engine in Amaranth's simulator against its plan and the IR golden, bit for bit,
and its cycle counter against the latency model."""

import numpy as np
import pytest

from frontends import reference
from frontends.ir import IntType
from frontends.vectors import edge_inputs
from rtl_gen.dense import DenseEngine, DensePlan

from .stream_sim import run_stream
from .test_dense_plan import synthetic_graph


def simulate(plan, inputs, *, stall_seed=None, dut=None, after=None):
    """Outputs and cycle counts of ``inputs`` through ``dut`` (default ``DenseEngine(plan)``);
    ``after(ctx)`` runs once the last output is in."""
    dut = dut if dut is not None else DenseEngine(plan)
    got, counters = run_stream(dut, inputs, plan.n_out, stall_seed=stall_seed, after=after)
    return got, counters["cycles"]


@pytest.mark.parametrize(
    "lanes,sizes,in_dtype",
    [
        (1, (5, 3, 2), IntType(8, True)),
        (3, (9, 7, 3), IntType(8, True)),  # 7 outputs: last group has one real lane
        (4, (8, 8, 5), IntType(8, False)),  # uint8 input activations
        (2, (6, 2, 6, 3), IntType(8, True)),  # three layers, odd count: output in buffer B
    ],
)
def test_engine_bit_exact_and_latency(lanes, sizes, in_dtype):
    graph = synthetic_graph(sizes=sizes, in_dtype=in_dtype, seed=sum(sizes))
    plan = DensePlan.from_graph(graph, lanes=lanes)
    rng = np.random.default_rng(1)
    inputs = np.concatenate(
        [edge_inputs(graph), rng.integers(in_dtype.min, in_dtype.max + 1, (4, sizes[0]))]
    )
    expected = reference.run(graph, inputs)[graph.outputs[0]]
    got, cycles = simulate(plan, inputs)
    assert (got == expected).all()
    assert cycles == [plan.cycles()] * len(inputs)


def test_engine_under_backpressure():
    graph = synthetic_graph(sizes=(7, 5, 4), seed=9)
    plan = DensePlan.from_graph(graph, lanes=2)
    inputs = np.random.default_rng(2).integers(-128, 128, (4, 7))
    got, _ = simulate(plan, inputs, stall_seed=3)
    assert (got == reference.run(graph, inputs)[graph.outputs[0]]).all()


def test_engine_saturates_at_both_ends():
    # Large multipliers drive every output to the clamp; the edge vectors hit both rails.
    graph = synthetic_graph(sizes=(6, 4), seed=4, relu=False)
    node = graph.nodes[0]
    object.__setattr__(
        node, "weights", {**node.weights, "multiplier": node.weights["multiplier"] * 0 + 32767}
    )
    plan = DensePlan.from_graph(graph, lanes=2)
    inputs = edge_inputs(graph)
    expected = reference.run(graph, inputs)[graph.outputs[0]]
    assert expected.min() == -128 and expected.max() == 127
    got, _ = simulate(plan, inputs)
    assert (got == expected).all()


def test_engine_outputs_a_float_layer_accumulator(tmp_path):
    """A last layer whose float output (plus a float bias) leaves the graph: the engine
    streams its signed accumulator, as wide as its exact range, bit for bit."""
    from frontends.onnx_import import import_onnx
    from tests.frontends.test_import_host_io import _float_output_model

    graph = import_onnx(_float_output_model(tmp_path / "f.onnx", None))
    plan = DensePlan.from_graph(graph, lanes=2)
    assert plan.out_dtype.width > 8 and plan.out_dtype.signed
    inputs = np.concatenate(
        [edge_inputs(graph), np.random.default_rng(3).integers(0, 256, (6, 10))]
    )
    got, _ = simulate(plan, inputs)
    assert np.array_equal(got, reference.run(graph, inputs)[graph.outputs[0]])
