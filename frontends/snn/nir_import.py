"""NIR graphs (``nir`` package) to a discrete-time integer IF/LIF network and its golden run.

A NIR graph is read as a chain from ``Input`` to ``Output``. Linear nodes between two neuron
nodes (``Conv2d``, ``Affine``, ``Linear``, ``SumPool2d``, ``Flatten``, ``Scale``) are folded
into one integer synapse matrix per neuron layer: each weighted node's float weights are
quantized to int8 with its own scale (``s = max|W| / 127``), pools add exactly, and the
layer's threshold, reset value and bias are divided by the product of scales (IF/LIF spikes
are invariant to a common positive scale of W, b, theta and v_reset; spec ``snn.md`` A.4), so
only the weight rounding differs from the float network. Where the nodes of a layer are one
convolution, after at most one non-overlapping ``SumPool2d`` (an ``Affine``/``Linear`` on a
flattened map counts, as a kernel the size of the map), the layer also keeps that structure
(``IfLayer.conv``, a ``ConvSynapse``) so hardware can share the kernel; the matrix stays the
golden's.

The discrete-time semantics NIR leaves open are importer options (``NirOptions``):

- ``dt`` (s, default 1e-4, what exporters assume): LIF ``beta = 1 - dt / tau``;
- ``cmp``: ``">"`` (NIR, snnTorch) or ``">="`` (SpikeZIP, Sinabs's IAF);
- ``reset``: ``"subtract"`` or ``"value"`` (to ``v_reset``) -- NIR does not encode it;
- ``if_gain``: ``"r"`` (input scaled by the node's ``r``) or ``"one"`` (ignore ``r``; Sinabs
  exports IF with ``r = 1`` either way);
- ``leak``: ``"shift"`` (``beta`` rounded to ``1 - 2**-k``) or ``"beta"`` (``beta_bits``
  fixed point).

Every time step, layer by layer, each layer integrates the spikes its predecessor emitted in
the same step (the input's spikes for the first), then fires. The output is the last layer's
spike count per neuron over the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frontends.errors import ModelError

from .neurons import if_step, lif_step

__all__ = ["NirOptions", "ConvSynapse", "IfLayer", "IfNetwork", "import_nir",
           "run_if_network", "run_float_network"]

WEIGHT_BITS = 8


@dataclass(frozen=True)
class NirOptions:
    dt: float = 1e-4
    cmp: str = ">"
    reset: str = "subtract"
    if_gain: str = "r"
    leak: str = "shift"
    beta_bits: int = 8

    def __post_init__(self):
        if self.cmp not in (">", ">="):
            raise ModelError(f"NIR import: cmp '{self.cmp}' is not '>' (NIR) or '>='")
        if self.reset not in ("subtract", "value"):
            raise ModelError(f"NIR import: reset '{self.reset}' is not 'subtract' or 'value'")
        if self.if_gain not in ("r", "one"):
            raise ModelError(f"NIR import: if_gain '{self.if_gain}' is not 'r' or 'one'")
        if self.leak not in ("shift", "beta"):
            raise ModelError(f"NIR import: leak '{self.leak}' is not 'shift' or 'beta'")


@dataclass(frozen=True, eq=False)
class ConvSynapse:
    """A layer's synapses kept as a shared-kernel convolution: the source spike map
    (``src_shape``, (C, H, W)) is summed in non-overlapping ``pool`` windows (``(1, 1)``: no
    pool; rows and columns past the last whole window are dropped, as ``SumPool2d`` does),
    then convolved with the integer ``kernel`` (Cout, C, KH, KW) at ``stride`` and
    ``padding`` (dilation 1, one group) into ``out_shape`` (Cout, Ho, Wo). ``dense()`` is the
    same map as a matrix: what ``IfLayer.weight`` holds."""

    src_shape: tuple
    pool: tuple
    kernel: np.ndarray
    stride: tuple
    padding: tuple
    out_shape: tuple

    @property
    def pooled_shape(self) -> tuple:
        c, h, w = self.src_shape
        return c, h // self.pool[0], w // self.pool[1]

    def dense(self) -> np.ndarray:
        c, h, w = self.src_shape
        ph, pw = self.pool
        conv, _, shape = _conv_matrix(self.kernel.astype(np.float64), None, self.pooled_shape,
                                      self.stride, self.padding, (1, 1), 1)
        assert shape == self.out_shape
        if self.pool == (1, 1):
            return np.rint(conv).astype(np.int64)
        pool, _ = _sumpool_matrix(self.src_shape, self.pool, self.pool, (0, 0))
        return np.rint(conv @ pool).astype(np.int64)


@dataclass(frozen=True, eq=False)
class IfLayer:
    """One layer of IF (``leak_shift`` and ``beta`` None) or LIF neurons behind integer
    synapses: ``V += weight @ x``, plus ``bias`` every step."""

    name: str
    source: str                  # the NIR node names folded into it, "conv0+pool4+..."
    weight: np.ndarray           # (n_out, n_in) int64
    bias: np.ndarray             # (n_out,) int64, added every step
    theta: np.ndarray            # (n_out,) int64
    v_reset: np.ndarray          # (n_out,) int64
    float_weight: np.ndarray     # the float map it quantizes, for the float reference
    float_bias: np.ndarray
    float_theta: np.ndarray
    float_v_reset: np.ndarray
    leak_shift: int | None = None
    beta: int | None = None
    out_shape: tuple = ()
    conv: ConvSynapse | None = None   # the synapses as a convolution, when they are one

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class IfNetwork:
    name: str
    layers: tuple[IfLayer, ...]
    in_shape: tuple
    options: NirOptions = field(default_factory=NirOptions)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def neurons(self) -> int:
        return sum(l.n_out for l in self.layers)

    def weight_words(self) -> int:
        """Synapse weights as dense matrices (every convolution expanded)."""
        return sum(l.weight.size for l in self.layers)

    def shared_weight_words(self) -> int:
        """Synapse weights with convolutions kept as shared kernels."""
        return sum(l.conv.kernel.size if l.conv is not None else l.weight.size
                   for l in self.layers)

    def nonzero_weights(self) -> int:
        return sum(int(np.count_nonzero(l.weight)) for l in self.layers)


def _v(x) -> tuple:
    return tuple(int(v) for v in np.atleast_1d(np.asarray(x)).reshape(-1))


def _conv_matrix(weight, bias, in_shape, stride, padding, dilation, groups):
    """Float conv as a dense (Cout*Ho*Wo, C*H*W) matrix and its output shape."""
    cout, cin_g, kh, kw = weight.shape
    c, h, w = in_shape
    sh, sw = (stride * 2)[:2] if len(stride) == 1 else stride
    ph, pw = (padding * 2)[:2] if len(padding) == 1 else padding
    dh, dw = (dilation * 2)[:2] if len(dilation) == 1 else dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    mat = np.zeros((cout, ho, wo, c, h, w), np.float64)
    per = cout // groups
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    for co in range(cout):
        g = co // per
        for ci in range(cin_g):
            cc = g * cin_g + ci
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
                    ok = (0 <= iy) & (iy < h) & (0 <= ix) & (ix < w)
                    mat[co, oy[ok], ox[ok], cc, iy[ok], ix[ok]] += weight[co, ci, ky, kx]
    b = np.repeat(np.asarray(bias, np.float64).reshape(-1), ho * wo) if bias is not None \
        else np.zeros(cout * ho * wo)
    return mat.reshape(cout * ho * wo, c * h * w), b, (cout, ho, wo)


def _sumpool_matrix(in_shape, kernel, stride, padding):
    c, h, w = in_shape
    kh, kw = (kernel * 2)[:2] if len(kernel) == 1 else kernel
    sh, sw = (stride * 2)[:2] if len(stride) == 1 else stride
    ph, pw = (padding * 2)[:2] if len(padding) == 1 else padding
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    mat = np.zeros((c, ho, wo, c, h, w), np.int64)
    for ch in range(c):
        for oy in range(ho):
            for ox in range(wo):
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
                        if 0 <= iy < h and 0 <= ix < w:
                            mat[ch, oy, ox, ch, iy, ix] = 1
    return mat.reshape(c * ho * wo, c * h * w), (c, ho, wo)


def _pair(x) -> tuple:
    v = _v(x)
    return (v[0], v[0]) if len(v) == 1 else v[:2]


def _conv_synapse(struct) -> ConvSynapse | None:
    if struct is None or "conv" not in struct or len(struct["src"]) != 3:
        return None
    kernel, stride, padding, out_shape = struct["conv"]
    return ConvSynapse(src_shape=tuple(struct["src"]), pool=struct["pool"], kernel=kernel,
                       stride=stride, padding=padding, out_shape=tuple(out_shape))


def _chain(graph) -> list[str]:
    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ModelError(f"NIR graph: {len(inputs)} Input nodes; the snn engine takes one")
    order, node = [], inputs[0]
    seen = set()
    while True:
        order.append(node)
        seen.add(node)
        nxt = succ.get(node, [])
        if not nxt:
            break
        if len(nxt) > 1:
            raise ModelError(f"NIR node '{node}' ({type(graph.nodes[node]).__name__}) feeds "
                             f"{len(nxt)} nodes ({', '.join(nxt)}); the snn engine imports "
                             f"chains only (no branches or recurrence)")
        if nxt[0] in seen:
            raise ModelError(f"NIR node '{nxt[0]}': the graph is recurrent; the snn engine "
                             f"imports feed-forward chains only")
        node = nxt[0]
    if type(graph.nodes[order[-1]]).__name__ != "Output":
        raise ModelError(f"NIR graph: the chain from the Input ends at '{order[-1]}', not at "
                         f"an Output node")
    return order


def import_nir(source, options: NirOptions | None = None, *, name: str | None = None) \
        -> IfNetwork:
    """The integer IF/LIF network of a NIR graph (a path, or a ``nir.NIRGraph``)."""
    import nir

    options = options or NirOptions()
    if isinstance(source, (str, Path)):
        name = name or Path(source).stem
        try:
            graph = nir.read(str(source))
        except Exception as exc:
            raise ModelError(f"{source}: not a readable NIR file ({exc})") from None
    else:
        graph = source
    name = name or "nir"
    order = _chain(graph)
    in_shape = _v(graph.nodes[order[0]].output_type["output"])
    shape = in_shape
    layers: list[IfLayer] = []
    # the pending linear map since the last neuron layer, float and integer (None: identity),
    # and its scale; integer products go through float64 (exact below 2**53)
    f_mat = i_mat = None
    f_bias = np.zeros(int(np.prod(shape)))
    scale = 1.0

    def then(mat, pending):
        return mat if pending is None else mat @ pending
    parts: list[str] = []
    # the pending map as a convolution: {"src": shape, "pool": (ph, pw), "conv": ...}, or
    # None once it is not one (dense nodes, overlapping pools, two convolutions)
    struct: dict | None = {"src": shape, "pool": (1, 1)}
    for key in order[1:-1]:
        node = graph.nodes[key]
        kind = type(node).__name__
        where = f"NIR node '{key}' ({kind})"
        if kind in ("Conv2d", "Affine", "Linear"):
            if kind == "Conv2d":
                w = np.asarray(node.weight, np.float64)
                if len(shape) != 3:
                    raise ModelError(f"{where}: input shape {shape} is not (C, H, W)")
                mat, b, shape2 = _conv_matrix(w, node.bias, shape, _v(node.stride),
                                              _v(node.padding), _v(node.dilation),
                                              int(node.groups))
            else:
                w = np.asarray(node.weight, np.float64)
                mat = w
                b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), np.float64)
                shape2 = (w.shape[0],)
            if mat.shape[1] != f_bias.shape[0]:
                raise ModelError(f"{where}: takes {mat.shape[1]} inputs but gets "
                                 f"{f_bias.shape[0]}")
            peak = float(np.abs(w).max()) or 1.0
            s = peak / ((1 << (WEIGHT_BITS - 1)) - 1)
            q = np.round(mat / s)
            if struct is not None and "conv" not in struct and len(struct["src"]) == 3:
                c, hs, ws = struct["src"]
                hp, wp = hs // struct["pool"][0], ws // struct["pool"][1]
                if kind == "Conv2d" and int(node.groups) == 1 \
                        and set(_v(node.dilation)) == {1}:
                    struct["conv"] = (np.round(w / s).astype(np.int64), _pair(node.stride),
                                      _pair(node.padding), shape2)
                elif kind != "Conv2d" and w.shape[1] == c * hp * wp:
                    # an Affine on a flattened map is a convolution whose kernel covers it
                    struct["conv"] = (np.round(w / s).astype(np.int64).reshape(-1, c, hp, wp),
                                      (1, 1), (0, 0), (w.shape[0], 1, 1))
                else:
                    struct = None
            else:
                struct = None
            f_mat, f_bias = then(mat, f_mat), mat @ f_bias + b
            i_mat = then(q, i_mat)
            scale *= s
            shape = shape2
            parts.append(key)
        elif kind == "SumPool2d":
            kernel = _pair(node.kernel_size)
            if struct is None or "conv" in struct or struct["pool"] != (1, 1) \
                    or _pair(node.stride) != kernel or set(_v(node.padding)) != {0}:
                struct = None
            else:
                struct["pool"] = kernel
            mat, shape2 = _sumpool_matrix(shape, _v(node.kernel_size), _v(node.stride),
                                          _v(node.padding))
            mat = mat.astype(np.float64)
            f_mat, f_bias, i_mat = then(mat, f_mat), mat @ f_bias, then(mat, i_mat)
            shape = shape2
            parts.append(key)
        elif kind == "Flatten":
            shape = (int(np.prod(shape)),)
        elif kind == "Scale":
            raise ModelError(f"{where}: Scale is not supported yet; fold it into the weights "
                             f"before export")
        elif kind in ("IF", "LIF"):
            n = f_bias.shape[0]
            if f_mat is None:
                raise ModelError(f"{where}: follows another neuron layer directly; put a "
                                 f"Linear/Affine/Conv2d between them")
            r = np.broadcast_to(np.asarray(node.r, np.float64).reshape(-1) if np.size(node.r)
                                > 1 else np.asarray(node.r, np.float64), (n,)).reshape(-1) \
                if np.size(node.r) in (1, n) else None
            if r is None:
                raise ModelError(f"{where}: r has {np.size(node.r)} values for {n} neurons")
            gain = r if options.if_gain == "r" else np.ones(n)
            if kind == "LIF":
                gain = gain * options.dt / np.asarray(node.tau, np.float64).reshape(-1)
            if (gain <= 0).any():
                raise ModelError(f"{where}: gain r{'·dt/τ' if kind == 'LIF' else ''} must be "
                                 f"positive")
            theta_f = np.broadcast_to(np.asarray(node.v_threshold, np.float64).reshape(-1),
                                      (n,)) if np.size(node.v_threshold) in (1, n) else None
            reset_f = np.broadcast_to(np.asarray(getattr(node, "v_reset", 0.0), np.float64)
                                      .reshape(-1), (n,))
            # V_float = gain * (f_mat x + f_bias); V_int = V_float / (gain * scale)
            unit = gain * scale
            leak_shift = beta = None
            if kind == "LIF":
                b_real = 1.0 - options.dt / np.asarray(node.tau, np.float64).reshape(-1)
                if np.ptp(b_real) > 0:
                    raise ModelError(f"{where}: tau differs between neurons; the engine "
                                     f"takes one leak per layer")
                if np.any(np.asarray(node.v_leak) != 0):
                    raise ModelError(f"{where}: v_leak must be 0")
                if options.leak == "shift":
                    leak_shift = max(0, round(-math.log2(max(1.0 - b_real[0], 1e-12))))
                else:
                    beta = int(round(b_real[0] * (1 << options.beta_bits)))
            layers.append(IfLayer(
                name=key, source="+".join(parts), weight=i_mat.astype(np.int64),
                bias=np.round(f_bias / scale).astype(np.int64),
                theta=np.round(theta_f / unit).astype(np.int64),
                v_reset=np.round(reset_f / unit).astype(np.int64),
                float_weight=f_mat * gain[:, None], float_bias=f_bias * gain,
                float_theta=np.array(theta_f, np.float64),
                float_v_reset=np.array(reset_f, np.float64),
                leak_shift=leak_shift, beta=beta, out_shape=shape,
                conv=_conv_synapse(struct)))
            if (layers[-1].theta <= 0).any():
                raise ModelError(f"{where}: threshold rounds to {layers[-1].theta.min()} at "
                                 f"weight scale {scale:.3g}; it must be positive")
            f_mat = i_mat = None
            f_bias = np.zeros(n)
            scale = 1.0
            parts = []
            struct = {"src": shape, "pool": (1, 1)}
        else:
            raise ModelError(f"{where}: not supported by the snn engine (it imports Conv2d, "
                             f"Affine, Linear, SumPool2d, Flatten, IF and LIF; CubaLIF, LI, "
                             f"Delay and AvgPool2d are not lowered yet)")
    if parts:
        raise ModelError(f"NIR graph: nodes {', '.join(parts)} after the last neuron layer; "
                         f"the engine's output is the last layer's spikes")
    if not layers:
        raise ModelError("NIR graph: no IF/LIF layer")
    return IfNetwork(name=name, layers=tuple(layers), in_shape=in_shape, options=options)


def _step(layer, v, x, options, *, use_float=False):
    theta = layer.float_theta if use_float else layer.theta
    v_reset = layer.float_v_reset if use_float else layer.v_reset
    if use_float:
        h = v + x
        spike = (h > theta) if options.cmp == ">" else (h >= theta)
        spike = spike.astype(np.float64)
        if options.reset == "subtract":
            return h - theta * spike, spike
        return np.where(spike > 0, v_reset, h), spike
    if layer.leak_shift is None and layer.beta is None:
        return if_step(v, x, theta=theta, cmp=options.cmp, reset=options.reset,
                       v_reset=v_reset)
    return lif_step(v, x, theta=theta, cmp=options.cmp, reset=options.reset,
                    v_reset=v_reset, leak_shift=layer.leak_shift, beta=layer.beta,
                    beta_bits=options.beta_bits if layer.beta is not None else 0)


def run_if_network(net: IfNetwork, spikes: np.ndarray, *, use_float: bool = False):
    """Run ``spikes`` (B, T, n_in) through ``net``; returns ``(counts (B, n_out_last),
    per-layer spike totals (B, L))``."""
    spikes = np.asarray(spikes).reshape(spikes.shape[0], spikes.shape[1], -1)
    batch, steps = spikes.shape[:2]
    dtype = np.float64 if use_float else np.int64
    v = [np.zeros((batch, l.n_out), dtype) for l in net.layers]
    counts = np.zeros((batch, net.layers[-1].n_out), np.int64)
    totals = np.zeros((batch, len(net.layers)), np.int64)
    for t in range(steps):
        x = spikes[:, t].astype(dtype)
        for i, layer in enumerate(net.layers):
            w = layer.float_weight if use_float else layer.weight
            b = layer.float_bias if use_float else layer.bias
            v[i], s = _step(layer, v[i], x @ w.T + b, net.options, use_float=use_float)
            totals[:, i] += s.sum(axis=1).astype(np.int64)
            x = s
        counts += x.astype(np.int64)
    return counts, totals


def run_float_network(net: IfNetwork, spikes: np.ndarray):
    """The float network the integer one quantizes (IF only), same schedule."""
    return run_if_network(net, spikes, use_float=True)
