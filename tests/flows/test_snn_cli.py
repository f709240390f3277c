"""``nnloom generate --engine snn`` for ONNX and NIR models, and its errors."""

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(map(str, args)), terminal_width=200)


def test_generate_onnx_with_the_snn_engine(mlp_onnx, tmp_path):
    result = invoke("generate", mlp_onnx, "--engine", "snn", "-o", tmp_path / "snn")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "snn" / "manifest.json").read_text())
    assert manifest["engine"] == "snn" and manifest["parameters"]["exact"]
    assert manifest["sim"]["bench"] == "sim.bench.snn_bench"


def test_generate_small_nir(tmp_path):
    import nir

    from tests.frontends.snn.nir_graphs import tiny_cnn

    path = tmp_path / "tiny.nir"
    nir.write(str(path), tiny_cnn(0))
    result = invoke("generate", path, "--engine", "snn", "-o", tmp_path / "nir")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "nir" / "manifest.json").read_text())
    assert manifest["parameters"]["mode"] == "if"
    assert manifest["streams"]["input"]["elements"] == 16 * 72


def test_generate_cuba_lif_nir_and_li_readout(tmp_path):
    """``nnloom generate`` (the generate step of ``nnloom flow``) on a CubaLIF graph, and on
    one whose last node is an LI readout: its output stream is the signed membranes."""
    import nir
    import numpy as np

    from frontends.snn.nir_import import import_nir, run_if_network
    from tests.frontends.snn.nir_graphs import tiny_cuba

    for name, graph in (
        ("cuba", tiny_cuba(6, n_in=6, hidden=5, n_out=3, threshold=2.0)),
        ("li", tiny_cuba(4, n_in=6, hidden=5, n_out=3, readout="LI")),
    ):
        nir.write(str(tmp_path / f"{name}.nir"), graph)
        result = invoke(
            "generate", tmp_path / f"{name}.nir", "--engine", "snn", "-o", tmp_path / name
        )
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["layers"][0]["neuron"] == "cubalif"
        assert manifest["layers"][0]["current_leak"] == {"shift": 2}
        with np.load(tmp_path / name / "vectors" / "golden.npz") as f:
            inputs, outputs = f["inputs"], f["outputs"]
        net = import_nir(tmp_path / f"{name}.nir")
        want = run_if_network(net, inputs.reshape(len(inputs), 16, 6))[0]
        assert (outputs == want).all()
        out = manifest["streams"]["output"]
        if name == "li":
            assert manifest["layers"][1]["neuron"] == "li" and out["tensor"] == "membranes"
            assert out["dtype"] == {"width": manifest["parameters"]["v_bits"][1], "signed": True}
            assert (outputs < 0).any()
        else:
            assert out["tensor"] == "spike counts" and outputs.sum() > 0


def test_generate_nir_cnn_on_given_spikes(tmp_path):
    import nir
    import numpy as np

    from tests.frontends.snn.nir_graphs import small_sinabs

    path = tmp_path / "small.nir"
    nir.write(str(path), small_sinabs(0, side=10))
    x = (np.random.default_rng(0).random((2, 3, 2, 10, 10)) < 0.2).astype(np.int64)
    np.savez(tmp_path / "spikes.npz", x=x)
    result = invoke(
        "generate",
        path,
        "--engine",
        "snn",
        "--data",
        tmp_path / "spikes.npz",
        "-o",
        tmp_path / "cnn",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "cnn" / "manifest.json").read_text())
    assert [l["synapse"]["kind"] for l in manifest["layers"]] == ["conv"] * 4 + ["dense"]
    assert manifest["layers"][2]["synapse"]["pool"] == [2, 2]
    assert manifest["streams"]["input"]["elements"] == 3 * 200
    assert manifest["parameters"]["input_encoding"] == "given spikes"


def test_nir_network_beyond_the_ecp5_is_refused_with_the_reason(tmp_path):
    import nir
    import numpy as np

    w = np.random.default_rng(0).normal(0, 1, (1500, 2400)).astype(np.float32)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2400])),
            "fc": nir.Affine(weight=w, bias=np.zeros(1500, np.float32)),
            "lif": nir.IF(r=np.ones(1500), v_threshold=np.ones(1500), v_reset=np.zeros(1500)),
            "output": nir.Output(np.array([1500])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
        type_check=False,
    )
    nir.write(str(tmp_path / "big.nir"), graph)
    result = invoke("generate", tmp_path / "big.nir", "--engine", "snn", "-o", tmp_path / "x")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "NIR graph 'big': needs" in text and "3,600,000 synapse weights" in text
    assert "the LFE5U-85F holds 3,833,856" in text
    assert not (tmp_path / "x").exists()


@pytest.mark.sim
@pytest.mark.slow
def test_bench_snn_beside_gemm(mlp_onnx, tmp_path):
    """``nnloom bench snn`` on a small MLP without synthesis: both engines' cycles, the
    spiking engine's time-step distribution over every vector."""
    import numpy as np

    x = np.random.default_rng(0).normal(0, 1, (6, 16)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.arange(6) % 5)
    result = invoke(
        "bench",
        "snn",
        mlp_onnx,
        "--data",
        tmp_path / "data.npz",
        "--no-synth",
        "-o",
        tmp_path / "bench",
    )
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "bench" / "bench_snn.json").read_text())
    steps = figures["snn"]["steps"]
    assert sum(steps["histogram"]["counts"]) == figures["vectors"]
    assert steps["min"] <= steps["mean"] <= steps["max"] <= figures["snn"]["t_max"]
    gemm = figures["gemm"]
    assert gemm["board"] == "ulx3s-85f" and gemm["cycles"] == gemm["cycles_model"]
    assert "time-step histogram" in result.output and "gemm (ulx3s-85f)" in result.output


@pytest.mark.parametrize(
    "synth",
    [
        False,
        # both engines synthesized, placed and routed: about a minute
        pytest.param(True, marks=[pytest.mark.synth, pytest.mark.slow]),
    ],
)
def test_bench_snn_graph_exact_on_a_qdq_mlp(mlp_onnx, tmp_path, synth):
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.normal(0, 2, (12, 16)).astype(np.float32), y=rng.integers(0, 5, 12))
    out = tmp_path / "bench"
    flag = "--synth" if synth else "--no-synth"
    result = invoke("bench", "snn", mlp_onnx, "--data", data, "--graph", flag, "-o", out)
    assert result.exit_code == 0, result.output
    assert "SNN vs QANN output codes differing" in result.output
    figures = json.loads((out / "bench_snn_graph.json").read_text())
    assert figures["vectors"] == 12 and figures["silent"] == 12
    assert figures["mismatching_output_codes"] == 0 and figures["differing_tensors"] == []
    assert figures["snn_accuracy"] == figures["qann_accuracy"]
    assert 1 <= figures["steps"]["mean"] <= figures["steps"]["t_max"]
    if synth:
        assert figures["rtl"]["synth"]["lut4"] > 0 and figures["rtl"]["synth"]["fmax_mhz"] > 0
        assert figures["gemm"]["synth"]["lut4"] > 0


def test_bench_snn_graph_needs_data(mlp_onnx, tmp_path):
    result = invoke("bench", "snn", mlp_onnx, "--graph", "-o", tmp_path / "b")
    assert result.exit_code == 1
    assert result.output.strip().endswith("give --data (an .npz with 'x' and 'y') to bench it")
    assert not (tmp_path / "b").exists()
