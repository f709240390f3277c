"""The golden model's codes against onnxruntime's on a QDQ model, layer by layer and at the
output.

Layer by layer: every golden node is fed onnxruntime's codes of its inputs (the outputs of
the model's QuantizeLinear nodes, which onnxruntime is asked for as extra graph outputs), so
each op is judged alone and a one-code difference upstream does not count against the
layers after it. At the output: both models run end to end from the same float inputs.

In a deep network the end-to-end figures fall below the per-layer ones because one-code
differences (requantization rounding, onnxruntime's fused integer kernels) travel and grow:
``compare`` reports onnxruntime's own end-to-end difference between its optimized graph
(fused QLinear kernels, the default) and its plain one beside the golden's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import reference
from .ir import Graph

__all__ = ["LayerAgreement", "Agreement", "layer_agreement", "output_agreement"]


@dataclass(frozen=True)
class LayerAgreement:
    node: str
    op: str
    elements: int
    equal: float
    within_one: float
    largest: int


@dataclass(frozen=True)
class Agreement:
    """End-to-end output codes: golden against onnxruntime (optimized, the default, and
    plain), and onnxruntime optimized against plain."""

    elements: int
    equal: float
    within_one: float
    largest: int
    argmax: float
    plain_within_one: float
    plain_argmax: float
    ort_self_within_one: float


def _session(model_bytes: bytes, optimized: bool):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimized
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _run(sess, names, x: np.ndarray) -> list[np.ndarray]:
    feed = sess.get_inputs()[0].name
    rows = [sess.run(names, {feed: x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate([r[j] for r in rows]) for j in range(len(rows[0]))]


def layer_agreement(
    graph: Graph, path: str | Path, x: np.ndarray, *, optimized: bool = True
) -> list[LayerAgreement]:
    """Each golden node whose output is a QuantizeLinear output of the model, fed
    onnxruntime's input codes, against onnxruntime's output codes (float inputs ``x``)."""
    import onnx

    model = onnx.load(str(path))
    quantized = {o for n in model.graph.node if n.op_type == "QuantizeLinear" for o in n.output}
    names = [t for t in graph.tensors if t in quantized and t not in graph.inputs]
    for t in names:
        kind = onnx.TensorProto.INT8 if graph.tensor(t).dtype.signed else onnx.TensorProto.UINT8
        model.graph.output.append(onnx.helper.make_tensor_value_info(t, kind, None))
    sess = _session(model.SerializeToString(), optimized)
    n = len(x)
    ort = dict(zip(names, _run(sess, names, x)))
    codes = reference.quantize_inputs(graph, x)
    known = {graph.inputs[0]: codes}
    out = []
    for node in graph.nodes:
        shape = (n,) + graph.tensor(node.outputs[0]).shape
        y = reference.OPS[node.op](node, *(known[i] for i in node.inputs)).reshape(shape)
        t = node.outputs[0]
        if t in ort:
            want = ort[t].astype(np.int64).reshape(shape)
            d = np.abs(y - want)
            out.append(
                LayerAgreement(
                    node.name,
                    node.op,
                    int(d.size),
                    float((d == 0).mean()),
                    float((d <= 1).mean()),
                    int(d.max(initial=0)),
                )
            )
            y = want
        known[t] = y
    return out


def output_agreement(graph: Graph, path: str | Path, x: np.ndarray) -> Agreement:
    """End-to-end output codes of the golden model and onnxruntime (its dequantized outputs
    quantized back with the output's scale and zero point)."""
    q = graph.tensor(graph.outputs[0]).quant
    data = Path(path).read_bytes()
    golden = reference.run(graph, reference.quantize_inputs(graph, x))[graph.outputs[0]]
    golden = golden.reshape(len(x), -1)

    def codes(optimized: bool) -> np.ndarray:
        (y,) = _run(_session(data, optimized), None, x)
        c = np.rint(y.reshape(len(x), -1) / np.asarray(q.scale, np.float64))
        return (c + np.asarray(q.zero_point)).astype(np.int64)

    fast, plain = codes(True), codes(False)
    d, dp, ds = np.abs(golden - fast), np.abs(golden - plain), np.abs(fast - plain)
    return Agreement(
        int(d.size),
        float((d == 0).mean()),
        float((d <= 1).mean()),
        int(d.max(initial=0)),
        float((golden.argmax(1) == fast.argmax(1)).mean()),
        float((dp <= 1).mean()),
        float((golden.argmax(1) == plain.argmax(1)).mean()),
        float((ds <= 1).mean()),
    )
