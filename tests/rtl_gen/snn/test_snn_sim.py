"""The emitted spiking engine under cocotb + Verilator (the digits MLP: tracers equal the
integer QANN's codes, with cycles and time steps as modelled), deterministic emission, and
0 DSPs after synthesis."""

import json

import numpy as np
import pytest

from rtl_gen.artefact import Artefact
from rtl_gen.snn import SnnPlan
from rtl_gen.snn.emit import write_from_graph
from tests.frontends.snn.graphs import digits_model, random_graph


@pytest.fixture(scope="module")
def digits_snn(tmp_path_factory):
    from frontends.onnx_import import import_onnx
    from frontends.vectors import golden_vectors

    made = digits_model(tmp_path_factory)
    graph = import_onnx(made.quantized)
    with np.load(made.test_data) as f:
        vectors = golden_vectors(graph, data_x=f["x"], data_y=f["y"], random=8)
    return Artefact(
        write_from_graph(graph, tmp_path_factory.mktemp("snn") / "digits", vectors=vectors)
    )


def test_manifest_describes_the_spiking_engine(digits_snn):
    m = digits_snn.manifest
    assert m["engine"] == "snn" and m["sim"]["bench"] == "sim.bench.snn_bench"
    assert m["parameters"]["exact"] and m["parameters"]["t_max"] == 511
    assert [layer["theta"] for layer in m["layers"]] == [1 << 23, 1 << 24]
    v = digits_snn.vectors()
    assert m["latency_cycles"] == int(v["snn_cycles"].max())
    assert {"i__payload", "o__payload", "cycles", "busy", "steps"} <= {
        p["name"] for p in m["ports"]
    }


@pytest.mark.sim
def test_digits_mlp_rtl_tracers_equal_qann(digits_snn):
    from sim.runner import run_sim

    # edge cases, random vectors and the first test images
    result = run_sim(digits_snn, limit=36)
    assert result.passed, "\n".join(result.mismatches)
    summary = json.loads((digits_snn.path / "sim" / "summary.json").read_text())
    assert summary["vectors"] == 36 and summary["mismatching_elements"] == 0
    assert sum(summary["steps"]["histogram"]["counts"]) == 36
    with np.load(result.outputs) as f:
        assert (f["steps"] == digits_snn.vectors()["snn_steps"][:36]).all()


def test_same_graph_same_bytes(tmp_path):
    graph = random_graph((5, 4, 3), bits=4, seed=2)
    vectors = {"inputs": np.zeros((1, 5), np.int64), "outputs": np.zeros((1, 3), np.int64)}
    a = write_from_graph(graph, tmp_path / "a", vectors=vectors)
    b = write_from_graph(graph, tmp_path / "b", vectors=vectors)
    assert (a / "rtl" / "nnloom_snn.v").read_bytes() == (b / "rtl" / "nnloom_snn.v").read_bytes()
    assert (a / "vectors" / "golden.npz").read_bytes() == (
        b / "vectors" / "golden.npz"
    ).read_bytes()


@pytest.mark.synth
def test_no_multipliers_after_synthesis(tmp_path):
    from flows.synth import synthesize
    from rtl_gen.emit import emit_verilog

    plan = SnnPlan.from_graph(random_graph((6, 5, 3), bits=4, seed=2))
    (tmp_path / "snn.v").write_text(emit_verilog(plan.create(), "snn"))
    report = synthesize(
        [tmp_path / "snn.v"], "snn", family="ecp5", out_dir=tmp_path / "pnr", clock_mhz=50
    )
    assert report.utilisation["MULT18X18D"]["used"] == 0
    assert report.utilisation["ALU54B"]["used"] == 0
    assert report.lut4 > 0


@pytest.mark.sim
@pytest.mark.slow
def test_cuba_lif_rtl_counts_equal_golden_at_the_edges(tmp_path):
    """CubaLIF under Verilator: the current memory and both shift leaks in Verilog, on spikes
    that put membranes on the threshold and drive the current and membrane registers to the
    top of their ranges (``nir_graphs.cuba_edges``), plus random spikes; counts bit-exact.
    (Slow: 75 s measured on the shared machine, mostly the Verilator build; the default tier
    checks the same design in Amaranth's simulator, ``test_if_engine``.)"""
    from frontends.snn.nir_import import NirOptions
    from rtl_gen.snn.emit import write_nir_artefact
    from sim.runner import run_sim
    from tests.frontends.snn.nir_graphs import cuba_edges, edge_spikes

    art = Artefact(
        write_nir_artefact(
            cuba_edges(),
            tmp_path / "cuba",
            spikes=edge_spikes(40, 8),
            options=NirOptions(reset="value"),
        )
    )
    m = art.manifest
    assert [l["neuron"] for l in m["layers"]] == ["cubalif"]
    assert m["parameters"]["i_bits"] == [13] and m["parameters"]["v_bits"] == [16]
    assert m["layers"][0]["current_leak"] == {"shift": 2} and m["layers"][0]["leak"] == {"shift": 3}
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == 8 and result.mismatching_elements == 0


@pytest.mark.sim
@pytest.mark.slow
def test_li_readout_rtl_membranes_equal_golden(tmp_path):
    """CubaLIF into an LI readout under Verilator: the output stream is the LI membranes,
    signed, ``v_bits`` wide, equal to the golden's (72 s measured, mostly the build)."""
    from rtl_gen.snn.emit import write_nir_artefact
    from sim.runner import run_sim
    from tests.frontends.snn.nir_graphs import tiny_cuba

    art = Artefact(
        write_nir_artefact(
            tiny_cuba(4, n_in=6, hidden=5, n_out=3, readout="LI"),
            tmp_path / "li",
            steps=12,
            samples=6,
            rate=0.4,
        )
    )
    out = art.manifest["streams"]["output"]
    assert out["tensor"] == "membranes" and out["dtype"]["signed"]
    assert (art.vectors()["outputs"] < 0).any()
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == 6 and result.mismatching_elements == 0


@pytest.mark.synth
def test_cuba_lif_array_has_no_multipliers(tmp_path):
    """A CubaLIF network's engine after synthesis: the fixed-point decays (192/256 and
    224/256, as shifted adds) map to LUTs, not DSPs. (Measured on ECP5, 16 steps: 803 LUT4,
    190 FF, 84 MHz; with shift decays 665 LUT4, 90 MHz; a LIF network of the same shape 669
    LUT4.)"""
    from flows.synth import synthesize
    from frontends.snn.nir_import import NirOptions, import_nir
    from rtl_gen.emit import emit_verilog
    from rtl_gen.snn.if_plan import IfPlan
    from tests.frontends.snn.nir_graphs import tiny_cuba

    plan = IfPlan.from_network(
        import_nir(tiny_cuba(6, n_in=6, hidden=5, n_out=3), NirOptions(leak="beta")), steps=16
    )
    (tmp_path / "snn.v").write_text(emit_verilog(plan.create(), "snn"))
    report = synthesize(
        [tmp_path / "snn.v"], "snn", family="ecp5", out_dir=tmp_path / "pnr", clock_mhz=50
    )
    assert report.utilisation["MULT18X18D"]["used"] == 0
    assert report.utilisation["ALU54B"]["used"] == 0
    assert report.lut4 > 0


@pytest.mark.sim
@pytest.mark.slow
def test_small_lif_cnn_rtl_counts_equal_golden(tmp_path):
    """The sinabs CNN's shape at 2x10x10 with LIF neurons (shift leak), emitted and run under
    Verilator: shared-kernel convolutions, a pooled convolution and the leak in Verilog.
    (Slow: the Verilator build alone is ~40 s of CPU; the default tier runs the same
    components in Amaranth's simulator, ``test_if_engine``.)"""
    from frontends.snn.nir_import import NirOptions
    from rtl_gen.snn.emit import write_nir_artefact
    from sim.runner import run_sim
    from tests.frontends.snn.nir_graphs import small_sinabs

    art = Artefact(
        write_nir_artefact(
            small_sinabs(2, side=10, neuron="LIF"),
            tmp_path / "cnn",
            steps=4,
            samples=3,
            rate=0.3,
            options=NirOptions(),
        )
    )
    assert art.vectors()["outputs"].sum() > 0
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == 3 and result.mismatching_elements == 0


@pytest.mark.sim
@pytest.mark.slow
def test_sinabs_nmnist_cnn_rtl_counts_equal_golden(tmp_path):
    """The NIR paper's N-MNIST CNN (8970 IF neurons, convolutions as shared kernels) on
    synthetic spikes: the RTL's output spike counts equal the golden's."""
    from rtl_gen.snn.emit import write_nir_artefact
    from sim.runner import run_sim
    from tests.frontends.snn.nir_graphs import sinabs_cnn

    art = Artefact(
        write_nir_artefact(sinabs_cnn(0), tmp_path / "sinabs", steps=8, samples=2, rate=0.1)
    )
    assert art.vectors()["outputs"].sum() > 0
    result = run_sim(art)
    assert result.passed, "\n".join(result.mismatches)
    assert result.vectors == 2 and result.mismatching_elements == 0
