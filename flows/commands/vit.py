"""``nnloom example digits-vit``: the tiny vision transformer on scikit-learn's digits
(``frontends.examples.digits_vit``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXAMPLES"]


def _digits_vit(out: Path) -> str:
    from frontends.examples.digits_vit import make_digits_vit

    made = make_digits_vit(out)
    return (
        f"test accuracy: float {100 * made.float_accuracy:.2f} %, onnxruntime QDQ "
        f"{100 * made.ort_accuracy:.2f} %, integer golden {100 * made.golden_accuracy:.2f} %\n"
        f"QAT (torch fake-quant): module {100 * made.qat_accuracy:.2f} %, integer golden "
        f"{100 * made.qat_golden_accuracy:.2f} %\n"
        f"quantized model {made.quantized}\nquantized (dynamo export) {made.dynamo}\n"
        f"QAT model {made.qat}\nQAT (dynamo export) {made.qat_dynamo or 'failed'}\n"
        f"float model {made.float_model}\ntest data {made.test_data}"
    )


EXAMPLES = {
    "digits-vit": (
        "a tiny vision transformer on scikit-learn's digits (16 tokens, 2 pre-LN blocks, "
        "2 heads, GELU), QDQ int8 per-channel from the legacy and dynamo exporters",
        _digits_vit,
    ),
}
