import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from frontends.ir import Graph, IntType, Node, QuantParams, Tensor
from rtl_gen.dense import DensePlan


def synthetic_graph(
    sizes=(9, 7, 3), *, in_dtype=IntType(8, True), seed=0, relu=True, weight_range=(-128, 127)
):
    """An IR graph of dense layers with random integer parameters (no ONNX involved)."""
    rng = np.random.default_rng(seed)
    tensors, nodes = {}, []
    q = lambda zp: QuantParams(np.array(0.1), np.array(zp))  # noqa: E731
    zp_in = int(rng.integers(in_dtype.min, in_dtype.max + 1) // 2)
    tensors["in"] = Tensor("in", (sizes[0],), in_dtype, q(zp_in))
    prev, prev_zp = "in", zp_in
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        name = f"t{i}"
        dtype = IntType(8, True)
        zp = int(rng.integers(-20, 20))
        w = rng.integers(weight_range[0], weight_range[1] + 1, size=(b, a))
        real = rng.uniform(1e-4, 3e-3, size=b)
        from frontends.fixedpoint import quantize_multipliers

        mult, shift = quantize_multipliers(real)
        lo = max(dtype.min, zp) if relu and i < len(sizes) - 2 else dtype.min
        tensors[name] = Tensor(name, (b,), dtype, q(zp))
        nodes.append(
            Node(
                f"fc{i}",
                "dense",
                (prev,),
                (name,),
                attrs={
                    "input_zero_point": prev_zp,
                    "output_zero_point": zp,
                    "shift": shift,
                    "lo": lo,
                    "hi": dtype.max,
                    "relu": False,
                },
                weights={
                    "weight": w,
                    "bias": rng.integers(-5000, 5000, size=b),
                    "multiplier": mult,
                },
                source_op="Gemm",
            )
        )
        prev, prev_zp = name, zp
    return Graph("synthetic", tensors, tuple(nodes), ("in",), (prev,))


@pytest.mark.parametrize("lanes", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("in_dtype", [IntType(8, True), IntType(8, False)])
def test_plan_arithmetic_equals_ir_golden(lanes, in_dtype):
    graph = synthetic_graph(in_dtype=in_dtype, seed=lanes)
    plan = DensePlan.from_graph(graph, lanes=lanes)
    rng = np.random.default_rng(0)
    x = rng.integers(in_dtype.min, in_dtype.max + 1, size=(300, 9))
    env = reference.run(graph, x)
    for node, got in zip(graph.nodes, plan.reference(x)):
        assert (got == env[node.outputs[0]]).all()


def test_lanes_clamped_to_smallest_layer_input():
    plan = DensePlan.from_graph(synthetic_graph(sizes=(9, 3, 2)), lanes=8)
    assert plan.lanes == 3


def test_weight_image_layout():
    graph = synthetic_graph(sizes=(5, 3))
    plan = DensePlan.from_graph(graph, lanes=2)
    w = graph.nodes[0].weights["weight"]
    words = plan.weight_image()
    assert len(words) == 2 * 5  # two groups (lanes 0-1, lane 2 + padding) of 5 inputs
    for g in range(2):
        for k in range(5):
            for p in range(2):
                n = 2 * g + p
                expected = int(w[n, k]) if n < 3 else 0
                got = (words[g * 5 + k] >> (8 * p)) & 0xFF
                assert got == expected & 0xFF


def test_accumulator_width_is_derived_from_weights():
    small = DensePlan.from_graph(synthetic_graph(weight_range=(-1, 1)), lanes=2)
    big = DensePlan.from_graph(synthetic_graph(weight_range=(-128, 127)), lanes=2)
    assert small.acc_bits < big.acc_bits
    lo, hi = big.layers[0].acc_range()
    assert -(2 ** (big.acc_bits - 1)) <= lo and hi < 2 ** (big.acc_bits - 1)


def test_wide_weights_rejected_with_node_name():
    graph = synthetic_graph(weight_range=(-200, 55))
    with pytest.raises(ModelError, match=r"^node 'fc0' \(Gemm\): weight values span \[-200, "):
        DensePlan.from_graph(graph)


def test_latency_model_counts_every_layer():
    plan = DensePlan.from_graph(synthetic_graph(sizes=(9, 7, 3)), lanes=3)
    assert plan.cycles() == 9 + (3 * 9 + 3 + 6) + (1 * 7 + 3 + 6) + 3 + 1
