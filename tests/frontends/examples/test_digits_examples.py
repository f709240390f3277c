"""The mixed-bit QAT and Brevitas digits examples end to end (training included, hence slow):
the integer golden of the exported model classifies the test split as the fake-quantized
module does."""

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_digits_qat_mixed_bits(tmp_path):
    from frontends.compress.qat import LayerBits
    from frontends.examples.digits_qat import make_digits_qat
    from frontends.onnx_import import import_onnx

    made = make_digits_qat(
        tmp_path, bits=[LayerBits(weight=4, act=4), LayerBits(weight=2, act=8)], epochs=10
    )
    n = len(np.load(made.test_data)["y"])
    assert made.float_accuracy > 0.95
    assert made.qat_accuracy > made.ptq_accuracy
    # the golden and the fake-quant module may disagree only where a 1-code difference
    # (see tests/frontends/compress/test_qat.py) flips an argmax: at most 1% of samples
    assert abs(made.golden_accuracy - made.qat_accuracy) <= 0.01 + 1 / n
    weights = [str(node.attrs["weight_dtype"]) for node in import_onnx(made.model).nodes]
    assert weights == ["int4n", "ternary"]


def test_digits_brevitas(tmp_path):
    pytest.importorskip("brevitas", reason="optional extra: pip install -e .[brevitas]")
    from frontends.examples.digits_brevitas import make_digits_brevitas

    made = make_digits_brevitas(tmp_path, epochs=15)
    assert made.module_accuracy > 0.9
    assert abs(made.golden_accuracy - made.module_accuracy) <= 0.01
