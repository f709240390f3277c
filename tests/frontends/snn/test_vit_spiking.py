"""The digits vision transformer (``nnloom example digits-vit``) converted to a spiking graph:
run to silence on every test vector, every tensor's settled code equals the integer QANN's
(onnxruntime QDQ and fake-quant QAT exports), and every sample falls silent within the
proven bound."""

import numpy as np
import pytest

from frontends import reference
from frontends.snn.graph import convert_graph, run_graph
from frontends.snn.units import StbifUnit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    from frontends.examples.digits_vit import make_digits_vit

    return make_digits_vit(tmp_path_factory.mktemp("vit"))


@pytest.mark.parametrize("export", ["quantized", "qat"])
def test_digits_vit_spiking_graph_equals_qann(vit, export):
    from frontends.onnx_import import import_onnx

    graph = import_onnx(getattr(vit, export))
    sg = convert_graph(graph)
    assert sum(isinstance(u, StbifUnit) for u in sg.units) >= 10  # dense layers and SESA
    with np.load(vit.test_data) as f:
        x = reference.quantize_inputs(graph, f["x"])
    run = run_graph(sg, x)
    env = reference.run(graph, x)
    for node in graph.nodes:
        name = node.outputs[0]
        assert np.array_equal(run.codes[name], env[name]), node.name
    assert run.silent.all() and (run.steps <= sg.t_max).all()
