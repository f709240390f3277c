"""The dense engine with parity/SECDED on its ROMs: bit-exact with no faults, and under
injected flips equal to ``faulted_reference`` (outputs and error counters)."""

import numpy as np
import pytest

from frontends import reference
from frontends.errors import UsageError
from rtl_gen.dense import DenseEngine, DensePlan
from rtl_gen.dense.plan import faulted_reference

from .test_dense_engine import simulate
from .test_dense_plan import synthetic_graph


def _flip(words, code, rng, n_words, bits_per_word):
    words = list(words)
    for w in rng.choice(len(words), size=n_words, replace=False):
        for b in rng.choice(code.word_bits, size=bits_per_word, replace=False):
            words[int(w)] ^= 1 << int(b)
    return words


def _run(plan, inputs, images=None):
    counters = {}

    def read(ctx):
        counters.update(corrected=ctx.get(dut.ecc_corrected), errors=ctx.get(dut.ecc_errors))

    dut = DenseEngine(plan, images)
    got, cycles = simulate(plan, inputs, dut=dut, after=read)
    return got, cycles, counters


@pytest.fixture(scope="module")
def case():
    graph = synthetic_graph(sizes=(9, 7, 3), seed=5)
    inputs = np.random.default_rng(4).integers(-128, 128, (3, 9))
    return graph, inputs, reference.run(graph, inputs)[graph.outputs[0]]


@pytest.mark.parametrize("protect", ["parity", "secded"])
def test_protected_engine_is_bit_exact_without_faults(case, protect):
    graph, inputs, expected = case
    plan = DensePlan.from_graph(graph, lanes=3, protect=protect)
    unprotected = DensePlan.from_graph(graph, lanes=3)
    assert plan.weight_code.word_bits > unprotected.weight_code.word_bits
    got, cycles, counters = _run(plan, inputs)
    assert (got == expected).all()
    assert cycles == [plan.cycles()] * len(inputs)
    # the decoders' registers: one stage (parity) or two (SECDED) on each ROM
    assert plan.cycles() == unprotected.cycles() + 2 * plan.weight_code.stages * len(plan.layers)
    assert counters == {"corrected": 0, "errors": 0}


def test_secded_corrects_one_flip_per_word_and_counts_double_flips(case):
    graph, inputs, expected = case
    plan = DensePlan.from_graph(graph, lanes=3, protect="secded")
    rng = np.random.default_rng(7)
    w = _flip(plan.weight_image(), plan.weight_code, rng, 12, 1)
    p = _flip(plan.param_image(), plan.param_code, rng, 4, 1)
    golden, counts = faulted_reference(plan, inputs, w, p)
    assert (golden[-1] == expected).all() and counts == {"corrected": 16, "errors": 0}
    got, _, counters = _run(plan, inputs, (w, p))
    assert (got == expected).all()
    assert counters == {"corrected": 16 * len(inputs), "errors": 0}

    w2 = _flip(plan.weight_image(), plan.weight_code, rng, 5, 2)
    golden, counts = faulted_reference(plan, inputs, w2, plan.param_image())
    assert counts == {"corrected": 0, "errors": 5}
    got, _, counters = _run(plan, inputs, (w2, plan.param_image()))
    assert (got == golden[-1]).all()
    assert counters == {"corrected": 0, "errors": 5 * len(inputs)}


def test_parity_flags_flips_and_computes_with_the_flipped_words(case):
    graph, inputs, expected = case
    plan = DensePlan.from_graph(graph, lanes=3, protect="parity")
    rng = np.random.default_rng(8)
    w = _flip(plan.weight_image(), plan.weight_code, rng, 6, 1)
    p = _flip(plan.param_image(), plan.param_code, rng, 2, 1)
    golden, counts = faulted_reference(plan, inputs, w, p)
    assert counts == {"corrected": 0, "errors": 8}
    got, _, counters = _run(plan, inputs, (w, p))
    assert (got == golden[-1]).all()
    assert counters == {"corrected": 0, "errors": 8 * len(inputs)}


def test_unprotected_faults_change_the_golden_as_the_hardware(case):
    graph, inputs, expected = case
    plan = DensePlan.from_graph(graph, lanes=3)
    rng = np.random.default_rng(9)
    w = _flip(plan.weight_image(), plan.weight_code, rng, 10, 1)
    golden, _ = faulted_reference(plan, inputs, w, plan.param_image())
    got, _ = simulate(plan, inputs, dut=DenseEngine(plan, (w, plan.param_image())))
    assert (got == golden[-1]).all()
    assert (golden[-1] != expected).any()


def test_unknown_protection_is_refused_by_name(case):
    with pytest.raises(UsageError, match="--protect ecc"):
        DensePlan.from_graph(case[0], lanes=3, protect="ecc")
