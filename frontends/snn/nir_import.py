"""NIR graphs (``nir`` package) to a discrete-time integer IF/LIF/CubaLIF network (with an
optional LI readout) and its golden run.

A NIR graph is read as a chain from ``Input`` to ``Output``. Linear nodes between two neuron
nodes (``Conv2d``, ``Affine``, ``Linear``, ``SumPool2d``, ``Flatten``, ``Scale``) are folded
into one integer synapse matrix per neuron layer: each weighted node's float weights are
quantized to int8 with its own scale (``s = max|W| / 127``), pools add exactly (an unpadded
``AvgPool2d`` is the same sum at a scale ``1 / k**2``, folded like a weight scale), and the
layer's threshold, reset value and bias are divided by the product of scales (IF/LIF spikes
are invariant to a common positive scale of W, b, theta and v_reset; spec ``snn.md`` A.4), so
only the weight rounding differs from the float network. Where the nodes of a layer are one
convolution, after at most one non-overlapping ``SumPool2d`` (an ``Affine``/``Linear`` on a
flattened map counts, as a kernel the size of the map), the layer also keeps that structure
(``IfLayer.conv``, a ``ConvSynapse``) so hardware can share the kernel; the matrix stays the
golden's.

The discrete-time semantics NIR leaves open are importer options (``NirOptions``):

- ``dt`` (s, default 1e-4, what exporters assume): forward Euler, LIF and LI
  ``beta = 1 - dt / tau``, CubaLIF ``alpha = 1 - dt / tau_syn``, ``beta = 1 - dt / tau_mem``,
  input gains ``r * dt / tau`` (``w_in * dt / tau_syn`` into a CubaLIF current);
- ``cmp``: ``">"`` (NIR, snnTorch) or ``">="`` (SpikeZIP, Sinabs's IAF);
- ``reset``: ``"subtract"`` or ``"value"`` (to ``v_reset``) -- NIR does not encode it;
- ``if_gain``: ``"r"`` (input scaled by the node's ``r``) or ``"one"`` (ignore ``r``; Sinabs
  exports IF with ``r = 1`` either way);
- ``leak``: ``"shift"`` (``beta``, and a CubaLIF's ``alpha``, rounded to ``1 - 2**-k``, the
  nearest ``k`` in log scale) or ``"beta"`` (``beta_bits`` fixed point, round half up).

Fixed choices (``frontends.snn.neurons.cuba_lif_step``): a CubaLIF membrane integrates the
current of the same step (snnTorch ``Synaptic``), the reset acts on the membrane only, in the
step that fires; ``v_leak`` must be 0. Every gain folds into the integer unit of the state
(``_neuron_layer``), so the integer neurons multiply by nothing but their decays.

Every time step, layer by layer, each layer integrates the spikes its predecessor emitted in
the same step (the input's spikes for the first), then fires. The output is the last layer's
spike count per neuron over the run -- or, when the last neuron node is an ``LI`` (a leaky
integrator, which never fires), its membrane potentials after the last step, as integers of
``IfLayer.out_unit`` (the float potential is ``V * out_unit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frontends.errors import ModelError

from .neurons import cuba_lif_step, if_step, leak, lif_step

if TYPE_CHECKING:
    import nir

__all__ = [
    "NirOptions",
    "ConvSynapse",
    "IfLayer",
    "IfNetwork",
    "import_nir",
    "run_if_network",
    "run_float_network",
]

WEIGHT_BITS = 8
NEURONS = ("IF", "LIF", "CubaLIF", "LI")


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
        conv, _, shape = _conv_matrix(
            self.kernel.astype(np.float64),
            None,
            self.pooled_shape,
            self.stride,
            self.padding,
            (1, 1),
            1,
        )
        assert shape == self.out_shape
        if self.pool == (1, 1):
            return np.rint(conv).astype(np.int64)
        pool, _ = _sumpool_matrix(self.src_shape, self.pool, self.pool, (0, 0))
        return np.rint(conv @ pool).astype(np.int64)


@dataclass(frozen=True, eq=False)
class IfLayer:
    """One layer of neurons behind integer synapses (``kind``):

    - ``"if"`` (``leak_shift`` and ``beta`` None): ``V += weight @ x + bias``;
    - ``"lif"``: ``V = leak(V) + weight @ x + bias`` (``leak_shift`` or ``beta``);
    - ``"cubalif"`` (``syn_shift`` or ``alpha`` too): ``I = leak_alpha(I) + weight @ x +
      bias``, ``V = leak_beta(V) + I``;
    - ``"li"`` (``spiking`` False; the last layer only): a LIF membrane that never fires; the
      network's output is its membrane after the last step (``V_float = V * out_unit``).

    The spiking kinds fire on ``V cmp theta`` and reset (``frontends.snn.neurons``)."""

    name: str
    source: str  # the NIR node names folded into it, "conv0+pool4+..."
    weight: np.ndarray  # (n_out, n_in) int64
    bias: np.ndarray  # (n_out,) int64, added every step
    theta: np.ndarray  # (n_out,) int64
    v_reset: np.ndarray  # (n_out,) int64
    float_weight: np.ndarray  # the float map it quantizes, for the float reference
    float_bias: np.ndarray
    float_theta: np.ndarray
    float_v_reset: np.ndarray
    leak_shift: int | None = None
    beta: int | None = None
    out_shape: tuple = ()
    conv: ConvSynapse | None = None  # the synapses as a convolution, when they are one
    syn_shift: int | None = None  # CubaLIF current leak, as leak_shift / beta
    alpha: int | None = None
    spiking: bool = True  # False: LI, the membrane is the output
    out_unit: np.ndarray | None = None  # (n_out,) float value of one integer membrane step
    float_alpha: float | None = None  # the float decays (1 - dt/tau); None: no leak
    float_beta: float | None = None
    float_mem_gain: np.ndarray | None = None  # CubaLIF: V += float_mem_gain * I

    @property
    def kind(self) -> str:
        if not self.spiking:
            return "li"
        if self.syn_shift is not None or self.alpha is not None:
            return "cubalif"
        return "if" if self.leak_shift is None and self.beta is None else "lif"

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
        return sum(l.conv.kernel.size if l.conv is not None else l.weight.size for l in self.layers)

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
    b = (
        np.repeat(np.asarray(bias, np.float64).reshape(-1), ho * wo)
        if bias is not None
        else np.zeros(cout * ho * wo)
    )
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
    return ConvSynapse(
        src_shape=tuple(struct["src"]),
        pool=struct["pool"],
        kernel=kernel,
        stride=stride,
        padding=padding,
        out_shape=tuple(out_shape),
    )


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
            raise ModelError(
                f"NIR node '{node}' ({type(graph.nodes[node]).__name__}) feeds "
                f"{len(nxt)} nodes ({', '.join(nxt)}); the snn engine imports "
                f"chains only (no branches or recurrence)"
            )
        if nxt[0] in seen:
            raise ModelError(
                f"NIR node '{nxt[0]}': the graph is recurrent; the snn engine "
                f"imports feed-forward chains only"
            )
        node = nxt[0]
    if type(graph.nodes[order[-1]]).__name__ != "Output":
        raise ModelError(
            f"NIR graph: the chain from the Input ends at '{order[-1]}', not at an Output node"
        )
    return order


def _per_neuron(node, attr, n, where, default=None) -> np.ndarray:
    value = getattr(node, attr, None)
    if value is None:
        value = default
    value = np.asarray(value, np.float64).reshape(-1)
    if value.size not in (1, n):
        raise ModelError(f"{where}: {attr} has {value.size} values for {n} neurons")
    return np.broadcast_to(value, (n,)).astype(np.float64)


def _leak_of(decay: np.ndarray, options: NirOptions, where: str, tau: str):
    """``(shift, beta)`` of a per-layer decay factor ``1 - dt/tau`` under ``options.leak``."""
    if np.ptp(decay) > 0:
        raise ModelError(
            f"{where}: {tau} differs between neurons; the engine takes one leak per layer"
        )
    b = float(decay[0])
    if not 0.0 <= b < 1.0:
        raise ModelError(
            f"{where}: {tau} gives the decay 1 - dt/{tau} = {b:.4g} at dt "
            f"{options.dt:g}; it must lie in [0, 1) (dt <= {tau})"
        )
    if options.leak == "shift":
        return max(0, round(-math.log2(max(1.0 - b, 1e-12)))), None
    return None, int(round(b * (1 << options.beta_bits)))


def _neuron_layer(
    node, kind, key, where, n, options, parts, f_mat, f_bias, i_mat, scale, shape, conv
) -> IfLayer:
    """The integer layer of neuron node ``node`` behind the pending map (see ``import_nir``).

    Gains fold into the integer unit of the state: with ``g_syn = w_in * dt / tau_syn`` and
    ``g_mem = r * dt / tau_mem`` (``r * dt / tau`` for LIF and LI, ``r`` for IF), a CubaLIF
    current is ``I_float = g_syn * scale * I_int`` and its membrane ``V_float = g_mem *
    g_syn * scale * V_int``, so the integer update is ``I = leak(I) + W x + b``, ``V =
    leak(V) + I`` with no gain left; thresholds and reset values are divided by the same unit.
    """
    r = _per_neuron(node, "r", n, where) if options.if_gain == "r" else np.ones(n)
    leak_shift = beta = syn_shift = alpha = None
    f_alpha = f_beta = mem_gain = None
    if kind == "IF":
        gain, syn_gain = r, np.ones(n)
    elif kind in ("LIF", "LI"):
        tau = _per_neuron(node, "tau", n, where)
        gain, syn_gain = r * options.dt / tau, np.ones(n)
        leak_shift, beta = _leak_of(1.0 - options.dt / tau, options, where, "tau")
        f_beta = 1.0 - options.dt / float(tau[0])
    else:  # CubaLIF
        tau_syn = _per_neuron(node, "tau_syn", n, where)
        tau_mem = _per_neuron(node, "tau_mem", n, where)
        syn_gain = _per_neuron(node, "w_in", n, where, 1.0) * options.dt / tau_syn
        mem_gain = r * options.dt / tau_mem
        gain = syn_gain * mem_gain
        syn_shift, alpha = _leak_of(1.0 - options.dt / tau_syn, options, where, "tau_syn")
        leak_shift, beta = _leak_of(1.0 - options.dt / tau_mem, options, where, "tau_mem")
        f_alpha = 1.0 - options.dt / float(tau_syn[0])
        f_beta = 1.0 - options.dt / float(tau_mem[0])
    if (gain <= 0).any():
        what = {
            "IF": "r",
            "LIF": "r·dt/τ",
            "LI": "r·dt/τ",
            "CubaLIF": "w_in·dt/τ_syn and r·dt/τ_mem",
        }[kind]
        raise ModelError(f"{where}: gain {what} must be positive")
    if kind != "IF" and np.any(_per_neuron(node, "v_leak", n, where, 0.0) != 0):
        raise ModelError(f"{where}: v_leak must be 0 (the leak decays towards 0)")
    spiking = kind != "LI"
    theta_f = _per_neuron(node, "v_threshold", n, where) if spiking else np.zeros(n)
    reset_f = _per_neuron(node, "v_reset", n, where, 0.0) if spiking else np.zeros(n)
    # V_float = gain * (f_mat x + f_bias); V_int = V_float / (gain * scale)
    unit = gain * scale
    layer = IfLayer(
        name=key,
        source="+".join(parts),
        weight=i_mat.astype(np.int64),
        bias=np.round(f_bias / scale).astype(np.int64),
        theta=np.round(theta_f / unit).astype(np.int64),
        v_reset=np.round(reset_f / unit).astype(np.int64),
        float_weight=f_mat * (syn_gain if kind == "CubaLIF" else gain)[:, None],
        float_bias=f_bias * (syn_gain if kind == "CubaLIF" else gain),
        float_theta=np.array(theta_f, np.float64),
        float_v_reset=np.array(reset_f, np.float64),
        leak_shift=leak_shift,
        beta=beta,
        out_shape=shape,
        conv=conv,
        syn_shift=syn_shift,
        alpha=alpha,
        spiking=spiking,
        out_unit=unit,
        float_alpha=f_alpha,
        float_beta=f_beta,
        float_mem_gain=mem_gain,
    )
    if spiking and (layer.theta <= 0).any():
        raise ModelError(
            f"{where}: threshold rounds to {layer.theta.min()} at weight scale "
            f"{scale:.3g}; it must be positive"
        )
    return layer


def import_nir(
    source: str | Path | nir.NIRGraph, options: NirOptions | None = None, *, name: str | None = None
) -> IfNetwork:
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
    readout = None  # the LI layer, once there is one
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
                mat, b, shape2 = _conv_matrix(
                    w,
                    node.bias,
                    shape,
                    _v(node.stride),
                    _v(node.padding),
                    _v(node.dilation),
                    int(node.groups),
                )
            else:
                w = np.asarray(node.weight, np.float64)
                mat = w
                b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), np.float64)
                shape2 = (w.shape[0],)
            if mat.shape[1] != f_bias.shape[0]:
                raise ModelError(f"{where}: takes {mat.shape[1]} inputs but gets {f_bias.shape[0]}")
            peak = float(np.abs(w).max()) or 1.0
            s = peak / ((1 << (WEIGHT_BITS - 1)) - 1)
            q = np.round(mat / s)
            if struct is not None and "conv" not in struct and len(struct["src"]) == 3:
                c, hs, ws = struct["src"]
                hp, wp = hs // struct["pool"][0], ws // struct["pool"][1]
                if kind == "Conv2d" and int(node.groups) == 1 and set(_v(node.dilation)) == {1}:
                    struct["conv"] = (
                        np.round(w / s).astype(np.int64),
                        _pair(node.stride),
                        _pair(node.padding),
                        shape2,
                    )
                elif kind != "Conv2d" and w.shape[1] == c * hp * wp:
                    # an Affine on a flattened map is a convolution whose kernel covers it
                    struct["conv"] = (
                        np.round(w / s).astype(np.int64).reshape(-1, c, hp, wp),
                        (1, 1),
                        (0, 0),
                        (w.shape[0], 1, 1),
                    )
                else:
                    struct = None
            else:
                struct = None
            f_mat, f_bias = then(mat, f_mat), mat @ f_bias + b
            i_mat = then(q, i_mat)
            scale *= s
            shape = shape2
            parts.append(key)
        elif kind in ("SumPool2d", "AvgPool2d"):
            kernel = _pair(node.kernel_size)
            if kind == "AvgPool2d" and set(_v(node.padding)) != {0}:
                raise ModelError(
                    f"{where}: padding {_v(node.padding)}; NIR does not say "
                    f"whether padded zeros count in the average, so only "
                    f"unpadded AvgPool2d is lowered"
                )
            if (
                struct is None
                or "conv" in struct
                or struct["pool"] != (1, 1)
                or _pair(node.stride) != kernel
                or set(_v(node.padding)) != {0}
            ):
                struct = None
            else:
                struct["pool"] = kernel
            mat, shape2 = _sumpool_matrix(
                shape, _v(node.kernel_size), _v(node.stride), _v(node.padding)
            )
            mat = mat.astype(np.float64)
            # an average is the integer sum at a scale 1/k^2 (thresholds grow by k^2)
            area = kernel[0] * kernel[1] if kind == "AvgPool2d" else 1
            f_mat, f_bias = then(mat / area, f_mat), mat @ f_bias / area
            i_mat = then(mat, i_mat)
            scale /= area
            shape = shape2
            parts.append(key)
        elif kind == "Flatten":
            shape = (int(np.prod(shape)),)
        elif kind == "Scale":
            raise ModelError(
                f"{where}: Scale is not supported yet; fold it into the weights before export"
            )
        elif kind in NEURONS:
            if readout is not None:
                raise ModelError(
                    f"{where}: follows the LI readout '{readout}'; an LI layer "
                    f"(non-spiking) must be the last neuron layer"
                )
            n = f_bias.shape[0]
            if f_mat is None:
                raise ModelError(
                    f"{where}: follows another neuron layer directly; put a "
                    f"Linear/Affine/Conv2d between them"
                )
            layer = _neuron_layer(
                node,
                kind,
                key,
                where,
                n,
                options,
                parts,
                f_mat,
                f_bias,
                i_mat,
                scale,
                shape,
                _conv_synapse(struct),
            )
            layers.append(layer)
            if kind == "LI":
                readout = key
            f_mat = i_mat = None
            f_bias = np.zeros(n)
            scale = 1.0
            parts = []
            struct = {"src": shape, "pool": (1, 1)}
        else:
            raise ModelError(
                f"{where}: not supported by the snn engine (it imports Conv2d, "
                f"Affine, Linear, SumPool2d, AvgPool2d, Flatten, IF, LIF, CubaLIF "
                f"and LI; Delay and the other node types are not lowered)"
            )
    if parts:
        raise ModelError(
            f"NIR graph: nodes {', '.join(parts)} after the last neuron layer; "
            f"the engine's output is the last layer's spikes"
        )
    if not layers:
        raise ModelError("NIR graph: no IF/LIF/CubaLIF/LI layer")
    return IfNetwork(name=name, layers=tuple(layers), in_shape=in_shape, options=options)


def _float_step(layer, v, i, x, options):
    """The NIR node's forward-Euler step in float (decays unrounded, gains not folded)."""
    if layer.kind == "cubalif":
        i = layer.float_alpha * i + x
        h = layer.float_beta * v + layer.float_mem_gain * i
    else:
        h = (v if layer.float_beta is None else layer.float_beta * v) + x
    if not layer.spiking:
        return h, i, np.zeros_like(h)
    theta = layer.float_theta
    spike = ((h > theta) if options.cmp == ">" else (h >= theta)).astype(np.float64)
    if options.reset == "subtract":
        return h - theta * spike, i, spike
    return np.where(spike > 0, layer.float_v_reset, h), i, spike


def _step(layer, v, i, x, options):
    """One integer step of ``layer``: ``(v, i, spike)`` (``i``: the CubaLIF current)."""
    bits = options.beta_bits
    kind = layer.kind
    if kind == "cubalif":
        return cuba_lif_step(
            v,
            i,
            x,
            theta=layer.theta,
            cmp=options.cmp,
            reset=options.reset,
            v_reset=layer.v_reset,
            leak_shift=layer.leak_shift,
            beta=layer.beta,
            syn_shift=layer.syn_shift,
            alpha=layer.alpha,
            beta_bits=bits,
        )
    if kind == "li":
        v = (
            leak(
                v,
                shift=layer.leak_shift,
                beta=layer.beta,
                beta_bits=bits if layer.beta is not None else 0,
            )
            + x
        )
        return v, i, np.zeros_like(v)
    if kind == "if":
        v, s = if_step(
            v, x, theta=layer.theta, cmp=options.cmp, reset=options.reset, v_reset=layer.v_reset
        )
        return v, i, s
    v, s = lif_step(
        v,
        x,
        theta=layer.theta,
        cmp=options.cmp,
        reset=options.reset,
        v_reset=layer.v_reset,
        leak_shift=layer.leak_shift,
        beta=layer.beta,
        beta_bits=bits if layer.beta is not None else 0,
    )
    return v, i, s


def run_if_network(
    net: IfNetwork, spikes: np.ndarray, *, use_float: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``spikes`` (B, T, n_in) through ``net``; returns ``(out (B, n_out_last), per-layer
    spike totals (B, L))``. ``out`` is the last layer's spike counts, or -- when it is an LI
    readout -- its membranes after the last step (integer units; ``out * out_unit`` is the
    float potential; in float with ``use_float``)."""
    spikes = np.asarray(spikes).reshape(spikes.shape[0], spikes.shape[1], -1)
    batch, steps = spikes.shape[:2]
    dtype = np.float64 if use_float else np.int64
    v = [np.zeros((batch, l.n_out), dtype) for l in net.layers]
    cur = [np.zeros((batch, l.n_out), dtype) for l in net.layers]
    counts = np.zeros((batch, net.layers[-1].n_out), np.int64)
    totals = np.zeros((batch, len(net.layers)), np.int64)
    for t in range(steps):
        x = spikes[:, t].astype(dtype)
        for n, layer in enumerate(net.layers):
            w = layer.float_weight if use_float else layer.weight
            b = layer.float_bias if use_float else layer.bias
            if use_float:
                v[n], cur[n], s = _float_step(layer, v[n], cur[n], x @ w.T + b, net.options)
            else:
                v[n], cur[n], s = _step(layer, v[n], cur[n], x @ w.T + b, net.options)
            totals[:, n] += s.sum(axis=1).astype(np.int64)
            x = s
        counts += x.astype(np.int64)
    if not net.layers[-1].spiking:
        return v[-1], totals
    return counts, totals


def run_float_network(net: IfNetwork, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float network the integer one quantizes, same schedule: float weights, the NIR
    nodes' own gains and decays ``1 - dt/tau`` (unrounded), same comparator and reset."""
    return run_if_network(net, spikes, use_float=True)
