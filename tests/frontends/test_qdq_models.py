"""QDQ conv nets from torch (legacy and dynamo exporters, onnxruntime quantize_static) against
onnxruntime, node by node and end to end.

Reference: onnxruntime with graph optimizations off (the ONNX-standard unfused graph).
Tolerance, per node, given onnxruntime's own input codes: at most 1 code, in under 1% of the
elements. Why: onnxruntime accumulates conv/gemm in float32 and rounds half to even; the golden
accumulates exactly and requantizes with a 15-bit multiplier (relative error < 2**-15) and
rounds half up. The two agree except where the exact value lies within that error of a
rounding tie, which moves the result by one code and never more. Data movement (Slice,
Transpose, Concat/MaxPool with equal scales) must be exact. End to end the 1-code differences
can propagate, so there we only require >= 98% equal argmax.
"""

import numpy as np
import onnx
import pytest
import torch
from models import ort_unfused, per_node_errors, torch_qdq
from torch import nn

from frontends import reference
from frontends.onnx_import import import_onnx


class ConvNet(nn.Module):
    """conv+BN+ReLU, depthwise stride 2, pointwise, residual Add+ReLU, Sigmoid, Concat,
    MaxPool, channel Slice, dilated conv, AvgPool, Flatten, Gemm, Softmax."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.c2 = nn.Conv2d(8, 4, 3, padding=2, dilation=2)
        self.fc = nn.Linear(16, 5)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        a = torch.relu(self.bn(self.c1(x)))
        b = torch.relu(self.dw(a))
        c = torch.relu(self.pw(b) + b)
        d = nn.functional.max_pool2d(torch.cat([c, torch.sigmoid(c)], 1), 2)
        e = nn.functional.avg_pool2d(self.c2(d[:, :8]), 1)
        return torch.softmax(self.fc(e.flatten(1)), 1)


class PoolNet(nn.Module):
    """Asymmetric kernels and pads, Sigmoid, AvgPool (ceil mode, pads excluded), padded
    MaxPool, a real Transpose, grouped conv with ReLU6 (Clip), GlobalAveragePool, Gemm.
    (quantize_static leaves Tanh/HardSigmoid in float, which nnloom refuses: see
    test_nonlinear_tables for those functions.)"""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.c1 = nn.Conv2d(2, 6, (3, 2), padding=(1, 2))
        self.c2 = nn.Conv2d(6, 6, 3, groups=2, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        a = torch.sigmoid(self.c1(x))
        a = nn.functional.avg_pool2d(
            a, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False
        )
        a = nn.functional.max_pool2d(a, 2, stride=1, padding=1)
        a = a.transpose(2, 3)
        a = nn.functional.relu6(self.c2(a))
        return self.fc(nn.functional.adaptive_avg_pool2d(a, 1).flatten(1))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.c = nn.Conv1d(3, 5, 3, stride=2, padding=1)
        self.fc = nn.Linear(5 * 4, 4)

    def forward(self, x):
        return self.fc(nn.functional.max_pool1d(torch.relu(self.c(x)), 2).flatten(1))


MODELS = {
    "convnet": (ConvNet, (3, 8, 8)),
    "poolnet": (PoolNet, (2, 7, 9)),
    "conv1d": (Conv1dNet, (3, 16)),
}


@pytest.fixture(scope="module")
def qdq_models(tmp_path_factory):
    made = {}
    base = tmp_path_factory.mktemp("qdq")
    for key, (cls, shape) in MODELS.items():
        for dynamo in (False, True):
            if dynamo and key != "convnet":
                continue
            path = torch_qdq(cls(), shape, base / f"{key}_{int(dynamo)}.onnx", dynamo=dynamo)
            made[key, dynamo] = (path, shape)
    return made


@pytest.mark.parametrize(
    "key,dynamo", [("convnet", False), ("convnet", True), ("poolnet", False), ("conv1d", False)]
)
def test_every_node_within_one_code_of_onnxruntime(qdq_models, tmp_path, key, dynamo):
    path, shape = qdq_models[key, dynamo]
    graph = import_onnx(path)
    x = np.random.default_rng(1).uniform(-1, 1, (40,) + shape).astype(np.float32)
    errors = per_node_errors(graph, path, x, tmp_path)
    for name, (op, worst, frac) in errors.items():
        # avgpool: see test_avgpool_differs_only_at_exact_ties
        assert worst <= 1 and frac < (0.05 if op == "avgpool" else 0.01), (name, op, frac)
        if op in ("slice", "transpose", "concat"):
            assert worst == 0, (name, op)
    golden = reference.predict(graph, x)
    ours = ort_unfused(path, x).reshape(golden.shape)
    assert (golden.argmax(1) == ours.argmax(1)).mean() >= 0.98


def test_convnet_ir(qdq_models):
    graph = import_onnx(qdq_models["convnet", False][0])
    ops = [n.op for n in graph.nodes]
    assert ops == [
        "conv",
        "conv",
        "conv",
        "add",
        "nonlinear",
        "concat",
        "maxpool",
        "slice",
        "conv",
        "avgpool",
        "dense",
        "nonlinear",
    ]
    c1, dw, pw = graph.nodes[:3]
    assert c1.source_op == "Conv"  # BatchNormalization folded (by the exporter or by us)
    assert dw.attrs["group"] == 8 and dw.attrs["strides"] == (2, 2)
    assert dw.weights["im2col"].shape == (8, 16, 9)  # (G, Ho*Wo, C/G*kh*kw)
    assert pw.attrs["kernel_shape"] == (1, 1) and pw.weights["im2col"].shape == (1, 16, 8)
    assert graph.nodes[8].attrs["dilations"] == (2, 2)
    assert len(set(c1.weights["multiplier"].tolist())) > 1  # per-channel weight scales
    assert graph.nodes[-1].attrs["function"] == "softmax"
    assert graph.tensor(graph.outputs[0]).shape == (5,)


@pytest.mark.parametrize("spatial", [True, False], ids=["conv-bn2d", "linear-bn1d"])
def test_batchnorm_on_quantized_codes_is_its_own_layer(tmp_path, spatial):
    """torch's legacy exporter keeps BN with training=PRESERVE, and Linear+BatchNorm1d in
    any mode; quantize_static then quantizes the layer's output *before* the BN (and wraps
    its scale in QuantizeLinear). That BN is a per-channel affine on codes: a depthwise 1x1
    conv (images) or a diagonal dense layer (vectors) with weights +-127, within one code
    of onnxruntime."""
    from models import ort_unfused

    torch.manual_seed(3)
    if spatial:
        model = nn.Sequential(
            nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)
        ).eval()
        shape = (2, 4, 4)
    else:
        model = nn.Sequential(
            nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
        ).eval()
        shape = (12,)
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-0.5, 0.5)
    float_path = tmp_path / "bn_float.onnx"
    torch.onnx.export(
        model,
        (torch.zeros((1,) + shape),),
        str(float_path),
        input_names=["x"],
        output_names=["y"],
        dynamo=False,
        opset_version=17,
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    assert "BatchNormalization" in [n.op_type for n in onnx.load(str(float_path)).graph.node]
    from onnxruntime.quantization import QuantFormat, quantize_static

    rng = np.random.default_rng(0)
    feeds = iter([{"x": rng.uniform(-1, 1, (1,) + shape).astype(np.float32)} for _ in range(16)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    path = tmp_path / "bn.onnx"
    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ)
    graph = import_onnx(path)
    bn_node = [n for n in graph.nodes if n.source_op == "BatchNormalization"][0]
    assert bn_node.op == ("conv" if spatial else "dense")
    x = np.random.default_rng(1).uniform(-1, 1, (60,) + shape).astype(np.float32)
    for name, (op, worst, frac) in per_node_errors(graph, path, x, tmp_path).items():
        assert worst <= 1 and frac < 0.03, (name, op, worst, frac)
    golden = reference.predict(graph, x)
    assert (golden.argmax(1) == ort_unfused(path, x).argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("activation", ["uint8"])
def test_uint8_activations_per_tensor(tmp_path, activation):
    path = torch_qdq(
        Conv1dNet(), (3, 16), tmp_path / "u8.onnx", per_channel=False, activation=activation
    )
    graph = import_onnx(path)
    assert str(graph.tensor(graph.inputs[0]).dtype) == "uint8"
    x = np.random.default_rng(5).uniform(-1, 1, (40, 3, 16)).astype(np.float32)
    for name, (op, worst, frac) in per_node_errors(graph, path, x, tmp_path).items():
        assert worst <= 1 and frac < 0.01, (name, op, worst, frac)


def test_avgpool_differs_only_at_exact_ties(qdq_models, tmp_path):
    """With equal input/output scales the golden's average is the exactly rounded integer mean
    (half to even, as QuantizeLinear). onnxruntime averages dequantized floats in float32, so at
    an exact tie (sum/count = k + 1/2, frequent with 4- or 6-element windows) rounding noise
    picks the side. Every difference must be at such a tie, and be one code."""
    from models import ort_tensors

    path, shape = qdq_models["poolnet", False]
    graph = import_onnx(path)
    node = [n for n in graph.nodes if n.op == "avgpool"][0]
    assert float(graph.tensor(node.inputs[0]).quant.scale) == float(
        graph.tensor(node.outputs[0]).quant.scale
    )  # equal scales
    x = np.random.default_rng(1).uniform(-1, 1, (40,) + shape).astype(np.float32)
    theirs = ort_tensors(path, [node.inputs[0], node.outputs[0]], x, tmp_path)
    xi = theirs[node.inputs[0]].astype(np.int64)
    y = reference.OPS["avgpool"](node, xi).reshape(len(x), -1)
    yo = theirs[node.outputs[0]].astype(np.int64).reshape(len(x), -1)
    index = node.weights["im2col"]
    flat = np.concatenate(
        [xi.reshape(len(x), -1) - node.attrs["input_zero_point"], np.zeros((len(x), 1), np.int64)],
        axis=1,
    )
    sums = flat[:, np.where(index < 0, flat.shape[1] - 1, index)].sum(-1).reshape(len(x), -1)
    count = np.tile(node.weights["count"], index.shape[0])
    tie = (2 * sums) % count == 0
    tie &= ((2 * sums) // count) % 2 == 1
    differ = y != yo
    assert differ.any() and np.abs(y - yo).max() == 1
    assert tie[differ].all()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_inspect_facts_of_torch_exports(qdq_models, dynamo):
    """`nnloom inspect` on both exporters' QDQ models: every layer listed, MACs from the torch
    module's geometry, the depthwise conv's group, nothing unsupported."""
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    path, _ = qdq_models["convnet", dynamo]
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["error"] is None and data["unsupported"] == []
    layers = data["layers"]
    assert [f["op"] for f in layers] == [n.op for n in import_onnx(path).nodes]
    c1, dw, pw = layers[:3]
    assert c1["macs"] == 8 * 8 * 8 * 3 * 9  # Cout * H * W * Cin * kh * kw
    assert dw["macs"] == 8 * 4 * 4 * 1 * 9  # depthwise, stride 2
    assert pw["macs"] == 8 * 4 * 4 * 8
    assert layers[-2]["macs"] == 16 * 5 and layers[-2]["weight_dtype"] == "int8"
    # the output Softmax: a SMURF unit; which network engines take it changes as they grow
    assert "gemm" in c1["engines"] and "smurf" in layers[-1]["engines"]
    assert "dense" not in layers[-1]["engines"]
