"""The MLPerf Tiny examples (``nnloom example tiny-kws | tiny-ic | tiny-ad | tiny-vww``), the
digits-sized twins (``tiny-kws-digits | tiny-ic-digits | tiny-vww-digits``) and the Brevitas
ternary variants for the LUT core (``tiny-kws-ternary | tiny-ic-ternary`` and their twins)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from frontends.examples.tiny import TinyExample

__all__ = ["EXAMPLES", "example_lines"]

_SYNTHETIC = (
    "weights trained briefly on SYNTHETIC data (the benchmark's dataset cannot be "
    "downloaded here): accuracy is on synthetic test data, not the benchmark's"
)


def example_lines(made: TinyExample) -> str:
    """What ``nnloom example`` prints for a made ``TinyExample``."""
    if made.float_accuracy is not None:
        figures = (
            f"test accuracy float {100 * made.float_accuracy:.2f} %, int8 (onnxruntime) "
            f"{100 * made.quantized_accuracy:.2f} %"
        )
    else:
        figures = (
            f"reconstruction MSE float {made.float_mse:.4f}, int8 (onnxruntime) "
            f"{made.quantized_mse:.4f}"
        )
    note = _SYNTHETIC if made.synthetic else "trained on scikit-learn's digits"
    return (
        f"{made.name}: {note}\n{figures}\nquantized model {made.quantized}\n"
        f"float model {made.float_model}\ntest data {made.test_data}"
    )


def _maker(name: str):
    def make(out: Path) -> str:
        from frontends.examples.tiny import make_tiny

        return example_lines(make_tiny(name, out))

    return make


def _twin_maker(kind: str):
    def make(out: Path) -> str:
        from frontends.examples.tiny import make_tiny_twin

        return example_lines(make_tiny_twin(kind, out))

    return make


def _brevitas_maker(name: str):
    def make(out: Path) -> str:
        from frontends.errors import UsageError

        try:
            import brevitas  # noqa: F401
        except ImportError:
            raise UsageError(
                f"the {name.replace('_', '-')} example needs Brevitas: "
                "pip install 'nnloom[brevitas]'"
            ) from None
        from frontends.examples.tiny_brevitas import make_tiny_brevitas

        made = make_tiny_brevitas(name, out)
        note = _SYNTHETIC if made.synthetic else "trained on scikit-learn's digits"
        return (
            f"{made.name}: {note}\ntest accuracy Brevitas module "
            f"{100 * made.module_accuracy:.2f} %, integer golden "
            f"{100 * made.golden_accuracy:.2f} %\nQONNX model {made.model}\n"
            f"test data {made.test_data}"
        )

    return make


EXAMPLES = {
    "tiny-kws": (
        "MLPerf Tiny keyword spotting DS-CNN (49x10x1, 12 classes), QDQ int8 "
        "per-channel; synthetic training data",
        _maker("tiny_kws"),
    ),
    "tiny-ic": (
        "MLPerf Tiny image classification ResNet-8 (32x32x3, 10 classes), QDQ int8 "
        "per-channel; synthetic training data",
        _maker("tiny_ic"),
    ),
    "tiny-ad": (
        "MLPerf Tiny anomaly detection FC autoencoder (640 in/out, BatchNorm), QDQ "
        "int8 per-channel; synthetic training data",
        _maker("tiny_ad"),
    ),
    "tiny-vww": (
        "MLPerf Tiny visual wake words MobileNetV1 0.25 (96x96x3, 2 classes), QDQ "
        "int8 per-channel; synthetic training data",
        _maker("tiny_vww"),
    ),
    "tiny-kws-digits": (
        "the DS-CNN's digits-sized twin on scikit-learn's digits, QDQ int8",
        _twin_maker("kws"),
    ),
    "tiny-ic-digits": (
        "the ResNet-8's digits-sized twin on scikit-learn's digits, QDQ int8",
        _twin_maker("ic"),
    ),
    "tiny-vww-digits": (
        "the MobileNetV1's digits-sized twin on scikit-learn's digits, QDQ int8",
        _twin_maker("vww"),
    ),
    "tiny-kws-ternary": (
        "the DS-CNN in Brevitas, ternary pointwise weights for the LUT core "
        "(QONNX; extra 'brevitas'); synthetic training data",
        _brevitas_maker("tiny_kws_ternary"),
    ),
    "tiny-ic-ternary": (
        "the ResNet-8 in Brevitas, ternary inner convolutions for the LUT core "
        "(QONNX; extra 'brevitas'); synthetic training data",
        _brevitas_maker("tiny_ic_ternary"),
    ),
    "tiny-ic-int4": (
        "the ResNet-8 in Brevitas with 4-bit weights in every layer, the variant that "
        "fits the iCEBreaker (QONNX; extra 'brevitas'); synthetic training data",
        _brevitas_maker("tiny_ic_int4"),
    ),
    "tiny-kws-digits-ternary": (
        "the DS-CNN digits twin, ternary pointwise weights (Brevitas)",
        _brevitas_maker("tiny_kws_digits_ternary"),
    ),
    "tiny-ic-digits-ternary": (
        "the ResNet-8 digits twin, ternary inner convolutions (Brevitas)",
        _brevitas_maker("tiny_ic_digits_ternary"),
    ),
}
