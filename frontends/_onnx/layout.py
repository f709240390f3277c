"""Layout ops: Flatten/Reshape/Squeeze/Unsqueeze/Identity/Dropout change only the view of a
tensor (no IR node); Transpose and Slice move data (``transpose`` / ``slice`` nodes, unless a
transpose moves only size-1 axes). Also Constant, Cast and Shape."""

from __future__ import annotations

from collections.abc import Sequence
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
    from_full,
    full_shape,
    handler,
    value,
)

_VIEWS = (Codes, Dequantized)


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
        full = full_shape(v)
        new = tuple(fn(full))
        viewed = from_full(state, v, new, label, node.op_type)
        if int(np.prod(new)) != int(np.prod(full)):
            raise ModelError(
                f"{label}: cannot view {int(np.prod(full))} values per sample as {new}"
            )
        state.values[node.output[0]] = viewed
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
    full = full_shape(v)
    perm = [int(p) for p in a.get("perm", reversed(range(len(full))))]
    if sorted(perm) != list(range(len(full))):
        raise ModelError(f"{label}: perm {perm} is not a permutation of {len(full)} axes")
    if perm[0] != 0 and not state.batch_of_one:
        raise ModelError(f"{label}: perm {perm} moves the batch axis; not supported")
    new_full = tuple(full[p] for p in perm)
    moved = [p for p in perm if full[p] != 1]
    if moved == sorted(moved):  # only size-1 axes move: the same data in the same order
        state.values[node.output[0]] = from_full(state, v, new_full, label, "Transpose")
        return
    out = node.output[0]
    name = state.unique(node.name or out)
    new = from_full(state, replace(v, tensor=out), new_full, label, "Transpose")
    if v.batched and perm[0] == 0:  # the IR's own axes: the sample's
        attrs_ = {"perm": tuple(p - 1 for p in perm[1:]), "input_shape": tuple(v.shape)}
    else:  # the view ONNX moves, its size-1 batch axis included
        attrs_ = {"perm": tuple(perm), "input_shape": full}
    state.add_node(
        Node(
            name=name,
            op="transpose",
            source_op="Transpose",
            inputs=(v.tensor,),
            outputs=(out,),
            attrs=attrs_,
        ),
        _new_tensor(state, v, out, new.shape),
    )
    state.values[out] = new


def _ranges(full: tuple, starts, ends, axes, steps, label: str):
    """Normalized ``(begin, end, axis, step)`` of ONNX Slice arguments over ``full``."""
    out = []
    for st, e, ax, sp in zip(starts, ends, axes, steps):
        ax = ax + len(full) if ax < 0 else ax
        if not 0 <= ax < len(full):
            raise ModelError(f"{label}: axis {ax} is out of range for {full}")
        if sp <= 0:
            raise ModelError(f"{label}: only positive steps are supported, got {sp}")
        b, f, _ = slice(st, e, sp).indices(full[ax])
        out.append((b, f, ax, sp))
    return out


def emit_slice(
    state: State,
    v: Codes | Dequantized,
    out: str,
    ranges: Sequence[tuple[int, int, int, int]],
    out_full: tuple,
    label: str,
    op: str,
) -> None:
    """A ``slice`` node taking ``ranges`` (begin, end, ONNX axis, step) of ``v``, whose
    result ONNX sees as ``out_full``; no node when nothing is cut."""
    full = full_shape(v)
    cut = [r for r in ranges if len(range(r[0], r[1], r[3])) != full[r[2]]]
    if any(len(range(b, f, st)) < 1 for b, f, _, st in ranges):
        raise ModelError(f"{label}: the slice is empty")
    if not cut:
        state.values[out] = from_full(state, v, out_full, label, op)
        return
    if v.batched and any(ax == 0 for _, _, ax, _ in cut):
        raise ModelError(f"{label}: slicing the batch axis is not supported")
    shift = 1 if v.batched else 0  # the IR's axes: the sample's, or the whole view
    new = from_full(state, replace(v, tensor=out), out_full, label, op)
    state.add_node(
        Node(
            name=state.unique(out),
            op="slice",
            source_op=op,
            inputs=(v.tensor,),
            outputs=(out,),
            attrs={
                "starts": tuple(r[0] for r in cut),
                "ends": tuple(r[1] for r in cut),
                "axes": tuple(r[2] - shift for r in cut),
                "steps": tuple(r[3] for r in cut),
                "input_shape": tuple(v.shape) if v.batched else full,
            },
        ),
        _new_tensor(state, v, out, new.shape),
    )
    state.values[out] = new


@handler("Slice")
def _slice(state: State, node, label: str):
    v = value(state, node, 0, label)
    if not isinstance(v, _VIEWS):
        raise ModelError(f"{label}: Slice of {describe_value(v)} is not supported")
    full = full_shape(v)
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
    ranges = _ranges(full, starts, ends, axes, steps, label)
    out_full = list(full)
    for b, f, ax, st in ranges:
        out_full[ax] = len(range(b, f, st))
    emit_slice(state, v, node.output[0], ranges, tuple(out_full), label, "Slice")


@handler("Gather")
def _gather(state: State, node, label: str):
    """Gather of constant indices from a quantized activation: a ``slice`` when the indices
    are one index (the axis drops, as torch's ``x[:, 0]`` or ``qkv[i]``) or evenly spaced
    ascending ones. A Gather of constants is folded before it gets here."""
    v = value(state, node, 0, label)
    if not isinstance(v, _VIEWS):
        raise ModelError(f"{label}: Gather from {describe_value(v)} is not supported")
    idx = const(state, node, 1, label, "indices")
    full = full_shape(v)
    axis = int(attrs(node).get("axis", 0))
    axis = axis + len(full) if axis < 0 else axis
    if not 0 <= axis < len(full):
        raise ModelError(f"{label}: axis {axis} is out of range for {full}")
    flat = [int(i) + full[axis] if int(i) < 0 else int(i) for i in np.reshape(idx, -1)]
    if not flat or any(not 0 <= i < full[axis] for i in flat):
        raise ModelError(f"{label}: indices {flat} lie outside axis {axis} of {full}")
    step = flat[1] - flat[0] if len(flat) > 1 else 1
    if step <= 0 or flat != list(range(flat[0], flat[0] + step * len(flat), step)):
        raise ModelError(
            f"{label}: indices {flat} are not evenly spaced and ascending; only such a "
            f"Gather of an activation is supported (a slice)"
        )
    out_full = full[:axis] + tuple(np.shape(idx)) + full[axis + 1 :]
    ranges = [(flat[0], flat[-1] + 1, axis, step)]
    emit_slice(state, v, node.output[0], ranges, out_full, label, "Gather")


@handler("Split")
def _split(state: State, node, label: str):
    """Split of a quantized activation (heads, q/k/v): one ``slice`` per output."""
    v = value(state, node, 0, label)
    if not isinstance(v, _VIEWS):
        raise ModelError(f"{label}: Split of {describe_value(v)} is not supported")
    full = full_shape(v)
    a = attrs(node)
    axis = int(a.get("axis", 0))
    axis = axis + len(full) if axis < 0 else axis
    if not 0 <= axis < len(full):
        raise ModelError(f"{label}: axis {axis} is out of range for {full}")
    n = len(node.output)
    if len(node.input) > 1 and node.input[1]:
        sizes = [int(i) for i in const(state, node, 1, label, "split").reshape(-1)]
    elif a.get("split") is not None:
        sizes = [int(i) for i in a["split"]]
    else:
        chunk = -(-full[axis] // n)
        sizes = [min(chunk, full[axis] - i * chunk) for i in range(n)]
    if len(sizes) != n or sum(sizes) != full[axis] or min(sizes) < 1:
        raise ModelError(f"{label}: split {sizes} does not cut axis {axis} of {full}")
    begin = 0
    for out, size in zip(node.output, sizes):
        if out:
            out_full = full[:axis] + (size,) + full[axis + 1 :]
            emit_slice(state, v, out, [(begin, begin + size, axis, 1)], out_full, label, "Split")
        begin += size


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
        state.values[node.output[0]] = Dequantized(v.tensor, 1.0, 0, v.shape, v.batched)
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
        full = full_shape(v)
    else:
        raise ModelError(f"{label}: Shape of {describe_value(v)} is not supported")
    if any(d < 1 for d in full):
        raise ModelError(f"{label}: the shape {full} is not known")
    a = attrs(node)
    start, end = a.get("start", 0), a.get("end", len(full))
    state.initializers[node.output[0]] = np.array(full[slice(start, end)], dtype=np.int64)
