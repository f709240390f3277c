"""The matmul unit (``rtl_gen.gemm.attention``): activation x activation GEMMs per head
(Q x K^T, A x V) on the program model (against the IR golden) and in Amaranth's simulator
(bit-exact, cycles equal to the model's); the Verilog runs in ``test_engine_sim``'s shared
Verilator build (``test_matmul_heads``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from frontends import reference
from frontends.fixedpoint import quantize_multipliers
from frontends.ir import Graph, IntType, Node, QuantParams, Tensor
from rtl_gen.gemm import GemmConfig, compile_graph, model

I8 = IntType(8, True)
CONFIG = GemmConfig(dsp_lanes=4, lut_lanes=0)


def matmul_net(heads=2, t=5, d=3, *, zps=(3, -7), rounding="half_up") -> Graph:
    """Input (2, H, T, d): q = x[0], k = x[1] (slices), then q x k^T (a transpose),
    requantized to int8 with ``rounding``."""
    x_shape = (2, heads, t, d)

    def qp(s, z):
        return QuantParams(np.float32(s), np.int64(z))

    m, shift = quantize_multipliers(np.array([0.05 * 0.05 / 0.2]))
    tensors = {
        "x": Tensor("x", x_shape, I8, qp(0.05, zps[0])),
        "q": Tensor("q", (heads, t, d), I8, qp(0.05, zps[0])),
        "k": Tensor("k", (heads, t, d), I8, qp(0.05, zps[0])),
        "kt": Tensor("kt", (heads, d, t), I8, qp(0.05, zps[0])),
        "y": Tensor("y", (heads, t, t), I8, qp(0.2, zps[1])),
    }
    full = {"starts": (0,), "axes": (0,), "steps": (1,), "input_shape": x_shape}
    nodes = (
        Node("sq", "slice", ("x",), ("q",), dict(full, ends=(1,)), source_op="Slice"),
        Node("sk", "slice", ("x",), ("k",), dict(full, starts=(1,), ends=(2,)), source_op="Slice"),
        Node(
            "tk",
            "transpose",
            ("k",),
            ("kt",),
            {"perm": (0, 2, 1), "input_shape": (heads, t, d)},
            source_op="Transpose",
        ),
        Node(
            "qk",
            "matmul",
            ("q", "kt"),
            ("y",),
            {
                "a_shape": (heads, t, d),
                "b_shape": (heads, d, t),
                "input_zero_points": (zps[0], zps[0]),
                "shift": int(shift),
                "output_zero_point": zps[1],
                "lo": -128,
                "hi": 127,
                "rounding": rounding,
            },
            {"multiplier": m},
            source_op="MatMul",
        ),
    )
    return Graph("matmul_net", tensors, nodes, ("x",), ("y",))


def _inputs(graph, n=4, seed=0):
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(seed).integers(-128, 128, (n,) + t.shape)
    x[0], x[1] = -128, 127
    return x


def test_matmul_program_equals_golden():
    graph = matmul_net()
    program = compile_graph(graph, CONFIG)
    # the slices and the transpose cost no instruction: views of the input's region
    assert [i.op for i in program.instrs] == ["LOAD", "PCFG", "ADDP", "ROW", "STORE", "END"]
    x = _inputs(graph, 20)
    want = reference.run(program.graph, x)["y"].reshape(len(x), -1)
    assert np.array_equal(model.run(program, x.reshape(len(x), -1)), want)
    assert len(np.unique(want)) > 50


@pytest.mark.parametrize(
    "heads, t, d, rounding",
    [(2, 5, 3, "half_up"), (1, 3, 2, "half_even"), (3, 2, 4, "floor")],
)
def test_matmul_rtl_in_amaranth(heads, t, d, rounding):
    from .test_engine_amaranth import simulate

    graph = matmul_net(heads, t, d, rounding=rounding)
    program = compile_graph(graph, replace(CONFIG, primitives=False))
    x = _inputs(graph, 3).reshape(3, -1)
    want = model.run(program, x)
    cycles = model.schedule(program).cycles
    for (out, rtl_cycles, _), w in zip(simulate(program, x), want):
        assert np.array_equal(out, w)
        assert rtl_cycles == cycles


def token_net(t=5, sizes=(4, 6, 3)) -> Graph:
    """Two token dense layers (T x 4 -> T x 6 -> T x 3) on an int8 sequence: the first
    reads the input token by token (copied into feature planes), the second the first's
    feature-major output directly."""
    from .nets import dense_chain

    g = dense_chain(sizes, in_dtype=I8, shift=20, seed=4, name="tokens")
    tensors = {
        name: replace(tensor, shape=(t, tensor.shape[0])) for name, tensor in g.tensors.items()
    }
    nodes = tuple(replace(n, attrs=dict(n.attrs, tokens=t)) for n in g.nodes)
    return replace(g, tensors=tensors, nodes=nodes)


def test_token_dense_program_equals_golden():
    graph = token_net()
    program = compile_graph(graph, CONFIG)
    assert [l.m for l in program.layers if l.op == "dense"] == [5, 5]
    x = _inputs(graph, 20)
    want = reference.run(program.graph, x)[graph.outputs[0]].reshape(len(x), -1)
    assert np.array_equal(model.run(program, x.reshape(len(x), -1)), want)
    assert len(np.unique(want)) > 30


def test_token_dense_rtl_in_amaranth():
    from .test_engine_amaranth import simulate

    graph = token_net()
    program = compile_graph(graph, replace(CONFIG, primitives=False))
    x = _inputs(graph, 3).reshape(3, -1)
    want = model.run(program, x)
    cycles = model.schedule(program).cycles
    for (out, rtl_cycles, _), w in zip(simulate(program, x), want):
        assert np.array_equal(out, w)
        assert rtl_cycles == cycles


def const_add_net(t=5, e=4, *, reach=2**20) -> Graph:
    """A token dense (T x 4 -> T x 4) then a position embedding: an ``add`` of a constant
    (T, E) per token and feature, its codes up to ``reach`` (far beyond 8 bits)."""
    from frontends.fixedpoint import quantize_multipliers as qm

    g = token_net(t, (e, e))
    (fc,) = g.nodes
    y = fc.outputs[0]
    # at the accumulator's scale, as an importer folds a bias after a requantized MatMul
    pos = np.random.default_rng(5).integers(-reach, reach, (t, e))
    mult, shift = qm(np.array([0.05 / 0.08, 0.05 / reach / 0.08]))
    add = Node(
        "pos",
        "add",
        (y,),
        ("z",),
        {
            "input_zero_points": (int(fc.attrs["output_zero_point"]), -4),
            "shift": int(shift),
            "output_zero_point": 2,
            "lo": -128,
            "hi": 127,
            "input_shape": (t, e),
        },
        {"multiplier": mult, "constant": pos},
        source_op="Add",
    )
    tz = replace(g.tensors[y], name="z")
    return replace(g, tensors={**g.tensors, "z": tz}, nodes=(fc, add), outputs=("z",))


def test_constant_add_rtl_in_amaranth():
    from .test_engine_amaranth import simulate

    graph = const_add_net()
    program = compile_graph(graph, replace(CONFIG, primitives=False))
    assert [i["kind"] for i in program.instrs if i.op == "ROW"] == [3]
    x = _inputs(graph, 3).reshape(3, -1)
    want = reference.run(program.graph, x.reshape((3,) + graph.tensor("x").shape))["z"]
    assert np.array_equal(model.run(program, x), want.reshape(3, -1))
    cycles = model.schedule(program).cycles
    for (out, rtl_cycles, _), w in zip(simulate(program, x), want.reshape(3, -1)):
        assert np.array_equal(out, w)
        assert rtl_cycles == cycles
