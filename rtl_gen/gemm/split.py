"""The DSP/LUT split of a GEMM layer (N3H-Core), the compiler's second phase.

A layer's output channels (or whole groups) are split items; the LUT core takes the ones
whose weights lose least at its precision (``item_errors``, within the bound ``tau``), and
``choose_split`` picks the share and the bit-serial precision that minimise the modelled
latency (``layer_cycles``, from ``model.schedule``). ``requantize_lut`` gives the LUT
slice's weights, bias and multipliers at that precision; ``LayerSplit`` records the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import MULTIPLIER_BITS

from .config import DSP_WBITS, GemmConfig
from .instrs import gemm_instrs
from .layers import GemmLayer
from .lutquant import quantize_channels

#: How ``compile_graph`` splits each layer's channels between the cores: ``"auto"`` (the
#: share that minimises the modelled latency within the error budget), one ratio in [0, 1]
#: for every layer, or ``{node name: ratio}``.
SplitSpec = str | float | dict[str, float]


def item_errors(layer: GemmLayer, config: GemmConfig, wbits: int | None = None) -> np.ndarray:
    """Per split item (channel, or group when ``groups > 1``): the worst relative error of
    its weights at the LUT core's precision ``wbits`` (``lutquant.quantize_channels``)."""
    lo, hi = config.lut_weight_range(wbits)
    _, _, err = quantize_channels(layer.weight, lo, hi, ternary=config.lut_mode == "ternary")
    if layer.groups == 1:
        return err
    return err.reshape(layer.groups, layer.ng).max(axis=1)


def layer_cycles(
    layer: GemmLayer, config: GemmConfig, items_lut: int, wbits: int | None = None
) -> int:
    """Modelled sequencer cycles of ``layer`` with ``items_lut`` split items on the LUT
    core at precision ``wbits`` (default: the LUT core's highest)."""
    from .model import schedule

    instrs = gemm_instrs(layer, split_shape(layer, items_lut), config, lut_wbits=wbits)
    return schedule(instrs, config).fetch[-1]


def split_shape(layer: GemmLayer, items_lut: int) -> dict:
    """{core: (channels per group, groups)} for a split."""
    if layer.groups == 1:
        return {"dsp": (layer.ng - items_lut, 1), "lut": (items_lut, 1)}
    return {"dsp": (layer.ng, layer.groups - items_lut), "lut": (layer.ng, items_lut)}


def _lut_candidates(errors: np.ndarray, order: np.ndarray | None, tau: float):
    """``(items, max error)`` of the LUT shares allowed within ``tau``: the easiest items
    (``order`` None) or the last ``items`` of ``order`` (a grouped layer's groups go to the
    cores in their input's block order)."""
    if order is None:
        errors = np.sort(errors)
        ok = int((errors <= tau).sum())
        return [(items, float(errors[items - 1]) if items else 0.0) for items in range(ok + 1)]
    out = [(0, 0.0)]
    for items in range(1, len(order) + 1):
        error = float(errors[order[len(order) - items :]].max())
        if error > tau:
            break
        out.append((items, error))
    return out


def choose_split(
    layer: GemmLayer, config: GemmConfig, *, tau: float, order: np.ndarray | None = None
) -> tuple[int, int]:
    """``(items, wbits)``: the LUT-core split items and precision minimising the modelled
    layer latency, among counts whose every item has LUT-precision error <= ``tau`` (ties:
    the smaller error, then more LUT items, then fewer bits). LUT-only configs take every
    item at the lowest precision within ``tau`` (the highest when none is). ``order``: the
    LUT core takes the last items of it (else the easiest)."""
    precisions = config.lut_precisions
    if config.lut_lanes == 0 or (layer.dsp_only and config.dsp_lanes):
        return 0, precisions[-1]
    if layer.dsp_only:
        raise ModelError(
            f"{layer.node.describe()}: its divisor needs {DSP_WBITS}-bit weights "
            f"(a {int(layer.weight.max())}x sum) and this configuration has no DSP core"
        )
    if config.dsp_lanes == 0:
        for wbits in precisions:
            if (item_errors(layer, config, wbits) <= tau).all():
                return layer.items, wbits
        return layer.items, precisions[-1]
    best = None
    for wbits in precisions:
        for items, error in _lut_candidates(item_errors(layer, config, wbits), order, tau):
            key = (layer_cycles(layer, config, items, wbits), error, -items, wbits)
            if best is None or key < best[0]:
                best = (key, items, wbits)
    return best[1], best[2]


def ratio_precision(
    layer: GemmLayer, config: GemmConfig, items: int, tau: float, order: np.ndarray | None = None
) -> tuple[int, np.ndarray]:
    """A fixed split's precision: the lowest whose ``items`` LUT items (the easiest, or the
    last of ``order``) are within ``tau`` (the highest when none is), and the items' errors
    at it."""
    precisions = config.lut_precisions
    for wbits in precisions:
        errors = item_errors(layer, config, wbits)
        chosen = np.sort(errors)[:items] if order is None else errors[order[len(order) - items :]]
        if len(precisions) == 1 or chosen.max(initial=0.0) <= tau:
            return wbits, errors
    return wbits, errors


def requantize_lut(
    layer: GemmLayer, lut_items: np.ndarray, config: GemmConfig, wbits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """Weights, bias, multipliers and shift with the channels of ``lut_items`` quantized
    to the LUT core's precision (``w ~ f*q``: bias/f, multiplier*f, shared shift lowered
    when a multiplier would exceed MULTIPLIER_BITS)."""
    w = layer.weight.copy()
    bias = layer.bias.astype(np.float64).copy()
    mult = layer.multiplier.astype(np.float64).copy()
    ng = 1 if layer.groups == 1 else layer.ng
    channels = (
        np.concatenate([np.arange(i * ng, (i + 1) * ng) for i in lut_items])
        if len(lut_items)
        else np.zeros(0, np.int64)
    )
    if len(channels) == 0:
        return w, layer.bias, layer.multiplier, layer.shift, False
    lo, hi = config.lut_weight_range(wbits)
    q, f, _ = quantize_channels(w[channels], lo, hi, ternary=config.lut_mode == "ternary")
    if np.all(f == 1.0):
        return w, layer.bias, layer.multiplier, layer.shift, False
    w[channels] = q
    bias[channels] = bias[channels] / f
    mult[channels] = mult[channels] * f
    e = 0
    while np.rint(mult.max() / 2**e) >= 2**MULTIPLIER_BITS:
        e += 1
    if layer.shift - e < 1:
        raise ModelError(
            f"{layer.node.describe()}: requantization multiplier too large after "
            f"quantizing channels to the LUT core's precision"
        )
    new_mult = np.rint(mult / 2**e).astype(np.int64)
    if e == 0:
        new_mult[np.setdiff1d(np.arange(len(mult)), channels)] = layer.multiplier[
            np.setdiff1d(np.arange(len(mult)), channels)
        ]
    return w, np.rint(bias).astype(np.int64), new_mult, layer.shift - e, True


@dataclass(frozen=True, eq=False)
class LayerSplit:
    """One GEMM layer's split: LUT items and precision, the items' errors, the physical
    channel order (DSP items, then LUT items) and each channel's physical position."""

    items_lut: int
    lut_wbits: int | None
    errors: np.ndarray
    dsp_items: np.ndarray
    lut_items: np.ndarray
    channel_order: np.ndarray
    pos: np.ndarray
    n_dsp: int
    n_lut: int
