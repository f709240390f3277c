"""Small random quantized IR graphs with every op the spiking graph converter takes: a tiny
CNN (conv, max-pool, avg-pool, concat, requant, add) and a tiny one-block transformer (token
dense, constant add, LayerNorm, heads, Q.K^T and A.V, row softmax, residual add, GELU table,
class-token slice). Built in code with seeded random weights; no ONNX involved."""

from __future__ import annotations

import math

import numpy as np

from frontends._onnx.norm import layernorm_params
from frontends.fixedpoint import quantize_multipliers, softmax_params
from frontends.im2col import Window, conv_im2col, pool_windows
from frontends.ir import Graph, IntType, Node, QuantParams, Tensor


class Builder:
    """Adds tensors and nodes; activations are ``bits``-bit signed with random zero points
    (``unsigned=True``: unsigned, zero point 0, as after a ReLU)."""

    def __init__(self, shape, *, bits=4, seed=0, in_dtype=IntType(8, True)):
        self.rng = np.random.default_rng(seed)
        self.bits = bits
        self.tensors: dict = {}
        self.nodes: list = []
        self.zp: dict = {}
        self.scale: dict = {}
        self.input = self.tensor("in", shape, in_dtype, int(self.rng.integers(-20, 21)), 0.05)

    def tensor(self, name, shape, dtype, zp, scale):
        self.tensors[name] = Tensor(
            name, tuple(shape), dtype, QuantParams(np.array(scale), np.array(zp))
        )
        self.zp[name], self.scale[name] = zp, scale
        return name

    def act(self, name, shape, *, unsigned=False, scale=None):
        dtype = IntType(self.bits, not unsigned)
        zp = 0 if unsigned else int(self.rng.integers(dtype.min // 2, dtype.max // 2 + 1))
        return self.tensor(name, shape, dtype, zp, scale or float(self.rng.uniform(0.05, 0.3)))

    def _requant(self, out, real, extra=None):
        m, shift = quantize_multipliers(np.asarray(real, np.float64))
        t = self.tensors[out]
        attrs = dict(
            output_zero_point=self.zp[out],
            shift=shift,
            lo=t.dtype.min,
            hi=t.dtype.max,
            rounding="half_up",
        )
        attrs.update(extra or {})
        return attrs, m

    def node(self, name, op, inputs, out, attrs, weights, source_op=""):
        self.nodes.append(Node(name, op, tuple(inputs), (out,), attrs, weights, source_op or op))
        return out

    def dense(self, name, x, n, *, tokens=1, unsigned=False, gain=1.0):
        shape = self.tensors[x].shape
        k = int(np.prod(shape)) // tokens
        out = self.act(name, (tokens, n) if tokens > 1 else (n,), unsigned=unsigned)
        w = self.rng.integers(-127, 128, size=(n, k))
        real = gain * self.scale[x] * 0.02 / self.scale[out] * np.ones(n) / math.sqrt(k)
        real *= self.rng.uniform(0.5, 2.0, size=n)
        attrs, m = self._requant(out, real, dict(input_zero_point=self.zp[x], tokens=tokens))
        bias = self.rng.integers(-40 * k, 40 * k + 1, size=n)
        return self.node(
            name, "dense", [x], out, attrs, dict(weight=w, bias=bias, multiplier=m), "Gemm"
        )

    def conv(self, name, x, cout, kernel=3, pad=1, stride=1, unsigned=True):
        c, h, w = self.tensors[x].shape
        win = Window((h, w), (kernel, kernel), (stride, stride), (pad,) * 4)
        im2col = conv_im2col(win, c, 1)
        ho, wo = win.out_hw
        out = self.act(name, (cout, ho, wo), unsigned=unsigned)
        weight = self.rng.integers(-127, 128, size=(cout, c, kernel, kernel))
        real = self.scale[x] * 0.02 / self.scale[out] / kernel * self.rng.uniform(0.5, 2, cout)
        attrs, m = self._requant(
            out,
            real,
            dict(
                input_zero_point=self.zp[x],
                input_shape=(c, h, w),
                output_shape=(cout, ho, wo),
                group=1,
            ),
        )
        bias = self.rng.integers(-2000, 2001, size=cout)
        return self.node(
            name,
            "conv",
            [x],
            out,
            attrs,
            dict(weight=weight, bias=bias, multiplier=m, im2col=im2col),
            "Conv",
        )

    def maxpool(self, name, x, kernel=2):
        c, h, w = self.tensors[x].shape
        win = Window((h, w), (kernel, kernel), (kernel, kernel))
        ho, wo = win.out_hw
        t = self.tensors[x]
        out = self.tensor(name, (c, ho, wo), t.dtype, self.zp[x], self.scale[x])
        attrs = dict(
            input_zero_point=self.zp[x],
            output_zero_point=self.zp[x],
            shift=14,
            lo=t.dtype.min,
            hi=t.dtype.max,
            output_shape=(c, ho, wo),
        )
        return self.node(
            name,
            "maxpool",
            [x],
            out,
            attrs,
            dict(im2col=pool_windows(win, c), multiplier=np.array([1 << 14])),
            "MaxPool",
        )

    def avgpool(self, name, x):
        c, h, w = self.tensors[x].shape
        out = self.act(name, (c,))
        im2col = np.arange(c * h * w).reshape(c, 1, h * w)
        attrs, m = self._requant(
            out,
            np.array([self.scale[x] / self.scale[out] / (h * w)]),
            dict(input_zero_point=self.zp[x], output_shape=(c,)),
        )
        return self.node(
            name, "avgpool", [x], out, attrs, dict(im2col=im2col, multiplier=m), "GlobalAveragePool"
        )

    def add(self, name, a, b=None, shape=None):
        shape = shape or self.tensors[a].shape
        out = self.act(name, shape)
        if b is None:
            t = self.tensors[a]
            const = self.rng.integers(t.dtype.min, t.dtype.max + 1, size=shape)
            sb, zb = self.scale[a] * 1.5, 1
        else:
            sb, zb = self.scale[b], self.zp[b]
        ma, shift = quantize_multipliers(np.array([self.scale[a], sb]) / self.scale[out])
        t = self.tensors[out]
        attrs = dict(
            input_zero_points=(self.zp[a], zb),
            input_shape=tuple(shape),
            output_zero_point=self.zp[out],
            shift=shift,
            lo=t.dtype.min,
            hi=t.dtype.max,
        )
        weights = dict(multiplier=ma)
        if b is None:
            weights["constant"] = const
        return self.node(name, "add", [a] if b is None else [a, b], out, attrs, weights, "Add")

    def requant(self, name, x):
        out = self.act(name, self.tensors[x].shape)
        attrs, m = self._requant(
            out, np.array([self.scale[x] / self.scale[out]]), dict(input_zero_point=self.zp[x])
        )
        return self.node(name, "requant", [x], out, attrs, dict(multiplier=m), "Clip")

    def concat(self, name, xs, axis=0):
        shapes = [self.tensors[x].shape for x in xs]
        shape = list(shapes[0])
        shape[axis] = sum(s[axis] for s in shapes)
        out = self.act(name, shape)
        attrs, m = self._requant(
            out,
            np.array([self.scale[x] for x in xs]) / self.scale[out],
            dict(
                input_zero_points=tuple(self.zp[x] for x in xs),
                input_shapes=tuple(shapes),
                axis=axis,
            ),
        )
        return self.node(name, "concat", xs, out, attrs, dict(multiplier=m), "Concat")

    def move(self, name, op, x, view, **attrs):
        if op == "transpose":
            shape = tuple(view[p] for p in attrs["perm"])
        else:
            shape = list(view)
            for s, e, ax, st in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
                shape[ax] = len(range(*slice(s, e, st).indices(view[ax])))
        t = self.tensors[x]
        out = self.tensor(name, tuple(shape), t.dtype, self.zp[x], self.scale[x])
        return self.node(
            name, op, [x], out, dict(attrs, input_shape=tuple(view)), {}, op.capitalize()
        )

    def matmul(self, name, a, b, a_shape, b_shape, *, unsigned=False):
        shape = tuple(a_shape[:-1]) + (b_shape[-1],)
        out = self.act(name, shape, unsigned=unsigned)
        k = a_shape[-1]
        real = np.array([self.scale[a] * self.scale[b] / self.scale[out] / math.sqrt(k)])
        attrs, m = self._requant(
            out,
            real,
            dict(
                input_zero_points=(self.zp[a], self.zp[b]),
                a_shape=tuple(a_shape),
                b_shape=tuple(b_shape),
            ),
        )
        return self.node(name, "matmul", [a, b], out, attrs, dict(multiplier=m), "MatMul")

    def layernorm(self, name, x):
        shape = self.tensors[x].shape
        c = shape[-1]
        out = self.act(name, shape, scale=4.0 / (1 << (self.bits - 1)))
        gamma = self.rng.normal(1.0, 0.4, c)
        gamma[0] = -0.8
        beta = self.rng.normal(0, 0.3, c)
        attrs, weights = layernorm_params(
            gamma, beta, 1e-5, self.scale[x], self.tensors[x].dtype, self.scale[out], name
        )
        t = self.tensors[out]
        attrs.update(
            input_shape=tuple(shape), output_zero_point=self.zp[out], lo=t.dtype.min, hi=t.dtype.max
        )
        return self.node(name, "layernorm", [x], out, attrs, weights, "LayerNormalization")

    def softmax(self, name, x):
        t = self.tensors[x]
        shape = t.shape
        out = self.tensor(name, shape, IntType(self.bits, False), 0, 1.0 / ((1 << self.bits) - 1))
        # the frontends' own definition (the GEMM row unit sizes its reciprocal from it)
        exp_table, recip = softmax_params(self.scale[x], t.dtype.max - t.dtype.min, shape[-1])
        attrs, m = self._requant(
            out,
            np.array([2.0**-recip / self.scale[out]]),
            dict(
                function="softmax",
                axis=len(shape) - 1,
                recip_shift=recip,
                input_shape=tuple(shape),
                input_min=t.dtype.min,
                input_zero_point=self.zp[x],
            ),
        )
        return self.node(
            name, "nonlinear", [x], out, attrs, dict(exp_table=exp_table, multiplier=m), "Softmax"
        )

    def gelu(self, name, x):
        t = self.tensors[x]
        out = self.act(name, t.shape)
        codes = np.arange(t.dtype.min, t.dtype.max + 1)
        real = self.scale[x] * (codes - self.zp[x])
        f = 0.5 * real * (1 + np.tanh(0.7978845608 * (real + 0.044715 * real**3)))
        o = self.tensors[out]
        table = np.clip(np.rint(f / self.scale[out]) + self.zp[out], o.dtype.min, o.dtype.max)
        attrs = dict(
            function="gelu", input_min=t.dtype.min, input_zero_point=self.zp[x], input_shape=t.shape
        )
        return self.node(
            name, "nonlinear", [x], out, attrs, dict(table=table.astype(np.int64)), "Gelu"
        )

    def graph(self, out) -> Graph:
        return Graph("ops", self.tensors, tuple(self.nodes), (self.input,), (out,))


def cnn_graph(*, bits=4, seed=0) -> Graph:
    """conv -> maxpool -> (avgpool, and conv -> avgpool) -> concat -> requant -> add -> dense."""
    g = Builder((2, 6, 6), bits=bits, seed=seed)
    c1 = g.conv("conv1", g.input, 3, unsigned=False)  # signed: max-pool inputs fall too
    p1 = g.maxpool("pool1", c1)
    c2 = g.conv("conv2", p1, 3)
    a1 = g.avgpool("gap1", p1)
    a2 = g.avgpool("gap2", c2)
    cat = g.concat("cat", [a1, a2])
    r = g.requant("rq", cat)
    s = g.add("res", r, cat)
    return g.graph(g.dense("fc", s, 5))


def transformer_graph(*, tokens=4, embed=8, heads=2, bits=4, seed=0) -> Graph:
    """A pre-LN attention + GELU MLP block on a token sequence, then the class token's
    logits."""
    g = Builder((tokens, 6), bits=bits, seed=seed)
    d = embed // heads
    x = g.dense("embed", g.input, embed, tokens=tokens)
    x = g.add("pos", x)
    h = g.layernorm("ln1", x)
    q = g.dense("q", h, embed, tokens=tokens)
    k = g.dense("k", h, embed, tokens=tokens)
    v = g.dense("v", h, embed, tokens=tokens)
    qh = g.move("qh", "transpose", q, (tokens, heads, d), perm=(1, 0, 2))
    kh = g.move("kh", "transpose", k, (tokens, heads, d), perm=(1, 2, 0))
    vh = g.move("vh", "transpose", v, (tokens, heads, d), perm=(1, 0, 2))
    s = g.matmul("qk", qh, kh, (heads, tokens, d), (heads, d, tokens))
    p = g.softmax("softmax", s)
    o = g.matmul("av", p, vh, (heads, tokens, tokens), (heads, tokens, d))
    o = g.move("merge", "transpose", o, (heads, tokens, d), perm=(1, 0, 2))
    o = g.dense("proj", o, embed, tokens=tokens)
    x = g.add("res1", x, o, shape=(tokens, embed))
    h = g.layernorm("ln2", x)
    h = g.dense("fc1", h, 2 * embed, tokens=tokens)
    h = g.gelu("gelu", h)
    h = g.dense("fc2", h, embed, tokens=tokens)
    x = g.add("res2", x, h, shape=(tokens, embed))
    cls = g.move("cls", "slice", x, (tokens, embed), starts=(0,), ends=(1,), axes=(0,), steps=(1,))
    return g.graph(g.dense("head", cls, 5))
