"""ONNX's own node test cases (the onnx wheel's ``onnx.backend.test.case.node``) run through
nnloom's importer and integer golden model.

Every case of an op nnloom claims ends as one of:

- ``passed``: imported, and the golden's output equals the case's expected output (codes
  exactly; dequantized floats to the case's tolerance);
- ``passed (QDQ)``: a float-only case whose op commutes with quantization (layout, max
  pooling, Relu/Clip: the same quantizer on input and output) or whose data are small
  integers (arithmetic ops at scale 1), wrapped in QuantizeLinear/DequantizeLinear: the
  golden's codes equal the expected output quantized by the same quantizer;
- ``refused: <reason>``: ``ModelError`` with a named reason (dtype, attribute, needs
  quantization, ...);
- ``wrong`` or ``error`` (any other exception): a bug.

How a case is made importable (nnloom imports graphs with one float input and constant
parameters): the op's data inputs stay graph inputs, every other input (scales, zero points,
weights, biases, shapes, bounds) becomes an initializer with the case's value; an integer
data input is fed through ``QuantizeLinear(x, 1, 0)`` of its own type (exact); an int32
output (MatMulInteger, ConvInteger) is read through ``QuantizeLinear(Cast(y), 1, 0)`` to
int32 (exact below 2**24). ``python tests/frontends/conformance_cases.py`` prints the table.
"""

from __future__ import annotations

import importlib
import re
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

# op -> indices of its data inputs (the rest become initializers); None: every input
OPS = {
    "QuantizeLinear": (0,),
    "DequantizeLinear": (0,),
    "QLinearMatMul": (0,),
    "QLinearConv": (0,),
    "MatMulInteger": (0,),
    "ConvInteger": (0,),
    "Conv": (0,),
    "Gemm": (0,),
    "MatMul": (0,),
    "MaxPool": (0,),
    "AveragePool": (0,),
    "GlobalAveragePool": (0,),
    "Relu": (0,),
    "Clip": (0,),
    "Add": None,
    "Concat": None,
    "Flatten": (0,),
    "Reshape": (0,),
    "Transpose": (0,),
}
# float ops that commute with one elementwise monotone quantizer on inputs and output
COMMUTES = {"MaxPool", "Relu", "Clip", "Concat", "Flatten", "Reshape", "Transpose"}
# float ops exact at scale 1 on integer data (weights and biases integers too)
ARITHMETIC = {"Conv", "Gemm", "MatMul", "AveragePool", "GlobalAveragePool", "Add"}

REASONS = [
    (
        r"on integer codes|here it is integer codes",
        "integer-typed tensor (nnloom runs float ops between DequantizeLinear and QuantizeLinear)",
    ),
    (
        r"must be a dequantized tensor|unquantized graph input|is not a quantized tensor|"
        r"not quantized codes|is not supported; layout ops apply|of a float constant|"
        r"is supported only by a float constant",
        "needs quantization",
    ),
    (r"second quantized graph input|no graph input is quantized", "more than one graph input"),
    (
        r"element type|expected an integer type|output_dtype|not an integer type",
        "unsupported dtype",
    ),
    (r"must be a scalar|per-axis|per input channel|per-channel for", "per-axis quantization"),
    (
        r"per sample is not supported|weight must be 2-D|one vector per sample|pools need|"
        r"windows are supported",
        "batched or N-D operands",
    ),
    (
        r"moves the batch axis|batch axis|changes the batch dimension|cannot reshape",
        "moves ONNX's first (batch) axis",
    ),
    (r"Indices output", "MaxPool Indices output"),
    (r"clip range .* is empty", "empty clip range (min > max)"),
    (r"checker rejects", "rejected by the onnx checker"),
    (r"transA|alpha/beta", "Gemm transA/alpha/beta"),
    (r"bias has|bias must be", "bias shape"),
    (
        r"ceil_mode|auto_pad|dilation|kernel|window|pads|strides|the output would be empty",
        "unsupported window attribute",
    ),
    (r"only same-shape|do not concatenate|shapes", "broadcasting"),
    (r"saturate", "saturate=0"),
]


def reason(message: str) -> str:
    for pattern, name in REASONS:
        if re.search(pattern, message):
            return name
    return "other: " + message.split(": ", 1)[-1][:70]


def load_cases() -> list:
    """The onnx wheel's single-node test cases of the ops in ``OPS`` (only their modules are
    imported: collecting every case takes ~20 s)."""
    import warnings

    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for op in OPS:
            name = f"onnx.backend.test.case.node.{op.lower()}"
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    return [
        c
        for c in node_cases._NodeTestCases
        if len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in OPS
    ]


def _opset(model) -> int:
    return max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [1])


def _int_dtype(elem_type: int) -> bool:
    """Not a float32/float16/double/bfloat16 tensor: integers, and float8/float4 codes."""
    return elem_type not in (1, 10, 11, 16)


def _data_inputs(case) -> list[str]:
    node = case.model.graph.node[0]
    idx = OPS[node.op_type]
    return [n for i, n in enumerate(node.input) if n and (idx is None or i in idx)]


def _build(case, inputs, expected, *, qdq=None):
    """The case's model made importable (see the module docstring) and how to feed/read it:
    (model, feed array, output kind) where kind is 'codes', 'float' or 'acc'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = case.model
    g = model.graph
    node = g.node[0]
    data_idx = OPS[node.op_type]
    names = [i.name for i in g.input]
    values = dict(zip(names, inputs))
    data = _data_inputs(case)
    del data_idx
    inits, new_inputs, nodes = [], [], []
    opset = _opset(model)
    for name in names:
        if name in data:
            continue
        v = values[name]
        if qdq is not None and node.op_type in ("Conv", "Gemm", "MatMul") and name == node.input[1]:
            inits.append(numpy_helper.from_array(np.rint(v).astype(qdq["dtype"]), name + "_q"))
            inits.append(numpy_helper.from_array(np.float32(1.0), name + "_s"))
            nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_s"], [name]))
            continue
        inits.append(numpy_helper.from_array(np.asarray(v), name))
    feeds = []
    for name in data:
        vi = next(i for i in g.input if i.name == name)
        et = vi.type.tensor_type.elem_type
        dims = list(np.shape(values[name]))
        if qdq is not None:
            zp = np.zeros((), qdq["dtype"])
            inits += [
                numpy_helper.from_array(np.float32(qdq["scale"]), name + "_qs"),
                numpy_helper.from_array(zp, name + "_qz"),
            ]
            new_inputs.append(helper.make_tensor_value_info(name + "_f", TensorProto.FLOAT, dims))
            nodes += [
                helper.make_node(
                    "QuantizeLinear", [name + "_f", name + "_qs", name + "_qz"], [name + "_c"]
                ),
                helper.make_node(
                    "DequantizeLinear", [name + "_c", name + "_qs", name + "_qz"], [name]
                ),
            ]
        elif _int_dtype(et):
            zp = np.zeros((), dtype=values[name].dtype)
            inits += [
                numpy_helper.from_array(np.float32(1.0), name + "_one"),
                numpy_helper.from_array(zp, name + "_zero"),
            ]
            new_inputs.append(helper.make_tensor_value_info(name + "_f", TensorProto.FLOAT, dims))
            nodes.append(
                helper.make_node(
                    "QuantizeLinear", [name + "_f", name + "_one", name + "_zero"], [name]
                )
            )
        else:
            new_inputs.append(vi)
        feeds.append(np.asarray(values[name]))
    nodes.append(node)
    out = g.output[0]
    out_type = out.type.tensor_type.elem_type
    outputs = [out]
    kind = "codes" if _int_dtype(out_type) else "float"
    if qdq is not None:
        inits += [
            numpy_helper.from_array(np.float32(qdq["scale"]), "y_qs"),
            numpy_helper.from_array(np.zeros((), qdq["dtype"]), "y_qz"),
        ]
        nodes.append(helper.make_node("QuantizeLinear", [out.name, "y_qs", "y_qz"], ["y_q"]))
        outputs = [helper.make_tensor_value_info("y_q", qdq["elem"], expected.shape)]
        kind = "codes"
    elif out_type in (6, 7):  # int32/int64 accumulators: read through an int32 quantizer
        inits += [
            numpy_helper.from_array(np.float32(1.0), "acc_one"),
            numpy_helper.from_array(np.zeros((), np.int32), "acc_zero"),
        ]
        nodes += [
            helper.make_node("Cast", [out.name], ["acc_f"], to=TensorProto.FLOAT),
            helper.make_node("QuantizeLinear", ["acc_f", "acc_one", "acc_zero"], ["acc_q"]),
        ]
        outputs = [helper.make_tensor_value_info("acc_q", TensorProto.INT32, expected.shape)]
        kind = "codes"
        opset = max(opset, 21)
    graph = helper.make_graph(nodes, g.name, new_inputs, outputs, inits)
    opsets = [o for o in model.opset_import if o.domain not in ("", "ai.onnx")]
    opsets.append(helper.make_opsetid("", opset))
    m = helper.make_model(graph, opset_imports=opsets, ir_version=max(model.ir_version, 7))
    del onnx
    return m, feeds, kind


def _golden(path, feeds):
    from frontends import reference
    from frontends.onnx_import import import_onnx

    graph = import_onnx(path)
    t = graph.tensor(graph.inputs[0])
    (x,) = feeds if len(feeds) == 1 else (None,)
    if x is None:
        raise AssertionError("imported a graph with two data inputs")
    batched = tuple(x.shape[1:]) == t.shape
    xb = x if batched else x.reshape((1,) + t.shape)
    codes = reference.quantize_inputs(graph, xb.astype(np.float64))
    env = reference.run(graph, codes)
    out = env[graph.outputs[0]]
    return graph, out


def _compare(graph, out, expected, kind, case):
    from frontends import reference

    if kind == "codes":
        got = out.reshape(expected.shape)
        return bool(np.array_equal(got.astype(np.int64), expected.astype(np.int64)))
    got = reference.dequantize(graph, graph.outputs[0], out).reshape(expected.shape)
    return bool(np.allclose(got, expected.astype(np.float32), rtol=case.rtol, atol=case.atol))


def _qdq_plan(case, inputs, expected):
    """The quantizer wrapping a float-only case, or None when it cannot be exact."""
    import onnx

    from frontends.fixedpoint import quantize_linear

    op = case.model.graph.node[0].op_type
    if op not in COMMUTES | ARITHMETIC:
        return None
    opset = _opset(case.model)
    dtype, elem, top = (
        (np.int16, onnx.TensorProto.INT16, 32767)
        if opset >= 21
        else (np.int8, onnx.TensorProto.INT8, 127)
    )
    values = [np.asarray(v) for v in inputs if np.asarray(v).dtype.kind == "f"]
    if not values or any(v.dtype.kind != "f" for v in [np.asarray(expected)]):
        return None
    if op in COMMUTES:
        big = max(float(np.abs(v).max(initial=0)) for v in values)
        scale = np.float32((big or 1.0) / top)
    else:
        every = values + [np.asarray(expected)]
        if not all(np.all(v == np.rint(v)) and np.abs(v).max(initial=0) <= top for v in every):
            return None
        scale = np.float32(1.0)
    codes = quantize_linear(np.asarray(expected), scale, 0, -top - 1, top)
    return {"scale": scale, "dtype": dtype, "elem": elem, "expected": codes}


def _array(v) -> np.ndarray:
    from onnx import TensorProto, numpy_helper

    return numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v)


def run_case(case, tmp: Path) -> tuple[str, str]:
    """(outcome, detail) of one case: outcome is 'passed', 'passed (QDQ)', 'refused: ...',
    'wrong' or 'error'."""
    import onnx

    from frontends.errors import ModelError

    results = []
    for inputs, outputs in case.data_sets:
        inputs = [_array(v) for v in inputs]
        expected = _array(outputs[0])
        path = tmp / f"{case.name}.onnx"
        model, feeds, kind = _build(case, inputs, expected)
        onnx.save(model, str(path))
        try:
            graph, out = _golden(path, feeds)
        except ModelError as exc:
            plan = None
            data = _data_inputs(case)
            if kind == "float" and not any(
                _int_dtype(i.type.tensor_type.elem_type)
                for i in case.model.graph.input
                if i.name in data
            ):
                plan = _qdq_plan(case, inputs, expected)
            if plan is None:
                return f"refused: {reason(str(exc))}", str(exc)
            model, feeds, kind = _build(case, inputs, expected, qdq=plan)
            onnx.save(model, str(path))
            try:
                graph, out = _golden(path, feeds)
            except ModelError as exc2:
                return f"refused: {reason(str(exc2))}", str(exc2)
            except Exception as exc2:  # noqa: BLE001
                return "error", f"{type(exc2).__name__}: {exc2}"
            if not _compare(graph, out, plan["expected"], "codes", case):
                return "wrong", "QDQ form differs from the expected output's codes"
            results.append("passed (QDQ)")
            continue
        except Exception as exc:  # noqa: BLE001
            return "error", f"{type(exc).__name__}: {exc}"
        if not _compare(graph, out, expected, kind, case):
            return "wrong", f"golden {out.reshape(-1)[:8]} expected {expected.reshape(-1)[:8]}"
        results.append("passed")
    return (results[0] if results else "refused: no data"), ""


def run_all(cases=None) -> tuple[dict, list]:
    """Per-op Counter of outcomes and the list of (case, outcome, detail)."""
    cases = load_cases() if cases is None else cases
    table: dict = defaultdict(Counter)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            outcome, detail = run_case(case, Path(tmp))
            table[case.model.graph.node[0].op_type][outcome] += 1
            rows.append((case.name, outcome, detail))
    return dict(table), rows


def markdown(table: dict) -> str:
    lines = [
        "| op | cases | passed | passed (QDQ) | refused (reason: count) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for op in OPS:
        c = table.get(op, Counter())
        refused = ", ".join(
            f"{k[len('refused: ') :]}: {v}" for k, v in sorted(c.items()) if k.startswith("refused")
        )
        bad = ", ".join(f"{k}: {c[k]}" for k in ("wrong", "error") if c.get(k))
        lines.append(
            f"| {op} | {sum(c.values())} | {c.get('passed', 0)} | "
            f"{c.get('passed (QDQ)', 0)} | {refused or '—'}{'; ' + bad if bad else ''} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    table, rows = run_all()
    for name, outcome, detail in rows:
        print(f"{name}: {outcome}" + (f" -- {detail}" if detail else ""))
    print(markdown(table))
