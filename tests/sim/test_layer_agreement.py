"""A transformer's golden against onnxruntime layer by layer (``sim.layer_agreement``): the
digits ViT's architecture (untrained, seeded, torch's own modules, quantized by onnxruntime
as the example is) on 200 digits; a golden whose LayerNorm rounds down instead of to the
nearest code stays within one code everywhere but fails the rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.layer_agreement import LAYER_EQUAL, check_layers, is_transformer


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    from frontends.examples.digits_mlp import load_digits_split
    from frontends.examples.digits_vit import build_vit, export_vit, quantize_vit
    from frontends.onnx_import import import_onnx

    tmp = tmp_path_factory.mktemp("vit")
    x = load_digits_split()[0]
    raw = export_vit(build_vit(seed=5), tmp / "float.onnx", dynamo=False)
    path = quantize_vit(raw, tmp / "vit.onnx", x[:64])
    return import_onnx(path), path, x[64:264]


def test_every_layer_agrees(vit):
    graph, path, x = vit
    assert is_transformer(graph)
    check = check_layers(graph, path, x)
    print(f"\n{check.line('onnxruntime')}")
    assert check.failed is None, check.failed
    assert check.layers >= 30 and check.worst_equal >= LAYER_EQUAL and check.largest <= 1


def test_a_layernorm_that_rounds_down_fails(vit):
    graph, path, x = vit
    i = next(i for i, n in enumerate(graph.nodes) if n.op == "layernorm")
    nodes = list(graph.nodes)
    nodes[i] = replace(nodes[i], attrs=dict(nodes[i].attrs, rounding="floor"))
    check = check_layers(replace(graph, nodes=nodes), path, x)
    assert check.failed is not None and nodes[i].name in check.failed
    assert check.worst_within_one == 1.0  # within one code everywhere: only "equal" sees it


def test_an_approximated_golden_is_judged_on_codes(vit):
    # an artefact whose golden is not the model's own (the LUT core's approximated
    # weights): the per-layer check would not cover what the RTL computes
    from frontends import reference
    from sim.agreement import _layer_rule

    graph, path, x = vit
    codes = reference.quantize_inputs(graph, x[:20])
    out = reference.run(graph, codes)[graph.outputs[0]].reshape(20, -1)
    vectors = {"inputs": codes.reshape(20, -1), "outputs": out}
    assert _layer_rule(path, x[:20], vectors)[0] == "transformer"
    out = out.copy()
    out[3, 2] += 1
    rule, note = _layer_rule(path, x[:20], {**vectors, "outputs": out})
    assert rule == "codes" and "own integer golden" in note
