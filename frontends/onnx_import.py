"""ONNX (QDQ) models into the integer IR.

The importer walks the ONNX graph in order and tracks, for every float tensor, which integer
expression it equals (``scale * (codes - zero_point)``). Float ops between a
``DequantizeLinear`` and the next ``QuantizeLinear`` are folded into one IR node; anything whose
integer meaning is not exact is refused with an error naming the ONNX node.

One handler per ONNX op, registered with ``@handler("Op")``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ModelError
from .fixedpoint import quantize_multipliers
from .ir import Graph, IntType, Node, QuantParams, Tensor

__all__ = ["import_onnx", "load_onnx", "SUPPORTED_OPS"]

log = logging.getLogger(__name__)

# ONNX TensorProto element types that quantized tensors use.
_INT_TYPES = {2: IntType(8, False), 3: IntType(8, True), 4: IntType(16, False),
              5: IntType(16, True), 6: IntType(32, True), 21: IntType(4, False),
              22: IntType(4, True)}


# --- what a float tensor is known to equal ------------------------------------------------

@dataclass(frozen=True)
class _FloatInput:
    """A graph input in float, before its QuantizeLinear."""
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Dequantized:
    """``scale * (codes - zero_point)`` of an IR tensor."""
    tensor: str
    scale: float
    zero_point: int


@dataclass(frozen=True, eq=False)
class _Constant:
    """``scale * (values - zero_point)`` of an initializer (scale 1 for plain floats)."""
    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    dtype: IntType | None


@dataclass(frozen=True, eq=False)
class _Accumulator:
    """``acc_scale * acc`` with ``acc = (x - zx) @ weight.T + bias``: a dense layer so far."""
    node: str
    op: str
    x: _Dequantized
    weight: np.ndarray          # (N, K) zero-point-free integers
    weight_dtype: IntType
    acc_scale: np.ndarray       # (N,)
    bias: np.ndarray | None     # (N,) integers at acc_scale
    relu: bool = False


@dataclass
class _State:
    model: object
    opset: int
    initializers: dict
    values: dict
    tensors: dict
    nodes: list
    inputs: list


_HANDLERS: dict[str, Callable] = {}


def handler(*ops: str):
    def register(fn):
        for op in ops:
            _HANDLERS[op] = fn
        return fn
    return register


SUPPORTED_OPS = ()  # filled in below, after the handlers are registered


# --- loading ---------------------------------------------------------------------------------

def load_onnx(path: str | Path):
    """Read and check an ONNX file; external data must stay inside the model's folder."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError, ...
        raise ModelError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
    if not model.graph.node:
        raise ModelError(f"{path}: not an ONNX model (the graph has no nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"{path}: the ONNX checker rejects the model ({_first_line(exc)})") \
            from None
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def import_onnx(path: str | Path, *, name: str | None = None) -> Graph:
    """Import a QDQ-quantized ONNX model as an integer IR graph."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = load_onnx(path)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:
        pass
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    state = _State(model, opset, initializers, {}, {}, [], [])
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1
                     for d in inp.type.tensor_type.shape.dim)
        state.values[inp.name] = _FloatInput(inp.name, dims)

    for node in model.graph.node:
        label = f"node '{node.name or node.output[0]}' ({node.op_type}, opset {opset})"
        if node.domain not in ("", "ai.onnx"):
            raise ModelError(f"{label}: custom domain '{node.domain}' is not supported; "
                             f"supported ops: {', '.join(SUPPORTED_OPS)}")
        fn = _HANDLERS.get(node.op_type)
        if fn is None:
            raise ModelError(f"{label}: op {node.op_type} is not supported; "
                             f"supported ops: {', '.join(SUPPORTED_OPS)}")
        try:
            fn(state, node, label)
        except ModelError:
            raise
        except Exception as exc:  # malformed attributes or inputs in this node
            raise ModelError(f"{label}: cannot import ({_first_line(exc)})") from None

    outputs = []
    for out in model.graph.output:
        value = state.values.get(out.name)
        if not isinstance(value, _Dequantized):
            raise ModelError(f"graph output '{out.name}' is not the DequantizeLinear of a "
                             f"quantized tensor; nnloom needs the model's outputs quantized")
        outputs.append(value.tensor)
    if not state.inputs:
        raise ModelError(f"{path}: no graph input is quantized with QuantizeLinear")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Graph(name=name or path.stem, tensors=state.tensors, nodes=tuple(state.nodes),
                 inputs=tuple(state.inputs), outputs=tuple(outputs), source_sha256=digest)


# --- helpers ---------------------------------------------------------------------------------

def _input(state: _State, node, index: int, label: str):
    if index >= len(node.input) or not node.input[index]:
        return None
    name = node.input[index]
    if name in state.values:
        return state.values[name]
    if name in state.initializers:
        return state.initializers[name]
    raise ModelError(f"{label}: input '{name}' is neither produced by a node nor an initializer")


def _const(state: _State, node, index: int, label: str, what: str) -> np.ndarray:
    value = _input(state, node, index, label)
    if not isinstance(value, np.ndarray):
        raise ModelError(f"{label}: {what} '{node.input[index]}' must be a constant initializer")
    return value


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _int_type(array: np.ndarray, label: str, what: str) -> IntType:
    kinds = {np.dtype(np.int8): IntType(8, True), np.dtype(np.uint8): IntType(8, False),
             np.dtype(np.int16): IntType(16, True), np.dtype(np.uint16): IntType(16, False),
             np.dtype(np.int32): IntType(32, True)}
    if array.dtype in kinds:
        return kinds[array.dtype]
    raise ModelError(f"{label}: {what} has element type {array.dtype}; expected an integer type")


# --- handlers --------------------------------------------------------------------------------

@handler("QuantizeLinear")
def _quantize_linear(state: _State, node, label: str):
    x = _input(state, node, 0, label)
    scale = _const(state, node, 1, label, "scale")
    zp = _input(state, node, 2, label)
    zp = np.zeros((), np.uint8) if zp is None else zp
    attrs = _attrs(node)
    if scale.size != 1:
        raise ModelError(f"{label}: per-axis activation quantization is not supported")
    dtype = _int_type(zp, label, "zero point")
    if attrs.get("output_dtype"):
        dtype = _INT_TYPES.get(attrs["output_dtype"]) or dtype
    s, z = float(scale.reshape(())), int(zp.reshape(()))
    if not (s > 0 and np.isfinite(s)):
        raise ModelError(f"{label}: scale {s} must be positive and finite")
    out = node.output[0]
    quant = QuantParams(np.array(s), np.array(z))
    if isinstance(x, _FloatInput):
        shape = tuple(d for d in x.shape[1:]) if len(x.shape) > 1 else x.shape
        if any(d <= 0 for d in shape):
            raise ModelError(f"{label}: input '{x.name}' has an unknown shape {x.shape}")
        state.tensors[out] = Tensor(out, shape, dtype, quant)
        state.inputs.append(out)
    elif isinstance(x, _Accumulator):
        _emit_dense(state, x, out, dtype, s, z, label)
    else:
        raise ModelError(f"{label}: quantizing '{node.input[0]}' is not supported here (only a "
                         f"graph input or the result of MatMul/Gemm[/Add][/Relu])")
    state.values[out] = ("codes", out)


@handler("DequantizeLinear")
def _dequantize_linear(state: _State, node, label: str):
    x = _input(state, node, 0, label)
    scale = _const(state, node, 1, label, "scale")
    zp = _input(state, node, 2, label)
    attrs = _attrs(node)
    out = node.output[0]
    if isinstance(x, np.ndarray):
        zp = np.zeros_like(scale, dtype=np.int64) if zp is None else zp
        axis = attrs.get("axis", 1) if scale.size > 1 else None
        state.values[out] = _Constant(x.astype(np.int64), scale.astype(np.float64),
                                      np.asarray(zp, np.int64), axis, _int_type(x, label, "input"))
    elif isinstance(x, tuple) and x[0] == "codes":
        if scale.size != 1:
            raise ModelError(f"{label}: per-axis activation quantization is not supported")
        z = 0 if zp is None else int(np.asarray(zp).reshape(()))
        state.values[out] = _Dequantized(x[1], float(scale.reshape(())), z)
    else:
        raise ModelError(f"{label}: input '{node.input[0]}' is not quantized codes")


def _weight_matrix(w: _Constant, transposed: bool, label: str):
    """(N, K) zero-point-free weights and per-output-channel scales."""
    if w.values.ndim != 2:
        raise ModelError(f"{label}: weight must be 2-D, got shape {w.values.shape}")
    values, zp = w.values, w.zero_point
    out_axis = 0 if transposed else 1
    if w.axis is not None and w.axis % 2 != out_axis:
        raise ModelError(f"{label}: weights quantized per input channel are not supported")
    n = values.shape[out_axis]
    zp_n = np.broadcast_to(zp.reshape(-1), (n,)) if zp.size > 1 else np.full(n, int(zp))
    scale_n = np.broadcast_to(w.scale.reshape(-1), (n,)).astype(np.float64) if w.scale.size > 1 \
        else np.full(n, float(w.scale.reshape(())))
    mat = values if transposed else values.T
    return mat - zp_n[:, None], scale_n


@handler("Gemm", "MatMul")
def _matmul(state: _State, node, label: str):
    x = _input(state, node, 0, label)
    w = _input(state, node, 1, label)
    if not isinstance(x, _Dequantized):
        raise ModelError(f"{label}: input '{node.input[0]}' must come from a DequantizeLinear")
    if not isinstance(w, _Constant):
        raise ModelError(f"{label}: weight '{node.input[1]}' must be a quantized initializer "
                         f"(DequantizeLinear of an integer constant)")
    attrs = _attrs(node)
    if node.op_type == "Gemm":
        if attrs.get("transA", 0):
            raise ModelError(f"{label}: transA=1 is not supported")
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise ModelError(f"{label}: alpha/beta other than 1 are not supported")
    transposed = bool(attrs.get("transB", 0)) if node.op_type == "Gemm" else False
    weight, w_scale = _weight_matrix(w, transposed, label)
    k = state.tensors[x.tensor].size
    if weight.shape[1] != k:
        raise ModelError(f"{label}: weight has {weight.shape[1]} inputs but "
                         f"'{x.tensor}' has {k}")
    acc = _Accumulator(node.name or node.output[0], node.op_type, x, weight, w.dtype,
                       x.scale * w_scale, None)
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        acc = _add_bias(acc, _input(state, node, 2, label), label)
    state.values[node.output[0]] = acc


def _add_bias(acc: _Accumulator, bias, label: str) -> _Accumulator:
    if acc.bias is not None:
        raise ModelError(f"{label}: a second bias on the same MatMul is not supported")
    if not isinstance(bias, _Constant):
        raise ModelError(f"{label}: bias must be a quantized initializer")
    n = acc.weight.shape[0]
    values = (bias.values - bias.zero_point).reshape(-1)
    if values.size not in (1, n):
        raise ModelError(f"{label}: bias has {values.size} values for {n} outputs")
    real = np.broadcast_to(values * bias.scale.reshape(-1), (n,))
    codes = np.rint(real / acc.acc_scale).astype(np.int64)
    # ORT writes bias at exactly scale_x * scale_w, so this is exact; anything else rounds.
    if not np.allclose(codes * acc.acc_scale, real, rtol=1e-5, atol=0):
        log.warning("%s: bias is not on the accumulator's scale; rounded to it", label)
    return replace(acc, bias=codes)


@handler("Add")
def _add(state: _State, node, label: str):
    a, b = _input(state, node, 0, label), _input(state, node, 1, label)
    if isinstance(b, _Accumulator) and not isinstance(a, _Accumulator):
        a, b = b, a
    if not isinstance(a, _Accumulator) or a.relu:
        raise ModelError(f"{label}: only a bias Add right after MatMul/Gemm is supported")
    state.values[node.output[0]] = _add_bias(a, b, label)


@handler("Relu")
def _relu(state: _State, node, label: str):
    x = _input(state, node, 0, label)
    if not isinstance(x, _Accumulator):
        raise ModelError(f"{label}: only a Relu right after MatMul/Gemm[/Add] is supported")
    state.values[node.output[0]] = replace(x, relu=True)


@handler("Identity")
def _identity(state: _State, node, label: str):
    state.values[node.output[0]] = _input(state, node, 0, label)


SUPPORTED_OPS = tuple(sorted(_HANDLERS))


def _emit_dense(state: _State, acc: _Accumulator, out: str, dtype: IntType, scale: float,
                zero_point: int, label: str):
    n = acc.weight.shape[0]
    real = acc.acc_scale / scale
    try:
        multiplier, shift = quantize_multipliers(real)
    except ValueError as exc:
        raise ModelError(f"{label}: {exc}") from None
    lo, hi = dtype.min, dtype.max
    if acc.relu:
        lo = max(lo, zero_point)
    w_lo, w_hi = int(acc.weight.min()), int(acc.weight.max())
    state.tensors[out] = Tensor(out, (n,), dtype, QuantParams(np.array(scale),
                                                                np.array(zero_point)))
    state.nodes.append(Node(
        name=acc.node, op="dense", source_op=acc.op,
        inputs=(acc.x.tensor,), outputs=(out,),
        attrs={"input_zero_point": acc.x.zero_point, "output_zero_point": zero_point,
               "shift": shift, "lo": lo, "hi": hi, "relu": acc.relu,
               "weight_range": (w_lo, w_hi), "weight_dtype": acc.weight_dtype},
        weights={"weight": acc.weight.astype(np.int64),
                 "bias": (acc.bias if acc.bias is not None else np.zeros(n, np.int64)),
                 "multiplier": multiplier}))
