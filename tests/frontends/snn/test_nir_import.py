"""NIR import: the sinabs N-MNIST CNN (the NIR paper's) and small graphs into integer IF,
LIF, CubaLIF and LI networks; the integer run tracks the float one; what is not supported is
refused by name."""

import numpy as np
import pytest

from frontends.errors import ModelError
from frontends.snn.nir_import import NirOptions, import_nir, run_float_network, run_if_network

from .nir_graphs import sinabs_cnn, tiny_cnn, tiny_cuba


@pytest.fixture(scope="module")
def sinabs(tmp_path_factory):
    """The sinabs CNN's graph written to a .nir file and imported from it."""
    import nir

    path = tmp_path_factory.mktemp("nir") / "cnn_sinabs.nir"
    nir.write(path, sinabs_cnn(0))
    return import_nir(path)


def test_sinabs_cnn_imports(sinabs):
    assert [l.name for l in sinabs.layers] == ["1", "3", "6", "10", "12"]
    assert [l.source for l in sinabs.layers] == ["0", "2", "4+5", "7+9", "11"]
    assert [l.n_out for l in sinabs.layers] == [4096, 4096, 512, 256, 10]
    assert sinabs.neurons == 8970 and sinabs.in_shape == (2, 34, 34)
    for layer in sinabs.layers:
        assert np.abs(layer.weight).max() <= 127 * 4  # int8, pools add up to 4
        assert (layer.theta > 0).all() and (layer.v_reset == 0).all()


def test_sinabs_convolutions_keep_shared_kernels(sinabs):
    convs = [l.conv for l in sinabs.layers]
    assert convs[-1] is None  # Affine 256 -> 10 on a flat vector
    assert [c.kernel.shape for c in convs[:4]] == [
        (16, 2, 5, 5),
        (16, 16, 3, 3),
        (8, 16, 3, 3),
        (256, 8, 4, 4),
    ]
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
    import nir

    graph = tiny_cnn(0)
    nodes = dict(graph.nodes)
    nodes["if1"] = nir.Delay(delay=np.ones(27))
    with pytest.raises(
        ModelError,
        match=r"^NIR node 'if1' \(Delay\): not supported by the "
        r"snn engine",
    ):
        import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    with pytest.raises(ModelError, match=r"^NIR import: cmp '<' is not '>' \(NIR\) or '>='$"):
        NirOptions(cmp="<")


def test_refuses_branches():
    import nir

    graph = tiny_cnn(0)
    graph = nir.NIRGraph(
        nodes=graph.nodes, edges=list(graph.edges) + [("conv", "output")], type_check=False
    )
    with pytest.raises(ModelError, match=r"^NIR node 'conv' \(Conv2d\) feeds 2 nodes"):
        import_nir(graph)


# CubaLIF and LI: the integer golden against the float forward-Euler network of the same NIR
# graph. Only int8 weight rounding and the rounding of the two decays separate them (measured:
# spike totals within 0.61 % per layer, LI membranes within 2.1 % of their range).
CUBA_SPIKE_TOLERANCE = 0.02  # |integer - float| spike totals, relative, per layer
LI_TOLERANCE = 0.05  # |integer * out_unit - float| membranes, of max |float|


@pytest.mark.parametrize("leak", ["shift", "beta"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cuba_lif_integer_run_tracks_float(leak, seed):
    net = import_nir(tiny_cuba(seed), NirOptions(leak=leak))
    assert [l.kind for l in net.layers] == ["cubalif", "cubalif"]
    first = net.layers[0]
    if leak == "shift":  # tau_syn = 4 dt, tau_mem = 8 dt: alpha = 1 - 2**-2, beta = 1 - 2**-3
        assert (first.syn_shift, first.leak_shift, first.alpha, first.beta) == (2, 3, None, None)
    else:  # 0.75 and 0.875 at 8 fraction bits
        assert (first.alpha, first.beta, first.syn_shift) == (192, 224, None)
    spikes = (np.random.default_rng(seed).random((16, 40, 8)) < 0.3).astype(np.int64)
    counts, totals = run_if_network(net, spikes)
    fcounts, ftotals = run_float_network(net, spikes)
    assert (ftotals.sum(axis=0) > 100).all()  # both layers fire
    rel = np.abs(totals.sum(axis=0) - ftotals.sum(axis=0)) / ftotals.sum(axis=0)
    assert (rel <= CUBA_SPIKE_TOLERANCE).all(), rel
    assert np.abs(counts - fcounts).sum() <= CUBA_SPIKE_TOLERANCE * fcounts.sum()


def test_cuba_lif_gains_fold_into_the_threshold():
    """w_in and r other than snnTorch's (gain w_in*dt/tau_syn = 0.5, r*dt/tau_mem = 0.25):
    the integer threshold grows by 1 / (0.5 * 0.25) and the spikes still track the float."""
    base = import_nir(tiny_cuba(0))
    net = import_nir(tiny_cuba(0, w_in=2.0, r=2.0))
    assert abs(net.layers[0].theta[0] - 8 * base.layers[0].theta[0]) <= 8
    spikes = (np.random.default_rng(5).random((8, 40, 8)) < 0.5).astype(np.int64)
    totals = run_if_network(net, spikes)[1].sum(axis=0)
    ftotals = run_float_network(net, spikes)[1].sum(axis=0)
    assert ftotals[0] > 100
    assert (np.abs(totals - ftotals) <= CUBA_SPIKE_TOLERANCE * ftotals + 2).all()


def test_li_readout_outputs_membranes():
    net = import_nir(tiny_cuba(0, readout="LI"))
    last = net.layers[-1]
    assert last.kind == "li" and not last.spiking and last.leak_shift == 3
    spikes = (np.random.default_rng(0).random((6, 40, 8)) < 0.3).astype(np.int64)
    v, totals = run_if_network(net, spikes)
    fv, _ = run_float_network(net, spikes)
    assert v.dtype == np.int64 and (totals[:, 1] == 0).all()
    err = np.abs(v * last.out_unit - fv).max()
    assert err <= LI_TOLERANCE * np.abs(fv).max(), err


def test_cuba_and_li_refusals_name_the_node():
    import nir

    graph = tiny_cuba(0)
    nodes = dict(graph.nodes)
    n = 10
    nodes["n0"] = nir.CubaLIF(
        tau_syn=np.linspace(2e-4, 4e-4, n),
        tau_mem=np.ones(n) * 8e-4,
        r=np.ones(n),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
    )
    with pytest.raises(
        ModelError,
        match=r"^NIR node 'n0' \(CubaLIF\): tau_syn differs between "
        r"neurons; the engine takes one leak per layer$",
    ):
        import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    nodes["n0"] = nir.CubaLIF(
        tau_syn=np.ones(n) * 4e-4,
        tau_mem=np.ones(n) * 8e-4,
        r=np.ones(n),
        v_leak=np.ones(n),
        v_threshold=np.ones(n),
    )
    with pytest.raises(ModelError, match=r"^NIR node 'n0' \(CubaLIF\): v_leak must be 0"):
        import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    nodes["n0"] = nir.CubaLIF(
        tau_syn=np.ones(n) * 0.5e-4,
        tau_mem=np.ones(n) * 8e-4,
        r=np.ones(n),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
    )
    with pytest.raises(
        ModelError,
        match=r"^NIR node 'n0' \(CubaLIF\): tau_syn gives the decay "
        r"1 - dt/tau_syn = -1 at dt 0.0001; it must lie in",
    ):
        import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    nodes["n0"] = nir.LI(tau=np.ones(n) * 8e-4, r=np.ones(n), v_leak=np.zeros(n))
    with pytest.raises(
        ModelError,
        match=r"^NIR node 'n1' \(CubaLIF\): follows the LI readout "
        r"'n0'; an LI layer \(non-spiking\) must be the last",
    ):
        import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))


def test_avgpool_is_a_sumpool_with_its_scale_folded():
    """small_sinabs with each SumPool2d 2x2 made an AvgPool2d and the next weights made four
    times larger: the same float network, so the same integer one (kernels kept shared)."""
    import nir

    from .nir_graphs import small_sinabs

    graph = small_sinabs(1, side=10)
    nodes = dict(graph.nodes)
    for pool, nxt in (("p1", "c2"), ("p2", "fc0")):
        p = nodes[pool]
        nodes[pool] = nir.AvgPool2d(kernel_size=p.kernel_size, stride=p.stride, padding=p.padding)
        w = nodes[nxt]
        if isinstance(w, nir.Conv2d):
            nodes[nxt] = nir.Conv2d(
                input_shape=w.input_shape,
                weight=w.weight * 4,
                stride=w.stride,
                padding=w.padding,
                dilation=w.dilation,
                groups=w.groups,
                bias=w.bias,
            )
        else:
            nodes[nxt] = nir.Affine(weight=w.weight * 4, bias=w.bias)
    avg = import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
    total = import_nir(graph)
    for a, b in zip(avg.layers, total.layers):
        assert a.source == b.source and np.array_equal(a.weight, b.weight)
        assert np.array_equal(a.theta, b.theta) and np.array_equal(a.bias, b.bias)
        assert (a.conv is None) == (b.conv is None)
        assert np.allclose(a.float_weight, b.float_weight)
    assert avg.layers[2].conv.pool == (2, 2)
    nodes["p1"] = nir.AvgPool2d(
        kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1])
    )
    with pytest.raises(
        ModelError,
        match=r"^NIR node 'p1' \(AvgPool2d\): padding \(1, 1\); "
        r"NIR does not say whether padded zeros count",
    ):
        import_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False))
