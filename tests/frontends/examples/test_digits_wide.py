"""The gemm benchmark network (``digits-wide``) end to end, training included (slow): ternary
hidden weights, int8 classifier, accuracy within a point of its int8 twin, and the
heterogeneous overlays give the LUT core hidden channels, bit-exact in the overlay model."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from frontends.examples._training import one_thread
    from frontends.examples.digits_wide import make_digits_wide

    with one_thread():
        yield make_digits_wide(tmp_path_factory.mktemp("wide"))


def test_ternary_hidden_layer_within_a_point_of_int8(made):
    from frontends.onnx_import import import_onnx

    assert made.float_accuracy > 0.95
    assert made.int8_accuracy - made.accuracy <= 0.01
    weights = [str(node.attrs["weight_dtype"]) for node in import_onnx(made.model).nodes]
    assert weights[0] == "ternary" and weights[-1].startswith("int8")


def test_hetero_overlays_split_the_hidden_layer_bit_exactly(made):
    from frontends.onnx_import import import_onnx
    from frontends.reference import quantize_inputs, run
    from rtl_gen.gemm import BOARDS, compile_graph, model

    graph = import_onnx(made.model)
    x = np.load(made.test_data)["x"][:16]
    codes = quantize_inputs(graph, x)
    golden = run(graph, codes)[graph.outputs[0]].reshape(len(x), -1)
    for board in BOARDS:
        program = compile_graph(graph, BOARDS[board]["hetero"], split="auto")
        hidden, classifier = program.layers
        # ternary channels have no error on the LUT core: the split is by latency alone, so
        # the LUT core may take the hidden layer whole when its lanes hold every channel
        # (the ULX3S's 64) and shares it with the DSP core otherwise (the UP5K's 20)
        cfg = BOARDS[board]["hetero"]
        assert hidden.n_lut + hidden.n_dsp == hidden.n and hidden.lut_error == 0
        assert hidden.n_lut > 0 and (hidden.n_dsp > 0 or cfg.lut_lanes >= hidden.n)
        assert classifier.n_lut == 0  # int8 weights do not fit ternary lanes
        assert (model.run(program, codes) == golden).all()
