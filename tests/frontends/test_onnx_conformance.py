"""ONNX's node test cases of every op nnloom claims, through the importer and the integer
golden (``conformance.py`` says how a case is made importable): each passes or is refused
with a named reason; none is wrong and none raises anything but ``ModelError``.
``pytest -s`` prints the per-op table the README shows."""

import pytest

from tests.frontends import conformance_cases as conformance


@pytest.fixture(scope="module")
def outcomes():
    table, rows = conformance.run_all()
    print("\n" + conformance.markdown(table))
    return table, rows


def test_no_case_is_wrong_or_raises(outcomes):
    _, rows = outcomes
    bad = [
        (name, outcome, detail) for name, outcome, detail in rows if outcome in ("wrong", "error")
    ]
    assert not bad, bad


def test_every_refusal_names_its_reason(outcomes):
    _, rows = outcomes
    unnamed = [
        (name, detail) for name, outcome, detail in rows if outcome.startswith("refused: other")
    ]
    assert not unnamed, unnamed


def test_every_claimed_op_has_cases(outcomes):
    table, _ = outcomes
    assert set(table) == set(conformance.OPS)


# Floors of what passes today (passed + passed in QDQ form): a regression that starts
# refusing what nnloom took is caught here.
PASSING = {
    "QuantizeLinear": 3,
    "DequantizeLinear": 5,
    "QLinearMatMul": 4,
    "QLinearConv": 1,
    "MatMulInteger": 1,
    "ConvInteger": 2,
    "Conv": 6,
    "MaxPool": 12,
    "AveragePool": 2,
    "GlobalAveragePool": 1,
    "Relu": 1,
    "Clip": 8,
    "Flatten": 5,
    "Transpose": 2,
}


@pytest.mark.parametrize("op", sorted(PASSING))
def test_cases_that_pass(outcomes, op):
    table, _ = outcomes
    counts = table[op]
    assert counts["passed"] + counts["passed (QDQ)"] >= PASSING[op], dict(counts)
