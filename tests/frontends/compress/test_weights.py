"""Compression helpers: ternary codes and closed-form scales, structured pruning, per-channel
quantization; and the facts the importer reports for a model built from them."""

import numpy as np
from models import QonnxBuilder

from frontends.compress import prune_channels, quantize_weights, ternarize
from frontends.facts import layer_facts
from frontends.onnx_import import import_onnx


def test_ternarize_thresholds_and_scale():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (4, 4000))
    codes, scale = ternarize(w, k=0.7)
    assert set(np.unique(codes)) == {-1, 0, 1}
    # N(0, s): P(|w| > 0.7 s) = 0.484; truncated mean beyond 0.7 s = s * phi(.7)/(1-Phi(.7))
    assert abs((codes != 0).mean() - 0.484) < 0.02
    empirical = np.array([np.abs(row[c != 0]).mean() for row, c in zip(w, codes)])
    assert np.allclose(scale, empirical, rtol=0.03)


def test_prune_and_quantize():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1, (8, 5))
    w[2] *= 0.01
    pruned, keep = prune_channels(w, 0.25)
    assert not keep[2] and keep.sum() == 6 and not pruned[~keep].any()
    codes, scale = quantize_weights(pruned, 4)
    assert codes.min() >= -7 and codes.max() <= 7
    assert np.allclose(codes[keep] * scale[keep, None], pruned[keep], atol=scale.max() / 2)


def test_facts_of_a_compressed_model(tmp_path):
    rng = np.random.default_rng(2)
    w1, _ = prune_channels(rng.normal(0, 0.5, (12, 16)), 0.25)  # (out, in)
    c1, s1 = quantize_weights(w1, 4)
    t2, s2 = ternarize(rng.normal(0, 0.5, (6, 12)))
    b = QonnxBuilder()
    x = b.quant("x", 1 / 64, 8)
    h = b.node(
        "Gemm", [x, b.quant(b.init(c1 * s1[:, None]), s1.reshape(-1, 1), 4, narrow=1)], transB=1
    )
    h = b.quant(b.node("Relu", [h]), 0.25, 4, signed=0)
    y = b.node(
        "Gemm", [h, b.quant(b.init(t2 * s2[:, None]), s2.reshape(-1, 1), 2, narrow=1)], transB=1
    )
    path, _ = b.save(tmp_path / "c.onnx", b.quant(y, 0.1, 8), [1, 16], [1, 6])
    graph = import_onnx(path)
    first, second = layer_facts(graph)
    assert len(first.pruned_outputs) == 3 and first.weight_bits <= 4
    assert (graph.nodes[0].weights["weight"] == c1).all()  # codes survive export + import
    assert second.ternary and (graph.nodes[1].weights["weight"] == t2).all()
