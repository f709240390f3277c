"""Framework agreement of a transformer graph: end to end, and layer by layer.

One-code differences of any requantization travel through a transformer's attention blocks
and grow. With 15-bit multipliers (``frontends.fixedpoint.MULTIPLIER_BITS``) only 96.0 % of
the digits ViT's logit codes (540 test digits) were within one code of onnxruntime without
graph optimizations, though every layer fed onnxruntime's input codes was within one code
on every element; so the importer gives a transformer's requantizations
``WIDE_MULTIPLIER_BITS`` = 22 bits: 99.96 % (QDQ export), 99.67 % (QAT export).
onnxruntime's default graph (fused QLinearMatMul/QGemm and QLinearSoftmax, whose lookup
table rounds differently on 6 % of the attention weights) is within one code of its own
plain graph on only 84 % of the logits.

So for a graph with LayerNorm, a row softmax or an activation x activation MatMul the
judged rule is, with the source model in onnxruntime without graph optimizations
(``ORT_DISABLE_ALL``: each op as the ONNX file states it):

- end to end, the RTL's output codes within one code on at least 99 % of the elements
  (``sim.agreement.TOLERANCE_FRACTION``) and its argmax equal on at least ``ARGMAX`` of the
  vectors; the default (optimized) session's figures are reported;
- per layer, as a diagnosis that names the op: the golden fed onnxruntime's input codes
  gives onnxruntime's code on at least ``LAYER_EQUAL`` of the elements and is within one
  code on at least ``LAYER_WITHIN_ONE`` (a rounding or scale error in any op fails here
  however the blocks mix it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontends.ir import TRANSFORMER_OPS, Graph, is_transformer

__all__ = [
    "LAYER_EQUAL",
    "LAYER_WITHIN_ONE",
    "ARGMAX",
    "TRANSFORMER_OPS",
    "LayerCheck",
    "is_transformer",
    "check_layers",
]

LAYER_EQUAL = 0.99
LAYER_WITHIN_ONE = 0.999
ARGMAX = 0.99


@dataclass(frozen=True)
class LayerCheck:
    """Per-layer agreement of the golden with plain onnxruntime; ``failed`` names the first
    layer outside the rule (None: all within)."""

    layers: int
    elements: int
    worst_equal: float
    worst_within_one: float
    largest: int
    failed: str | None

    def line(self, framework: str) -> str:
        return (
            f"golden vs {framework} without graph optimizations, layer by layer "
            f"({self.layers} layers fed onnxruntime's input codes, {self.elements} "
            f"elements): at least {100 * self.worst_equal:.2f} % equal and "
            f"{100 * self.worst_within_one:.2f} % within one code in every layer, "
            f"largest difference {self.largest} codes"
        )


def check_layers(graph: Graph, source: Path, x: np.ndarray) -> LayerCheck:
    """Every golden layer of ``graph`` whose output the ONNX file ``source`` quantizes, fed
    onnxruntime's input codes (float inputs ``x``), against onnxruntime's plain graph."""
    from frontends.ort_agreement import layer_agreement

    found = layer_agreement(graph, source, np.asarray(x, np.float32), optimized=False)
    failed = next(
        (
            f"layer '{a.node}' ({a.op}): {100 * a.equal:.2f} % of {a.elements} codes equal "
            f"onnxruntime's, {100 * a.within_one:.2f} % within one code (the rule: "
            f"{100 * LAYER_EQUAL:g} % and {100 * LAYER_WITHIN_ONE:g} %)"
            for a in found
            if a.equal < LAYER_EQUAL or a.within_one < LAYER_WITHIN_ONE
        ),
        None,
    )
    return LayerCheck(
        len(found),
        sum(a.elements for a in found),
        min((a.equal for a in found), default=1.0),
        min((a.within_one for a in found), default=1.0),
        max((a.largest for a in found), default=0),
        failed,
    )
