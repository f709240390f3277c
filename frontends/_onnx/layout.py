"""Layout ops: Flatten/Reshape/Squeeze/Unsqueeze/Identity/Dropout change only the view of a
tensor (no IR node); Transpose and Slice move data (``transpose`` / ``slice`` nodes, unless a
transpose moves only size-1 axes). Also Constant, Cast and Shape."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..ir import Node, QuantParams, Tensor
from .base import (
    Accumulator,
    Codes,
    Constant,
    Dequantized,
    FloatInput,
    State,
    attrs,
    const,
    describe_value,
    handler,
    value,
)

_VIEWS = (Codes, Dequantized)


def _sample_view(v, full: tuple, new_full: tuple, label: str, op: str):
    if not new_full or new_full[0] != 1:
        raise ModelError(
            f"{label}: {op} from {full} to {tuple(new_full)} changes the batch "
            f"dimension; only per-sample layout changes are supported"
        )
    new = tuple(int(d) for d in new_full[1:])
    if int(np.prod(new)) != int(np.prod(v.shape)):
        raise ModelError(f"{label}: cannot view {int(np.prod(v.shape))} values per sample as {new}")
    return replace(v, shape=new)


def _input_sample_shape(v: FloatInput, label: str) -> tuple:
    shape = tuple(v.shape[1:])
    if not shape or any(d <= 0 for d in shape):
        raise ModelError(
            f"{label}: graph input '{v.name}' needs a known shape with a batch "
            f"dimension first; it has {v.shape}"
        )
    return shape


def _input_step(v: FloatInput, new: tuple, step: tuple) -> FloatInput:
    """A layout op on the float graph input: the host does it before quantizing."""
    return FloatInput(
        v.name, (v.shape[0],) + tuple(new), v.layout + (step,), v.source_shape or v.shape
    )


def _view_only(state: State, node, label: str, fn):
    """Apply ``fn(full_shape) -> new_full_shape`` to a quantized view or to the float graph
    input (a host-side layout step), or fn's numpy twin to a constant (through the constant
    folder)."""
    v = value(state, node, 0, label)
    if isinstance(v, FloatInput):
        sample = _input_sample_shape(v, label)
        full = (1,) + sample
        new = tuple(fn(full))
        if not new or new[0] != 1 or int(np.prod(new)) != int(np.prod(full)):
            raise ModelError(
                f"{label}: {node.op_type} of graph input '{v.name}' from {full} "
                f"to {new} changes the batch dimension; only per-sample layout "
                f"changes are supported"
            )
        state.values[node.output[0]] = _input_step(v, new[1:], ("reshape", tuple(new[1:])))
        return
    if isinstance(v, _VIEWS):
        full = (1,) + tuple(v.shape)
        state.values[node.output[0]] = _sample_view(v, full, tuple(fn(full)), label, node.op_type)
        return
    raise ModelError(
        f"{label}: {node.op_type} of {describe_value(v)} is not supported; "
        f"layout ops apply to quantized tensors (between DequantizeLinear and "
        f"the next op) or to constants"
    )


@handler("Identity", "Dropout")
def _identity(state: State, node, label: str):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise ModelError(f"{label}: the mask output of Dropout is not supported")
    state.values[node.output[0]] = value(state, node, 0, label)


@handler("Flatten")
def _flatten(state: State, node, label: str):
    axis = int(attrs(node).get("axis", 1))

    def fn(full):
        ax = axis + len(full) if axis < 0 else axis
        return (int(np.prod(full[:ax])), int(np.prod(full[ax:])))

    _view_only(state, node, label, fn)


@handler("Reshape")
def _reshape(state: State, node, label: str):
    target = const(state, node, 1, label, "shape").astype(np.int64).reshape(-1)
    allowzero = int(attrs(node).get("allowzero", 0))

    def fn(full):
        out = [
            full[i] if (d == 0 and not allowzero and i < len(full)) else int(d)
            for i, d in enumerate(target)
        ]
        if out.count(-1) > 1:
            raise ModelError(f"{label}: shape {tuple(int(t) for t in target)} has more than one -1")
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1]))
            total = int(np.prod(full))
            if known == 0 or total % known:
                raise ModelError(
                    f"{label}: cannot reshape {full} to {tuple(int(t) for t in target)}"
                )
            out[out.index(-1)] = total // known
        return tuple(out)

    _view_only(state, node, label, fn)


def _axes(state, node, label, required: bool):
    if len(node.input) > 1 and node.input[1]:
        return [int(a) for a in const(state, node, 1, label, "axes").reshape(-1)]
    a = attrs(node).get("axes")
    if a is None and required:
        raise ModelError(f"{label}: axes are missing")
    return None if a is None else [int(i) for i in a]


@handler("Squeeze")
def _squeeze(state: State, node, label: str):
    axes = _axes(state, node, label, False)

    def fn(full):
        ax = (
            [a + len(full) if a < 0 else a for a in axes]
            if axes is not None
            else [i for i, d in enumerate(full) if d == 1 and i > 0]
        )
        if any(not 0 <= a < len(full) or full[a] != 1 for a in ax):
            raise ModelError(f"{label}: cannot squeeze axes {axes} of {full}")
        return tuple(d for i, d in enumerate(full) if i not in ax)

    _view_only(state, node, label, fn)


@handler("Unsqueeze")
def _unsqueeze(state: State, node, label: str):
    axes = _axes(state, node, label, True)

    def fn(full):
        rank = len(full) + len(axes)
        ax = sorted(a + rank if a < 0 else a for a in axes)
        if len(set(ax)) != len(ax) or any(not 0 <= a < rank for a in ax):
            raise ModelError(f"{label}: bad axes {axes} for rank {len(full)}")
        out, it = [], iter(full)
        for i in range(rank):
            out.append(1 if i in ax else next(it))
        return tuple(out)

    _view_only(state, node, label, fn)


def _new_tensor(state: State, v, out: str, shape: tuple) -> Tensor:
    src = state.tensors[v.tensor]
    if isinstance(v, Dequantized):
        quant = QuantParams(np.array(v.scale), np.array(v.zero_point))
    else:
        quant = src.quant
    return Tensor(out, shape, src.dtype, quant)


@handler("Transpose")
def _transpose(state: State, node, label: str):
    v = value(state, node, 0, label)
    a = attrs(node)
    if isinstance(v, Constant):
        perm = list(a.get("perm", reversed(range(v.values.ndim))))
        axis = None if v.axis is None else perm.index(v.axis)
        state.values[node.output[0]] = replace(v, values=np.transpose(v.values, perm), axis=axis)
        return
    if isinstance(v, FloatInput):
        sample = _input_sample_shape(v, label)
        perm = [int(p) for p in a.get("perm", reversed(range(len(sample) + 1)))]
        if sorted(perm) != list(range(len(sample) + 1)) or perm[0] != 0:
            raise ModelError(
                f"{label}: perm {perm} of graph input '{v.name}' is not a "
                f"permutation of its sample axes (the batch axis must stay first)"
            )
        new = tuple(sample[p - 1] for p in perm[1:])
        state.values[node.output[0]] = _input_step(
            v, new, ("transpose", tuple(p - 1 for p in perm[1:]))
        )
        return
    if not isinstance(v, _VIEWS):
        raise ModelError(f"{label}: Transpose of {describe_value(v)} is not supported")
    full = (1,) + tuple(v.shape)
    perm = [int(p) for p in a.get("perm", reversed(range(len(full))))]
    if sorted(perm) != list(range(len(full))):
        raise ModelError(f"{label}: perm {perm} is not a permutation of {len(full)} axes")
    if perm[0] != 0:
        raise ModelError(f"{label}: perm {perm} moves the batch axis; not supported")
    new_shape = tuple(full[p] for p in perm[1:])
    moved = [p for p in perm if full[p] != 1]
    if moved == sorted(moved):  # only size-1 axes move: the same data in the same order
        state.values[node.output[0]] = replace(v, shape=new_shape)
        return
    out = node.output[0]
    name = state.unique(node.name or out)
    state.add_node(
        Node(
            name=name,
            op="transpose",
            source_op="Transpose",
            inputs=(v.tensor,),
            outputs=(out,),
            attrs={"perm": tuple(p - 1 for p in perm[1:]), "input_shape": tuple(v.shape)},
        ),
        _new_tensor(state, v, out, new_shape),
    )
    state.values[out] = replace(v, tensor=out, shape=new_shape)


@handler("Slice")
def _slice(state: State, node, label: str):
    v = value(state, node, 0, label)
    if not isinstance(v, _VIEWS):
        raise ModelError(f"{label}: Slice of {describe_value(v)} is not supported")
    full = (1,) + tuple(v.shape)
    if len(node.input) > 1:
        starts = const(state, node, 1, label, "starts").reshape(-1)
        ends = const(state, node, 2, label, "ends").reshape(-1)
        axes = const(state, node, 3, label, "axes", optional=True)
        steps = const(state, node, 4, label, "steps", optional=True)
    else:
        a = attrs(node)
        starts, ends, axes, steps = a.get("starts"), a.get("ends"), a.get("axes"), None
        if starts is None or ends is None:
            raise ModelError(f"{label}: starts/ends are missing")
    starts, ends = [int(s) for s in starts], [int(e) for e in ends]
    axes = list(range(len(starts))) if axes is None else [int(x) for x in np.reshape(axes, -1)]
    steps = [1] * len(starts) if steps is None else [int(s) for s in np.reshape(steps, -1)]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ModelError(f"{label}: starts, ends, axes and steps differ in length")
    out_s, out_e, out_a, out_st = [], [], [], []
    shape = list(full)
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax = ax + len(full) if ax < 0 else ax
        if not 0 <= ax < len(full):
            raise ModelError(f"{label}: axis {ax} is out of range for {full}")
        if st <= 0:
            raise ModelError(f"{label}: only positive steps are supported, got {st}")
        b, f, _ = slice(s, e, st).indices(full[ax])
        n = len(range(b, f, st))
        if ax == 0:
            if n != 1:
                raise ModelError(f"{label}: slicing the batch axis is not supported")
            continue
        shape[ax] = n
        out_s.append(b), out_e.append(f), out_a.append(ax - 1), out_st.append(st)
    if min(shape) < 1:
        raise ModelError(f"{label}: the slice is empty")
    new_shape = tuple(shape[1:])
    if new_shape == tuple(v.shape):
        state.values[node.output[0]] = v
        return
    out = node.output[0]
    state.add_node(
        Node(
            name=state.unique(node.name or out),
            op="slice",
            source_op="Slice",
            inputs=(v.tensor,),
            outputs=(out,),
            attrs={
                "starts": tuple(out_s),
                "ends": tuple(out_e),
                "axes": tuple(out_a),
                "steps": tuple(out_st),
                "input_shape": tuple(v.shape),
            },
        ),
        _new_tensor(state, v, out, new_shape),
    )
    state.values[out] = replace(v, tensor=out, shape=new_shape)


@handler("Constant")
def _constant(state: State, node, label: str):
    from onnx import numpy_helper

    a = node.attribute
    if len(a) != 1:
        raise ModelError(f"{label}: expected exactly one value attribute")
    attr = a[0]
    if attr.name == "value":
        array = numpy_helper.to_array(attr.t)
    elif attr.name in ("value_float", "value_int"):
        array = np.array(
            attr.f if attr.name == "value_float" else attr.i,
            dtype=np.float32 if attr.name == "value_float" else np.int64,
        )
    elif attr.name in ("value_floats", "value_ints"):
        array = np.array(
            list(attr.floats if attr.name == "value_floats" else attr.ints),
            dtype=np.float32 if attr.name == "value_floats" else np.int64,
        )
    else:
        raise ModelError(f"{label}: attribute {attr.name} is not supported")
    state.initializers[node.output[0]] = array


_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16


@handler("Cast")
def _cast(state: State, node, label: str):
    v = value(state, node, 0, label)
    to = int(attrs(node).get("to", 0))
    if isinstance(v, (Accumulator, Dequantized)) and to in _FLOAT_TYPES:
        state.values[node.output[0]] = v
    elif isinstance(v, Codes) and to in _FLOAT_TYPES:
        state.values[node.output[0]] = Dequantized(v.tensor, 1.0, 0, v.shape)
    elif isinstance(v, Accumulator) and to in (6, 7):  # int32/int64: the accumulator itself
        state.values[node.output[0]] = v
    else:
        raise ModelError(f"{label}: Cast of {describe_value(v)} to type {to} is not supported")


@handler("Shape")
def _shape(state: State, node, label: str):
    v = value(state, node, 0, label)
    if isinstance(v, FloatInput):
        full = tuple(max(d, 1) if i == 0 else d for i, d in enumerate(v.shape))
    elif isinstance(v, (Codes, Dequantized, Accumulator)):
        full = (1,) + tuple(v.shape)
    else:
        raise ModelError(f"{label}: Shape of {describe_value(v)} is not supported")
    if any(d < 1 for d in full):
        raise ModelError(f"{label}: the shape {full} is not known")
    a = attrs(node)
    start, end = a.get("start", 0), a.get("end", len(full))
    state.initializers[node.output[0]] = np.array(full[slice(start, end)], dtype=np.int64)
