"""Small IR graphs for the GEMM tests, built directly (no ONNX): chains of dense layers with
chosen sizes, weights and quantization, so odd shapes and saturation are easy to make."""

from __future__ import annotations

import numpy as np

from frontends.ir import Graph, IntType, Node, QuantParams, Tensor


def _tensor(name, size, dtype, zp=0):
    return Tensor(name, (size,), dtype, QuantParams(np.float32(0.05), np.int64(zp)))


def dense_chain(sizes, *, seed=0, in_dtype=IntType(8, False), in_zp=0, weight_max=127,
                relu=True, shift=18, mult_bits=14, weights=None, name="chain") -> Graph:
    """``len(sizes) - 1`` dense layers; hidden layers ReLU (uint8), the last int8."""
    rng = np.random.default_rng(seed)
    tensors = {"x": _tensor("x", sizes[0], in_dtype, in_zp)}
    nodes = []
    prev, zp_prev = "x", in_zp
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        out_dtype = IntType(8, True) if last else IntType(8, False)
        out_zp = 3 if last else 0
        w = weights[i] if weights is not None else rng.integers(-weight_max, weight_max + 1,
                                                                (b, a))
        bias = rng.integers(-2000, 2000, b)
        mult = rng.integers(1 << (mult_bits - 1), 1 << mult_bits, b)
        lo, hi = (out_dtype.min, out_dtype.max) if (last or not relu) else (0, 255)
        y = f"y{i}"
        tensors[y] = _tensor(y, b, out_dtype, out_zp)
        nodes.append(Node(f"fc{i}", "dense", (prev,), (y,),
                          attrs={"input_zero_point": zp_prev, "output_zero_point": out_zp,
                                 "shift": shift, "lo": lo, "hi": hi},
                          weights={"weight": np.asarray(w, np.int64),
                                   "bias": bias.astype(np.int64),
                                   "multiplier": mult.astype(np.int64)},
                          source_op="Gemm"))
        prev, zp_prev = y, out_zp
    return Graph(name, tensors, tuple(nodes), ("x",), (prev,))


def saturating_chain() -> Graph:
    """Weights at the int8 extremes, so all-max/all-min inputs drive the accumulators to
    the edges of their derived range and the requantizer into its clamps."""
    w0 = np.full((6, 37), 127, np.int64)
    w0[1] = -128
    w0[2, ::2] = -128
    w0[3] = np.where(np.arange(37) % 3 == 0, 127, -128)
    w1 = np.full((5, 6), -128, np.int64)
    w1[0] = 127
    return dense_chain((37, 6, 5), weights=[w0, w1], shift=12, seed=7, name="saturate")
