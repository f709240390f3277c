"""Small random quantized IR graphs for the spiking engine's tests (no ONNX involved)."""

import numpy as np

from frontends.fixedpoint import quantize_multipliers
from frontends.ir import Graph, IntType, Node, QuantParams, Tensor


def random_graph(
    sizes=(9, 7, 3),
    *,
    bits=4,
    signed_act=False,
    in_dtype=IntType(8, True),
    seed=0,
    rounding="half_up",
    weight_range=(-128, 127),
    scale=(5e-4, 4e-3),
    per_channel=True,
    pow2=False,
    bias=3000,
):
    """A chain of dense layers with ``bits``-bit activations (ReLU-like unsigned, or signed
    with a random zero point), random int weights, biases and multipliers. ``pow2``: the
    multipliers are powers of two, so the ST-BIF threshold is small (8..64) and ties and
    off-by-one errors show."""
    rng = np.random.default_rng(seed)
    q = lambda zp: QuantParams(np.array(0.1), np.array(zp))  # noqa: E731
    zp_in = int(rng.integers(in_dtype.min, in_dtype.max + 1) // 2)
    tensors = {"in": Tensor("in", (sizes[0],), in_dtype, q(zp_in))}
    nodes, prev, prev_zp = [], "in", zp_in
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        dtype = IntType(bits, signed_act)
        zp = 0 if not signed_act else int(rng.integers(dtype.min // 2, dtype.max // 2 + 1))
        w = rng.integers(weight_range[0], weight_range[1] + 1, size=(b, a))
        real = rng.uniform(*scale, size=b if per_channel else 1)
        if pow2:
            real = 2.0 ** -rng.integers(3, 7, size=real.shape).astype(float)
        mult, shift = quantize_multipliers(real)
        name = f"t{i}"
        tensors[name] = Tensor(name, (b,), dtype, q(zp))
        nodes.append(
            Node(
                f"fc{i}",
                "dense",
                (prev,),
                (name,),
                attrs={
                    "input_zero_point": prev_zp,
                    "output_zero_point": zp,
                    "shift": shift,
                    "lo": dtype.min,
                    "hi": dtype.max,
                    "relu": False,
                    "rounding": rounding,
                },
                weights={
                    "weight": w,
                    "bias": rng.integers(-bias, bias + 1, size=b),
                    "multiplier": mult,
                },
                source_op="Gemm",
            )
        )
        prev, prev_zp = name, zp
    return Graph("random", tensors, tuple(nodes), ("in",), (prev,))


_DIGITS: dict = {}


def digits_model(tmp_path_factory):
    """The digits MLP example and its test set, trained once per test session."""
    if "made" not in _DIGITS:
        from frontends.examples.digits_mlp import make_digits_mlp

        _DIGITS["made"] = make_digits_mlp(tmp_path_factory.mktemp("digits"))
    return _DIGITS["made"]
