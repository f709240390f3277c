"""What the host does around the hardware, as the manifest records it and as tools read it
back: the input layout (layout ops the model applies to its float input before quantizing),
the output's quantization (per tensor or per channel, with a float offset when an integer
accumulator leaves the hardware) and the float ops after it (Softmax, LogSoftmax, ArgMax).

``manifest_entries(graph)`` gives the ``quant`` and ``host`` sections; ``output_scores``
turns output codes back into the model's values from those sections alone (no graph), so
``nnloom flow``/``report``/``run`` compute accuracy on what the model outputs.
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, Tensor

__all__ = ["quant_entry", "manifest_entries", "output_scores", "describe_host"]


def _values(v) -> float | list:
    a = np.asarray(v).reshape(-1)
    return float(a[0]) if a.size == 1 else [float(x) for x in a]


def quant_entry(t: Tensor) -> dict:
    """``{"scale", "zero_point"}`` (numbers when per tensor, lists when per channel, then
    ``axis`` too) and ``offset`` (a list) when the host adds a float offset; ``shape``."""
    q = t.quant
    entry = {"scale": _values(q.scale), "shape": list(t.shape)}
    zp = np.asarray(q.zero_point).reshape(-1)
    entry["zero_point"] = int(zp[0]) if zp.size == 1 else [int(z) for z in zp]
    if q.axis is not None and np.asarray(q.scale).size > 1:
        entry["axis"] = int(q.axis)
    if q.offset is not None:
        entry["offset"] = [float(x) for x in np.asarray(q.offset).reshape(-1)]
    return entry


def manifest_entries(graph: Graph) -> dict:
    """The manifest's ``quant`` (input and output) and ``host`` sections of ``graph``."""
    x_t, y_t = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    host = {
        "input_shape": list(graph.input_shape if graph.input_shape is not None else x_t.shape),
        "input_layout": [[step[0], list(step[1])] for step in graph.input_layout],
        "ops": [list(op) for op in graph.host_ops],
    }
    quant = {}
    if x_t.quant is not None and y_t.quant is not None:
        quant = {"input": quant_entry(x_t), "output": quant_entry(y_t)}
        last = graph.producer(y_t.name)
        if last is not None and last.attrs.get("accumulator_output"):
            # one code more or less in the layer's input moves its accumulator by a weight
            quant["output"]["code_step"] = int(np.abs(last.weights["weight"]).max(initial=1))
    return {"quant": quant, "host": host}


def _channel(values, shape, axis) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1 or axis is None:
        return v.reshape(())
    return v.reshape((1,) * (axis + 1) + (-1,) + (1,) * (len(shape) - axis - 1))


def output_scores(output_quant: dict, codes: np.ndarray) -> np.ndarray:
    """Output codes (B, N) as the model's values (B, N): ``scale * (code - zero_point) +
    offset``, per channel where the manifest says so (host ops are not applied: Softmax and
    LogSoftmax keep the argmax). A manifest without output quantization gives the codes."""
    codes = np.asarray(codes)
    if not output_quant:
        return codes.astype(np.float64)
    shape = tuple(output_quant.get("shape") or (codes.shape[1],))
    axis = output_quant.get("axis")
    y = codes.reshape((len(codes),) + shape).astype(np.float64)
    y = (y - _channel(output_quant["zero_point"], shape, axis)) * _channel(
        output_quant["scale"], shape, axis
    )
    if "offset" in output_quant:
        y = y + _channel(output_quant["offset"], shape, axis)
    return y.reshape(len(codes), -1)


def describe_host(graph: Graph) -> list[str]:
    """One line per thing the host does around the hardware (for ``nnloom inspect``)."""
    lines = []
    x_t, y_t = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    if graph.input_layout:
        steps = ", ".join(f"{s[0]} {tuple(s[1])}" for s in graph.input_layout)
        lines.append(
            f"input: the host lays out the float input {tuple(graph.input_shape)} "
            f"as {x_t.shape} ({steps}) before quantizing it"
        )
    q = y_t.quant
    if q is not None and (np.asarray(q.scale).size > 1 or q.offset is not None):
        what = "per-channel scales" + (" and a float bias" if q.offset is not None else "")
        lines.append(
            f"output: the hardware outputs {y_t.dtype} accumulators; the host "
            f"applies {what} (float output of the last layer)"
        )
    names = {"softmax": "Softmax", "log_softmax": "LogSoftmax", "argmax": "ArgMax"}
    for op in graph.host_ops:
        lines.append(
            f"output: {names[op[0]]} over axis {op[1] + 1} runs on the host after the hardware"
        )
    return lines


def output_codes(output_quant: dict, y: np.ndarray, *, exact: bool = True) -> np.ndarray:
    """The model's output values (B, N) in the hardware's output codes, the inverse of
    ``output_scores``: ``(y - offset) / scale + zero_point`` per channel, rounded half to
    even when ``exact`` (a quantized model's own outputs), kept fractional otherwise."""
    y = np.asarray(y, dtype=np.float64)
    shape = tuple(output_quant.get("shape") or (y.shape[1],))
    axis = output_quant.get("axis")
    v = y.reshape((len(y),) + shape)
    if "offset" in output_quant:
        v = v - _channel(output_quant["offset"], shape, axis)
    v = v / _channel(output_quant["scale"], shape, axis)
    v = np.round(v) if exact else v
    v = v + _channel(output_quant["zero_point"], shape, axis)
    return v.reshape(len(y), -1)


def model_inputs(host: dict, x: np.ndarray, hw_shape: tuple) -> np.ndarray:
    """Inputs laid out for the hardware (B, *hw_shape) back in the model's own input layout
    (B, *input_shape): the manifest's ``input_layout`` undone (the inverse of
    ``reference.layout_inputs``)."""
    x = np.asarray(x)
    steps = (host or {}).get("input_layout") or []
    if not steps:
        return x.reshape(len(x), -1)
    shapes = [tuple(host["input_shape"])]
    for kind, arg in steps:
        shapes.append(tuple(arg) if kind == "reshape" else tuple(shapes[-1][p] for p in arg))
    x = x.reshape((len(x),) + tuple(hw_shape))
    for (kind, arg), before in zip(reversed(steps), reversed(shapes[:-1])):
        if kind == "transpose":
            inverse = np.argsort(arg)
            x = np.transpose(x, (0,) + tuple(int(p) + 1 for p in inverse))
        x = x.reshape((len(x),) + before)
    return x.reshape(len(x), -1)
