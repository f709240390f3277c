"""Quantization-aware fine-tuning helpers: bits per layer, straight-through gradients, QONNX
export that imports, and the integer golden against the fake-quantized torch module.

Tolerance golden vs fake-quant module: the input and weight codes must be identical (both
compute ``x / s`` in float32 and round half to even). Per layer, given the same input codes,
an output code may differ by one where the exact value lies within the golden's 15-bit
multiplier error (< 2**-15 relative) of a rounding tie, or at an exact tie (the golden rounds
dense/conv ties half up, torch half to even); we require <= 1 code in < 0.5% of the elements
per layer. End to end (where a 1-code difference can propagate) >= 99% equal argmax.
"""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from frontends import reference
from frontends.compress.qat import (
    ActQuant,
    LayerBits,
    QatError,
    QatNet,
    accuracy,
    export_qonnx,
    finetune,
)
from frontends.errors import ModelError
from frontends.facts import layer_facts
from frontends.onnx_import import import_onnx

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, stride=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 12),
        nn.ReLU(),
        nn.Linear(12, 5),
    )


BITS = [
    LayerBits(weight=3, act=4),
    LayerBits(weight=8, act=6),
    LayerBits(weight=4, act=4),
    LayerBits(weight=2, act=8),
]


def _codes_per_layer(net, x):
    """The fake-quantized module's codes after every activation quantizer."""
    out, c, s = [], net.input_quant(x), net.input_quant.scale
    pending = None
    for step in net.steps:
        if isinstance(step, ActQuant):
            c, s = step(pending), step.scale
            out.append(c)
        elif hasattr(step, "weight_codes"):
            pending = step(c, s)
        else:
            c = step(c)
    return out


def test_mixed_bits_export_imports_and_golden_equals_fake_quant(tmp_path):
    net = QatNet.from_float(_cnn(), BITS)
    x = np.random.default_rng(0).normal(0, 1, (300, 2, 8, 8)).astype(np.float32)
    net.calibrate(x[:200])
    path = export_qonnx(net, tmp_path / "cnn.onnx", (2, 8, 8))
    graph = import_onnx(path)
    assert [n.op for n in graph.nodes] == ["conv", "maxpool", "conv", "dense", "dense"]
    assert [str(n.attrs.get("weight_dtype")) for n in graph.nodes if n.op != "maxpool"] == [
        "int3n",
        "int8n",
        "int4n",
        "ternary",
    ]
    assert [str(graph.tensor(n.outputs[0]).dtype) for n in graph.nodes] == [
        "uint4",
        "uint4",
        "uint6",
        "uint4",
        "int8",
    ]
    assert graph.nodes[2].attrs["group"] == 4
    facts = layer_facts(graph)
    assert facts[-1].ternary and facts[0].weight_bits <= 3

    with torch.no_grad():
        theirs = [c.numpy().astype(np.int64) for c in _codes_per_layer(net, torch.from_numpy(x))]
        layers = [step for step in net.steps if hasattr(step, "weight_codes")]
        for node, layer in zip([n for n in graph.nodes if n.op != "maxpool"], layers):
            assert (node.weights["weight"] == layer.weight_codes().numpy()).all(), node.name
    codes_in = reference.quantize_inputs(graph, x)
    with torch.no_grad():
        assert (codes_in == net.input_quant(torch.from_numpy(x)).numpy()).all()
    # each quantized layer on the module's own input codes
    ir_layers = [n for n in graph.nodes if n.op in ("conv", "dense")]
    ins = [codes_in] + theirs[:-1]
    for node, xin, want in zip(ir_layers, ins, theirs):
        if node is ir_layers[2]:
            xin = xin.reshape(len(x), -1)  # the Flatten
        if node is ir_layers[1]:
            xin = reference.OPS["maxpool"](graph.nodes[1], xin)  # pool then conv
        got = reference.OPS[node.op](node, xin).reshape(want.shape)
        diff = np.abs(got - want)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (node.name, (diff > 0).mean())
    golden = reference.predict(graph, x)
    with torch.no_grad():
        module = net(torch.from_numpy(x)).numpy()
    assert (golden.argmax(1) == module.argmax(1)).mean() >= 0.99


def _blobs(n, rng):
    centres = rng.normal(0, 1.5, (4, 10))
    y = rng.integers(0, 4, n)
    return (centres[y] + rng.normal(0, 0.6, (n, 10))).astype(np.float32), y


def test_finetune_recovers_accuracy_lost_to_quantization():
    """Fine-tuning with straight-through rounding must move the weights and not make a
    2-bit-activation model worse than calibration alone left it."""
    rng = np.random.default_rng(1)
    x, y = _blobs(600, rng)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    net = QatNet.from_float(model, {"0": LayerBits(weight=2, act=2)})
    net.calibrate(x)
    before = accuracy(net, x, y)
    w0 = net.steps[0].layer.weight.detach().clone()
    finetune(net, x, y, epochs=3, lr=3e-3, batch=100)
    assert not torch.equal(w0, net.steps[0].layer.weight)
    assert model[0].weight.data_ptr() != net.steps[0].layer.weight.data_ptr()  # a copy
    assert accuracy(net, x, y) >= before


def test_straight_through_gradient():
    q = ActQuant(4, signed=False)
    q.running_max.fill_(1.5)  # scale 0.1, codes 0..15
    q.eval()
    v = torch.tensor([0.04, 0.26, 2.0, -1.0], requires_grad=True)
    c = q(v)
    assert c.tolist() == [0.0, 3.0, 15.0, 0.0]
    c.sum().backward()
    assert torch.allclose(v.grad, torch.tensor([10.0, 10.0, 0.0, 0.0]))


def test_same_network_same_bytes(tmp_path):
    net = QatNet.from_float(_cnn(), BITS)
    net.calibrate(np.random.default_rng(0).normal(0, 1, (50, 2, 8, 8)).astype(np.float32))
    a = export_qonnx(net, tmp_path / "a.onnx", (2, 8, 8)).read_bytes()
    b = export_qonnx(net, tmp_path / "b.onnx", (2, 8, 8)).read_bytes()
    assert a == b
    onnx.checker.check_model(onnx.load_from_string(a))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]


def test_bad_models_and_bits_are_refused_by_name():
    with pytest.raises(
        QatError,
        match=r"^module '1' \(Sigmoid\) is not supported; QAT takes "
        r"Linear, Conv2d \(\+BatchNorm2d\), ReLU, Flatten and "
        r"MaxPool2d$",
    ):
        QatNet.from_float(nn.Sequential(nn.Linear(4, 4), nn.Sigmoid()))
    with pytest.raises(QatError, match=r"^3 bit choices for 2 Linear/Conv2d layers \(0, 2\)$"):
        QatNet.from_float(
            nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), [LayerBits()] * 3
        )
    with pytest.raises(
        QatError,
        match=r"^bits name modules \['1'\] that are not "
        r"Linear/Conv2d layers; the layers are \['0', '2'\]$",
    ):
        QatNet.from_float(
            nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), {"1": LayerBits()}
        )
    with pytest.raises(QatError, match=r"^weight bits 9 are outside 2\.\.8$"):
        LayerBits(weight=9)


def test_unquantizable_export_is_refused_by_the_importer(tmp_path):
    """A 1-bit signed activation is not what QAT makes, but a hand-edited export must still
    fail with a ModelError naming the node, not a traceback."""
    net = QatNet.from_float(nn.Sequential(nn.Linear(4, 3)))
    net.calibrate(np.ones((4, 4), np.float32))
    path = export_qonnx(net, tmp_path / "m.onnx", (4,))
    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if t.name == "l0.weight_q.bits":
            t.CopyFrom(onnx.numpy_helper.from_array(np.array(40.0, np.float32), t.name))
    onnx.save(model, str(path))
    with pytest.raises(
        ModelError,
        match=r"^node 'l0\.weight_q' \(Quant, opset 1\): bit width "
        r"40 is outside 1\.\.32$",
    ):
        import_onnx(path)


def test_ternary_threshold_is_tga_style():
    """2-bit weights: threshold 0.7 sigma per channel, so about 48% of Gaussian weights are
    non-zero (P(|w| > 0.7 sigma) = 0.484), not the few beyond max/2."""
    torch.manual_seed(5)
    layer = nn.Linear(4000, 3)
    with torch.no_grad():
        layer.weight.normal_(0, 1).mul_(torch.tensor([[0.1], [1.0], [3.0]]))
    net = QatNet.from_float(nn.Sequential(layer), LayerBits(weight=2, act=8))
    codes = net.steps[0].weight_codes().detach()
    assert set(codes.unique().tolist()) == {-1.0, 0.0, 1.0}
    nonzero = (codes != 0).float().mean(dim=1)
    assert torch.allclose(nonzero, torch.full((3,), 0.484), atol=0.03), nonzero


def test_batch_norm_after_conv_is_folded():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU())
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-1.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    model.eval()
    net = QatNet.from_float(model, LayerBits(weight=8, act=8))
    folded = net.steps[0].layer
    x = torch.randn(8, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(torch.relu(folded(x)), model(x), atol=1e-5)
    assert len(net.steps) == 2 and model[0].bias is None  # the float model is untouched


@pytest.mark.sim
@pytest.mark.slow
def test_mixed_bit_mlp_runs_bit_exact_on_the_dense_engine(tmp_path):
    """The QAT export (QONNX, 4-bit and ternary weights) through `nnloom generate` and
    `nnloom sim`: needs no Brevitas, so it runs where the Brevitas flow test skips."""
    from typer.testing import CliRunner

    from flows.cli import app

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))
    net = QatNet.from_float(model, [LayerBits(weight=4, act=4), LayerBits(weight=2, act=8)])
    net.calibrate(np.random.default_rng(3).normal(0, 1, (200, 16)).astype(np.float32))
    path = export_qonnx(net, tmp_path / "mlp.onnx", (16,))
    art = tmp_path / "art"
    runner = CliRunner()
    result = runner.invoke(
        app, ["generate", str(path), "-o", str(art), "--random", "16", "--engine", "dense"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sim", str(art)])
    assert result.exit_code == 0 and "bit-exact" in result.output, result.output
