"""The MLPerf Tiny examples: the architectures' sizes (the reference models' MACs and
parameters), Keras 'same' padding folded into the ONNX Conv without changing a value, the
synthetic data, and the examples built, imported and run by the golden against onnxruntime
(KWS here; every model under ``slow``)."""

import numpy as np
import pytest
import torch
from models import ort_unfused, per_node_errors

from frontends.examples import tiny, tiny_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _macs(model, shape):
    """MACs of every Conv2d/Linear of ``model`` on one input of ``shape``, by hooks."""
    total = []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            kh, kw = mod.kernel_size
            total.append(out.numel() * kh * kw * mod.in_channels // mod.groups)
        else:
            total.append(out.numel() * mod.in_features)

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *shape))
    return sum(total), tuple(out.shape[1:])


# (MACs, output shape) of the reference architectures: DS-CNN 2.66 M, ResNet-8 12.5 M
# (MLPerf Tiny's published figures), the AD autoencoder 264 k, MobileNetV1 0.25 at 96 7.5 M
@pytest.mark.parametrize(
    "name, macs, out",
    [
        ("tiny_kws", 2_656_768, (12,)),
        ("tiny_ic", 12_501_632, (10,)),
        ("tiny_ad", 264_192, (640,)),
        ("tiny_vww", 7_489_664, (2,)),
    ],
)
def test_reference_sizes(name, macs, out):
    spec = tiny.SPECS[name]
    got_macs, got_out = _macs(spec.build(), spec.input_shape)
    assert got_out == out
    assert got_macs == macs


@pytest.mark.parametrize(
    "size, kernel, stride, pads",
    [
        (49, 10, 2, (4, 5)),
        (10, 4, 2, (1, 1)),
        (32, 3, 2, (0, 1)),
        (32, 1, 2, (0, 0)),
        (25, 3, 1, (1, 1)),
        (96, 3, 2, (0, 1)),
    ],
)
def test_keras_same_padding(size, kernel, stride, pads):
    assert tiny_models.same_pads(size, kernel, stride) == pads


def test_pads_fold_into_the_conv_exactly(tmp_path):
    """An asymmetric Pad folded into the Conv's pads: same outputs, no Pad left."""
    import onnx

    from frontends.examples.tiny import fold_pads

    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.ZeroPad2d((1, 2, 4, 5)), torch.nn.Conv2d(1, 3, (10, 4), stride=2)
    ).eval()
    path = tmp_path / "pad.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 49, 10),),
        str(path),
        input_names=["x"],
        dynamo=False,
        opset_version=17,
    )
    proto = onnx.load(str(path))
    assert "Pad" in {n.op_type for n in proto.graph.node}
    assert fold_pads(proto) == 1
    assert {n.op_type for n in proto.graph.node} == {"Conv"}
    conv = proto.graph.node[0]
    assert [list(a.ints) for a in conv.attribute if a.name == "pads"] == [[4, 1, 5, 2]]
    folded = tmp_path / "folded.onnx"
    onnx.save(proto, str(folded))
    x = np.random.default_rng(0).standard_normal((2, 1, 49, 10)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ort_unfused(folded, x), want, rtol=1e-5, atol=1e-5)


def test_synthetic_data_is_seeded():
    a = tiny.synthetic_classes((1, 49, 10), 12, 16, seed=0, split=1)
    b = tiny.synthetic_classes((1, 49, 10), 12, 16, seed=0, split=1)
    c = tiny.synthetic_classes((1, 49, 10), 12, 16, seed=0, split=0)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32 and a[1].min() >= 0 and a[1].max() < 12
    f = tiny.synthetic_frames(8, seed=0, split=0)
    assert f.shape == (8, 640) and np.array_equal(f, tiny.synthetic_frames(8, seed=0, split=0))


def _golden_vs_onnxruntime(made, tmp_path, n=4):
    from frontends import reference
    from frontends.onnx_import import import_onnx

    graph = import_onnx(made.quantized)
    x = np.load(made.test_data)["x"][:n]
    for name, (op, worst, frac) in per_node_errors(graph, made.quantized, x, tmp_path).items():
        assert worst <= 1 and frac < (0.05 if op == "avgpool" else 0.01), (name, op, worst, frac)
    # end to end: the golden's logits pick the class onnxruntime's do on these samples, or
    # differ from them by at most a few output codes
    out = graph.tensor(graph.outputs[0])
    ours = reference.predict(graph, x).reshape(n, -1)
    theirs = ort_unfused(made.quantized, x).reshape(n, -1)
    assert np.abs(ours - theirs).max() <= 4 * out.quant.scale
    return graph


def test_tiny_kws_builds_imports_and_agrees_with_onnxruntime(tmp_path):
    made = tiny.make_tiny("tiny_kws", tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "tiny_kws.onnx",
        "tiny_kws_float.onnx",
        "tiny_kws_test.npz",
    }
    with np.load(made.test_data) as data:
        assert data["x"].shape[1:] == (1, 49, 10) and len(data["y"]) == len(data["x"])
    # a learnable task, kept by int8 (chance is 1/12)
    assert made.float_accuracy > 0.8
    assert abs(made.quantized_accuracy - made.float_accuracy) <= 0.05
    graph = _golden_vs_onnxruntime(made, tmp_path)
    ops = [n.op for n in graph.nodes]
    assert ops.count("conv") == 9 and ops[-2:] == ["avgpool", "dense"]


@pytest.mark.slow
def test_examples_are_deterministic(tmp_path):
    a = tiny.make_tiny("tiny_kws", tmp_path / "a")
    tiny.make_tiny("tiny_kws", tmp_path / "b")
    for path in (a.quantized, a.float_model, a.test_data):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny_ic", "tiny_vww"])
def test_large_examples_agree_with_onnxruntime(name, tmp_path):
    made = tiny.make_tiny(name, tmp_path)
    assert made.float_accuracy > 0.7
    _golden_vs_onnxruntime(made, tmp_path, n=2)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kws", "ic", "vww"])
def test_digits_twins(kind, tmp_path):
    made = tiny.make_tiny_twin(kind, tmp_path)
    assert not made.synthetic and made.float_accuracy > 0.85
    assert abs(made.quantized_accuracy - made.float_accuracy) <= 0.02
    _golden_vs_onnxruntime(made, tmp_path, n=8)
