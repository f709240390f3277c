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

The phases live in their own modules: ``layers`` (``LOWERINGS``: op -> GemmLayer),
``split`` (DSP/LUT split and precision), ``instrs`` (GEMM/CFG words, streaming), ``posts``
(ADD, MAX, copies) and ``program`` (the result, field and fit checks, memory images); the
row-wise, attention and table units emit their own (``rowwise``, ``attention``, ``tables``).
``Lowering`` here carries the compiler's state through the graph, one method a phase (input,
each node: placement, split, parameters, weight images, instructions, streaming; output;
program). The activation buffer is an arena (``_Arena``): a tensor lives from its producer
to its last reader, so a chain ping-pongs between two regions and a residual branch stays
until its add, which writes in place over its first operand; ``ram.check_device`` refuses a
program whose memories exceed the board's block RAM.

On the iCE40 UP5K (``ram.spram_variant``, chosen when a program exceeds the block RAM) the
activation buffer, the DSP accumulators and the DSP weights live in the four
SB_SPRAM256KA (``spram``), single-ported: no GEMM is streamed, the barrier waits for the
last drain, a residual ADD takes an element every four cycles (its write in the idle two),
MAX is refused (a standalone ``requant`` runs as a ``GEMM ones``); a layer's GEMM runs in
chunks whose weights fit a block-RAM cache (``chunks``: ``LOAD fill`` before each), and a
depthwise layer runs a channel on every lane: ``LOAD fill lanes`` copies a tile's input
planes into a lane cache whose word holds one activation a lane (``CFG dw``). A model the
cache cannot run (a reduction longer than it, memories beyond the SPRAM) falls back to
``ram.direct_variant``: the DSP weights at 4 bits a lane in SPRAM read by the core
directly, the accumulators in block RAM, each layer in blocks of output rows whose
accumulators fit ``SPRAM_ACC_CAP`` (``rowblocks``); 8-bit weights there are refused by
their SPRAM bytes. On an ECP5 board whose block RAM a program overflows, it is compiled
again with average pools on the lane cache and the accumulators capped (``ACC_CAPS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from frontends.errors import ModelError
from frontends.fixedpoint import signed_bits
from frontends.ir import Graph, IntType, Node

from . import timing
from .attention import emit_const_add, emit_matmul, emit_view
from .chunks import chunked_instrs, depthwise_halves, depthwise_instrs, drop_repeats
from .config import DSP_WBITS, MULT_BITS, GemmConfig
from .instrs import (
    gemm_instrs,
    mark_early_posts,
    row_split_instrs,
    stream_after_posts,
    stream_first_layer,
)
from .isa import Instr
from .layers import LOWERINGS, ROUNDING, GemmLayer, requant_gemm, token_layout
from .posts import POST_OPS, reorder_copy
from .program import LayerInfo, Program, check_fields, check_fits
from .ram import DeviceFitError, check_device, direct_variant, spram_variant
from .rowblocks import acc_words, row_blocks
from .rowwise import emit_layernorm, emit_softmax
from .split import (
    LayerSplit,
    SplitSpec,
    choose_split,
    item_errors,
    layer_cycles,
    ratio_precision,
    requantize_lut,
    split_shape,
)
from .tables import emit_table, smurf_element_cycles, smurf_graph
from .window import GroupOrderError, plane_order

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


def pack_lanes(values: Iterable[int], width: int) -> int:
    word, mask = 0, (1 << width) - 1
    for lane, v in enumerate(values):
        word |= (int(v) & mask) << (width * lane)
    return word


class WeightRangeError(ModelError):
    """A layer's DSP weights exceed the SPRAM weight memory's bits (``spram_wbits``)."""


# accumulator words a GEMM may use on a ``spram_wbits`` overlay (its accumulators in block
# RAM: 1024 x 24 bits are six SB_RAM40_4K; larger blocks cost instruction memory less)
SPRAM_ACC_CAP = 1024
# ECP5 boards whose block RAM a program overflows: the accumulator caps tried, in order
ACC_CAPS = (8192, 4096, 2048)


def compile_graph(
    graph: Graph,
    config: GemmConfig,
    *,
    split: SplitSpec = "auto",
    tau: float = 0.02,
    fit: bool = True,
    stream: bool = True,
    acc_cap: int | None = None,
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
    as they write it (``STORE stream=1``). ``acc_cap``: accumulator words a GEMM may use
    (larger layers run in blocks of output rows, ``rowblocks``); default none, but
    ``SPRAM_ACC_CAP`` on a ``spram_wbits`` config, and ``ACC_CAPS`` in turn for a board
    whose block RAM the program overflows.
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
    kw = dict(split=split, tau=tau, fit=fit, stream=stream)
    if acc_cap is not None:
        return _compile(graph, config, acc_cap=acc_cap, **kw)
    try:
        return _compile(graph, config, **kw)
    except DeviceFitError as exc:
        if not fit or config.spram:
            raise
        if not _has_spram(config):
            return _compile_compact(graph, config, exc, **kw)
        ebr = exc
    # the iCE40 UP5K: buffers in its SPRAM (ram.spram_variant), the weights through a
    # block-RAM cache; else read directly at 4 bits a lane (or 8, which no UP5K holds).
    # Refused there too: the SPRAM's bytes, or the block RAM's and why the SPRAM overlay
    # cannot run it
    try:
        return _compile(graph, spram_variant(config), **kw)
    except ModelError:
        pass
    try:
        try:
            return _compile(graph, direct_variant(config, 4), **kw)
        except WeightRangeError:
            return _compile(graph, direct_variant(config, 8), **kw)
    except DeviceFitError:
        raise
    except ModelError as exc:
        raise DeviceFitError(f"{ebr}; the SPRAM overlay cannot run it either: {exc}") from None


def _compile_compact(graph: Graph, config: GemmConfig, exc: DeviceFitError, **kw) -> Program:
    """A program that overflows a board's block RAM, compiled again with its memories
    packed tighter: average pools on the lane cache (a tile's weight words, not one a
    group) and each layer's accumulators capped (``rowblocks``, ``ACC_CAPS`` in turn);
    the first that fits, else the first refusal."""
    for cap in ACC_CAPS:
        try:
            return _compile(graph, config, acc_cap=cap, pool_lanes=True, **kw)
        except DeviceFitError:
            continue
    raise exc


def _has_spram(config: GemmConfig) -> bool:
    from boards.families import board_facts

    if config.spram or not config.board or not config.dsp_lanes or config.dsp_regs:
        return False
    if config.protect != "none":
        return False
    return board_facts(config.board).capacity.get("ICESTORM_SPRAM", 0) > 0


def _compile(
    graph: Graph,
    config: GemmConfig,
    *,
    split,
    tau,
    fit,
    stream,
    acc_cap: int | None = None,
    pool_lanes: bool = False,
) -> Program:
    if acc_cap is None and config.spram_wbits:
        acc_cap = SPRAM_ACC_CAP
    lowering = Lowering(
        graph,
        config,
        split=split,
        tau=tau,
        stream=stream and not config.spram,
        acc_cap=acc_cap,
        pool_lanes=pool_lanes,
    )
    lowering.load_input()
    for i, node in enumerate(graph.nodes):
        lowering.node(i, node)
    lowering.store_output()
    return lowering.program(fit=fit)


class Lowering:
    """The compiler's state through one graph, one method a phase: ``load_input``, then
    ``node`` for each node (``post_op`` or ``gemm_layer``: place the input, ``split``,
    ``fold_params``, ``weight_images``, ``emit_gemm``), ``store_output``, ``program``."""

    def __init__(
        self,
        graph: Graph,
        config: GemmConfig,
        *,
        split: SplitSpec = "auto",
        tau: float = 0.02,
        stream: bool = True,
        acc_cap: int | None = None,
        pool_lanes: bool = False,
    ):
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ModelError(
                f"model '{graph.name}': the gemm engine takes one input and one "
                f"output, this model has {len(graph.inputs)} and "
                f"{len(graph.outputs)}"
            )
        self.graph, self.config = graph, config
        self.split_spec, self.tau, self.stream = split, tau, stream
        # accumulator words a GEMM may use (None: any; ``rowblocks``), average pools on the
        # lane cache
        self.acc_cap, self.pool_lanes = acc_cap, pool_lanes
        # DSP weight bits a lane in the weight memory (``spram_wbits``: 4 on a UP5K)
        self.dsp_wbits = config.spram_wbits or DSP_WBITS
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
        if self.config.spram and node.op == "requant":
            self.gemm_layer(node, requant_gemm(node, self.graph))
            self.release(i, node)
            return
        spram_ok = ("add",)  # ADD: an element every 4 cycles, the write in the idle two
        if self.config.spram and (
            (node.op in POST_OPS and node.op not in spram_ok) or node.op in UNIT_OPS
        ):
            raise ModelError(
                f"{node.describe()}: op '{node.op}' reads and writes the activation "
                f"buffer in the same cycles, which the SPRAM overlay's single-ported "
                f"buffer does not do yet (it runs {', '.join(sorted(LOWERINGS))}, add)"
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

    def gemm_layer(self, node: Node, layer: GemmLayer | None = None) -> None:
        graph, config = self.graph, self.config
        first = len(self.instrs)
        layer = layer or LOWERINGS[node.op](node, graph)
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
        in_layout = token_layout(node, self.layout[node.inputs[0]], layer.k)
        try:
            blocks, sub = plane_order(win, in_layout, node)
        except (GroupOrderError, ModelError) as exc:
            if not isinstance(exc, GroupOrderError) and in_layout is self.layout[node.inputs[0]]:
                raise
            # the previous split scattered a group's channels (or a token sequence is
            # stored token by token): copy the input into the planes' order first (a MAX
            # of one-entry windows through a gather table)
            copy = reorder_copy(
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
        if self.pool_lanes and config.lane_cache and layer.ng == 1 and np.all(layer.weight == 1):
            layer = replace(layer, dsp_only=True)  # a pool on the lane cache, not the LUT core
        split = self.split(layer, group_order)
        w, bias, mult, shift, changed = requantize_lut(
            layer, split.lut_items, config, split.lut_wbits
        )
        self.new_nodes.append(
            _transformed_node(node, layer, w, bias, mult, shift) if changed else node
        )
        dsp_max = (1 << (self.dsp_wbits - 1)) - 1
        for c in split.channel_order[: split.n_dsp]:
            if w[c].min(initial=0) < -dsp_max - 1 or w[c].max(initial=0) > dsp_max:
                error = ModelError if self.dsp_wbits == DSP_WBITS else WeightRangeError
                raise error(
                    f"{node.describe()}: weight values of output channel {c} "
                    f"span [{w[c].min()}, {w[c].max()}]; "
                    + (
                        f"the DSP core multiplies {DSP_WBITS}-bit signed weights"
                        if error is ModelError
                        else f"the DSP core's weight memory holds {self.dsp_wbits}-bit "
                        f"signed weights"
                    )
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
        cached = spram and not config.spram_wbits  # weights through the block-RAM cache
        ones = spram and bool(np.all(w == 1))  # an average pool: no weights to read
        emit = self.gemm_emitter(layer)
        first_emit = len(self.instrs)
        lane_dw = (
            config.lane_cache
            and split.items_lut == 0
            # average pools: one lane a group reads no weights (spram), or a tile's words
            and (not np.all(w == 1) or (self.pool_lanes and not spram))
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
                self.wd.extend(pack_lanes(block[:, k], self.dsp_wbits) for k in range(layer.k))
            size = win.cin_g * win.plane
            xhalf, whalf = (
                depthwise_halves(size, layer.k, config)
                if cached and layer.groups > config.dsp_lanes
                else (0, 0)
            )
            self.wc_need = max(self.wc_need, whalf + layer.k if cached else 0)
            self.xc_need = max(self.xc_need, xhalf + size)
            block0 = int(blocks[split.dsp_items[0]])
            self.instrs.extend(
                depthwise_instrs(
                    emit,
                    layer,
                    config,
                    block0=block0,
                    in_base=in_base,
                    w=w_bases[0],
                    y=y_base,
                    p=p_base,
                    name=node.name,
                    cache=cached,
                    xsigned=x_t.dtype.signed,
                    shift=shift,
                )
            )
        elif ones:
            w_bases = (len(self.wd), len(self.wl))
        else:
            w_bases = self.weight_images(layer, split, w_steps)
        if lane_dw:
            pass
        elif cached:
            n_dsp, g_dsp = split_shape(layer, 0)["dsp"]
            block, words = chunked_instrs(
                emit,
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
            block = emit(
                layer,
                split_shape(layer, split.items_lut),
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
            if ones:
                block = [
                    replace(i, fields={**i.fields, "ones": 1}) if i.op == "GEMM" else i
                    for i in block
                ]
            self.instrs.extend(drop_repeats(block))
        self.need_acc(self.instrs[first_emit:])
        first = self.stream_layer(node, layer, split, first)
        lut_err = (
            float(split.errors[split.lut_items].max()) if len(split.lut_items) and changed else 0.0
        )
        lut_wbits = split.lut_wbits if split.n_lut else 0
        self.gemm_info(node, layer, first, split.n_dsp, split.n_lut, lut_err, lut_wbits=lut_wbits)
        self.prev_posts = (node.outputs[0],)
        if copy is not None:
            self.act.give(copy, x_t.size)

    def gemm_info(
        self,
        node: Node,
        layer: GemmLayer,
        first: int,
        n_dsp: int,
        n_lut: int,
        lut_error: float = 0.0,
        **split: int,
    ) -> None:
        """Records GEMM layer ``node``, its instructions from ``first`` to the last emitted:
        channels on each core, the LUT channels' error and ``split`` (``LayerInfo``'s
        ``lut_wbits``, ``lut_rows``)."""
        self.infos.append(
            LayerInfo(
                node.name,
                node.op,
                node.source_op,
                layer.m,
                layer.k,
                layer.n,
                layer.groups,
                n_dsp,
                n_lut,
                lut_error,
                first,
                len(self.instrs),
                layer.macs,
                **split,
            )
        )

    def row_layer(
        self, node: Node, layer: GemmLayer, sub: np.ndarray, in_base: int, xs: IntType, first: int
    ) -> bool:
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
        if requantize_lut(layer, everything, config, wbits)[4] or np.any(
            item_errors(layer, config, wbits) > 0
        ):
            return False  # the LUT core would change the weights
        inv_sub = np.argsort(sub, kind="stable")
        w_steps = layer.weight.reshape(layer.n, win.cin_g, win.kh * win.kw)[:, inv_sub]
        w_steps = w_steps.reshape(layer.n, layer.k)

        def instrs_for(r1: int, w_bases=(0, 0), y=0, p=0) -> list[Instr]:
            return row_split_instrs(layer, config, r1, in_base, w_bases, y, p, xs.signed, node.name)

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
                words.extend(pack_lanes(block[:, k], width) for k in range(layer.k))
            self.acc_core[core] = max(self.acc_core[core], bits)
        y_base = self.act.take(layer.n * layer.m)
        self.act_base[node.outputs[0]] = y_base
        self.layout[node.outputs[0]] = np.arange(layer.n * layer.m)
        self.instrs.extend(instrs_for(r1, tuple(w_bases), y_base, p_base))
        self.need_acc(self.instrs[first:])
        self.new_nodes.append(node)
        self.gemm_info(node, layer, first, layer.n, layer.n, lut_wbits=wbits, lut_rows=win.oh - r1)
        self.prev_posts = (node.outputs[0],)
        return True

    def split(self, layer: GemmLayer, group_order: np.ndarray | None) -> LayerSplit:
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
            lut_wbits, errors = ratio_precision(layer, config, items_lut, self.tau, group_order)
        elif config.lut_lanes:
            errors = item_errors(layer, config, lut_wbits)
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
        return LayerSplit(
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

    def fold_params(
        self,
        layer: GemmLayer,
        split: LayerSplit,
        w: np.ndarray,
        bias: np.ndarray,
        mult: np.ndarray,
        xs: IntType,
    ) -> int:
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

    def weight_images(
        self, layer: GemmLayer, split: LayerSplit, w_steps: np.ndarray
    ) -> tuple[int, int]:
        """Appends each core's weight words, (group, tile, k) order, lane j = channel
        tile*lanes + j (bit-serial: bit-planes, sign plane first); returns their bases."""
        config = self.config
        shapes = split_shape(layer, split.items_lut)
        w_bases = []
        for core in ("dsp", "lut"):
            n, g = shapes[core]
            words = self.wd if core == "dsp" else self.wl
            w_bases.append(len(words))
            lanes = config.lanes[core]
            if n * g == 0 or lanes == 0:
                continue  # gemm_instrs reports channels on an absent core
            tiles = timing.ceil_div(n, lanes)
            wbits = self.dsp_wbits if core == "dsp" else config.lut_wbits
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
                            words.extend(pack_lanes(plane[:, k], 1) for k in range(layer.k))
                    else:
                        words.extend(pack_lanes(block[:, k], wbits) for k in range(layer.k))
        return tuple(w_bases)

    def gemm_emitter(self, layer: GemmLayer) -> Callable:
        """``gemm_instrs``, in blocks of output rows when ``acc_cap`` is set (``rowblocks``:
        each block's accumulators within the cap)."""
        cap = self.acc_cap
        if cap is None:
            return gemm_instrs

        def emit(lay, shapes, config, **kwargs):
            instrs = gemm_instrs(lay, shapes, config, **kwargs)
            return row_blocks(instrs, lay.window, cap, lay.node.describe())

        return emit

    def need_acc(self, instrs: list[Instr]) -> None:
        """Widens each core's accumulator memory to what the GEMMs in ``instrs`` use."""
        for core, words in acc_words(instrs).items():
            self.acc_need[core] = max(self.acc_need[core], words)

    def stream_layer(self, node: Node, layer: GemmLayer, split: LayerSplit, first: int) -> int:
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
            return stream_first_layer(self.instrs)
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
            first = stream_after_posts(self.instrs, first)
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
        mark_early_posts(self.instrs)
        check_fields(self.instrs, self.infos, graph)

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
            "mult_bits": max([MULT_BITS] + [int(mu).bit_length() for _b, mu in self.params]),
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
            check_fits(config, needs, graph)
        if config.spram and not config.spram_wbits and config.acc_bits > 32:
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


def _unit_nonlinear(lowering: Lowering, node: Node, first: int) -> LayerInfo:
    if node.attrs["function"] == "softmax":
        return emit_softmax(lowering, node, first)
    return emit_table(lowering, node, first)


def _unit_view(lowering: Lowering, node: Node, first: int) -> None:
    emit_view(lowering, node)


# ops on units beside the post unit: op -> function(lowering, node, first) -> LayerInfo
UNIT_OPS: dict[str, Callable] = {
    "nonlinear": _unit_nonlinear,
    "matmul": emit_matmul,
    "transpose": _unit_view,
    "layernorm": emit_layernorm,
    "add_const": emit_const_add,
    "slice": _unit_view,
}


def compile_nonlinear(
    graph: Graph,
    config: GemmConfig,
    *,
    nonlinear: str = "table",
    compile: Callable[..., Program] | None = None,
    **kw: object,
) -> Program:
    """``compile(graph, config, **kw)`` (default ``compile_graph``) with the element-wise
    functions as tables (``nonlinear="table"``) or SMURF units (``"smurf"``: the graph is
    ``smurf_graph``'s, the golden the design is checked against; the program carries the
    units). Returns the program."""
    compile = compile or compile_graph
    if nonlinear == "table":
        return compile(graph, config, **kw)
    if nonlinear != "smurf":
        raise ModelError(f"--nonlinear {nonlinear}: choose table or smurf")
    smurf, units = smurf_graph(graph)
    if not units:
        return compile(graph, config, **kw)
    cycles = {smurf_element_cycles(u.latency) for u in units}
    assert len(cycles) == 1, cycles  # one design option set: one latency
    program = compile(smurf, replace(config, smurf_cycles=cycles.pop()), **kw)
    return replace(program, smurf=units)
