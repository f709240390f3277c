"""The row unit (``rtl_gen.gemm.rowwise``): the IR's one-division-per-row softmax over the
last axis, on the program model (fast tier, against the IR golden) and in Amaranth's
simulator (bit-exact, cycles equal to the model's); the Verilog runs in
``test_engine_sim``'s shared Verilator build (``test_softmax_rows``)."""

from __future__ import annotations

import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from frontends.ir import Graph, IntType, Node, QuantParams, Tensor
from rtl_gen.gemm import GemmConfig, compile_graph, model

I8 = IntType(8, True)


def softmax_net(shape=(2, 5, 7), *, s_x=0.08, axis=None) -> Graph:
    """One row-wise softmax node as the importer emits it (``recip_shift``), int8 in,
    int8 out at scale 1/255."""
    from frontends._onnx.base import Dequantized, Pending
    from frontends._onnx.ops import _emit_nonlinear

    class _State:
        tensors = {"x": type("T", (), {"dtype": I8})()}

    axis = len(shape) - 1 if axis is None else axis
    pending = Pending(
        "sm",
        "Softmax",
        "nonlinear",
        (Dequantized("x", s_x, 0, shape),),
        {"function": "softmax", "axis": axis},
        shape,
    )
    zy = -128
    op, attrs, weights = _emit_nonlinear(_State(), pending, I8, 1 / 255, zy, "test")

    def q(s, z):
        return QuantParams(np.float32(s), np.int64(z))

    tensors = {
        "x": Tensor("x", shape, I8, q(s_x, 0)),
        "y": Tensor("y", shape, I8, q(1 / 255, zy)),
    }
    node = Node(
        "sm",
        op,
        ("x",),
        ("y",),
        dict(attrs, output_zero_point=zy, lo=-128, hi=127),
        weights,
        "Softmax",
    )
    return Graph("softmax_net", tensors, (node,), ("x",), ("y",))


def edge_inputs(shape, n=6, seed=0) -> np.ndarray:
    """Random rows, a flat row of maxima, a one-hot row, a row of minima."""
    x = np.random.default_rng(seed).integers(-128, 128, (n,) + tuple(shape))
    flat = x.reshape(n, -1, shape[-1])
    flat[0, 0], flat[1, 0], flat[1, 0, -1], flat[2, 0] = 127, -128, 127, -128
    return x


CONFIG = GemmConfig(dsp_lanes=4, lut_lanes=0)


def test_softmax_program_equals_golden():
    graph = softmax_net()
    program = compile_graph(graph, CONFIG)
    assert [i.op for i in program.instrs].count("ROW") == 1
    x = edge_inputs((2, 5, 7), n=40)
    want = reference.run(program.graph, x)["y"].reshape(len(x), -1)
    assert np.array_equal(model.run(program, x.reshape(len(x), -1)), want)
    assert want[1, 6] == 127 and (want[1, :6] == -128).all()


def test_softmax_on_another_axis_is_refused():
    graph = softmax_net((5, 7), axis=0)
    with pytest.raises(ModelError, match=r"^node 'sm' \(Softmax\): softmax over axis 0"):
        compile_graph(graph, CONFIG)


@pytest.mark.parametrize("shape", [(2, 5, 7), (3, 1, 17), (1, 4)])
def test_softmax_rtl_in_amaranth(shape):
    from dataclasses import replace

    from .test_engine_amaranth import simulate

    graph = softmax_net(shape, s_x=0.3 if shape[-1] > 8 else 0.08)
    program = compile_graph(graph, replace(CONFIG, primitives=False))
    x = edge_inputs(shape, n=3).reshape(3, -1)
    want = model.run(program, x)
    cycles = model.schedule(program).cycles
    for (out, rtl_cycles, _), w in zip(simulate(program, x), want):
        assert np.array_equal(out, w)
        assert rtl_cycles == cycles


def layernorm_net(rows=4, c=8, *, seed=0) -> Graph:
    """One LayerNorm over rows of ``c`` int8 codes as the importer builds it
    (``frontends._onnx.norm.layernorm_params``), a negative gamma among the channels."""
    from frontends._onnx.norm import layernorm_params

    rng = np.random.default_rng(seed)
    gamma = rng.normal(1.0, 0.5, c)
    gamma[1] = -0.7
    beta = rng.normal(0, 0.3, c)
    attrs, weights = layernorm_params(gamma, beta, 1e-5, 0.05, I8, 4.0 / 127, "test")

    def q(s, z):
        return QuantParams(np.float32(s), np.int64(z))

    tensors = {
        "x": Tensor("x", (rows, c), I8, q(0.05, 3)),
        "y": Tensor("y", (rows, c), I8, q(4.0 / 127, -2)),
    }
    node = Node(
        "ln",
        "layernorm",
        ("x",),
        ("y",),
        dict(attrs, input_shape=(rows, c), output_zero_point=-2, lo=-128, hi=127),
        weights,
        "LayerNormalization",
    )
    return Graph("layernorm_net", tensors, (node,), ("x",), ("y",))


def test_layernorm_program_equals_golden():
    graph = layernorm_net()
    program = compile_graph(graph, CONFIG)
    x = edge_inputs((4, 8), n=30)
    x[3, 0] = 5  # a constant row: beta alone
    want = reference.run(program.graph, x)["y"].reshape(len(x), -1)
    assert np.array_equal(model.run(program, x.reshape(len(x), -1)), want)
    assert len(np.unique(want)) > 40


@pytest.mark.parametrize("rows, c, bits", [(4, 8, 15), (1, 32, 15), (3, 5, 22)])
def test_layernorm_rtl_in_amaranth(rows, c, bits):
    from dataclasses import replace

    from frontends.fixedpoint import multiplier_width

    from .test_engine_amaranth import simulate

    with multiplier_width(bits):  # 22: a transformer's (GemmConfig.mult_bits)
        graph = layernorm_net(rows, c)
    program = compile_graph(graph, replace(CONFIG, primitives=False))
    assert program.config.mult_bits == bits
    x = edge_inputs((rows, c), n=3).reshape(3, -1)
    want = model.run(program, x)
    cycles = model.schedule(program).cycles
    for (out, rtl_cycles, _), w in zip(simulate(program, x), want):
        assert np.array_equal(out, w)
        assert rtl_cycles == cycles
