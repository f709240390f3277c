"""ONNX models (QDQ, QONNX/Brevitas, integer ops) into the integer IR.

The importer walks the ONNX graph in order and tracks, for every float tensor, which integer
expression it equals (``scale * (codes - zero_point)``, a layer's accumulator, ...). Float ops
between a dequantization and the next quantizer fold into one IR node; anything whose integer
meaning is not exact is refused with an error naming the ONNX node, its op and opset.

One handler per op (``frontends._onnx``: ``quant`` QDQ, ``linear`` Gemm/MatMul/Conv/BN,
``ops`` Add/Relu/Clip/Concat/pools/nonlinear, ``layout``, ``integer``, ``qonnx``). Nodes whose
inputs are all constants are folded with onnx's reference evaluator first.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._onnx import (  # noqa: F401 (registers handlers)
    integer,
    island,
    layout,
    linear,
    norm,
    ops,
    qonnx,
    quant,
    sequence,
)
from ._onnx.base import (
    HANDLERS,
    MS_DOMAIN,
    ONNX_DOMAINS,
    QONNX_DOMAINS,
    Accumulator,
    Codes,
    Dequantized,
    FloatInput,
    HostTail,
    Pending,
    State,
    describe_value,
    supported_ops,
)
from ._onnx.quant import emit_float_output, output_dequantized
from .errors import ModelError
from .fixedpoint import (
    DEEP_LAYERS,
    DEEP_MULTIPLIER_BITS,
    WIDE_MULTIPLIER_BITS,
    multiplier_width,
)
from .ir import Graph, is_transformer, layer_depth
from .ranges import check_ranges

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = ["import_onnx", "load_onnx", "scan_onnx", "UnsupportedNode", "SUPPORTED_OPS"]

log = logging.getLogger(__name__)

SUPPORTED_OPS = supported_ops()
_NO_FOLD = {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape"}


# --- loading -----------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _all_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _all_tensors(a.g)
            for g in a.graphs:
                yield from _all_tensors(g)


def _check_external_data(model, path: Path):
    """External data must be a plain file inside the model's folder, reached without
    symlinks, and hold every byte the model says it does."""
    from onnx import TensorProto

    base = path.parent.resolve()
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        where = f"{path}: tensor '{tensor.name}' has external data"
        location = info.get("location", "")
        if "\x00" in location:
            raise ModelError(f"{where} at a location with a NUL byte ({location!r}); refused")
        rel = Path(location)
        if not location or rel.is_absolute() or rel.anchor or "\\" in location:
            raise ModelError(
                f"{where} at '{location}'; only relative paths inside the "
                f"model's folder are allowed"
            )
        current = base
        for part in rel.parts:
            if part in ("..", "."):
                raise ModelError(f"{where} at '{location}', outside the model's folder; refused")
            current = current / part
            if current.is_symlink():
                raise ModelError(
                    f"{where} at '{location}', reached through a symlink "
                    f"('{current.name}'); refused: copy the data file next to the "
                    f"model"
                )
        if not current.resolve().is_relative_to(base):
            raise ModelError(f"{where} at '{location}', outside the model's folder; refused")
        if not current.is_file():
            raise ModelError(f"{where} at '{location}', which does not exist")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise ModelError(f"{where} with a bad offset/length") from None
        size = current.stat().st_size
        if offset < 0 or offset > size or (length >= 0 and offset + length > size):
            raise ModelError(
                f"{where} at bytes {offset}..{offset + max(length, 0)} of "
                f"'{location}', which has only {size} bytes"
            )


def _check_opsets(model, path: Path):
    """Refuse an ONNX opset newer than the installed onnx package knows (its checker would
    otherwise take any number, and nnloom's handlers read attributes by that version)."""
    import onnx

    known = onnx.defs.onnx_opset_version()
    for o in model.opset_import:
        if o.domain in ONNX_DOMAINS and o.version > known:
            raise ModelError(
                f"{path}: the model imports ONNX opset {o.version}; the installed "
                f"onnx {onnx.__version__} knows opsets up to {known} (pip install "
                f"-U onnx, or export with opset_version={known} or lower)"
            )
        if o.domain in ONNX_DOMAINS and o.version < 1:
            raise ModelError(f"{path}: the model imports ONNX opset {o.version}, not a valid opset")


def load_onnx(path: str | Path) -> ModelProto:
    """Read and check an ONNX file. External data must stay inside the model's folder and is
    never reached through a symlink; nothing is unpickled."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, OSError, ...
        raise ModelError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
    if not model.graph.node:
        raise ModelError(f"{path}: not an ONNX model (the graph has no nodes)")
    if not model.graph.output:
        raise ModelError(f"{path}: the graph has no outputs; nnloom needs one quantized output")
    _check_opsets(model, path)
    _check_external_data(model, path)
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read its external data ({_first_line(exc)})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(
            f"{path}: the ONNX checker rejects the model ({_first_line(exc)})"
        ) from None
    return model


# --- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsupportedNode:
    name: str
    op: str
    domain: str
    opset: int

    def __str__(self) -> str:
        return f"node '{self.name}' ({self.op}, opset {self.opset})"


def _opsets(model) -> dict:
    out = {}
    for o in model.opset_import:
        out["" if o.domain in ONNX_DOMAINS else o.domain] = int(o.version)
    return out


def _label(node, opsets) -> str:
    domain = "" if node.domain in ONNX_DOMAINS else node.domain
    return f"node '{node.name or node.output[0]}' ({node.op_type}, opset {opsets.get(domain, 0)})"


def scan_onnx(path: str | Path) -> list[UnsupportedNode]:
    """The nodes of a model whose op nnloom has no handler for (without importing it)."""
    model = load_onnx(path)
    opsets = _opsets(model)
    out = []
    constant = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        domain = "" if node.domain in ONNX_DOMAINS else node.domain
        inputs = [n for n in node.input if n]
        if domain == "" and (
            node.op_type in ("Constant", "Shape")
            or (inputs and node.op_type not in _NO_FOLD and all(n in constant for n in inputs))
        ):
            constant.update(o for o in node.output if o)  # folded at import (static shapes)
            continue
        if (domain, node.op_type) not in HANDLERS:
            out.append(
                UnsupportedNode(
                    node.name or node.output[0], node.op_type, domain, opsets.get(domain, 0)
                )
            )
    return out


# --- import ------------------------------------------------------------------------------------


def _fold(state: State, node, opsets: dict, label: str) -> bool:
    """Evaluate a node whose inputs are all float/integer constants (shape arithmetic,
    constant scales) with onnx's reference evaluator; True if it did."""
    if node.domain not in ONNX_DOMAINS or node.op_type in _NO_FOLD or not node.input:
        return False
    inputs = [n for n in node.input if n]
    if not inputs or not all(n not in state.values and n in state.initializers for n in inputs):
        return False
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    feeds = {n: state.initializers[n] for n in inputs}
    graph = helper.make_graph(
        [node],
        "fold",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for n, v in feeds.items()
        ],
        [helper.make_tensor_value_info(o, 0, None) for o in node.output if o],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opsets.get("", 13))])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:
        raise ModelError(
            f"{label}: cannot evaluate this constant expression ({_first_line(exc)})"
        ) from None
    for name, result in zip([o for o in node.output if o], results):
        state.initializers[name] = np.asarray(result)
    return True


def import_onnx(
    path: str | Path, *, name: str | None = None, multiplier_bits: int | None = None
) -> Graph:
    """Import a quantized ONNX model (QDQ, QONNX or integer ops) as an integer IR graph.

    Requantization multipliers have ``multiplier_bits`` bits; by default
    ``fixedpoint.MULTIPLIER_BITS``, but ``WIDE_MULTIPLIER_BITS`` for a transformer
    (``ir.is_transformer``), whose one-code differences grow through its attention blocks,
    and ``DEEP_MULTIPLIER_BITS`` for a network more than ``DEEP_LAYERS`` nodes deep
    (``ir.layer_depth``), whose differences grow over its layers (the measurements are
    ``fixedpoint``'s)."""
    if multiplier_bits is not None:
        with multiplier_width(multiplier_bits):
            return _import(path, name)
    graph = _import(path, name)
    if is_transformer(graph):
        bits = WIDE_MULTIPLIER_BITS
    elif layer_depth(graph) > DEEP_LAYERS:
        bits = DEEP_MULTIPLIER_BITS
    else:
        return graph
    with multiplier_width(bits):
        return _import(path, name)


def _import(path: str | Path, name: str | None) -> Graph:
    from onnx import numpy_helper

    path = Path(path)
    model = load_onnx(path)
    if len(model.graph.output) > 1:
        names = ", ".join(f"'{o.name}'" for o in model.graph.output)
        raise ModelError(
            f"{path}: the graph has {len(model.graph.output)} outputs ({names}); "
            f"nnloom's engines compute one: keep one graph output"
        )
    opsets = _opsets(model)
    try:
        initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    except Exception as exc:
        raise ModelError(f"{path}: cannot read an initializer ({_first_line(exc)})") from None
    state = State(model, opsets, initializers)
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim
        )
        state.values[inp.name] = FloatInput(inp.name, dims)
        state.batch_of_one = bool(dims) and dims[0] == 1

    for node in model.graph.node:
        label = _label(node, opsets)
        domain = "" if node.domain in ONNX_DOMAINS else node.domain
        try:
            if _fold(state, node, opsets, label):
                continue
            fn = HANDLERS.get((domain, node.op_type))
            if fn is None:
                where = (
                    ""
                    if domain in ("", MS_DOMAIN) or domain in QONNX_DOMAINS
                    else f" in custom domain '{node.domain}'"
                )
                raise ModelError(
                    f"{label}: op {node.op_type}{where} is not supported; "
                    f"supported ops: {', '.join(SUPPORTED_OPS)}"
                )
            fn(state, node, label)
        except ModelError:
            raise
        except Exception as exc:  # malformed attributes or inputs in this node
            raise ModelError(
                f"{label}: cannot import ({type(exc).__name__}: {_first_line(exc)})"
            ) from None

    outputs, host_ops = [], ()
    for out in model.graph.output:
        value = state.values.get(out.name)
        if (
            isinstance(value, Pending)
            and value.kind == "nonlinear"
            and value.attrs["function"] == "softmax"
        ):
            value = HostTail(value.inputs[0], (("softmax", value.attrs["axis"]),), value.shape)
        if isinstance(value, HostTail):
            if len(model.graph.output) > 1:
                raise ModelError(
                    f"graph output '{out.name}': host-side "
                    f"{'/'.join(o[0] for o in value.ops)} is supported for "
                    f"models with one output"
                )
            host_ops, value = value.ops, value.base
        if isinstance(value, Accumulator):
            value = emit_float_output(state, value, out.name, f"graph output '{out.name}'")
        if isinstance(value, Dequantized):
            outputs.append(output_dequantized(state, value, out.name))
            continue
        if isinstance(value, Codes):
            outputs.append(value.tensor)
            continue
        raise ModelError(
            f"graph output '{out.name}' is {describe_value(value)}, not a "
            f"quantized tensor nor the float output of a quantized layer "
            f"(Gemm/MatMul/Conv on quantized inputs and weights)"
        )
    if not state.inputs:
        raise ModelError(
            f"{path}: no graph input is quantized (QuantizeLinear or a QONNX "
            f"Quant right after the input)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    graph = Graph(
        name=name or path.stem,
        tensors=state.tensors,
        nodes=tuple(state.nodes),
        inputs=tuple(state.inputs),
        outputs=tuple(outputs),
        source_sha256=digest,
        input_shape=state.input_shape,
        input_layout=state.input_layout,
        host_ops=host_ops,
    )
    check_ranges(graph)
    log.info("imported %s: %d nodes", path.name, len(graph.nodes))
    return graph
