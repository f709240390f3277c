"""NIR import: the sinabs N-MNIST CNN (the NIR paper's) and small graphs into integer IF
networks; the integer run tracks the float one; what is not supported is refused by name."""

from pathlib import Path

import numpy as np
import pytest

from frontends.errors import ModelError
from frontends.snn.nir_import import (NirOptions, import_nir, run_float_network,
                                      run_if_network)

from .nir_graphs import tiny_cnn

SINABS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "nir" / "cnn_sinabs.nir"


@pytest.fixture(scope="module")
def sinabs():
    if not SINABS.is_file():
        pytest.skip(f"{SINABS} is absent (the shared test data sits beside the repository)")
    return import_nir(SINABS)


def test_sinabs_cnn_imports(sinabs):
    assert [l.name for l in sinabs.layers] == ["1", "3", "6", "10", "12"]
    assert [l.source for l in sinabs.layers] == ["0", "2", "4+5", "7+9", "11"]
    assert [l.n_out for l in sinabs.layers] == [4096, 4096, 512, 256, 10]
    assert sinabs.neurons == 8970 and sinabs.in_shape == (2, 34, 34)
    for layer in sinabs.layers:
        assert np.abs(layer.weight).max() <= 127 * 4      # int8, pools add up to 4
        assert (layer.theta > 0).all() and (layer.v_reset == 0).all()


def test_sinabs_convolutions_keep_shared_kernels(sinabs):
    convs = [l.conv for l in sinabs.layers]
    assert convs[-1] is None                              # Affine 256 -> 10 on a flat vector
    assert [c.kernel.shape for c in convs[:4]] == [(16, 2, 5, 5), (16, 16, 3, 3),
                                                   (8, 16, 3, 3), (256, 8, 4, 4)]
    assert [c.pool for c in convs[:4]] == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert convs[0].stride == (2, 2) and convs[0].padding == (1, 1)
    # 16*2*25 + 16*16*9 + 8*16*9 + 256*128 + 10*256: the spec's "about 40 k weights"
    assert sinabs.shared_weight_words() == 39584
    for layer in sinabs.layers[2:4]:
        assert np.array_equal(layer.conv.dense(), layer.weight)


def test_sinabs_integer_run_tracks_float(sinabs):
    rng = np.random.default_rng(0)
    spikes = (rng.random((3, 12, sinabs.n_in)) < 0.05).astype(np.int64)
    counts, totals = run_if_network(sinabs, spikes)
    fcounts, ftotals = run_float_network(sinabs, spikes)
    assert counts.sum() > 0 and totals.shape == (3, 5)
    # only int8 weight rounding separates them
    assert np.abs(totals - ftotals).sum() < 0.1 * ftotals.sum()


def test_options_change_the_integer_semantics():
    graph = tiny_cnn(1)
    spikes = (np.random.default_rng(1).random((4, 10, 72)) < 0.3).astype(np.int64)
    a = run_if_network(import_nir(graph), spikes)[1]
    b = run_if_network(import_nir(graph, NirOptions(cmp=">=", reset="value")), spikes)[1]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_refuses_unsupported_nodes_by_name():
    with pytest.raises(ModelError, match=r"^NIR node 'if1' \(CubaLIF\): not supported by the "
                                         r"snn engine"):
        import_nir(tiny_cnn(0, neuron="CubaLIF"))
    with pytest.raises(ModelError, match=r"^NIR import: cmp '<' is not '>' \(NIR\) or '>='$"):
        NirOptions(cmp="<")


def test_refuses_branches():
    import nir
    graph = tiny_cnn(0)
    graph = nir.NIRGraph(nodes=graph.nodes, edges=list(graph.edges) + [("conv", "output")],
                         type_check=False)
    with pytest.raises(ModelError, match=r"^NIR node 'conv' \(Conv2d\) feeds 2 nodes"):
        import_nir(graph)
