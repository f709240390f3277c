"""``SnnEngine`` in its fixed-step mode (NIR IF and LIF networks, dense and convolutional
synapses) against the NIR golden, in Amaranth's simulator. The golden uses the dense
matrices; the engine uses shared kernels behind ``ConvTaps``."""

import dataclasses

import numpy as np
import pytest

from frontends.errors import ModelError
from frontends.snn.nir_import import NirOptions, import_nir
from rtl_gen.snn.if_plan import IfPlan
from tests.frontends.snn.nir_graphs import small_sinabs, tiny_cnn, tiny_mlp

from .test_engine import simulate


def spikes_for(net, steps, samples, rate, seed=2):
    rng = np.random.default_rng(seed)
    return (rng.random((samples, steps * net.n_in)) < rate).astype(np.int64)


@pytest.mark.parametrize(
    "bias,options", [(False, NirOptions()), (True, NirOptions(cmp=">=", reset="value"))]
)
def test_if_engine_counts_equal_nir_golden(bias, options):
    net = import_nir(tiny_cnn(3, bias=bias), options)
    assert net.layers[0].conv is not None  # conv behind ConvTaps; the overlapping pool
    assert net.layers[1].conv is None  # before the Affine folds into its matrix
    plan = IfPlan.from_network(net, steps=6)
    spikes = spikes_for(net, 6, 2, 0.4)
    got, _, steps = simulate(plan, spikes)
    want = plan.reference(spikes)
    assert want.sum() > 0
    assert (got == want).all() and (steps == 6).all()


@pytest.mark.parametrize("neuron", ["IF", "CubaLIF"])
def test_conv_chain_counts_equal_nir_golden(neuron):
    """The sinabs CNN's shape, reduced: two convolutions, a pooled one and a pooled Affine as
    shared kernels, the last Affine as a matrix (CubaLIF: the kernels' taps charge the
    currents)."""
    net = import_nir(small_sinabs(1, side=10, neuron=neuron))
    assert [l.conv is not None for l in net.layers] == [True] * 4 + [False]
    assert net.layers[2].conv.pool == (2, 2) and net.layers[3].conv.out_shape == (6, 1, 1)
    plan = IfPlan.from_network(net, steps=3)
    spikes = spikes_for(net, 3, 1, 0.25)
    got, _, _ = simulate(plan, spikes)
    want = plan.reference(spikes)
    assert want.sum() > 0
    assert (got == want).all()


def _with_layer(plan, index, **changes):
    net = plan.network
    layers = list(net.layers)
    layers[index] = dataclasses.replace(layers[index], **changes)
    return dataclasses.replace(plan, network=dataclasses.replace(net, layers=tuple(layers)))


@pytest.mark.parametrize("leak,mutant", [("shift", {"leak_shift": 3}), ("beta", {"beta": 128})])
def test_lif_engine_counts_equal_nir_golden(leak, mutant):
    """LIF with a shift leak (beta = 1 - 2**-2) and a general beta (171/256); a hidden layer
    with the wrong leak must not pass."""
    net = import_nir(tiny_mlp(3, tau=4e-4 if leak == "shift" else 3e-4), NirOptions(leak=leak))
    assert all((l.leak_shift is not None) == (leak == "shift") for l in net.layers)
    plan = IfPlan.from_network(net, steps=24)
    spikes = spikes_for(net, 24, 3, 0.3)
    want = plan.reference(spikes)
    got, _, _ = simulate(plan, spikes)
    assert want.sum() > 0 and (got == want).all()
    broken, _, _ = simulate(plan, spikes, hardware=_with_layer(plan, 1, **mutant))
    assert not (broken == want).all()


def test_if_plan_refuses_per_neuron_thresholds():
    net = import_nir(tiny_cnn(0))
    theta = net.layers[0].theta.copy()
    theta[0] += 1
    odd = dataclasses.replace(
        net, layers=(dataclasses.replace(net.layers[0], theta=theta),) + net.layers[1:]
    )
    with pytest.raises(
        ModelError,
        match=r"^NIR node 'if1' \(IF\): v_threshold differs between "
        r"neurons; the engine takes one per layer$",
    ):
        IfPlan.from_network(odd, steps=4)


@pytest.mark.parametrize("leak,mutant", [("shift", {"syn_shift": 3}), ("beta", {"alpha": 160})])
def test_cuba_lif_engine_counts_equal_nir_golden(leak, mutant):
    """CubaLIF (alpha 1 - 2**-2, beta 1 - 2**-3; or 192/256 and 224/256) with a bias on the
    hidden layer: the current memory, both leaks and the always-sweeping layers (the input
    falls silent after 8 steps); a wrong current leak must not pass."""
    from tests.frontends.snn.nir_graphs import tiny_cuba

    net = import_nir(tiny_cuba(6, n_in=6, hidden=5, n_out=3, threshold=2.0), NirOptions(leak=leak))
    plan = IfPlan.from_network(net, steps=20)
    assert all(b > 0 for b in plan.i_bits)
    spikes = spikes_for(net, 20, 3, 0.3).reshape(3, 20, -1)
    spikes[:, 8:] = 0  # silent input: the currents go on charging the membranes
    spikes = spikes.reshape(3, -1)
    want = plan.reference(spikes)
    got, _, _ = simulate(plan, spikes)
    assert want.sum() > 0 and (got == want).all()
    broken, _, _ = simulate(plan, spikes, hardware=_with_layer(plan, 0, **mutant))
    assert not (broken == want).all()


def test_li_readout_engine_outputs_golden_membranes():
    from tests.frontends.snn.nir_graphs import tiny_cuba

    net = import_nir(tiny_cuba(4, n_in=6, hidden=5, n_out=3, readout="LI"))
    plan = IfPlan.from_network(net, steps=12)
    assert plan.out_dtype.signed and plan.out_dtype.width == plan.v_bits[-1]
    spikes = spikes_for(net, 12, 2, 0.4)
    want = plan.reference(spikes)
    got, _, _ = simulate(plan, spikes)
    got = np.where(got >= 1 << (plan.v_bits[-1] - 1), got - (1 << plan.v_bits[-1]), got)
    assert (want < 0).any() and (want > 0).any()
    assert (got == want).all()


def _edge_trace(layer, spikes, options):
    """Peak |I|, peak |V| and how often H == theta, from the CubaLIF golden step by step."""
    from frontends.snn.neurons import cuba_lif_step, leak

    v = np.zeros((len(spikes), layer.n_out), np.int64)
    i = np.zeros_like(v)
    i_peak = v_peak = edges = 0
    theta = int(layer.theta[0])
    for t in range(spikes.shape[1]):
        x = spikes[:, t] @ layer.weight.T + layer.bias
        h = leak(v, shift=layer.leak_shift) + leak(i, shift=layer.syn_shift) + x
        edges += int((h == theta).sum())
        v, i, _ = cuba_lif_step(
            v,
            i,
            x,
            theta=theta,
            cmp=options.cmp,
            reset=options.reset,
            v_reset=int(layer.v_reset[0]),
            syn_shift=layer.syn_shift,
            leak_shift=layer.leak_shift,
        )
        i_peak, v_peak = max(i_peak, int(np.abs(i).max())), max(v_peak, int(np.abs(v).max()))
    return i_peak, v_peak, edges


@pytest.mark.parametrize("cmp", [">", ">="])
def test_cuba_lif_edges_and_register_ranges(cmp):
    """Thresholds hit exactly, and the current and membrane registers driven to the top of
    their derived ranges (every input spiking through +-127 weights): bit-exact; one bit less
    of current or membrane and the counts differ."""
    from frontends.fixedpoint import signed_bits
    from tests.frontends.snn.nir_graphs import cuba_edges, edge_spikes

    options = NirOptions(cmp=cmp, reset="value")  # a wrapped current stops neuron 0
    net = import_nir(cuba_edges(), options)
    plan = IfPlan.from_network(net, steps=40)
    spikes = edge_spikes(40, 4)
    i_peak, v_peak, edges = _edge_trace(net.layers[0], spikes, options)
    assert edges > 0
    assert signed_bits(-i_peak, i_peak) == plan.i_bits[0] == 13
    assert signed_bits(-v_peak, v_peak) == plan.v_bits[0] == 16
    flat = spikes.reshape(4, -1)
    want = plan.reference(flat)
    got, _, _ = simulate(plan, flat)
    assert (got == want).all()
    for narrow in ({"i_bits": (12,)}, {"v_bits": (15,)}):
        broken, _, _ = simulate(plan, flat, hardware=dataclasses.replace(plan, **narrow))
        assert not (broken == want).all(), narrow
