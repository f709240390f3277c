"""A 4-bit Brevitas MLP exported with ``brevitas.export.export_qonnx`` (torch's dynamo and
TorchScript exporters): import, inspect, golden against the Brevitas module and qonnx's own
executor, and generate + Verilator simulation on the dense engine.

Brevitas and qonnx are the optional extra ``brevitas`` (``pip install -e .[brevitas]``); the
tests skip without them.

Tolerance: the layers use ``Int32Bias`` (the bias quantized on the accumulator's scale, as
integer hardware needs), so the golden's accumulators equal Brevitas's exactly; an output code
may differ by one only where the exact value lies within the 15-bit multiplier's error
(< 2**-15 relative) of a rounding tie, or on an exact tie (golden half up, Brevitas half to
even). We require <= 1 code, in < 0.5% of the elements. (With Brevitas's default float bias
the importer rounds the bias to the accumulator's LSB, which moves outputs by up to
``0.5 * s_acc / s_out`` codes; that model is not bit-exact by construction.)
"""

import numpy as np
import pytest

brevitas = pytest.importorskip("brevitas", reason="optional extra: pip install -e .[brevitas]")
torch = pytest.importorskip("torch")

from frontends import reference  # noqa: E402
from frontends.onnx_import import import_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mlp():
    """16 -> 12 -> 5: 8-bit input, 4-bit per-channel weights, 4-bit ReLU, 4-bit per-tensor
    weights, 8-bit output; Int32Bias on both layers."""
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(
                16,
                12,
                bias=True,
                weight_bit_width=4,
                weight_quant=Int8WeightPerChannelFloat,
                bias_quant=Int32Bias,
            )
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(
                12,
                5,
                bias=True,
                weight_bit_width=4,
                bias_quant=Int32Bias,
                output_quant=Int8ActPerTensorFloat,
            )

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(self.inp(x))))

    torch.manual_seed(0)
    model = Mlp()
    model.train()
    with torch.no_grad():  # let the activation scales see data
        for _ in range(4):
            model(2 * torch.randn(64, 16))
    return model.eval()


class _Exports:
    """The model and its exports, made once per module and only when asked for (the dynamo
    export alone takes ~10 s)."""

    def __init__(self, base):
        self.base, self.model, self.paths = base, None, {}

    def path(self, dynamo: bool):
        import warnings

        from brevitas.export import export_qonnx

        if self.model is None:
            self.model = _mlp()
        if dynamo not in self.paths:
            path = self.base / f"mlp_{'dynamo' if dynamo else 'ts'}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_qonnx(self.model, torch.zeros(1, 16), str(path), dynamo=dynamo)
            self.paths[dynamo] = path
        return self.paths[dynamo]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _Exports(tmp_path_factory.mktemp("brevitas"))


def _module_codes(model, x):
    """Brevitas's codes: input, hidden layer, output."""
    with torch.no_grad():
        a = model.inp(torch.from_numpy(x))
        h = model.relu(model.fc1(a))
        y = model.fc2(h)
    y_scale = float(model.fc2.output_quant.scale())
    codes = [
        torch.round(a.value / a.scale),
        torch.round(h.value / h.scale),
        torch.round(y / y_scale),
    ]
    return [c.numpy().astype(np.int64) for c in codes], y_scale


@pytest.mark.parametrize(
    "dynamo", [pytest.param(True, marks=pytest.mark.slow), False], ids=["dynamo", "torchscript"]
)
def test_brevitas_mlp_imports_and_golden_equals_the_module(exported, dynamo):
    graph = import_onnx(exported.path(dynamo))
    model = exported.model
    assert [n.op for n in graph.nodes] == ["dense", "dense"]
    first, second = graph.nodes
    assert [str(n.attrs["weight_dtype"]) for n in graph.nodes] == ["int4n", "int4n"]
    assert len(set(first.weights["multiplier"].tolist())) > 1  # per-channel weight scales
    assert str(graph.tensor(graph.inputs[0]).dtype) == "int8"
    assert str(graph.tensor(first.outputs[0]).dtype) == "uint4" and first.attrs["relu"]
    assert str(graph.tensor(second.outputs[0]).dtype) == "int8"
    with torch.no_grad():
        w = model.fc1.quant_weight()
        assert (first.weights["weight"] == torch.round(w.value / w.scale).numpy()).all()
    x = np.random.default_rng(1).normal(0, 1.5, (1000, 16)).astype(np.float32)
    (c_in, c_hidden, c_out), scale = _module_codes(model, x)
    assert (reference.quantize_inputs(graph, x) == c_in).all()
    for node, xin, want in ((first, c_in, c_hidden), (second, c_hidden, c_out)):
        diff = np.abs(reference.OPS["dense"](node, xin) - want)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (node.name, (diff > 0).mean())
    # end to end a hidden 1-code difference moves the output by up to max|w| codes
    golden = reference.predict(graph, x)
    assert np.isclose(float(graph.tensor(graph.outputs[0]).quant.scale), scale)
    assert (golden.argmax(1) == c_out.argmax(1)).mean() >= 0.99


def test_golden_equals_qonnx_executor(exported):
    pytest.importorskip("qonnx", reason="optional extra: pip install -e .[brevitas]")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    path = exported.path(False)
    graph = import_onnx(path)
    wrapper = ModelWrapper(str(path)).transform(InferShapes())
    iname, oname = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    x = np.random.default_rng(2).normal(0, 1.5, (60, 16)).astype(np.float32)
    theirs = np.concatenate(
        [execute_onnx(wrapper, {iname: x[i : i + 1]})[oname] for i in range(len(x))]
    )
    ours = reference.predict(graph, x)
    lsb = float(graph.tensor(graph.outputs[0]).quant.scale)
    assert np.abs(ours - theirs).max() <= lsb * (1 + 1e-4)
    assert (np.abs(ours - theirs) > lsb / 2).mean() < 0.01


def test_inspect_lists_the_4bit_layers(exported):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["inspect", str(exported.path(False)), "--json"])
    assert result.exit_code == 0, result.output
    import json

    facts = json.loads(result.output)
    assert facts["error"] is None and facts["unsupported"] == []
    assert [f["weight_dtype"] for f in facts["layers"]] == ["int4n", "int4n"]
    assert [f["macs"] for f in facts["layers"]] == [16 * 12, 12 * 5]
    assert all("dense" in f["engines"] for f in facts["layers"])


@pytest.mark.sim
def test_flow_generate_and_simulate_on_the_dense_engine(exported, tmp_path):
    """`nnloom generate` + `nnloom sim` (the flow without the bitstream build) on the 4-bit
    Brevitas MLP: the Verilog equals the golden on every vector."""
    from typer.testing import CliRunner

    from flows.cli import app

    art = tmp_path / "art"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "generate",
            str(exported.path(False)),
            "-o",
            str(art),
            "--random",
            "16",
            "--engine",
            "dense",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sim", str(art)])
    assert result.exit_code == 0, result.output
    assert "bit-exact" in result.output


def test_float_bias_is_rounded_with_a_warning(tmp_path, caplog):
    """Brevitas's default QuantLinear keeps a float bias; the importer rounds it to the
    accumulator's LSB and says so, naming the node and the way to bit-exactness."""
    import logging
    import warnings

    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import Int8ActPerTensorFloat
    from torch import nn

    torch.manual_seed(3)
    model = nn.Sequential(
        qnn.QuantIdentity(bit_width=8, return_quant_tensor=True),
        qnn.QuantLinear(6, 3, bias=True, weight_bit_width=4, output_quant=Int8ActPerTensorFloat),
    )
    model.train()
    with torch.no_grad():
        model[1].bias.uniform_(-1, 1)
        model(torch.randn(32, 6))
    model.eval()
    path = tmp_path / "float_bias.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.zeros(1, 6), str(path), dynamo=False)
    with caplog.at_level(logging.WARNING, logger="frontends.onnx_import"):
        graph = import_onnx(path)
    assert graph.nodes[0].op == "dense"
    (message,) = [r.getMessage() for r in caplog.records if "bias" in r.getMessage()]
    assert message.startswith("node '/1/Gemm' (Gemm, opset ") and "Int32Bias" in message
