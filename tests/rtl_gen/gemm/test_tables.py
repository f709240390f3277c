"""Element-wise ``nonlinear`` tables on the overlay (``rtl_gen.gemm.tables``): the ``TAB``
instruction with the table memory, and with SMURF units in its place. The program's model
equals the IR golden (fast tier); the emitted Verilog under Verilator equals it bit for bit
on random and edge vectors, with the per-layer RTL cycles equal to the model's (sim tier)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from frontends.ir import Graph, IntType, Node, QuantParams, Tensor
from rtl_gen.gemm import GemmConfig, compile_graph, model
from rtl_gen.gemm.tables import TABLE_WORDS, smurf_element_cycles, smurf_graph

from .nets import dense_chain

CONFIG = GemmConfig(dsp_lanes=4, lut_lanes=0)


def _function(name: str, v: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    if name == "gelu":
        return 0.5 * v * (1.0 + erf(v / math.sqrt(2.0)))
    return np.tanh(v)


def nonlinear_net(sizes=(20, 24, 10), *, seed=3, function="gelu", signed=False) -> Graph:
    """dense -> ``nonlinear`` table -> dense; the table is the IR's (``frontends.ir``):
    ``clamp(round(f(s_in (c - z_in)) / s_out) + z_out)`` for every input code ``c`` of the
    hidden tensor (uint8, or int8 with ``signed``)."""
    g = dense_chain(sizes, seed=seed, relu=False, shift=21, name=f"{function}_net")
    first, last = g.nodes
    tensors = dict(g.tensors)
    h = first.outputs[0]
    ht = tensors[h]
    if signed:
        ht = replace(ht, dtype=IntType(8, True))
        first = replace(first, attrs=dict(first.attrs, lo=-128, hi=127))
    s_in, z_in, s_out, z_out = 0.05, -20 if signed else 100, 0.03, -5
    out_t = IntType(8, True)
    codes = np.arange(ht.dtype.min, ht.dtype.max + 1)
    f = _function(function, s_in * (codes - z_in))
    table = np.clip(np.rint(f / s_out) + z_out, out_t.min, out_t.max).astype(np.int64)
    tensors[h] = Tensor(h, ht.shape, ht.dtype, QuantParams(np.float32(s_in), np.int64(z_in)))
    tensors["f"] = Tensor("f", ht.shape, out_t, QuantParams(np.float32(s_out), np.int64(z_out)))
    first = replace(first, attrs=dict(first.attrs, output_zero_point=z_in))
    act = Node(
        "act",
        "nonlinear",
        (h,),
        ("f",),
        attrs={
            "function": function,
            "input_scale": s_in,
            "input_zero_point": z_in,
            "input_min": ht.dtype.min,
            "output_scale": s_out,
            "input_shape": ht.shape,
        },
        weights={"table": table},
        source_op="Gelu" if function == "gelu" else "Tanh",
    )
    last = Node(
        last.name,
        last.op,
        ("f",),
        last.outputs,
        dict(last.attrs, input_zero_point=z_out),
        last.weights,
        last.source_op,
    )
    return Graph(g.name, tensors, (first, act, last), g.inputs, g.outputs)


def _inputs(graph: Graph, n=40, seed=1) -> np.ndarray:
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(seed).integers(t.dtype.min, t.dtype.max + 1, (n,) + t.shape)
    x[0], x[1] = t.dtype.min, t.dtype.max
    return x


@pytest.mark.parametrize("signed", [False, True])
def test_table_program_equals_golden(signed):
    graph = nonlinear_net(signed=signed)
    program = compile_graph(graph, CONFIG)
    assert [i.op for i in program.instrs].count("TAB") == 1
    assert program.config.tab_depth == TABLE_WORDS
    x = _inputs(graph)
    env = reference.run(program.graph, x)
    # the golden's hidden codes cover the table's range, so the test sees many entries
    assert len(np.unique(env["f"])) > 20
    assert np.array_equal(model.run(program, x), env[graph.outputs[0]])


def test_smurf_graph_keeps_its_own_golden():
    graph = nonlinear_net(function="tanh")
    smurf, units = smurf_graph(graph, length=128)
    (unit,) = units
    table = smurf.nodes[1].weights["table"]
    exact = graph.nodes[1].weights["table"]
    assert table.shape == exact.shape and not np.array_equal(table, exact)
    # a stochastic approximation of the same function: close to the exact table on average
    assert np.abs(table - exact).mean() < 4
    program = compile_graph(smurf, replace(CONFIG, smurf_cycles=smurf_element_cycles(unit.latency)))
    program = replace(program, smurf=units)
    assert program.config.tab_depth == 0
    x = _inputs(graph)
    assert np.array_equal(model.run(program, x), reference.run(smurf, x)[graph.outputs[0]])


def test_old_softmax_is_refused_by_name():
    # a softmax without recip_shift divides per element: the row unit does not take it
    graph = nonlinear_net()
    act = graph.nodes[1]
    soft = replace(act, attrs=dict(act.attrs, function="softmax", axis=0))
    graph = replace(graph, nodes=(graph.nodes[0], soft, graph.nodes[2]))
    with pytest.raises(
        ModelError, match=r"^node 'act' \(Gelu\): a softmax with one division per element"
    ):
        compile_graph(graph, CONFIG)


# --- Verilator ---------------------------------------------------------------------------------


def _simulate(tmp_path, program, *, random=6):
    from frontends.vectors import golden_vectors
    from rtl_gen.gemm.emit import write_gemm_artefact
    from sim.runner import run_sim

    vectors = golden_vectors(program.graph, random=random, seed=2)
    out = write_gemm_artefact(program, tmp_path / "art", vectors=vectors)
    result = run_sim(out, build_root=tmp_path / "build")
    summary = json.loads((out / "sim" / "summary.json").read_text())
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == len(vectors["inputs"])
    for layer in summary["layers"]:
        assert layer["rtl"] == layer["model"], layer
    return summary


@pytest.mark.sim
@pytest.mark.slow
def test_table_rtl_bit_exact(tmp_path):
    # (the sim tier runs tables in test_engine_sim's shared build: test_nonlinear_tables)
    # signed hidden codes: the table is indexed by the stored byte
    graph = nonlinear_net(sizes=(12, 9, 5), signed=True)
    program = compile_graph(graph, CONFIG)
    summary = _simulate(tmp_path, program)
    assert [l["name"] for l in summary["layers"]] == ["fc0", "act", "fc1"]


@pytest.mark.sim
@pytest.mark.slow
def test_smurf_rtl_bit_exact(tmp_path):
    graph = nonlinear_net(sizes=(12, 6, 5), function="tanh")
    smurf, units = smurf_graph(graph, length=32)
    program = compile_graph(
        smurf, replace(CONFIG, smurf_cycles=smurf_element_cycles(units[0].latency))
    )
    _simulate(tmp_path, replace(program, smurf=units), random=4)
