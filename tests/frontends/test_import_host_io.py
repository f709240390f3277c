"""What users export, imported: float logits of a quantized last layer (Brevitas' default),
layout ops on the float input (``x.view``/``permute`` heads), QuantizeLinear of constants,
BatchNorm/Pad/ReduceMean, average pools of any window (multiplier and shift, proven over
every sum), and Softmax/LogSoftmax/ArgMax on the host. Each golden is compared with
onnxruntime (unfused) or qonnx execution."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from models import ort_unfused, per_node_errors, torch_qdq
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from frontends import reference
from frontends.errors import ModelError
from frontends.fixedpoint import division_multiplier, requantize, rounded_div
from frontends.onnx_import import import_onnx

# --- average pooling: the divide-and-round as a multiplier and a shift ------------------------


def _critical_sums(c: int, lo: int, hi: int, num: int, den: int) -> np.ndarray:
    """The sums at both ends of every run of equal ``round(sum * num / den)``, and the range
    ends. Both sides are monotone step functions of the sum, so agreeing here is agreeing
    everywhere."""
    lo_v, hi_v = (lo * num) // den - 1, (hi * num) // den + 1
    k = np.arange(lo_v, hi_v + 1, dtype=np.int64)
    t = (2 * k + 1) * den // (2 * num)  # near each half-way point
    pts = np.concatenate([t - 1, t, t + 1, t + 2, [lo, hi]])
    return np.unique(pts[(pts >= lo) & (pts <= hi)])


def _check_division(
    c: int, m: int, sh: int, num: int, den: int, sums: np.ndarray, rounding: str = "half_even"
):
    ours = requantize(sums, m, sh, 0, -(1 << 40), 1 << 40, rounding)
    exact = rounded_div(sums * num, den, rounding)
    tie = (2 * sums * num) % (2 * den) == den
    bad = (ours != exact) & ~(tie & (np.abs(ours - exact) == 1))
    assert not bad.any(), (c, m, sh, sums[bad][:5])
    if (c & (c - 1)) == 0:  # a power of two divides exactly, ties included
        assert np.array_equal(ours, exact), c


@pytest.mark.parametrize(
    "ratio,top", [((1 << 14, 14), 4096), ((23_517, 15), 160)], ids=["equal", "rescale"]
)
def test_pool_division_every_window_to_4096(ratio, top):
    """For every window count 1..4096 and every sum of int8 codes minus their zero point
    ([-255c, 255c]), the multiplier and shift equal ``round(sum * M / (c * 2**s))`` (half to
    even), an exact tie of a non-power-of-two count going to a neighbour. With equal scales
    the proof alone finds them; a rescaling pool's candidates are also checked sum by sum
    (at import; here up to 160, for time)."""
    num0, s = ratio
    widest = 0
    for c in range(1, top + 1):
        num, den = num0, c << s
        lo, hi = -255 * c, 255 * c
        m, sh = division_multiplier(
            num, den, lo, hi, "half_even", search_bits=0 if top == 4096 else 15
        )
        widest = max(widest, m.bit_length())
        _check_division(c, m, sh, num, den, _critical_sums(c, lo, hi, num, den))
        if c <= 64:
            _check_division(c, m, sh, num, den, np.arange(lo, hi + 1))
    assert widest <= 31


def test_pool_division_fits_the_gemm_post_unit_for_kws_windows():
    """DS-CNN's 25x5 = 125 pool (and 7x7, 5x5) with equal scales: 15-bit multipliers."""
    for c in (125, 49, 25, 9, 16):
        m, sh = division_multiplier(1 << 14, c << 14, 0, 255 * c)
        assert m < 1 << 15, c
        _check_division(c, m, sh, 1 << 14, c << 14, np.arange(0, 255 * c + 1))


@pytest.mark.slow
def test_pool_division_exhaustive_every_sum():
    """Every sum of every window 1..4096, one by one (the fast test checks run ends)."""
    for c in range(1, 4097):
        num, den = 1 << 14, c << 14
        m, sh = division_multiplier(num, den, -255 * c, 255 * c, "half_even", search_bits=0)
        _check_division(c, m, sh, num, den, np.arange(-255 * c, 255 * c + 1))


# --- torch models through onnxruntime quantize_static -----------------------------------------


class ViewHead(nn.Module):
    """``x.view(-1, 1, 8, 8)`` on a flat input, then a CNN."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.c = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.c(x.view(-1, 1, 8, 8)))
        return self.fc(nn.functional.max_pool2d(x, 2).flatten(1))


class PermuteHead(nn.Module):
    """A (time, features) input permuted to (features, time) for a Conv1d, then padded
    explicitly and averaged over time with ``mean``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.c = nn.Conv1d(6, 5, 3)
        self.c2 = nn.Conv2d(5, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.c(nn.functional.pad(x.permute(0, 2, 1), (1, 1))))
        x = torch.relu(self.c2(nn.functional.pad(x.unsqueeze(2), (1, 1, 1, 1))))
        return self.fc(x.mean((2, 3)))


class DsCnn(nn.Module):
    """A keyword-spotting DS-CNN on a 49x10 MFCC input; its global pool averages 125."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.c = nn.Conv2d(1, 8, (10, 4), stride=2, padding=(5, 1))
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 12)

    def forward(self, x):
        x = torch.relu(self.bn(self.c(x)))
        x = torch.relu(self.pw(torch.relu(self.dw(x))))
        return self.fc(nn.functional.avg_pool2d(x, x.shape[2:]).flatten(1))


def _agreement(graph, path, x):
    golden = reference.predict(graph, x)
    theirs = ort_unfused(path, x).reshape(golden.shape)
    q = graph.tensor(graph.outputs[0]).quant
    codes = np.rint((golden - theirs) / float(np.asarray(q.scale).reshape(-1)[0]))
    return golden, theirs, float((codes == 0).mean()), float(np.abs(codes).max())


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_view_head_is_laid_out_by_the_host(tmp_path, dynamo):
    path = torch_qdq(ViewHead(), (64,), tmp_path / "view.onnx", dynamo=dynamo)
    graph = import_onnx(path)
    assert graph.input_shape == (64,) and graph.tensor(graph.inputs[0]).shape == (1, 8, 8)
    assert graph.input_layout == (("reshape", (1, 8, 8)),)
    x = np.random.default_rng(2).uniform(-1, 1, (100, 64)).astype(np.float32)
    golden, theirs, equal, worst = _agreement(graph, path, x)
    assert equal >= 0.99 and worst <= 1
    assert (golden.argmax(1) == theirs.argmax(1)).mean() >= 0.99


def test_permute_pad_and_mean_heads(tmp_path):
    path = torch_qdq(PermuteHead(), (12, 6), tmp_path / "permute.onnx", activation="uint8")
    graph = import_onnx(path)
    assert graph.input_shape == (12, 6) and graph.input_layout == (("transpose", (1, 0)),)
    conv = [n for n in graph.nodes if n.op == "conv"]
    assert conv[0].attrs["pads"] == (1, 1) and conv[1].attrs["pads"] == (1, 1, 1, 1)
    assert [n.op for n in graph.nodes].count("avgpool") == 1
    x = np.random.default_rng(3).uniform(-1, 1, (100, 12, 6)).astype(np.float32)
    for name, (op, worst, frac) in per_node_errors(graph, path, x, tmp_path).items():
        assert worst <= 1 and frac < 0.03, (name, op, worst, frac)
    golden, theirs, equal, worst = _agreement(graph, path, x)
    assert equal >= 0.97 and worst <= 1
    assert (golden.argmax(1) == theirs.argmax(1)).mean() >= 0.97


def test_ds_cnn_pool_of_125_runs_on_the_gemm_engine(tmp_path):
    from frontends.vectors import golden_vectors
    from rtl_gen.gemm import GemmConfig, compile_graph, model

    path = torch_qdq(DsCnn(), (1, 49, 10), tmp_path / "ds.onnx", activation="uint8", low=-2, high=2)
    graph = import_onnx(path)
    (pool,) = [n for n in graph.nodes if n.op == "avgpool"]
    assert pool.weights["count"].tolist() == [125]
    assert pool.weights["multiplier"].size == 1 and pool.weights["multiplier"][0] < 1 << 15
    x = np.random.default_rng(4).uniform(-2, 2, (60, 1, 49, 10)).astype(np.float32)
    for name, (op, worst, frac) in per_node_errors(graph, path, x, tmp_path).items():
        assert worst <= 1 and frac < 0.01, (name, op, worst, frac)
    program = compile_graph(graph, GemmConfig(dsp_lanes=4, lut_lanes=0), split=0.0)
    vectors = golden_vectors(program.graph, random=4, seed=1)
    assert np.array_equal(model.run(program, vectors["inputs"]), vectors["outputs"])


def test_quantize_linear_of_a_constant_weight_is_folded(tmp_path):
    """QuantizeLinear on float initializers (weight per axis, bias), as quantize_static
    leaves them: folded at import; the golden equals onnxruntime."""
    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.5, (5, 8)).astype(np.float32)
    ws = (np.abs(w).max(1) / 127).astype(np.float32)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Gemm", ["xd", "wd"], ["h"], transB=1),
        helper.make_node("QuantizeLinear", ["h", "ys", "yz"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.float32(1 / 64), "xs"),
        numpy_helper.from_array(np.int8(0), "xz"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(ws, "ws"),
        numpy_helper.from_array(np.zeros(5, np.int8), "wz"),
        numpy_helper.from_array(np.float32(0.05), "ys"),
        numpy_helper.from_array(np.int8(0), "yz"),
    ]
    g = helper.make_graph(
        nodes,
        "qconst",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        inits,
    )
    path = tmp_path / "qconst.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    graph = import_onnx(path)
    x = rng.uniform(-1, 1, (200, 8)).astype(np.float32)
    golden = reference.predict(graph, x)
    codes = np.rint((golden - ort_unfused(path, x)) / 0.05)
    assert np.abs(codes).max() <= 1 and (codes == 0).mean() >= 0.99


# --- float outputs and host ops ----------------------------------------------------------------


def _float_output_model(path, tail: str | None, relu: bool = False):
    """x -> Q/DQ -> Gemm with an int8 weight and a float bias -> (Relu) -> float output, with
    an optional Softmax/LogSoftmax/ArgMax after it."""
    rng = np.random.default_rng(8)
    wq = rng.integers(-127, 128, (6, 10)).astype(np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=0),
        helper.make_node("Gemm", ["xd", "wd", "b"], ["g"], transB=1),
    ]
    last = "g"
    if relu:
        nodes.append(helper.make_node("Relu", ["g"], ["r"]))
        last = "r"
    out_type, out_shape = TensorProto.FLOAT, [1, 6]
    if tail:
        kw = {"keepdims": 0, "axis": 1} if tail == "ArgMax" else {"axis": 1}
        nodes.append(helper.make_node(tail, [last], ["y"], **kw))
        if tail == "ArgMax":
            out_type, out_shape = TensorProto.INT64, [1]
    else:
        nodes[-1].output[0] = "y"
    inits = [
        numpy_helper.from_array(np.float32(1 / 100), "xs"),
        numpy_helper.from_array(np.uint8(128), "xz"),
        numpy_helper.from_array(wq, "wq"),
        numpy_helper.from_array(rng.uniform(0.001, 0.01, 6).astype(np.float32), "ws"),
        numpy_helper.from_array(rng.normal(0, 0.3, 6).astype(np.float32), "b"),
    ]
    g = helper.make_graph(
        nodes,
        "float_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
        inits,
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("tail", [None, "Softmax", "LogSoftmax", "ArgMax"])
def test_float_output_with_float_bias_and_host_ops(tmp_path, tail):
    path = _float_output_model(tmp_path / "f.onnx", tail)
    graph = import_onnx(path)
    out = graph.tensor(graph.outputs[0])
    assert out.dtype.signed and out.dtype.width <= 32 and out.quant.axis == 0
    assert out.quant.offset is not None  # the float bias, on the host
    assert graph.host_ops == (
        ()
        if tail is None
        else (
            ({"Softmax": "softmax", "LogSoftmax": "log_softmax", "ArgMax": "argmax"}[tail], 0)
            + ((False,) if tail == "ArgMax" else ()),
        )
    )
    x = np.random.default_rng(9).uniform(-1.2, 1.2, (300, 10)).astype(np.float32)
    ours, theirs = reference.predict(graph, x), ort_unfused(path, x)
    if tail == "ArgMax":
        assert (ours == theirs.reshape(-1)).mean() >= 0.99
    else:
        assert np.allclose(ours, theirs.reshape(ours.shape), atol=2e-5, rtol=1e-5)


def test_float_output_relu_after_float_bias_is_refused_by_name(tmp_path):
    path = _float_output_model(tmp_path / "r.onnx", None, relu=True)
    with pytest.raises(
        ModelError,
        match=r"^graph output 'y': the float output of Gemm 'g' has "
        r"a Relu after a float bias",
    ):
        import_onnx(path)


def _brevitas_mlp(tmp_path):
    """A Brevitas MLP as Brevitas' docs write one: QuantIdentity input, QuantLinear layers
    with the defaults (float bias, the last returning float logits), QuantReLU."""
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    torch.manual_seed(0)

    class QuantMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(64, 32, bias=True, weight_bit_width=8)
            self.relu = qnn.QuantReLU(bit_width=8, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(32, 10, bias=True, weight_bit_width=8)

        def forward(self, v):
            return self.fc2(self.relu(self.fc1(self.inp(v))))

    net = QuantMLP()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    xt, yt = torch.tensor(x[:1200]), torch.tensor(y[:1200])
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    path = tmp_path / "brevitas_mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(net, torch.zeros(1, 64), str(path))
    with torch.no_grad():
        logits = net(torch.tensor(x[1200:])).numpy()
    return path, x[1200:], y[1200:], logits


def test_brevitas_float_logits_equal_qonnx_execution(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    from rtl_gen.dense import DensePlan

    path, x, y, logits = _brevitas_mlp(tmp_path)
    graph = import_onnx(path)
    out = graph.tensor(graph.outputs[0])
    assert [n.op for n in graph.nodes] == ["dense", "dense"] and out.dtype.width > 8
    golden = reference.predict(graph, x)
    mw = cleanup_model(ModelWrapper(str(path)))
    i_name, o_name = mw.graph.input[0].name, mw.graph.output[0].name
    theirs = np.concatenate(
        [execute_onnx(mw, {i_name: x[k : k + 1]})[o_name] for k in range(0, len(x), 1)]
    )
    lsb = np.asarray(out.quant.scale, np.float64)
    off = np.abs(golden - theirs) / lsb
    # the first layer's float bias is rounded to its accumulator (a warned approximation),
    # so a hidden code may differ by one; the output itself is the exact accumulator, equal
    # to qonnx's float32 within rounding noise wherever the hidden codes agree
    assert (golden.argmax(1) == theirs.argmax(1)).mean() >= 0.99
    assert (golden.argmax(1) == logits.argmax(1)).mean() >= 0.99
    assert (off < 0.05).mean() >= 0.95
    plan = DensePlan.from_graph(graph)
    assert plan.out_dtype == out.dtype


def test_manifest_host_sections_invert(tmp_path):
    """What the manifest records lets a tool go both ways without the graph: model inputs
    <-> hardware layout (a transpose), output codes <-> the model's float values (per-channel
    scale and float offset)."""
    from frontends.host import manifest_entries, model_inputs, output_codes, output_scores

    path = torch_qdq(PermuteHead(), (12, 6), tmp_path / "p.onnx")
    graph = import_onnx(path)
    entries = manifest_entries(graph)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 12, 6)).astype(np.float32)
    hw = reference.layout_inputs(graph, x)
    assert not np.array_equal(hw.reshape(5, -1), x.reshape(5, -1))
    back = model_inputs(entries["host"], hw, graph.tensor(graph.inputs[0]).shape)
    assert np.array_equal(back, x.reshape(5, -1))
    graph = import_onnx(_float_output_model(tmp_path / "f.onnx", None))
    q = manifest_entries(graph)["quant"]["output"]
    assert isinstance(q["scale"], list) and q["axis"] == 0 and len(q["offset"]) == 6
    assert q["code_step"] == int(np.abs(graph.nodes[-1].weights["weight"]).max())
    codes = np.random.default_rng(1).integers(-5000, 5000, (7, 6))
    assert np.array_equal(output_codes(q, output_scores(q, codes)), codes)
    assert np.allclose(
        output_scores(q, codes), reference.dequantize(graph, graph.outputs[0], codes)
    )
