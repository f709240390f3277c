"""Lowering of an IR graph to an overlay program and its memory images.

Every GEMM-shaped node (``dense``, ``conv`` incl. depthwise/pointwise, global/uniform
``avgpool``) becomes a ``GemmLayer``: ``G`` groups of ``Ng`` output channels over ``M``
output pixels and ``K`` reductions, read through a ``window`` that the cores' address
counters walk (two instruction words a core, whatever the image size; ``window``).
Its output channels are split between the cores: the ``n_lut`` split items (channels, or
whole groups when ``G > 1``) with the smallest LUT-precision error go to the LUT core and
are requantized to its precision (``lutquant``; the bit-serial LUT core's precision, 2-8
bits, is chosen per layer with the split); each core's slice is contiguous in the
*physical* channel order, and consumers absorb the permutation: a reduction steps over its
input's planes as they are stored (weights permuted alike), a grouped layer gives its groups
to the cores in their input's block order, an ``ADD`` of differently ordered operands and
the final ``STORE`` read through a gather table.
``add`` (residual), ``maxpool``, ``concat`` and ``requant`` run on the post unit (``ADD``;
``MAX`` over gathered windows, ``k = 1`` for a requantizing copy). The result is a ``Program``:
instructions, the
images of every memory, per-layer facts and the transformed graph whose golden the
hardware reproduces bit for bit.

Lowering is a registry (``LOWERINGS``): op name -> function(node, graph) -> GemmLayer;
``Lowering`` carries the compiler's state through the graph, one method a phase (input,
each node: placement, split, parameters, weight images, instructions, streaming; output;
program). The activation buffer is an arena (``_Arena``): a tensor lives from its producer
to its last reader, so a chain ping-pongs between two regions and a residual branch stays
until its add, which writes in place over its first operand; ``ram.check_device`` refuses a
program whose memories exceed the board's block RAM.

On the iCE40 UP5K (``ram.spram_variant``, chosen when a program exceeds the block RAM) the
activation buffer, the DSP accumulators and the DSP weights live in the four
SB_SPRAM256KA (``spram``), single-ported: no GEMM is streamed, the barrier waits for the
last drain, post ops that read and write activations together (ADD, MAX) are refused; a
layer's GEMM runs in chunks whose weights fit a block-RAM cache (``chunks``: ``LOAD fill``
before each), and a depthwise layer runs a channel on every lane: ``LOAD fill lanes``
copies a tile's input planes into a lane cache whose word holds one activation a lane
(``CFG dw``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import MULTIPLIER_BITS, signed_bits
from frontends.ir import Graph, Node

from . import timing
from .chunks import chunked_instrs, depthwise_instrs
from .config import DSP_WBITS, GemmConfig
from .isa import AsmError, Instr, encode
from .lutquant import quantize_channels
from .ram import DeviceFitError, check_device, spram_variant, subwords
from .window import GroupOrderError, Window, plane_order, window_of

__all__ = [
    "GemmLayer",
    "Program",
    "compile_graph",
    "Lowering",
    "LOWERINGS",
    "UNIT_OPS",
    "ROUNDING",
]

ROUNDING = {"half_up": 0, "floor": 1, "ceil": 2, "half_even": 3}


@dataclass(frozen=True, eq=False)
class GemmLayer:
    """One node as ``G`` grouped GEMMs: ``acc[c, p] = sum_k x(g(c), p, k) * w[c, k] + b[c]``
    with ``x`` read through ``window`` (padding reads the zero point)."""

    node: Node
    groups: int
    m: int
    k: int
    ng: int  # channels per group
    weight: np.ndarray  # (G*ng, K)
    bias: np.ndarray  # (G*ng,) before zero-point folding
    multiplier: np.ndarray  # (G*ng,)
    shift: int
    zp_in: int
    zp_out: int
    lo: int
    hi: int
    rounding: str
    window: Window
    dsp_only: bool = False  # its weights and multiplier hold only on the DSP core

    @property
    def n(self) -> int:
        return self.groups * self.ng

    @property
    def items(self) -> int:
        """Split items: channels (G == 1) or whole groups."""
        return self.ng if self.groups == 1 else self.groups

    @property
    def macs(self) -> int:
        return self.n * self.m * self.k


def _common(node: Node) -> dict:
    a = node.attrs
    if a.get("sign"):
        raise ModelError(
            f"{node.describe()}: bipolar (sign) outputs cannot run on the gemm "
            f"engine; its post-processing requantizes"
        )
    rounding = a.get("rounding", "half_up")
    if rounding not in ROUNDING:
        raise ModelError(
            f"{node.describe()}: rounding '{rounding}' is not one of {', '.join(ROUNDING)}"
        )
    return dict(
        shift=int(a["shift"]),
        zp_in=int(a["input_zero_point"]),
        zp_out=int(a["output_zero_point"]),
        lo=int(a["lo"]),
        hi=int(a["hi"]),
        rounding=rounding,
    )


def _dense(node: Node, graph: Graph) -> GemmLayer:
    """A dense layer; a diagonal one (a per-channel affine layer, e.g. a BatchNormalization
    on quantized codes) as ``n`` groups of one channel over one input each (``k = 1``), so
    it takes ``n`` weight words and steps, not ``n * n / lanes``; on a token sequence (attr
    ``tokens`` T) a GEMM of M = T pixels: a 1x1 convolution over a 1 x T plane per input
    feature (``_token_layout``)."""
    w = np.asarray(node.weights["weight"], dtype=np.int64)
    n, k = w.shape
    tokens = int(node.attrs.get("tokens", 1))
    if tokens == 1 and n == k and n > 1 and not np.any(w[~np.eye(n, dtype=bool)]):
        return GemmLayer(
            node,
            n,
            1,
            1,
            1,
            np.diag(w).reshape(n, 1).copy(),
            np.asarray(node.weights["bias"], np.int64),
            np.asarray(node.weights["multiplier"], np.int64) * np.ones(n, np.int64),
            window=Window(n, 1, 1, 1, 1, groups=n),
            **_common(node),
        )
    window = Window(k, 1, tokens, 1, tokens) if tokens > 1 else window_of(node, graph, None)
    return GemmLayer(
        node,
        1,
        tokens,
        k,
        n,
        w,
        np.asarray(node.weights["bias"], np.int64),
        np.asarray(node.weights["multiplier"], np.int64) * np.ones(n, np.int64),
        window=window,
        **_common(node),
    )


def _token_shape(node: Node) -> tuple[int, int] | None:
    """(T, F) of a layer that reads a token sequence: a token dense, or the mean over the
    tokens (an avgpool whose ``im2col`` (F, 1, T) reads ``x.flat[t*F + f]``)."""
    if node.op == "dense" and int(node.attrs.get("tokens", 1)) > 1:
        return int(node.attrs["tokens"]), int(np.asarray(node.weights["weight"]).shape[1])
    if node.op == "avgpool" and len(node.attrs.get("input_shape") or ()) == 2:
        t, f = (int(v) for v in node.attrs["input_shape"])
        im2col = np.asarray(node.weights["im2col"])
        want = (np.arange(t)[None, :] * f + np.arange(f)[:, None])[:, None, :]
        if im2col.shape == want.shape and np.array_equal(im2col, want):
            return t, f
    return None


def _token_layout(node: Node, layout: np.ndarray, features: int) -> np.ndarray:
    """A token sequence's tensor (T, F) seen as the GEMM's planes: the physical offset of
    element (feature f, token t) at index f*T + t (the identity for other layers)."""
    seq = _token_shape(node)
    if seq is None:
        return layout
    return layout.reshape(seq).T.reshape(-1)


def _conv(node: Node, graph: Graph) -> GemmLayer:
    w = np.asarray(node.weights["weight"], dtype=np.int64)
    cout = w.shape[0]
    im2col = np.asarray(node.weights["im2col"], dtype=np.int64)
    g, m, k = im2col.shape
    return GemmLayer(
        node,
        g,
        m,
        k,
        cout // g,
        w.reshape(cout, -1),
        np.asarray(node.weights["bias"], np.int64),
        np.asarray(node.weights["multiplier"], np.int64) * np.ones(cout, np.int64),
        window=window_of(node, graph, im2col),
        **_common(node),
    )


def _avgpool(node: Node, graph: Graph) -> GemmLayer:
    """An average pool as a depthwise GEMM with unit weights; the post unit's requantizer
    divides by the window with the IR's multiplier and shift (``frontends.ir``), so every
    output pixel must share one multiplier (windows of one size) that fits the post unit's
    parameter memory."""
    mult = np.asarray(node.weights["multiplier"], np.int64).reshape(-1)
    if np.any(mult != mult[0]):
        count = np.asarray(node.weights.get("count", [0]), np.int64).reshape(-1)
        raise ModelError(
            f"{node.describe()}: window sizes {sorted(set(count.tolist()))} "
            f"differ at the borders; the gemm engine takes one divisor per pool"
        )
    im2col = np.asarray(node.weights["im2col"], dtype=np.int64)  # (C, M, k)
    c, m, k = im2col.shape
    common = _common(node)
    weight, multiplier = 1, int(mult[0])
    if multiplier >= 1 << MULTIPLIER_BITS:
        found = _scaled_divisor(node, graph, k, multiplier, common)
        if found is None:
            raise ModelError(
                f"{node.describe()}: dividing by its window needs a "
                f"{multiplier.bit_length()}-bit multiplier; the gemm engine's post "
                f"unit holds {MULTIPLIER_BITS} bits"
            )
        weight, multiplier, common["shift"] = found
    seq = _token_shape(node)
    if seq is not None:  # the mean over a sequence's tokens: a 1 x T window per feature
        window = Window(c, 1, k, 1, 1, 1, k, groups=c)
    else:
        window = window_of(node, graph, im2col)
    return GemmLayer(
        node,
        c,
        m,
        k,
        1,
        np.full((c, k), weight, np.int64),
        np.zeros(c, np.int64),
        np.full(c, multiplier, np.int64),
        window=window,
        dsp_only=weight != 1,
        **common,
    )


def _scaled_divisor(node: Node, graph: Graph, k: int, mult: int, common: dict):
    """``(weight, multiplier, shift)``: a pool whose divisor needs a multiplier wider than
    the post unit's as a sum of ``weight * x`` (int8) requantized by a multiplier that
    fits, equal to the IR's ``requantize(sum, mult, shift)`` on every sum the window's
    ``k`` inputs can make (checked on all of them), or None. The weight's factor buys the
    multiplier's missing precision where some ``weight * multiplier`` lands close enough
    to the exact ratio."""
    from frontends.fixedpoint import requantize

    x_t = graph.tensor(node.inputs[0])
    zp, shift = common["zp_in"], common["shift"]
    sums = np.arange(k * (x_t.dtype.min - zp), k * (x_t.dtype.max - zp) + 1, dtype=np.int64)
    out = dict(zero_point=common["zp_out"], lo=common["lo"], hi=common["hi"])
    want = requantize(sums, mult, shift, rounding=common["rounding"], **out)
    for weight in range(2, 128):
        # weight * m_new / 2**new_shift ~ mult / 2**shift, m_new as wide as fits
        extra = 0
        while (mult << (extra + 1)) // weight < 1 << MULTIPLIER_BITS:
            extra += 1
        while extra > -shift and (mult << max(extra, 0) >> max(-extra, 0)) // weight >= (
            1 << MULTIPLIER_BITS
        ):
            extra -= 1
        new_shift = shift + extra
        if new_shift < 1:
            continue
        num = mult << extra if extra >= 0 else mult
        den = weight if extra >= 0 else weight << -extra
        base = (2 * num + den) // (2 * den)
        for m_new in (base, base - 1, base + 1):
            if not 0 < m_new < 1 << MULTIPLIER_BITS:
                continue
            got = requantize(sums * weight, m_new, new_shift, rounding=common["rounding"], **out)
            if np.array_equal(got, want):
                return weight, m_new, new_shift
    return None


LOWERINGS: dict[str, Callable[[Node, Graph], GemmLayer]] = {
    "dense": _dense,
    "conv": _conv,
    "avgpool": _avgpool,
}


@dataclass(frozen=True, eq=False)
class LayerInfo:
    """What the compiler did with one node: the split and where its instructions are."""

    name: str
    op: str
    source_op: str
    m: int
    k: int
    n: int
    groups: int
    n_dsp: int  # channels on the DSP core
    n_lut: int  # channels on the LUT core
    lut_error: float  # max relative squared error of the LUT channels (0: exact)
    first: int  # index of the layer's first instruction
    last: int  # one past its last instruction
    macs: int
    model_cycles: int = 0  # sequencer cycles of [first, last) (set by the compiler)
    lut_wbits: int = 0  # LUT-core weight precision of this layer (0: no LUT channels)
    lut_rows: int = 0  # output rows on the LUT core, every channel (0: split by channels)


@dataclass(frozen=True, eq=False)
class Program:
    """A compiled network: instructions, memory images, the graph it computes exactly."""

    config: GemmConfig
    instrs: tuple
    act_base: dict  # tensor -> act address of its region
    layout: dict  # tensor -> physical offset of each original flat index
    idx: np.ndarray  # gather table: act offsets, -1 = padding
    wd: tuple  # DSP weight words (int)
    wl: tuple  # LUT weight words (int)
    params: np.ndarray  # (P, 2): bias, multiplier
    layers: tuple
    graph: Graph  # transformed graph: LUT channels requantized
    source: Graph
    needs: dict = field(default_factory=dict)
    tab: tuple = ()  # table memory words (``tables``)
    etab: tuple = ()  # the row unit's exp tables (``rowwise``)
    smurf: tuple = ()  # SMURF units in place of the table memory (``tables.SmurfTable``)

    @property
    def words(self) -> list[int]:
        return [encode(i) for i in self.instrs]

    @property
    def n_in(self) -> int:
        return self.graph.tensor(self.graph.inputs[0]).size

    @property
    def n_out(self) -> int:
        return self.graph.tensor(self.graph.outputs[0]).size

    @property
    def in_dtype(self):
        return self.graph.tensor(self.graph.inputs[0]).dtype

    @property
    def out_dtype(self):
        return self.graph.tensor(self.graph.outputs[0]).dtype

    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def listing(self) -> str:
        return "".join(i.text() + "\n" for i in self.instrs)


# --- split -----------------------------------------------------------------------------------


def _item_errors(layer: GemmLayer, config: GemmConfig, wbits: int | None = None) -> np.ndarray:
    lo, hi = config.lut_weight_range(wbits)
    _, _, err = quantize_channels(layer.weight, lo, hi, ternary=config.lut_mode == "ternary")
    if layer.groups == 1:
        return err
    return err.reshape(layer.groups, layer.ng).max(axis=1)


def _gemm_instrs(
    layer: GemmLayer,
    shapes: dict,
    config: GemmConfig,
    *,
    x=(0, 0),
    w=(0, 0),
    y=0,
    p=0,
    xsigned=True,
    shift=None,
    name="",
    lut_wbits: int | None = None,
) -> list[Instr]:
    """CFG (+WIN, WSTEP for a convolution window) + GEMM per core with channels (``x``: its
    window origin), PCFG, SYNC, POST per core."""
    win = layer.window
    win_fields, step_fields = win.fields()
    out, started = [], []
    for i, core in enumerate(("dsp", "lut")):
        n, g = shapes[core]
        if n * g == 0:
            continue
        lanes = config.lanes[core]
        if lanes == 0:
            raise ModelError(
                f"{layer.node.describe()}: {n * g} channels assigned to the "
                f"{core} core, which this configuration does not have"
            )
        tiles = timing.ceil_div(n, lanes)
        if tiles > 255:
            raise ModelError(
                f"{layer.node.describe()}: {n} channels make {tiles} tiles on "
                f"the {core} core; at most 255"
            )
        wbits = DSP_WBITS if core == "dsp" else (lut_wbits or config.lut_precisions[-1])
        out.append(
            Instr(
                "CFG",
                core,
                {
                    "m": layer.m,
                    "k": layer.k,
                    "n": n,
                    "g": g,
                    "tiles": tiles,
                    "xsigned": int(xsigned),
                    "wbits": wbits,
                },
                comment=f"{name}: {n * g} channels" if name else "",
            )
        )
        if not win.dense:
            out.append(Instr("WIN", core, win_fields))
            out.append(Instr("WSTEP", core, step_fields))
        out.append(
            Instr(
                "GEMM",
                core,
                {
                    "x": x[i] % (1 << 16),
                    "gstep": win.cin_g * win.plane if g > 1 else 0,
                    "w": w[i],
                    "pad": layer.zp_in & 0xFF,
                },
            )
        )
        started.append((core, n * g))
    # PCFG before the barrier: it waits only for the post unit, not the cores
    out.append(
        Instr(
            "PCFG",
            fields={
                "m": layer.m,
                "shift": layer.shift if shift is None else shift,
                "zp": layer.zp_out,
                "lo": layer.lo,
                "hi": layer.hi,
                "round": ROUNDING[layer.rounding],
            },
        )
    )
    out.append(Instr("SYNC"))
    offset = 0
    for core, count in started:
        out.append(Instr("POST", core, {"n": count, "y": y + offset * layer.m, "p": p + offset}))
        offset += count
    return out


def _row_split_instrs(
    layer: GemmLayer,
    config: GemmConfig,
    r1: int,
    in_base: int,
    w: tuple,
    y: int,
    p: int,
    xsigned: bool,
    name: str,
) -> list[Instr]:
    """A convolution split by output rows: the DSP core computes rows ``[0, r1)`` and the
    LUT core rows ``[r1, oh)``, every channel each, through windows of their own (the LUT
    core's starts at input row ``b = r1*sy - pt``: its plane is the ``h - b`` rows from
    there, no top padding, the same address steps); each core's POST writes its pixels of
    every channel (``PCFG`` ``mc``), the LUT core's from pixel ``r1 * ow`` on."""
    win = layer.window
    _, steps = win.fields()
    out, posts = [], []
    for i, (core, r0, r_end) in enumerate((("dsp", 0, r1), ("lut", r1, win.oh))):
        mc = (r_end - r0) * win.ow
        lanes = config.lanes[core]
        b = r0 * win.sy - win.pt
        sub = win if r0 == 0 else replace(win, h=win.h - b, pt=0, pb=0)
        fields, _ = sub.fields()
        x = in_base + (win.origin() if r0 == 0 else b * win.w - win.pl)
        wbits = DSP_WBITS if core == "dsp" else config.lut_precisions[-1]
        out += [
            Instr(
                "CFG",
                core,
                {
                    "m": mc,
                    "k": layer.k,
                    "n": layer.n,
                    "g": 1,
                    "tiles": timing.ceil_div(layer.n, lanes),
                    "xsigned": int(xsigned),
                    "wbits": wbits,
                },
                comment=f"{name}: output rows {r0}-{r_end - 1}" if name else "",
            ),
            Instr("WIN", core, fields),
            Instr("WSTEP", core, steps),
            Instr(
                "GEMM", core, {"x": x % (1 << 16), "gstep": 0, "w": w[i], "pad": layer.zp_in & 0xFF}
            ),
        ]
        pcfg = {
            "m": layer.m,
            "shift": layer.shift,
            "zp": layer.zp_out,
            "lo": layer.lo,
            "hi": layer.hi,
            "round": ROUNDING[layer.rounding],
            "mc": mc,
        }
        posts.append(
            (
                Instr("PCFG", fields=pcfg),
                Instr("POST", core, {"n": layer.n, "y": y + r0 * win.ow, "p": p}),
            )
        )
    (pcfg_d, post_d), (pcfg_l, post_l) = posts
    return out + [pcfg_d, Instr("SYNC"), post_d, pcfg_l, post_l]


def layer_cycles(
    layer: GemmLayer, config: GemmConfig, items_lut: int, wbits: int | None = None
) -> int:
    """Modelled sequencer cycles of ``layer`` with ``items_lut`` split items on the LUT
    core at precision ``wbits`` (default: the LUT core's highest)."""
    from .model import schedule

    instrs = _gemm_instrs(layer, _split_shape(layer, items_lut), config, lut_wbits=wbits)
    return schedule(instrs, config).fetch[-1]


def _split_shape(layer: GemmLayer, items_lut: int) -> dict:
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
            if (_item_errors(layer, config, wbits) <= tau).all():
                return layer.items, wbits
        return layer.items, precisions[-1]
    best = None
    for wbits in precisions:
        for items, error in _lut_candidates(_item_errors(layer, config, wbits), order, tau):
            key = (layer_cycles(layer, config, items, wbits), error, -items, wbits)
            if best is None or key < best[0]:
                best = (key, items, wbits)
    return best[1], best[2]


def _ratio_precision(
    layer: GemmLayer, config: GemmConfig, items: int, tau: float, order: np.ndarray | None = None
):
    """A fixed split's precision: the lowest whose ``items`` LUT items (the easiest, or the
    last of ``order``) are within ``tau`` (the highest when none is), and the items' errors
    at it."""
    precisions = config.lut_precisions
    for wbits in precisions:
        errors = _item_errors(layer, config, wbits)
        chosen = np.sort(errors)[:items] if order is None else errors[order[len(order) - items :]]
        if len(precisions) == 1 or chosen.max(initial=0.0) <= tau:
            return wbits, errors
    return wbits, errors


# --- compile -----------------------------------------------------------------------------------


class _Arena:
    """The activation buffer's regions: a tensor's region is taken when its producer runs
    and given back after its last reader, and a new one goes to the lowest free range that
    holds it (first fit), so the buffer holds the live tensors only: a chain ping-pongs
    between two regions, a residual branch stays put until its add. ``top``: the buffer's
    high-water mark (its depth)."""

    def __init__(self):
        self.top = 0
        self.free: list[tuple[int, int]] = []  # (base, size), ascending, merged
        self.dying: set[str] = set()  # tensors the node being compiled reads last
        self.adopted: set[str] = set()  # tensors whose region an output took over

    def take(self, n: int) -> int:
        for i, (base, size) in enumerate(self.free):
            if size >= n:
                self.free[i : i + 1] = [(base + n, size - n)] if size > n else []
                return base
        if self.free and self.free[-1][0] + self.free[-1][1] == self.top:
            base = self.free.pop()[0]  # the top free range grows to fit
        else:
            base = self.top
        self.top = max(self.top, base + n)
        return base

    def give(self, base: int, n: int) -> None:
        self.free.append((base, n))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for b, size in self.free:
            if merged and merged[-1][0] + merged[-1][1] == b:
                merged[-1] = (merged[-1][0], merged[-1][1] + size)
            else:
                merged.append((b, size))
        self.free = merged


def _requantize_lut(layer: GemmLayer, lut_items: np.ndarray, config: GemmConfig, wbits: int):
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


def _transformed_node(node: Node, layer: GemmLayer, w, bias, mult, shift) -> Node:
    weights = dict(node.weights)
    shape = np.asarray(node.weights["weight"]).shape
    if node.op == "dense" and layer.groups > 1:  # a diagonal layer (``_dense``)
        w = np.diag(w.reshape(-1))
    weights["weight"] = w.reshape(shape)
    weights["bias"] = bias
    weights["multiplier"] = mult
    attrs = dict(node.attrs)
    attrs["shift"] = int(shift)
    return Node(
        name=node.name,
        op=node.op,
        inputs=node.inputs,
        outputs=node.outputs,
        attrs=attrs,
        weights=weights,
        source_op=node.source_op,
    )


def _layout_of_gemm(perm_pos: np.ndarray, m: int) -> np.ndarray:
    """Physical offset of each original flat index (c*m + p) of a GEMM output whose
    channel c sits at physical position perm_pos[c]."""
    c = np.repeat(np.arange(len(perm_pos)), m)
    p = np.tile(np.arange(m), len(perm_pos))
    return perm_pos[c] * m + p


def _pack_lanes(values, width: int) -> int:
    word, mask = 0, (1 << width) - 1
    for lane, v in enumerate(values):
        word |= (int(v) & mask) << (width * lane)
    return word


def compile_graph(
    graph: Graph,
    config: GemmConfig,
    *,
    split="auto",
    tau: float = 0.02,
    fit: bool = True,
    stream: bool = True,
) -> Program:
    """Compile ``graph`` for ``config``.

    ``split``: ``"auto"`` (per layer, the LUT-core share that minimises modelled latency
    among channels with LUT error <= ``tau``), a ratio in [0, 1] for every layer (rounded
    to split items), or ``{node name: ratio}``. With ``fit`` the returned program's config
    has memories and widths sized to it; otherwise a program that does not fit raises.
    With ``stream`` a dense one-pixel layer (no bit-serial channels) that reads all of the
    input, or of the previous one-pixel layer's output, has its GEMMs issued ahead of the
    ``LOAD`` or of those POSTs (``GEMM stream=1``, steps in address order): it computes
    while its input is written; an output a one-pixel layer's POSTs write in order leaves
    as they write it (``STORE stream=1``).
    """
    if len(graph.inputs) == 1 and len(graph.outputs) == 1:
        out_t = graph.tensor(graph.outputs[0])
        if out_t.dtype.width > 8:
            raise ModelError(
                f"model '{graph.name}': its output '{out_t.name}' is the float "
                f"output of its last layer, a {out_t.dtype} accumulator; the gemm "
                f"engine outputs 8-bit codes: quantize the output, or use "
                f"--engine dense"
            )
    try:
        return _compile(graph, config, split=split, tau=tau, fit=fit, stream=stream)
    except DeviceFitError as exc:
        if not (fit and _has_spram(config)):
            raise
        ebr = exc
    # the iCE40 UP5K: buffers in its SPRAM (ram.spram_variant). Refused there too: the
    # SPRAM's bytes, or the block RAM's and why the SPRAM overlay cannot run it
    try:
        return _compile(graph, spram_variant(config), split=split, tau=tau, fit=fit, stream=stream)
    except DeviceFitError:
        raise
    except ModelError as exc:
        raise DeviceFitError(f"{ebr}; the SPRAM overlay cannot run it either: {exc}") from None


def _has_spram(config: GemmConfig) -> bool:
    from boards.families import board_facts

    if config.spram or not config.board or not config.dsp_lanes or config.dsp_regs:
        return False
    if config.protect != "none":
        return False
    return board_facts(config.board).capacity.get("ICESTORM_SPRAM", 0) > 0


def _compile(graph: Graph, config: GemmConfig, *, split, tau, fit, stream) -> Program:
    lowering = Lowering(graph, config, split=split, tau=tau, stream=stream and not config.spram)
    lowering.load_input()
    for i, node in enumerate(graph.nodes):
        lowering.node(i, node)
    lowering.store_output()
    return lowering.program(fit=fit)


@dataclass(frozen=True, eq=False)
class _Split:
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


class Lowering:
    """The compiler's state through one graph, one method a phase: ``load_input``, then
    ``node`` for each node (``post_op`` or ``gemm_layer``: place the input, ``split``,
    ``fold_params``, ``weight_images``, ``emit_gemm``), ``store_output``, ``program``."""

    def __init__(
        self,
        graph: Graph,
        config: GemmConfig,
        *,
        split="auto",
        tau: float = 0.02,
        stream: bool = True,
    ):
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ModelError(
                f"model '{graph.name}': the gemm engine takes one input and one "
                f"output, this model has {len(graph.inputs)} and "
                f"{len(graph.outputs)}"
            )
        self.graph, self.config = graph, config
        self.split_spec, self.tau, self.stream = split, tau, stream
        self.instrs: list[Instr] = []
        self.act = _Arena()
        self.last_read: dict[str, int] = {}
        for i, node in enumerate(graph.nodes):
            for name in node.inputs:
                self.last_read[name] = i
        self.idx_parts: list[np.ndarray] = []
        self.idx_top = 0
        self.wd: list[int] = []
        self.wl: list[int] = []
        self.params: list[tuple[int, int]] = []
        self.act_base: dict[str, int] = {}
        self.layout: dict[str, np.ndarray] = {}
        self.infos: list[LayerInfo] = []
        self.new_nodes: list[Node] = []
        self.acc_need = {"dsp": 0, "lut": 0}
        self.acc_core = {"dsp": 2, "lut": 2}
        self.bias_bits = 2
        self.tab: list[int] = []  # table memory words (``tables.emit_table``)
        self.etab: list[int] = []  # exp tables (``rowwise.emit_softmax``)
        self.row_bits = 0  # the row unit's reciprocal width
        self.matmul = False  # a matmul runs (``attention``)
        self.cadd = False  # an add of a constant runs (``attention``)
        self.norm = False  # a layernorm runs (``rowwise``)
        self.aliases: dict[str, str] = {}  # view (transpose, slice) -> tensor owning its region
        self.prev_posts: tuple = ()  # the output the last instructions (a layer's POSTs) write
        self.wc_need = 0  # spram: the largest chunk of weight words (the cache's depth)
        self.xc_need = 0  # spram: the largest depthwise input block (the lane cache's depth)

    def add_idx(self, entries: np.ndarray) -> int:
        """Appends ``entries`` to the gather table; returns their base."""
        base = self.idx_top
        self.idx_parts.append(np.asarray(entries, np.int64).reshape(-1))
        self.idx_top += self.idx_parts[-1].size
        return base

    # -- phases ------------------------------------------------------------------------------

    def load_input(self) -> None:
        graph = self.graph
        x_name = graph.inputs[0]
        x_t = graph.tensor(x_name)
        for t in (x_t, graph.tensor(graph.outputs[0])):
            if t.dtype.width > 8:
                raise ModelError(
                    f"tensor '{t.name}' is {t.dtype}; the gemm engine's "
                    f"activations are at most 8 bits"
                )
        self.act_base[x_name] = self.act.take(x_t.size)
        self.layout[x_name] = np.arange(x_t.size)
        self.instrs.append(
            Instr(
                "LOAD",
                fields={"n": x_t.size, "dst": self.act_base[x_name]},
                comment=f"input '{x_name}'",
            )
        )

    def node(self, i: int, node: Node) -> None:
        self.act.dying = {
            name
            for name in node.inputs
            if self.last_read[name] == i
            and name not in self.graph.outputs
            and name not in self.aliases
        }
        if self.config.spram and (node.op in POST_OPS or node.op in UNIT_OPS):
            raise ModelError(
                f"{node.describe()}: op '{node.op}' reads and writes the activation "
                f"buffer in the same cycles, which the SPRAM overlay's single-ported "
                f"buffer does not do yet (it runs {', '.join(sorted(LOWERINGS))})"
            )
        if node.op == "add" and len(node.inputs) == 1:  # an add of a constant
            first = len(self.instrs)
            self.prev_posts = ()
            self.new_nodes.append(node)
            self.infos.append(UNIT_OPS["add_const"](self, node, first))
        elif node.op in POST_OPS:
            self.post_op(node)
        elif node.op in LOWERINGS:
            self.gemm_layer(node)
        elif node.op in UNIT_OPS:
            first = len(self.instrs)
            self.prev_posts = ()
            self.new_nodes.append(node)
            info = UNIT_OPS[node.op](self, node, first)
            if info is not None:  # (views: no instructions)
                self.infos.append(info)
        else:
            raise ModelError(
                f"{node.describe()}: op '{node.op}' cannot run on the gemm "
                f"engine; it runs {', '.join(sorted(LOWERINGS))}, "
                f"{', '.join(sorted(POST_OPS))} and {', '.join(sorted(UNIT_OPS))}"
            )
        self.release(i, node)

    def release(self, i: int, node: Node) -> None:
        """Gives back the regions of the tensors node ``i`` read last (and of an output
        nobody reads), after the node's own output was placed."""
        roots = tuple(self.aliases[n] for n in node.inputs if n in self.aliases)
        for name in dict.fromkeys(node.inputs + node.outputs + roots):
            if name in self.aliases:
                continue  # a view: its root owns the region
            if (
                self.last_read.get(name, i) == i
                and name not in self.graph.outputs
                and name not in self.act.adopted
            ):
                self.act.give(self.act_base[name], self.graph.tensor(name).size)

    def post_op(self, node: Node) -> None:
        first = len(self.instrs)
        self.prev_posts = ()
        self.new_nodes.append(node)
        self.infos.append(
            POST_OPS[node.op](
                node,
                self.graph,
                self.instrs,
                self.act,
                self.act_base,
                self.layout,
                self.params,
                self.add_idx,
                first,
            )
        )

    def gemm_layer(self, node: Node) -> None:
        graph, config = self.graph, self.config
        first = len(self.instrs)
        layer = LOWERINGS[node.op](node, graph)
        x_t = graph.tensor(node.inputs[0])
        for t in (x_t, graph.tensor(node.outputs[0])):
            if t.dtype.width > 8:
                raise ModelError(
                    f"{node.describe()}: tensor '{t.name}' is {t.dtype}; the "
                    f"gemm engine's activations are at most 8 bits"
                )
        if layer.m > 4095 or layer.k > 4095 or layer.ng > 1023 or layer.groups > 1023:
            raise ModelError(
                f"{node.describe()}: GEMM of M={layer.m}, K={layer.k}, "
                f"N={layer.ng}, G={layer.groups} exceeds the instruction fields "
                f"(M, K <= 4095; N, G <= 1023)"
            )
        win = layer.window
        in_base, copy = self.act_base[node.inputs[0]], None
        in_layout = _token_layout(node, self.layout[node.inputs[0]], layer.k)
        try:
            blocks, sub = plane_order(win, in_layout, node)
        except (GroupOrderError, ModelError) as exc:
            if not isinstance(exc, GroupOrderError) and in_layout is self.layout[node.inputs[0]]:
                raise
            # the previous split scattered a group's channels (or a token sequence is
            # stored token by token): copy the input into the planes' order first (a MAX
            # of one-entry windows through a gather table)
            copy = _reorder_copy(
                self.instrs,
                self.act,
                self.params,
                self.add_idx,
                in_layout,
                in_base,
                x_t.dtype.signed,
                node.name,
            )
            in_base = copy
            blocks, sub = plane_order(win, np.arange(x_t.size), node)
        # a grouped layer's groups go to the cores in their input's block order (each
        # core's groups are consecutive blocks, one group step apart)
        if copy is None and self.row_layer(node, layer, sub, in_base, x_t.dtype, first):
            return
        group_order = np.argsort(blocks, kind="stable") if layer.groups > 1 else None
        split = self.split(layer, group_order)
        w, bias, mult, shift, changed = _requantize_lut(
            layer, split.lut_items, config, split.lut_wbits
        )
        self.new_nodes.append(
            _transformed_node(node, layer, w, bias, mult, shift) if changed else node
        )
        dsp_max = (1 << (DSP_WBITS - 1)) - 1
        for c in split.channel_order[: split.n_dsp]:
            if w[c].min(initial=0) < -dsp_max - 1 or w[c].max(initial=0) > dsp_max:
                raise ModelError(
                    f"{node.describe()}: weight values of output channel {c} "
                    f"span [{w[c].min()}, {w[c].max()}]; the DSP core multiplies "
                    f"{DSP_WBITS}-bit signed weights"
                )
        # -- step order: each group's input planes as they are stored (weights alike)
        inv_sub = np.argsort(sub.reshape(layer.groups, win.cin_g), axis=1, kind="stable")
        w_steps = np.take_along_axis(
            w.reshape(layer.groups, layer.ng, win.cin_g, win.kh * win.kw),
            inv_sub[:, None, :, None],
            axis=2,
        ).reshape(layer.n, layer.k)
        x_origin = []
        for items in (split.dsp_items, split.lut_items):
            block = int(blocks[items[0]]) if len(items) and layer.groups > 1 else 0
            x_origin.append(in_base + block * win.cin_g * win.plane + win.origin())
        p_base = self.fold_params(layer, split, w, bias, mult, x_t.dtype)
        y_base = self.act.take(layer.n * layer.m)
        self.act_base[node.outputs[0]] = y_base
        y_layout = _layout_of_gemm(split.pos, layer.m)
        if in_layout is not self.layout[node.inputs[0]]:  # tokens: (T, N) in original order
            y_layout = y_layout.reshape(layer.n, layer.m).T.reshape(-1)
        self.layout[node.outputs[0]] = y_layout
        spram = config.spram
        ones = spram and bool(np.all(w == 1))  # an average pool: no weights to read
        lane_dw = (
            config.lane_cache
            and split.items_lut == 0
            and not np.all(w == 1)  # average pools: one lane a group reads no weights
            and layer.groups > 1
            and layer.ng == 1
            and win.cin_g * win.plane <= config.xc_depth
        )
        if lane_dw:  # lane l = channel t*lanes + l of each tile: one weight word a step
            lanes, chans = config.dsp_lanes, split.channel_order
            w_bases = (len(self.wd), len(self.wl))
            for t0 in range(0, layer.n, lanes):
                block = np.zeros((lanes, layer.k), np.int64)
                tile = chans[t0 : t0 + lanes]
                block[: len(tile)] = w_steps[tile]
                self.wd.extend(_pack_lanes(block[:, k], DSP_WBITS) for k in range(layer.k))
            self.acc_need["dsp"] = max(self.acc_need["dsp"], layer.n * layer.m)
            self.wc_need = max(self.wc_need, layer.k if spram else 0)
            self.xc_need = max(self.xc_need, win.cin_g * win.plane)
            block0 = int(blocks[split.dsp_items[0]])
            self.instrs.extend(
                depthwise_instrs(
                    _gemm_instrs,
                    layer,
                    config,
                    block0=block0,
                    in_base=in_base,
                    w=w_bases[0],
                    y=y_base,
                    p=p_base,
                    name=node.name,
                    cache=spram,
                    xsigned=x_t.dtype.signed,
                    shift=shift,
                )
            )
        elif ones:
            w_bases = (len(self.wd), len(self.wl))
            self.acc_need["dsp"] = max(self.acc_need["dsp"], layer.n * layer.m)
        else:
            w_bases = self.weight_images(layer, split, w_steps)
        if lane_dw:
            pass
        elif spram:
            n_dsp, g_dsp = _split_shape(layer, 0)["dsp"]
            block, words = chunked_instrs(
                _gemm_instrs,
                layer,
                config,
                n=n_dsp,
                g=g_dsp,
                x=x_origin[0],
                w=w_bases[0],
                y=y_base,
                p=p_base,
                ones=ones,
                name=node.name,
                xsigned=x_t.dtype.signed,
                shift=shift,
            )
            self.wc_need = max(self.wc_need, words)
            self.instrs.extend(block)
        else:
            self.instrs.extend(
                _gemm_instrs(
                    layer,
                    _split_shape(layer, split.items_lut),
                    config,
                    x=tuple(x_origin),
                    w=w_bases,
                    y=y_base,
                    p=p_base,
                    xsigned=x_t.dtype.signed,
                    shift=shift,
                    name=node.name,
                    lut_wbits=split.lut_wbits,
                )
            )
        first = self.stream_layer(node, layer, split, first)
        lut_err = (
            float(split.errors[split.lut_items].max()) if len(split.lut_items) and changed else 0.0
        )
        self.infos.append(
            LayerInfo(
                node.name,
                node.op,
                node.source_op,
                layer.m,
                layer.k,
                layer.n,
                layer.groups,
                split.n_dsp,
                split.n_lut,
                lut_err,
                first,
                len(self.instrs),
                layer.macs,
                lut_wbits=split.lut_wbits if split.n_lut else 0,
            )
        )
        self.prev_posts = (node.outputs[0],)
        if copy is not None:
            self.act.give(copy, x_t.size)

    def row_layer(self, node: Node, layer: GemmLayer, sub, in_base: int, xs, first: int) -> bool:
        """Compiles ``layer`` split by output rows when that is faster than any split by
        channels (a layer narrower than the cores' lanes leaves a channel split's lanes
        idle): the DSP core computes every channel of the first rows, the LUT core every
        channel of the rest, each through its own window. Only where the LUT core holds
        every weight exactly (the graph is unchanged) and the row split is modelled
        faster. Returns whether it did."""
        config, win = self.config, layer.window
        if not (
            self.split_spec == "auto"
            and config.dsp_lanes
            and config.lut_lanes
            and config.lut_mode != "bitserial"
            and not config.dsp_pack
            and layer.groups == 1
            and not win.dense
            and win.oh > 1
            and layer.m <= 4095
        ):
            return False
        wbits = config.lut_precisions[-1]
        everything = np.arange(layer.items)
        if _requantize_lut(layer, everything, config, wbits)[4] or np.any(
            _item_errors(layer, config, wbits) > 0
        ):
            return False  # the LUT core would change the weights
        inv_sub = np.argsort(sub, kind="stable")
        w_steps = layer.weight.reshape(layer.n, win.cin_g, win.kh * win.kw)[:, inv_sub]
        w_steps = w_steps.reshape(layer.n, layer.k)

        def instrs_for(r1: int, w_bases=(0, 0), y=0, p=0) -> list[Instr]:
            return _row_split_instrs(
                layer, config, r1, in_base, w_bases, y, p, xs.signed, node.name
            )

        def modelled(r1: int) -> int:
            from .model import schedule

            return schedule(instrs_for(r1), config).fetch[-1]

        pipe = {c: timing.core_pipe(config, c) for c in ("dsp", "lut")}

        def compute(core: str, rows: int) -> int:
            return timing.core_compute_cycles(
                config.lanes[core], rows * win.ow, layer.k, layer.n, 1, pipe=pipe[core]
            )

        # the LUT rows' window starts on an input row (no top padding left for it)
        r_min = max(1, -(-win.pt // win.sy))
        rows = [r1 for r1 in range(r_min, win.oh) if max(r1, win.oh - r1) * win.ow <= 2047]
        if not rows:
            return False
        r1 = min(rows, key=lambda r: (max(compute("dsp", r), compute("lut", win.oh - r)), r))
        items, lut_bits = choose_split(layer, config, tau=self.tau)
        if modelled(r1) >= layer_cycles(layer, config, items, lut_bits):
            return False
        # parameters in channel order; both cores' accumulators cover every channel
        w, bias, mult = layer.weight, layer.bias, layer.multiplier
        folded = bias - layer.zp_in * w.sum(axis=1)
        hi_term = np.maximum(w * xs.max, w * xs.min).sum(axis=1).max()
        lo_term = np.minimum(w * xs.max, w * xs.min).sum(axis=1).min()
        bits = signed_bits(int(lo_term), int(hi_term))
        p_base = len(self.params)
        for c in range(layer.n):
            self.params.append((int(folded[c]), int(mult[c])))
        self.bias_bits = max(self.bias_bits, signed_bits(int(folded.min()), int(folded.max())))
        w_bases = []
        for core, words, width in (
            ("dsp", self.wd, DSP_WBITS),
            ("lut", self.wl, config.lut_wbits),
        ):
            lanes = config.lanes[core]
            w_bases.append(len(words))
            for t in range(timing.ceil_div(layer.n, lanes)):
                block = np.zeros((lanes, layer.k), np.int64)
                chans = w_steps[t * lanes : (t + 1) * lanes]
                block[: len(chans)] = chans
                words.extend(_pack_lanes(block[:, k], width) for k in range(layer.k))
            self.acc_core[core] = max(self.acc_core[core], bits)
        self.acc_need["dsp"] = max(self.acc_need["dsp"], layer.n * r1 * win.ow)
        self.acc_need["lut"] = max(self.acc_need["lut"], layer.n * (win.oh - r1) * win.ow)
        y_base = self.act.take(layer.n * layer.m)
        self.act_base[node.outputs[0]] = y_base
        self.layout[node.outputs[0]] = np.arange(layer.n * layer.m)
        self.instrs.extend(instrs_for(r1, tuple(w_bases), y_base, p_base))
        self.new_nodes.append(node)
        self.infos.append(
            LayerInfo(
                node.name,
                node.op,
                node.source_op,
                layer.m,
                layer.k,
                layer.n,
                layer.groups,
                layer.n,
                layer.n,
                0.0,
                first,
                len(self.instrs),
                layer.macs,
                lut_wbits=wbits,
                lut_rows=win.oh - r1,
            )
        )
        self.prev_posts = (node.outputs[0],)
        return True

    def split(self, layer: GemmLayer, group_order: np.ndarray | None) -> _Split:
        """The layer's LUT share (``split``/``tau``, the bit-serial core's precision) and the
        physical channel order it gives."""
        config, split = self.config, self.split_spec
        if config.lut_lanes == 0 or config.dsp_lanes == 0 or split == "auto" or layer.dsp_only:
            items_lut, lut_wbits = choose_split(layer, config, tau=self.tau, order=group_order)
        else:
            ratio = split.get(layer.node.name, 0.0) if isinstance(split, dict) else split
            if not 0.0 <= float(ratio) <= 1.0:
                raise ValueError(f"split ratio {ratio} is outside [0, 1]")
            items_lut = int(round(layer.items * float(ratio)))
            lut_wbits = None
        if config.lut_lanes and lut_wbits is None:
            lut_wbits, errors = _ratio_precision(layer, config, items_lut, self.tau, group_order)
        elif config.lut_lanes:
            errors = _item_errors(layer, config, lut_wbits)
        else:
            errors = np.zeros(layer.items)
        if group_order is None:
            order = np.argsort(errors, kind="stable")
            lut_items = np.sort(order[:items_lut])
            dsp_items = np.setdiff1d(np.arange(layer.items), lut_items)
        else:
            lut_items = group_order[layer.items - items_lut :]
            dsp_items = group_order[: layer.items - items_lut]
        ng_item = 1 if layer.groups == 1 else layer.ng
        item_order = np.concatenate([dsp_items, lut_items]).astype(np.int64)
        channel_order = (item_order[:, None] * ng_item + np.arange(ng_item)[None]).reshape(-1)
        pos = np.empty(layer.n, np.int64)
        pos[channel_order] = np.arange(layer.n)
        return _Split(
            items_lut,
            lut_wbits,
            errors,
            dsp_items,
            lut_items,
            channel_order,
            pos,
            len(dsp_items) * ng_item,
            len(lut_items) * ng_item,
        )

    def fold_params(self, layer: GemmLayer, split: _Split, w, bias, mult, xs) -> int:
        """Appends the layer's (bias with the zero point folded in, multiplier) in physical
        channel order and widens the accumulators and bias to its range; returns the base."""
        config = self.config
        folded = bias - layer.zp_in * w.sum(axis=1)
        # packed DSP lanes see unsigned activations as a - 128: their bias gets 128 * sum(w)
        offset = 128 if config.dsp_pack and not xs.signed else 0
        dsp_chans = split.channel_order[: split.n_dsp]
        folded[dsp_chans] += offset * w[dsp_chans].sum(axis=1)
        for core, chans in (("dsp", dsp_chans), ("lut", split.channel_order[split.n_dsp :])):
            if not len(chans):
                continue
            x_lo, x_hi = (
                xs.min - (offset if core == "dsp" else 0),
                xs.max - (offset if core == "dsp" else 0),
            )
            hi_term = np.maximum(w[chans] * x_hi, w[chans] * x_lo).sum(axis=1).max()
            lo_term = np.minimum(w[chans] * x_hi, w[chans] * x_lo).sum(axis=1).min()
            # bit-serial partial sums (Horner over bit-planes) reach up to 3x the final range
            grow = 3 if core == "lut" and config.lut_mode == "bitserial" else 1
            self.acc_core[core] = max(
                self.acc_core[core], signed_bits(int(grow * lo_term), int(grow * hi_term))
            )
        self.bias_bits = max(self.bias_bits, signed_bits(int(folded.min()), int(folded.max())))
        p_base = len(self.params)
        for c in split.channel_order:
            self.params.append((int(folded[c]), int(mult[c])))
        return p_base

    def weight_images(self, layer: GemmLayer, split: _Split, w_steps) -> tuple[int, int]:
        """Appends each core's weight words, (group, tile, k) order, lane j = channel
        tile*lanes + j (bit-serial: bit-planes, sign plane first); returns their bases."""
        config = self.config
        shapes = _split_shape(layer, split.items_lut)
        w_bases = []
        for core in ("dsp", "lut"):
            n, g = shapes[core]
            words = self.wd if core == "dsp" else self.wl
            w_bases.append(len(words))
            lanes = config.lanes[core]
            if n * g == 0 or lanes == 0:
                continue  # _gemm_instrs reports channels on an absent core
            tiles = timing.ceil_div(n, lanes)
            wbits = DSP_WBITS if core == "dsp" else config.lut_wbits
            serial = core == "lut" and config.lut_mode == "bitserial"
            chans = split.channel_order[(split.n_dsp if core == "lut" else 0) :][: n * g]
            chans = chans.reshape(g, n)
            for gi in range(g):
                for t in range(tiles):
                    lane_ch = chans[gi, t * lanes : (t + 1) * lanes]
                    block = np.zeros((lanes, layer.k), np.int64)
                    block[: len(lane_ch)] = w_steps[lane_ch]
                    if serial:
                        for bit in range(split.lut_wbits - 1, -1, -1):
                            plane = (block >> bit) & 1
                            words.extend(_pack_lanes(plane[:, k], 1) for k in range(layer.k))
                    else:
                        words.extend(_pack_lanes(block[:, k], wbits) for k in range(layer.k))
            self.acc_need[core] = max(self.acc_need[core], n * g * layer.m)
        return tuple(w_bases)

    def stream_layer(self, node: Node, layer: GemmLayer, split: _Split, first: int) -> int:
        """Moves a one-pixel dense layer's GEMMs ahead of the LOAD or POSTs that write its
        input (it reads it in address order; not the bit-serial core, which reads every step
        once a plane); returns the instruction its cycles count from."""
        in_order = (
            layer.window.dense
            and layer.groups == 1
            and not (self.config.lut_mode == "bitserial" and split.n_lut)
        )
        if not (self.stream and in_order):
            return first
        if first == 1 and node.inputs[0] == self.graph.inputs[0]:
            return _stream_first_layer(self.instrs)
        if (
            self.infos
            and self.prev_posts
            and node.inputs[0] == self.prev_posts[0]
            and self.infos[-1].m == 1
            # its POSTs all behind one SYNC (a layer run in tiles, one SYNC each, writes
            # most of this input before its last POSTs)
            and sum(i.op == "SYNC" for i in self.instrs[self.infos[-1].first : first]) == 1
        ):
            # behind the previous layer's POSTs, which write this input in address order
            first = _stream_after_posts(self.instrs, first)
            self.infos[-1] = replace(self.infos[-1], last=first)
        return first

    def store_output(self) -> None:
        graph = self.graph
        out = graph.outputs[0]
        if out not in self.layout:
            raise ModelError(f"model '{graph.name}': output '{out}' is not computed by a node")
        out_t = graph.tensor(out)
        store_idx = self.add_idx(self.layout[out])
        # straight behind the POSTs that write the output in order: it leaves as it is written
        follow = (
            self.stream
            and self.prev_posts == (out,)
            and self.infos[-1].m == 1
            and np.array_equal(self.layout[out], np.arange(out_t.size))
        )
        self.instrs.append(
            Instr(
                "STORE",
                fields={
                    "n": out_t.size,
                    "x": self.act_base[out],
                    "idx": store_idx,
                    "stream": int(follow),
                },
                comment=f"output '{out}'",
            )
        )
        self.instrs.append(Instr("END"))
        _mark_early_posts(self.instrs)
        _check_fields(self.instrs, self.infos, graph)

    def program(self, *, fit: bool = True) -> Program:
        """The ``Program``: memories sized (``fit``) or checked, the board's block RAM
        checked, every layer's modelled cycles."""
        graph, config, instrs = self.graph, self.config, self.instrs
        new_graph = replace(graph, tensors=dict(graph.tensors), nodes=tuple(self.new_nodes))
        idx = np.concatenate(self.idx_parts) if self.idx_parts else np.zeros(0, np.int64)
        needs = {
            "imem_depth": len(instrs),
            "act_depth": self.act.top,
            "idx_depth": len(idx),
            "wd_depth": len(self.wd),
            "wl_depth": len(self.wl),
            "param_depth": len(self.params),
            "tab_depth": len(self.tab),
            "etab_depth": len(self.etab),
            "row_bits": self.row_bits,
            "matmul": self.matmul,
            "cadd": self.cadd,
            "norm": self.norm,
            "accd_depth": self.acc_need["dsp"],
            "accl_depth": self.acc_need["lut"],
            "wc_depth": self.wc_need,
            "xc_depth": self.xc_need,
            "acc_bits": self.acc_core["dsp"],
            "lut_acc_bits": self.acc_core["lut"],
            "bias_bits": self.bias_bits,
            "residual": any(i.op in ("ADD", "MAX") for i in instrs),
            "windows": any(i.op == "WIN" for i in instrs),
            "lane_cache": any(i.op == "CFG" and i["dw"] for i in instrs),
            "half_even": any(
                i.op == "PCFG" and i["round"] == ROUNDING["half_even"] for i in instrs
            ),
        }
        if fit:
            config = config.fit(needs)
        else:
            _check_fits(config, needs, graph)
        if config.spram and config.acc_bits > 32:
            raise ModelError(
                f"model '{graph.name}' needs {config.acc_bits}-bit accumulators; the "
                f"SPRAM overlay stores 32"
            )
        if config.board:
            check_device(config, config.board, graph.name)
        program = Program(
            config,
            tuple(instrs),
            self.act_base,
            self.layout,
            idx,
            tuple(self.wd),
            tuple(self.wl),
            np.asarray(self.params, np.int64).reshape(-1, 2),
            (),
            new_graph,
            graph,
            needs,
            tuple(self.tab),
            etab=tuple(self.etab),
        )
        from .model import instruction_cycles

        starts = instruction_cycles(program)
        infos = [replace(i, model_cycles=starts[i.last] - starts[i.first]) for i in self.infos]
        return replace(program, layers=tuple(infos))


def _stream_first_layer(instrs: list[Instr]) -> int:
    """Moves the input ``LOAD`` (``instrs[0]``) behind the first layer's ``CFG``/``GEMM``
    pairs and marks those GEMM instructions ``stream``. Returns the instruction after the
    ``LOAD``, where the layer's cycles are counted from: before it the program waits for
    its input, however long that takes."""
    load = instrs.pop(0)
    at = next(i for i, ins in enumerate(instrs) if ins.op not in ("CFG", "GEMM"))
    for i in range(at):
        if instrs[i].op == "GEMM":
            instrs[i] = replace(instrs[i], fields={**instrs[i].fields, "stream": 1})
    instrs.insert(at, load)
    return at + 1


def _stream_after_posts(instrs: list[Instr], first: int) -> int:
    """Moves a layer's ``CFG``/``GEMM`` pairs (from ``first``) ahead of the previous
    layer's POST instructions, which write its input, and marks the GEMM instructions
    ``stream``. Returns the index of the layer's first other instruction (its ``PCFG``), where its
    cycles are counted from."""
    at = next(i for i in range(first, len(instrs)) if instrs[i].op not in ("CFG", "GEMM"))
    block = [
        replace(ins, fields={**ins.fields, "stream": 1}) if ins.op == "GEMM" else ins
        for ins in instrs[first:at]
    ]
    p0 = first
    while instrs[p0 - 1].op == "POST":
        p0 -= 1
    instrs[p0 + len(block) : at] = instrs[p0:first]
    instrs[p0 : p0 + len(block)] = block
    return at


def _mark_early_posts(instrs: list[Instr]) -> None:
    """Sets ``early`` on each POST whose pipeline may run on behind what follows: up to the
    next POST (whose own pipeline ends later) or a streamed STORE (which waits for the
    writes), only CFG, SYNC, NOP and streamed GEMM instructions, none of which touches
    the post unit or reads activations unguarded."""
    for i, ins in enumerate(instrs):
        if ins.op != "POST":
            continue
        for nxt in instrs[i + 1 :]:
            if nxt.op == "POST" or (nxt.op == "STORE" and nxt["stream"]):
                instrs[i] = replace(ins, fields={**ins.fields, "early": 1})
                break
            if not (nxt.op in ("CFG", "SYNC", "NOP") or (nxt.op == "GEMM" and nxt["stream"])):
                break


def _reorder_copy(instrs, act, params, add_idx, layout, base: int, signed: bool, name: str) -> int:
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


def _check_fields(instrs: list[Instr], infos: list[LayerInfo], graph: Graph) -> None:
    """Every instruction encodes; else a ``ModelError`` naming the layer and the field."""
    for i, ins in enumerate(instrs):
        try:
            encode(ins)
        except AsmError as exc:
            owner = next((info for info in infos if info.first <= i < info.last), None)
            where = (
                f"layer '{owner.name}' ({owner.source_op})" if owner else f"model '{graph.name}'"
            )
            raise ModelError(
                f"{where}: {exc}; the gemm engine's instruction cannot hold it"
            ) from None


def _check_fits(config: GemmConfig, needs: dict, graph: Graph):
    for name, value in needs.items():
        have = getattr(config, name)
        fits = value <= have
        if name in ("residual", "half_even", "windows", "matmul", "cadd", "norm", "lane_cache"):
            if value and not have:
                raise ModelError(
                    f"model '{graph.name}' needs {name}; the overlay was built "
                    f"without it ({name}=False)"
                )
            continue
        if name == "lut_acc_bits":
            have = config.acc_widths["lut"]
            fits = value <= have
        if not fits:
            what = name.replace("_depth", " memory depth").replace("_bits", " width in bits")
            raise ModelError(f"model '{graph.name}' needs {what} {value}; the overlay has {have}")


def _emit_add(node, graph, instrs, act, act_base, layout, params, add_idx, first) -> LayerInfo:
    """A residual add on the post unit: ``a`` read in its physical order, ``b`` gathered into
    it; the output keeps ``a``'s layout."""
    a_name, b_name = node.inputs
    a = node.attrs
    rounding = a.get("rounding", "half_up")
    if rounding not in ROUNDING:
        raise ModelError(
            f"{node.describe()}: rounding '{rounding}' is not one of {', '.join(ROUNDING)}"
        )
    ta, tb = graph.tensor(a_name), graph.tensor(b_name)
    if ta.dtype.signed != tb.dtype.signed:
        raise ModelError(
            f"{node.describe()}: inputs '{a_name}' and '{b_name}' differ in "
            f"signedness; the gemm engine's add takes two of the same kind"
        )
    m = np.asarray(node.weights["multiplier"], np.int64)
    if m.max() >= 2**MULTIPLIER_BITS:
        raise ModelError(
            f"{node.describe()}: add multipliers {m.tolist()} exceed {MULTIPLIER_BITS} bits"
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
    instrs.append(
        Instr(
            "PCFG",
            fields={
                "m": 1,
                "shift": int(a["shift"]),
                "zp": int(a["output_zero_point"]),
                "lo": int(a["lo"]),
                "hi": int(a["hi"]),
                "round": ROUNDING[rounding],
            },
            comment=f"{node.name}: residual add",
        )
    )
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


def program_images(program: Program, config: GemmConfig | None = None) -> dict:
    """Memory words of ``program`` for ``config`` (default: the program's):
    ``imem``, ``idx`` (offset, pad flag above it), ``wd``, ``wl``, ``params``
    (``bias << MULTIPLIER_BITS | multiplier``)."""
    from .engine import abits

    config = config or program.config
    wd = list(program.wd)
    if config.spram:  # the weight SPRAM's 16-bit words, low half of each word first
        wsub = subwords(config.dsp_lanes)
        wd = [(int(word) >> (16 * i)) & 0xFFFF for word in wd for i in range(wsub)]
    pad_bit = 1 << abits(config.act_depth)
    bias_mask = (1 << config.bias_bits) - 1
    return {
        "imem": program.words,
        # -1: padding; -(offset + 2): the offset with the flag set (a row unit's sign)
        "idx": [
            pad_bit if int(e) == -1 else pad_bit | (-int(e) - 2) if int(e) < 0 else int(e)
            for e in program.idx
        ],
        "wd": wd,
        "wl": list(program.wl),
        "params": [((int(b) & bias_mask) << MULTIPLIER_BITS) | int(mu) for b, mu in program.params],
        **({"tab": list(program.tab)} if config.tab_depth and not program.smurf else {}),
        **({"etab": list(program.etab)} if config.etab_depth else {}),
    }


def _post_params(node: Node, multipliers, zero_points):
    """Checks that ``MAX``'s parameter fields hold the node's multipliers and zero points."""
    mult = np.asarray(multipliers, np.int64).reshape(-1)
    if mult.max(initial=0) >= 2**MULTIPLIER_BITS or mult.min(initial=0) < 0:
        raise ModelError(
            f"{node.describe()}: multipliers {mult.tolist()} exceed {MULTIPLIER_BITS} unsigned bits"
        )
    for z in zero_points:
        if not -256 <= int(z) <= 255:
            raise ModelError(f"{node.describe()}: input zero point {z} exceeds 9 bits")
    return mult


def _pcfg(node: Node) -> Instr:
    a = node.attrs
    rounding = a.get("rounding", "half_up")
    if rounding not in ROUNDING:
        raise ModelError(
            f"{node.describe()}: rounding '{rounding}' is not one of {', '.join(ROUNDING)}"
        )
    return Instr(
        "PCFG",
        fields={
            "m": 1,
            "shift": int(a["shift"]),
            "zp": int(a["output_zero_point"]),
            "lo": int(a["lo"]),
            "hi": int(a["hi"]),
            "round": ROUNDING[rounding],
        },
        comment=f"{node.name}: {node.op}",
    )


def _emit_max(node, graph, instrs, act, act_base, layout, params, add_idx, first) -> LayerInfo:
    """A max pool: one ``MAX`` over the im2col windows (C, M, k), output in original
    (channel, pixel) order."""
    x_name = node.inputs[0]
    mult = _post_params(node, node.weights["multiplier"], [node.attrs["input_zero_point"]])
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
    instrs.append(_pcfg(node))
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
    mult = _post_params(node, node.weights["multiplier"], zps)
    if len(mult) == 1:
        mult = np.repeat(mult, len(node.inputs))
    n_out = graph.tensor(node.outputs[0]).size
    y_base = act.take(n_out)
    act_base[node.outputs[0]] = y_base
    instrs.append(_pcfg(node))
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


def _unit_nonlinear(lowering: Lowering, node: Node, first: int) -> LayerInfo:
    from .tables import emit_table

    if node.attrs["function"] == "softmax":
        from .rowwise import emit_softmax

        return emit_softmax(lowering, node, first)
    return emit_table(lowering, node, first)


def _unit_matmul(lowering: Lowering, node: Node, first: int) -> LayerInfo:
    from .attention import emit_matmul

    return emit_matmul(lowering, node, first)


# ops on units beside the post unit: op -> function(lowering, node, first) -> LayerInfo
def _rowwise():
    from . import rowwise

    return rowwise


def _attention():
    from . import attention

    return attention


def _unit_view(lowering: Lowering, node: Node, first: int) -> None:
    from .attention import emit_view

    emit_view(lowering, node)


UNIT_OPS: dict[str, Callable] = {
    "nonlinear": _unit_nonlinear,
    "matmul": _unit_matmul,
    "transpose": _unit_view,
    "layernorm": lambda lowering, node, first: _rowwise().emit_layernorm(lowering, node, first),
    "add_const": lambda lowering, node, first: _attention().emit_const_add(lowering, node, first),
    "slice": _unit_view,
}
