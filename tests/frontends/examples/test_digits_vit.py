"""``nnloom example digits-vit`` end to end (training included, hence slow): accuracy of the
float model, onnxruntime's QDQ model and the integer golden; the golden against onnxruntime
layer by layer and at the output (within one code on 99 % of the logits), for the legacy
and the dynamo export; ``nnloom inspect``."""

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from frontends.examples.digits_vit import make_digits_vit

    return make_digits_vit(tmp_path_factory.mktemp("vit"))


def test_accuracy(made):
    assert made.float_accuracy >= 0.95
    assert abs(made.golden_accuracy - made.float_accuracy) <= 0.015
    print(
        f"\nfloat {made.float_accuracy:.4f}, onnxruntime QDQ {made.ort_accuracy:.4f}, "
        f"golden {made.golden_accuracy:.4f}"
    )


@pytest.mark.parametrize("export", ["quantized", "dynamo"])
def test_golden_agrees_with_onnxruntime(made, export):
    from frontends.onnx_import import import_onnx
    from frontends.ort_agreement import layer_agreement, output_agreement

    path = getattr(made, export)
    graph = import_onnx(path)
    x = np.load(made.test_data)["x"]
    for optimized in (False, True):
        layers = layer_agreement(graph, path, x, optimized=optimized)
        worst = min(layers, key=lambda la: (la.within_one, la.equal))
        print(f"\n{export} per layer (onnxruntime optimized={optimized}): worst {worst}")
        assert all(la.within_one >= 0.99 and la.largest <= 1 for la in layers), layers
    out = output_agreement(graph, path, x)
    print(f"{export} output: {out}")
    # the rule end to end, against the file's own ops (22-bit multipliers; 15-bit
    # ones gave 96.0 %); the fused QLinearSoftmax of the optimized graph is further away
    # from the file's ops than the golden is
    assert out.plain_within_one >= 0.99 and out.plain_argmax >= 0.99 and out.argmax >= 0.99
    assert out.plain_within_one >= out.ort_self_within_one


def test_inspect_lists_the_layers(made):
    from flows.cli import app

    result = CliRunner().invoke(app, ["inspect", str(made.quantized), "--format", "csv"])
    assert result.exit_code == 0, result.output
    for op in ("layernorm", "matmul", "nonlinear", "dense", "avgpool"):
        assert op in result.output
    assert "unsupported" not in result.output
