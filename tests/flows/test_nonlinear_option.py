"""``--nonlinear table|smurf`` on the gemm engine: the artefact says which, its golden is
the SMURF one with SMURF units (and equals the program's model), a bad choice is one line
naming it, and another engine refuses the option by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.rtl_gen.smurf.test_from_ir import _qdq_tanh


@pytest.mark.parametrize("nonlinear", ["table", "smurf"])
def test_generate_gemm_nonlinear(tmp_path, nonlinear):
    from flows.commands.gemm import generate_gemm
    from frontends import reference
    from rtl_gen.gemm import model

    model_path = _qdq_tanh(tmp_path / "tanh.onnx")
    program = generate_gemm(
        model_path, tmp_path / "art", board="ulx3s-85f", random=8, nonlinear=nonlinear
    )
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["nonlinear"] == nonlinear
    assert [i.op for i in program.instrs].count("TAB") == 1
    assert bool(program.smurf) == (nonlinear == "smurf")
    with np.load(tmp_path / "art" / "vectors" / "golden.npz") as f:
        x, y = f["inputs"], f["outputs"]
    assert np.array_equal(model.run(program, x.reshape(len(x), -1)), y.reshape(len(y), -1))
    exact = reference.run(program.source if nonlinear == "table" else program.graph, x)
    assert np.array_equal(
        exact[program.graph.outputs[0]].reshape(len(y), -1), y.reshape(len(y), -1)
    )


def test_bad_nonlinear_is_one_line(tmp_path):
    from flows.commands.gemm import generate_gemm
    from frontends.errors import NnloomError

    with pytest.raises(NnloomError, match=r"^--nonlinear lut: choose table or smurf$"):
        generate_gemm(_qdq_tanh(tmp_path / "t.onnx"), tmp_path / "art", nonlinear="lut")
    assert not (tmp_path / "art").exists()
