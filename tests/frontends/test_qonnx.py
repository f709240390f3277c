"""QONNX / Brevitas-style models built with onnx.helper (Quant, BipolarQuant, Trunc in the
qonnx.custom_op.general and onnx.brevitas domains), against the producer's semantics.

Reference: ``expand_qonnx`` rewrites each QONNX op into the standard ONNX ops of qonnx's own
reference implementation (x/scale + zeropt, clamp, Round/Floor/Ceil, rescale; float32) and
onnxruntime runs that twin. Tolerance: weights and graph-input codes must be identical (same
float32 steps); a layer output may differ by one code where the exact value is a rounding tie
(the golden rounds dense/conv ties half up, QONNX ROUND is half to even) or within the 15-bit
multiplier's error of one; we require <= 1 code at every quantizer in <1% of the elements, and
the same argmax end to end in >= 98% of samples.
"""

import numpy as np
import onnx
import pytest
from models import QonnxBuilder, expand_qonnx, ort_unfused

from frontends import reference
from frontends.errors import ModelError
from frontends.onnx_import import import_onnx


def _mlp(tmp_path, domain, *, external=False):
    """8-bit input, 4-bit per-channel weights + float bias + BatchNorm + ReLU, 4-bit unsigned
    activations, ternary weights, 8-bit output."""
    rng = np.random.default_rng(0)
    b = QonnxBuilder(domain)
    x = b.quant("x", 1 / 64, 8)
    w1 = b.quant(b.init(rng.normal(0, 0.4, (16, 12))), rng.uniform(0.05, 0.1, (1, 12)), 4, narrow=1)
    h = b.node("MatMul", [x, w1])
    h = b.node("Add", [h, b.init(rng.normal(0, 0.2, 12))])
    h = b.node(
        "BatchNormalization",
        [
            h,
            b.init(rng.uniform(0.5, 1.5, 12)),
            b.init(rng.normal(0, 0.1, 12)),
            b.init(rng.normal(0, 0.1, 12)),
            b.init(rng.uniform(0.5, 2, 12)),
        ],
    )
    h = b.node("Relu", [h])
    h = b.quant(h, 0.25, 4, signed=0)
    w2 = b.quant(b.init(rng.normal(0, 0.5, (12, 6))), 0.4, 2, narrow=1)  # ternary
    y = b.node("MatMul", [h, w2])
    y = b.quant(y, 0.1, 8)
    return b.save(tmp_path / "mlp.onnx", y, [1, 16], [1, 6], external=external)


def _cnn(tmp_path, domain):
    """Conv (3-bit per-channel weights) + ReLU, 4-bit act, AveragePool*4 + Trunc (Brevitas
    TruncAvgPool), bipolar weights and bipolar sign activation, 8-bit classifier."""
    rng = np.random.default_rng(1)
    b = QonnxBuilder(domain)
    x = b.quant("x", 1 / 32, 8)
    w = b.quant(
        b.init(rng.normal(0, 0.3, (4, 2, 3, 3))), rng.uniform(0.1, 0.2, (4, 1, 1, 1)), 3, narrow=1
    )
    h = b.node("Conv", [x, w], pads=[1, 1, 1, 1])
    h = b.quant(b.node("Relu", [h]), 0.125, 4, signed=0)
    h = b.node("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Mul", [h, b.init(4.0)])
    h = b.trunc(h, 0.125, 6, 4)
    h = b.node("Flatten", [h])
    wb = b.bipolar(b.init(rng.normal(0, 1, (8, 64))), 0.05)
    h = b.node("Gemm", [h, wb, b.init(rng.normal(0, 0.05, 8))], transB=1)
    h = b.bipolar(h, 1.0)
    w3 = b.quant(b.init(rng.normal(0, 0.3, (8, 5))), 0.02, 8, narrow=1)
    y = b.quant(b.node("MatMul", [h, w3]), 0.05, 8)
    return b.save(tmp_path / "cnn.onnx", y, [1, 2, 8, 8], [1, 5])


def _twin(tmp_path, model):
    path = tmp_path / "twin.onnx"
    onnx.save(expand_qonnx(model), str(path))
    return path


@pytest.mark.parametrize("domain", ["qonnx.custom_op.general", "onnx.brevitas"])
def test_qonnx_mlp_matches_reference_semantics(tmp_path, domain):
    path, model = _mlp(tmp_path, domain)
    graph = import_onnx(path)
    assert [n.op for n in graph.nodes] == ["dense", "dense"]
    first, second = graph.nodes
    assert str(first.attrs["weight_dtype"]) == "int4n" and first.attrs["relu"]
    assert str(second.attrs["weight_dtype"]) == "ternary"
    assert set(np.unique(second.weights["weight"])) <= {-1, 0, 1}
    assert str(graph.tensor(first.outputs[0]).dtype) == "uint4"
    x = np.random.default_rng(2).uniform(-2.2, 2.2, (400, 16)).astype(np.float32)
    golden = reference.predict(graph, x)
    theirs = ort_unfused(_twin(tmp_path, model), x)
    diff = np.abs(golden - theirs) / 0.1
    assert diff.max() <= 1 + 1e-4 and (diff > 0.5).mean() < 0.01
    assert (golden.argmax(1) == theirs.argmax(1)).mean() >= 0.98


def test_qonnx_cnn_with_trunc_and_bipolar(tmp_path):
    path, model = _cnn(tmp_path, "qonnx.custom_op.general")
    graph = import_onnx(path)
    assert [n.op for n in graph.nodes] == ["conv", "avgpool", "dense", "dense"]
    pool, sign = graph.nodes[1], graph.nodes[2]
    assert pool.attrs["rounding"] == "floor" and pool.weights["count"].tolist() == [4] * 16
    assert sign.attrs["sign"] and str(sign.attrs["weight_dtype"]) == "bipolar"
    assert str(graph.tensor(sign.outputs[0]).dtype) == "bipolar"
    x = np.random.default_rng(3).uniform(-3, 3, (300, 2, 8, 8)).astype(np.float32)
    golden = reference.predict(graph, x)
    theirs = ort_unfused(_twin(tmp_path, model), x)
    diff = np.abs(golden - theirs) / 0.05
    # The float Gemm bias before the sign is rounded to the accumulator's LSB (0.00625), so a
    # sign flips where the exact pre-activation lies within 0.003 of zero (~0.3% of signs);
    # a flipped +-1 moves the next layer by |w| codes. Hence the looser end-to-end bound.
    assert (diff > 0.5).mean() < 0.05 and (golden.argmax(1) == theirs.argmax(1)).mean() >= 0.95


def test_qonnx_input_rounding_and_bipolar_input(tmp_path):
    """Graph-input codes follow the Quant's rounding mode exactly (ties included)."""
    for mode, expect in (
        ("ROUND", [0, 2, -2, 2, 3]),
        ("FLOOR", [0, 1, -3, 2, 3]),
        ("CEIL", [1, 2, -2, 3, 3]),
    ):
        b = QonnxBuilder()
        y = b.quant("x", 0.5, 3, mode=mode)
        path, _ = b.save(tmp_path / f"in_{mode}.onnx", y, [1, 5], [1, 5])
        graph = import_onnx(path)
        codes = reference.quantize_inputs(graph, np.array([[0.25, 0.75, -1.25, 1.25, 9.0]]))
        assert codes.tolist()[0] == expect, mode
    b = QonnxBuilder()
    y = b.bipolar("x", 1.0)
    path, _ = b.save(tmp_path / "bip.onnx", y, [1, 3], [1, 3])
    graph = import_onnx(path)
    assert reference.quantize_inputs(graph, np.array([[0.0, -1e-9, 3.0]])).tolist() == [[1, -1, 1]]


def test_external_data_inside_the_folder_loads(tmp_path):
    path, _ = _mlp(tmp_path, "qonnx.custom_op.general", external=True)
    assert (tmp_path / "mlp.onnx.data").is_file()
    assert len(import_onnx(path).nodes) == 2


def _retarget(path, location):
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(model, str(path))


def test_external_data_outside_the_folder_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    path, _ = _mlp(tmp_path / "m", "qonnx.custom_op.general", external=True)
    (tmp_path / "m" / "mlp.onnx.data").rename(tmp_path / "secret.data")
    _retarget(path, "../secret.data")
    with pytest.raises(
        ModelError,
        match=r"mlp\.onnx: tensor '.*' has external data at "
        r"'\.\./secret\.data', outside the model's folder; "
        r"refused$",
    ):
        import_onnx(path)
    _retarget(path, str(tmp_path / "secret.data"))
    with pytest.raises(ModelError, match=r"only relative paths inside the model's folder"):
        import_onnx(path)


def test_external_data_through_a_symlink_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    path, _ = _mlp(tmp_path / "m", "qonnx.custom_op.general", external=True)
    data = tmp_path / "m" / "mlp.onnx.data"
    data.rename(tmp_path / "real.data")
    data.symlink_to(tmp_path / "real.data")
    with pytest.raises(
        ModelError,
        match=r"reached through a symlink \('mlp\.onnx\.data'\); "
        r"refused",
    ):
        import_onnx(path)


def test_truncated_external_data_is_refused(tmp_path):
    path, _ = _mlp(tmp_path, "qonnx.custom_op.general", external=True)
    data = tmp_path / "mlp.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ModelError, match=r"which has only 100 bytes$"):
        import_onnx(path)


def test_unknown_custom_op_is_refused(tmp_path):
    b = QonnxBuilder()
    y = b.node("MultiThreshold", ["x", b.init(np.zeros((1, 3)))], domain=b.domain)
    path, _ = b.save(tmp_path / "mt.onnx", y, [1, 4], [1, 4])
    with pytest.raises(
        ModelError,
        match=r"^node 'multithreshold2' \(MultiThreshold, opset 1\):"
        r" op MultiThreshold is not supported; supported ops: "
        r".*Quant \(QONNX\)",
    ):
        import_onnx(path)


def test_external_data_through_a_symlinked_folder_is_refused(tmp_path):
    """A symlink anywhere on the data's path counts, not just the file itself."""
    (tmp_path / "m").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path, _ = _mlp(tmp_path / "m", "qonnx.custom_op.general", external=True)
    (tmp_path / "m" / "mlp.onnx.data").rename(tmp_path / "elsewhere" / "mlp.onnx.data")
    (tmp_path / "m" / "d").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _retarget(path, "d/mlp.onnx.data")
    with pytest.raises(
        ModelError,
        match=r"at 'd/mlp\.onnx\.data', reached through a symlink "
        r"\('d'\); refused",
    ):
        import_onnx(path)


def test_external_data_of_a_constant_node_is_checked_too(tmp_path):
    """Tensors in node attributes (Constant) may be external as well; the same rules apply
    before anything is read."""
    from onnx import TensorProto, helper, numpy_helper

    (tmp_path / "m").mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    value = numpy_helper.from_array(np.zeros(4, np.float32), "c")
    value.ClearField("raw_data")
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value="../secret.bin")
    nodes = [
        helper.make_node("Constant", [], ["c"], name="const", value=value),
        helper.make_node("Add", ["x", "c"], ["y"], name="add"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "m" / "const.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(
        ModelError,
        match=r"const\.onnx: tensor 'c' has external data at "
        r"'\.\./secret\.bin', outside the model's folder; "
        r"refused$",
    ):
        import_onnx(path)
