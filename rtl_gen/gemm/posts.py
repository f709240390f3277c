"""Post-unit ops that are not GEMMs: residual ``add`` (``ADD``, operands in either
stored order, read through the gather table), ``maxpool`` (``MAX`` over gathered windows)
and ``concat``/``requant`` (``MAX`` with one-entry windows: a requantizing copy).

``POST_OPS`` maps op -> ``emit(node, graph, instrs, act, act_base, layout, params,
add_idx, first) -> LayerInfo``; ``reorder_copy`` copies a tensor back to its original
order (the final ``STORE``, a layout a consumer cannot absorb).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from frontends.errors import ModelError

from .config import MAX_MULT_BITS
from .instrs import post_cfg, post_params
from .isa import Instr
from .program import LayerInfo
from .state import Arena


def reorder_copy(
    instrs: list[Instr],
    act: Arena,
    params: list[tuple[int, int]],
    add_idx: Callable[[np.ndarray], int],
    layout: np.ndarray,
    base: int,
    signed: bool,
    name: str,
) -> int:
    """Instructions copying a tensor stored in ``layout`` at ``base`` into a new region in
    its original order (``MAX`` with one-entry windows and the identity requantization);
    returns the new region's base."""
    n = len(layout)
    y = act.take(n)
    q = len(params)
    params.append((0, 1))
    lo, hi = (-128, 127) if signed else (0, 255)
    instrs.append(
        Instr(
            "PCFG",
            fields={"m": 1, "shift": 0, "zp": 0, "lo": lo, "hi": hi, "round": 0},
            comment=f"{name}: input reordered",
        )
    )
    instrs.append(Instr("ADDP", fields={"y": y, "q": q, "i": add_idx(layout)}))
    instrs.append(Instr("MAX", fields={"n": n, "x": base, "k": 1, "xsigned": int(signed)}))
    return y


def _emit_add(node, graph, instrs, act, act_base, layout, params, add_idx, first) -> LayerInfo:
    """A residual add on the post unit: ``a`` read in its physical order, ``b`` gathered into
    it; the output keeps ``a``'s layout."""
    a_name, b_name = node.inputs
    a = node.attrs
    pcfg = post_cfg(node, comment=f"{node.name}: residual add")  # checks the rounding first
    ta, tb = graph.tensor(a_name), graph.tensor(b_name)
    if ta.dtype.signed != tb.dtype.signed:
        raise ModelError(
            f"{node.describe()}: inputs '{a_name}' and '{b_name}' differ in "
            f"signedness; the gemm engine's add takes two of the same kind"
        )
    m = np.asarray(node.weights["multiplier"], np.int64)
    if m.max() >= 2**MAX_MULT_BITS:
        raise ModelError(
            f"{node.describe()}: add multipliers {m.tolist()} exceed {MAX_MULT_BITS} bits"
        )
    za, zb = (int(z) for z in a["input_zero_points"])
    n = graph.tensor(node.outputs[0]).size
    inv_a = np.empty(n, np.int64)
    inv_a[layout[a_name]] = np.arange(n)  # original index of a's j-th physical element
    b_offsets = layout[b_name][inv_a]
    # b stored in a's order: read at b + j, no gather table
    gather = not np.array_equal(b_offsets, np.arange(n))
    b_idx = add_idx(b_offsets) if gather else 0
    q = len(params)
    params.extend([(za, int(m[0])), (zb, int(m[1]))])
    if a_name in act.dying and a_name != b_name:
        # in place over a: element j is written after a_j (and b_j) was read, and no later
        # read names it
        y_base = act_base[a_name]
        act.adopted.add(a_name)
    else:
        y_base = act.take(n)
    act_base[node.outputs[0]] = y_base
    layout[node.outputs[0]] = layout[a_name]
    instrs.append(pcfg)
    instrs.append(Instr("ADDP", fields={"y": y_base, "q": q, "i": b_idx}))
    instrs.append(
        Instr(
            "ADD",
            fields={
                "n": n,
                "a": act_base[a_name],
                "b": act_base[b_name],
                "xsigned": int(ta.dtype.signed),
                "gather": int(gather),
            },
        )
    )
    return LayerInfo(
        node.name, node.op, node.source_op, n, 1, 1, 1, 0, 0, 0.0, first, len(instrs), 2 * n
    )


def _emit_max(node, graph, instrs, act, act_base, layout, params, add_idx, first) -> LayerInfo:
    """A max pool: one ``MAX`` over the im2col windows (C, M, k), output in original
    (channel, pixel) order."""
    x_name = node.inputs[0]
    mult = post_params(node, node.weights["multiplier"], [node.attrs["input_zero_point"]])
    im2col = np.asarray(node.weights["im2col"], np.int64)
    c, m, k = im2col.shape
    if k > 255:
        raise ModelError(f"{node.describe()}: windows of {k} entries exceed MAX's 255")
    table = np.where(im2col < 0, -1, layout[x_name][np.maximum(im2col, 0)])
    q = len(params)
    params.append((int(node.attrs["input_zero_point"]), int(mult[0])))
    y_base = act.take(c * m)
    act_base[node.outputs[0]] = y_base
    layout[node.outputs[0]] = np.arange(c * m)
    instrs.append(post_cfg(node))
    instrs.append(Instr("ADDP", fields={"y": y_base, "q": q, "i": add_idx(table)}))
    instrs.append(
        Instr(
            "MAX",
            fields={
                "n": c * m,
                "x": act_base[x_name],
                "k": k,
                "xsigned": int(graph.tensor(x_name).dtype.signed),
            },
        )
    )
    return LayerInfo(
        node.name, node.op, node.source_op, m, k, c, c, 0, 0, 0.0, first, len(instrs), 0
    )


def _emit_copies(node, graph, instrs, act, act_base, layout, params, add_idx, first) -> LayerInfo:
    """``concat`` (or a standalone ``requant``): each input requantized by a ``MAX`` with
    one-entry windows, read in its original order into consecutive output ranges; the
    output's layout puts every element where its input's range holds it."""
    a = node.attrs
    if node.op == "concat":
        zps, shapes, axis = a["input_zero_points"], a["input_shapes"], int(a["axis"])
    else:
        zps, axis = [a["input_zero_point"]], 0
        shapes = [(graph.tensor(node.inputs[0]).size,)]
    mult = post_params(node, node.weights["multiplier"], zps)
    if len(mult) == 1:
        mult = np.repeat(mult, len(node.inputs))
    n_out = graph.tensor(node.outputs[0]).size
    y_base = act.take(n_out)
    act_base[node.outputs[0]] = y_base
    instrs.append(post_cfg(node))
    offset, parts = 0, []
    for name, z, mu, shape in zip(node.inputs, zps, mult, shapes):
        n = graph.tensor(name).size
        q = len(params)
        params.append((int(z), int(mu)))
        instrs.append(
            Instr("ADDP", fields={"y": y_base + offset, "q": q, "i": add_idx(layout[name])})
        )
        instrs.append(
            Instr(
                "MAX",
                fields={
                    "n": n,
                    "x": act_base[name],
                    "k": 1,
                    "xsigned": int(graph.tensor(name).dtype.signed),
                },
            )
        )
        parts.append(offset + np.arange(n).reshape(tuple(shape)))
        offset += n
    layout[node.outputs[0]] = np.concatenate(parts, axis=axis).reshape(-1)
    return LayerInfo(
        node.name, node.op, node.source_op, n_out, 1, 1, 1, 0, 0, 0.0, first, len(instrs), 0
    )


POST_OPS: dict[str, Callable] = {
    "add": _emit_add,
    "maxpool": _emit_max,
    "concat": _emit_copies,
    "requant": _emit_copies,
}
