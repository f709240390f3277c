"""The importer's abstract values, state, handler registry and shared helpers.

The importer walks the ONNX graph in order and tracks, for every float tensor, which integer
expression it equals. Float ops between a dequantization and the next quantization are folded
into one IR node when the quantizer arrives (``quantize`` in ``quant.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..ir import IntType, Node, Tensor

if TYPE_CHECKING:
    from onnx import NodeProto

ONNX_DOMAINS = ("", "ai.onnx")
QONNX_DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general")
MS_DOMAIN = "com.microsoft"


# --- what a float (or integer) ONNX tensor is known to equal ---------------------------------


@dataclass(frozen=True)
class FloatInput:
    """A graph input in float, before its quantizer; ``shape`` includes the batch. Layout
    ops on it (``layout``: ``("reshape", sample shape)`` / ``("transpose", sample perm)``)
    are done by the host; ``source_shape`` is the input's own shape (with the batch)."""

    name: str
    shape: tuple[int, ...]
    layout: tuple = ()
    source_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Codes:
    """The integer codes of IR tensor ``tensor``, viewed with per-sample ``shape``.

    ``batched`` (here and in the other values): ONNX sees the tensor as ``(1, *shape)``;
    False: as ``shape`` itself -- a model run on a batch of one moved its batch axis
    inward (torch's MultiheadAttention: (1, T, E) -> (T, 1, E)); see ``full_shape``."""

    tensor: str
    shape: tuple[int, ...]
    batched: bool = True


@dataclass(frozen=True)
class Dequantized:
    """``scale * (codes - zero_point)`` of IR tensor ``tensor``, viewed with ``shape``."""

    tensor: str
    scale: float
    zero_point: int
    shape: tuple[int, ...]
    batched: bool = True


@dataclass(frozen=True, eq=False)
class Constant:
    """``scale * (values - zero_point)`` of an initializer (QDQ or QONNX quantized)."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    dtype: IntType


@dataclass(frozen=True, eq=False)
class Accumulator:
    """``acc_scale[n] * acc[n]`` of a dense or conv layer so far (before its quantizer).

    ``weight`` is (N, K) for dense, (Cout, C/G, kh, kw) for conv; ``lo_real``/``hi_real`` are
    float bounds from a fused Relu/Clip; ``geometry`` holds conv attrs."""

    node: str
    op: str
    kind: str
    x: Dequantized
    weight: np.ndarray
    weight_dtype: IntType
    acc_scale: np.ndarray
    bias: np.ndarray | None
    shape: tuple[int, ...]
    lo_real: float = -math.inf
    hi_real: float = math.inf
    geometry: dict = field(default_factory=dict)
    bias_residual: np.ndarray | None = None  # real bias not on the accumulator's scale
    bias_label: str = ""  # the node that added it
    batched: bool = True


@dataclass(frozen=True, eq=False)
class Pending:
    """A float op on quantized inputs (add, concat, pools, nonlinear, clip) waiting for the
    quantizer that gives its output codes. ``gain`` is a constant factor (Mul) applied after."""

    node: str
    op: str
    kind: str
    inputs: tuple[Dequantized, ...]
    attrs: dict
    shape: tuple[int, ...]
    lo_real: float = -math.inf
    hi_real: float = math.inf
    gain: float = 1.0
    batched: bool = True


@dataclass(frozen=True)
class Padded:
    """A quantized tensor zero-padded (ONNX Pad, constant mode, value 0) that the next Conv
    or average pool takes as its own padding: ``pads`` (begin..., end...) of the spatial
    axes; ``shape`` the padded per-sample shape."""

    x: Dequantized
    pads: tuple[int, ...]
    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class HostTail:
    """``base`` (a layer's output or a quantized tensor) followed by float ops the host runs
    after the hardware (Softmax, LogSoftmax, ArgMax at the graph output): ``ops`` as in
    ``Graph.host_ops``."""

    base: object
    ops: tuple
    shape: tuple[int, ...]


#: What ``State.values`` holds for an ONNX tensor: one of the values above, an initializer
#: as it is (a float or integer ``np.ndarray``), or a stage of a decomposed LayerNorm
#: (``norm.NormStage``, a module above this one); the functions taking one tell them apart
#: with ``isinstance``.
Value = object
#: A value that is a view of one IR tensor, with ``shape`` and ``batched``.
View = Codes | Dequantized | Accumulator | Pending


@dataclass
class State:
    model: object
    opsets: dict
    initializers: dict
    values: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    node_names: set = field(default_factory=set)
    input_shape: tuple | None = None  # the model's float input per sample (layout ops)
    input_layout: tuple = ()
    batch_of_one: bool = False  # the graph input's batch axis is 1: ops may move it

    def unique(self, name: str) -> str:
        base, i = name, 1
        while name in self.node_names:
            i += 1
            name = f"{base}#{i}"
        self.node_names.add(name)
        return name

    def add_node(self, node: Node, out: Tensor) -> None:
        self.tensors[out.name] = out
        self.nodes.append(node)


# --- registry ----------------------------------------------------------------------------------

HANDLERS: dict[tuple[str, str], Callable] = {}


def handler(*ops: str, domains: tuple[str, ...] = ONNX_DOMAINS) -> Callable[[Callable], Callable]:
    """Register ``fn(state, node, label)`` for ONNX ``ops`` in ``domains``."""

    def register(fn):
        for op in ops:
            for domain in domains:
                HANDLERS[(domain, op)] = fn
        return fn

    return register


# ``EMITTERS[kind](state, pending, dtype, scale, zp, label) -> (op, attrs, weights)``: the float
# ops of ``ops.py`` register them; the quantizers (``quant.py``) call them to turn a
# ``Pending`` value into its IR node once its output quantization is known.
EMITTERS: dict[str, Callable] = {}


def emitter(kind: str) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the emitter of ``Pending`` values of ``kind``."""

    def register(fn):
        EMITTERS[kind] = fn
        return fn

    return register


def supported_ops() -> tuple[str, ...]:
    names = set()
    for domain, op in HANDLERS:
        if domain in ("", MS_DOMAIN):
            names.add(op)
        elif domain in QONNX_DOMAINS:
            names.add(f"{op} (QONNX)")
    return tuple(sorted(names))


# --- helpers ---------------------------------------------------------------------------------


#: The longest token sequence (rows of a token-wise dense, Softmax row length, MatMul side)
#: the importer takes; the engines' memories may hold fewer, and say so.
MAX_TOKENS = 1024


def check_tokens(n: int, label: str, what: str) -> None:
    if n > MAX_TOKENS:
        raise ModelError(
            f"{label}: {what} is a sequence of {n} tokens; nnloom takes at most {MAX_TOKENS}"
        )


def full_shape(v: Value) -> tuple[int, ...]:
    """The shape ONNX sees: the batch axis (of one) in front unless the model moved it."""
    return ((1,) + tuple(v.shape)) if getattr(v, "batched", True) else tuple(v.shape)


def require_batched(v: Value, label: str, op: str) -> None:
    """Refuse ``v`` to an op that reads its axes as (batch, channels, ...) when the model
    moved the batch axis inward (the op would see a different batch)."""
    if not getattr(v, "batched", True):
        raise ModelError(
            f"{label}: {op} of a tensor whose batch axis the model moved inward (shape "
            f"{tuple(v.shape)}) is not supported"
        )


def from_full(state: State, v: View, full: Sequence[int], label: str, op: str) -> View:
    """``v`` viewed with the ONNX shape ``full``: ``(1, *shape)`` is batched; any other
    leading axis moves the batch axis of a batch of one inward (refused for a real batch,
    whose samples would mix)."""
    full = tuple(int(d) for d in full)
    if full and full[0] == 1:
        return replace(v, shape=full[1:], batched=True)
    if not state.batch_of_one:
        raise ModelError(
            f"{label}: {op} to {full} changes the batch dimension; only per-sample "
            f"layout changes are supported (or export the model with a batch of one)"
        )
    return replace(v, shape=full, batched=False)


def value(state: State, node: NodeProto, index: int, label: str) -> Value | None:
    if index >= len(node.input) or not node.input[index]:
        return None
    name = node.input[index]
    if name in state.values:
        return state.values[name]
    if name in state.initializers:
        return state.initializers[name]
    raise ModelError(
        f"{label}: input '{name}' is neither produced by an earlier node nor an initializer"
    )


def const(
    state: State, node: NodeProto, index: int, label: str, what: str, *, optional: bool = False
) -> np.ndarray | None:
    v = value(state, node, index, label)
    if v is None:
        if optional:
            return None
        raise ModelError(f"{label}: {what} (input {index}) is missing")
    if not isinstance(v, np.ndarray):
        raise ModelError(f"{label}: {what} '{node.input[index]}' must be a constant initializer")
    return v


def attrs(node: NodeProto) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def int_type(array: np.ndarray, label: str, what: str) -> IntType:
    kinds = {
        np.dtype(np.int8): IntType(8, True),
        np.dtype(np.uint8): IntType(8, False),
        np.dtype(np.int16): IntType(16, True),
        np.dtype(np.uint16): IntType(16, False),
        np.dtype(np.int32): IntType(32, True),
    }
    dt = np.asarray(array).dtype
    if dt in kinds:
        return kinds[dt]
    name = getattr(dt, "name", str(dt))
    if name in ("int4", "uint4"):
        return IntType(4, name == "int4")
    raise ModelError(
        f"{label}: {what} has element type {dt}; expected an integer type "
        f"(int8, uint8, int16, uint16, int32, int4, uint4)"
    )


def scalar(array: np.ndarray, label: str, what: str) -> float:
    array = np.asarray(array)
    if array.size != 1:
        raise ModelError(
            f"{label}: {what} must be a scalar (per-tensor), got shape "
            f"{array.shape}; per-axis activation quantization is not supported"
        )
    return float(array.reshape(()))


def positive_scale(s: float, label: str) -> float:
    if not (np.isfinite(s) and s > 0):
        raise ModelError(f"{label}: scale {s} must be positive and finite")
    return s


def as_dequantized(v: Value | None, label: str, what: str) -> Dequantized:
    if isinstance(v, Dequantized):
        return v
    raise ModelError(
        f"{label}: {what} must be a dequantized tensor (the output of "
        f"DequantizeLinear or a QONNX Quant); here it is {describe_value(v)}"
    )


def describe_value(v: Value | None) -> str:
    if isinstance(v, FloatInput):
        return "an unquantized graph input"
    if isinstance(v, Codes):
        return "integer codes (not dequantized)"
    if isinstance(v, Dequantized):
        return "a quantized tensor"
    if isinstance(v, Accumulator):
        return f"the unquantized output of {v.op} '{v.node}'"
    if isinstance(v, Pending):
        return f"the unquantized output of {v.op} '{v.node}'"
    if isinstance(v, Constant):
        return "a quantized constant"
    if isinstance(v, Padded):
        return "a zero-padded quantized tensor (Pad)"
    if isinstance(v, HostTail):
        return f"a float {'/'.join(o[0] for o in v.ops)} on the host"
    if isinstance(v, np.ndarray):
        return "a float constant"
    return "an unsupported value"


def ints(v: Iterable[int] | None, n: int, default: int, label: str, what: str) -> tuple[int, ...]:
    if v is None:
        return (default,) * n
    v = tuple(int(i) for i in v)
    if len(v) != n:
        raise ModelError(f"{label}: attribute {what} has {len(v)} values, expected {n}")
    return v


def bias_codes(real: np.ndarray, acc_scale: np.ndarray, label: str) -> np.ndarray:
    """``round(real / acc_scale)`` as int64, refused when it is not finite or beyond int32
    (tiny or denormal scales): the cast would overflow silently."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        q = np.rint(np.asarray(real, np.float64) / np.asarray(acc_scale, np.float64))
    if q.size and (not np.all(np.isfinite(q)) or np.abs(q).max() >= 2.0**31):
        worst = float(np.nan_to_num(np.abs(q), nan=np.inf).max())
        raise ModelError(
            f"{label}: the bias at the accumulator's scale (scale_in*scale_w, "
            f"down to {float(np.min(acc_scale)):.3g}) reaches {worst:.3g}, beyond "
            f"int32; check the model's scales (tiny or denormal input/weight "
            f"scales)"
        )
    return q.astype(np.int64)


def real_constant(v: Value | None) -> np.ndarray | None:
    """A float constant, or a quantized one (DequantizeLinear of an initializer) as its
    real values; None for anything else."""
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(np.float64)
    if isinstance(v, Constant):
        scale, zp = v.scale.astype(np.float64), v.zero_point.astype(np.float64)
        if v.axis is not None and scale.size > 1:
            shape = [1] * v.values.ndim
            shape[v.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return (v.values - zp) * scale
    return None


def scalar_constant(v: Value | None) -> float | None:
    c = real_constant(v)
    if c is None or c.size != 1:
        return None
    return float(c.reshape(()))
