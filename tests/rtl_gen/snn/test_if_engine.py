"""``SnnEngine`` in its fixed-step IF mode (NIR networks) against the NIR golden, in
Amaranth's simulator."""

import numpy as np
import pytest

from frontends.errors import ModelError
from frontends.snn.nir_import import NirOptions, import_nir
from rtl_gen.snn.if_plan import IfPlan
from tests.frontends.snn.nir_graphs import tiny_cnn

from .test_engine import simulate


@pytest.mark.parametrize("bias,options", [(False, NirOptions()),
                                          (True, NirOptions(cmp=">=", reset="value"))])
def test_if_engine_counts_equal_nir_golden(bias, options):
    net = import_nir(tiny_cnn(3, bias=bias), options)
    plan = IfPlan.from_network(net, steps=6)
    spikes = (np.random.default_rng(2).random((2, 6 * net.n_in)) < 0.4).astype(np.int64)
    got, _, steps = simulate(plan, spikes)
    want = plan.reference(spikes)
    assert want.sum() > 0
    assert (got == want).all() and (steps == 6).all()


def test_if_plan_refuses_lif():
    import dataclasses
    net = import_nir(tiny_cnn(0))
    lif = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0], leak_shift=3),)
                              + net.layers[1:])
    with pytest.raises(ModelError, match=r"^NIR node 'if1' \(LIF\): the engine's neuron arrays "
                                         r"are IF or ST-BIF"):
        IfPlan.from_network(lif, steps=4)
