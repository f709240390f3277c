import json

import numpy as np
import pytest

from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact, ArtefactError, atomic_directory
from rtl_gen.dense.artefact import write_dense_artefact


def test_same_input_same_bytes(mlp_graph, tmp_path):
    vectors = golden_vectors(mlp_graph, random=4)
    a = write_dense_artefact(mlp_graph, tmp_path / "a" / "d", vectors=vectors)
    b = write_dense_artefact(mlp_graph, tmp_path / "b" / "d", vectors=vectors)
    for rel in ("rtl/nnloom_dense.v", "manifest.json", "vectors/golden.npz"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # no absolute paths or source locations leak into the Verilog
    text = (a / "rtl/nnloom_dense.v").read_text()
    assert str(tmp_path) not in text and ".py:" not in text


def test_manifest_describes_ports_and_latency(mlp_graph, tmp_path):
    vectors = golden_vectors(mlp_graph, random=4)
    art = Artefact(write_dense_artefact(mlp_graph, tmp_path / "d", vectors=vectors, lanes=3))
    m = art.manifest
    assert m["engine"] == "dense" and m["top"] == "nnloom_dense"
    names = {p["name"]: p for p in m["ports"]}
    assert names["i__payload"] == {"name": "i__payload", "dir": "in", "width": 9}
    assert names["o__valid"]["dir"] == "out"
    text = art.rtl_sources[0].read_text()
    for port in names:
        assert port in text
    assert m["parameters"]["lanes"] == 3
    assert m["latency_cycles"] == 16 + (4 * 16 + 9) + (2 * 12 + 9) + 5 + 1
    assert m["source"]["sha256"] == mlp_graph.source_sha256
    v = art.vectors()
    assert v["inputs"].shape == (len(v["labels"]), 16) and v["outputs"].shape[1] == 5


def test_failed_write_leaves_previous_artefact(mlp_graph, tmp_path, monkeypatch):
    target = tmp_path / "d"
    vectors = golden_vectors(mlp_graph, random=2)
    write_dense_artefact(mlp_graph, target, vectors=vectors)
    before = (target / "manifest.json").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rtl_gen.artefact.np.savez", disk_full)  # fails after rtl/ and manifest
    with pytest.raises(OSError, match="disk full"):
        write_dense_artefact(mlp_graph, target, vectors=vectors, lanes=2)
    assert (target / "manifest.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_atomic_directory_cleans_up_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "x") as tmp:
            (tmp / "f").write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_not_an_artefact(tmp_path):
    with pytest.raises(ArtefactError, match="not an nnloom artefact directory"):
        Artefact(tmp_path)


def test_golden_vectors_include_edges_and_labels(mlp_graph):
    x = np.random.default_rng(0).uniform(-1, 1, (10, 16)).astype(np.float32)
    v = golden_vectors(mlp_graph, data_x=x, data_y=np.arange(10) % 5, random=3)
    t = mlp_graph.tensor(mlp_graph.inputs[0])
    assert (v["inputs"][0] == t.dtype.min).all() and (v["inputs"][1] == t.dtype.max).all()
    assert (v["labels"][v["source"] == 2] == np.arange(10) % 5).all()
    assert (v["labels"][v["source"] < 2] == -1).all()
    assert json.dumps(int(v["layer1"].shape[1])) == "5"


def test_manifest_round_trips_through_json(mlp_graph, tmp_path):
    from rtl_gen.artefact import Manifest

    vectors = golden_vectors(mlp_graph, random=2)
    art = Artefact(write_dense_artefact(mlp_graph, tmp_path / "d", vectors=vectors))
    text = (art.path / "manifest.json").read_text()
    m = art.manifest
    assert isinstance(m, Manifest) and m.engine == "dense" and m.rtl == ("nnloom_dense.v",)
    assert m.to_json() == text
    assert Manifest.from_dict(json.loads(text)) == m
    assert m.clock == {"name": "clk", "reset": "rst", "reset_active": "high"}
    assert m.sim is None and "sim" not in m  # optional fields left out are not written


def test_engine_sections_stay_beside_the_fields(tmp_path):
    from rtl_gen.artefact import Manifest

    data = {
        "manifest_version": 1,
        "design": "u",
        "engine": "smurf",
        "top": "t",
        "rtl": ["t.v"],
        "ports": [{"name": "clk", "dir": "in", "width": 1}],
        "streams": {
            side: {"port": p, "elements": 1, "dtype": {"width": 8, "signed": False}}
            for side, p in (("input", "i"), ("output", "o"))
        },
        "smurf": {"states": 8},
        "fit": {"rmse": [0.1]},
    }
    m = Manifest.from_dict(data)
    assert m.sections == {"smurf": {"states": 8}, "fit": {"rmse": [0.1]}}
    assert m.to_dict() == data and m["smurf"]["states"] == 8


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("top"), "field 'top' is missing"),
        (lambda m: m.update(manifest_version=7), "manifest_version 7; this nnloom reads version 1"),
        (
            lambda m: m["streams"]["input"].update(elements="16"),
            "field 'streams.input.elements' is str, not int",
        ),
        (
            lambda m: m["streams"]["output"]["dtype"].update(signed=1),
            "field 'streams.output.dtype.signed' is int, not bool",
        ),
        (lambda m: m["ports"][2].pop("width"), "field 'ports[2].width' is missing"),
        (lambda m: m.update(rtl=[]), "field 'rtl' is not a non-empty list of file names"),
        (lambda m: m.update(latency_cycles=True), "field 'latency_cycles' is bool, not int"),
    ],
)
def test_a_malformed_manifest_is_refused_by_name(mlp_graph, tmp_path, edit, message):
    vectors = golden_vectors(mlp_graph, random=2)
    path = write_dense_artefact(mlp_graph, tmp_path / "d", vectors=vectors)
    data = json.loads((path / "manifest.json").read_text())
    edit(data)
    (path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtefactError) as info:
        _ = Artefact(path).manifest
    assert str(info.value).startswith(f"{path.resolve() / 'manifest.json'}: {message}")


def test_a_manifest_that_is_not_json_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtefactError, match="manifest.json: not readable JSON"):
        _ = Artefact(tmp_path).manifest


def test_atomic_writes_get_the_mode_a_plain_write_gets(tmp_path):
    """mkstemp/mkdtemp make private files (0o600): artefacts must be readable as any file
    the user writes (a bitstream copied to a lab machine, a report served by a web server)."""
    import os

    from rtl_gen.artefact import atomic_directory, atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.v", "module a; endmodule\n")
        with atomic_directory(tmp_path / "art") as d:
            (d / "x").write_text("x")
        (tmp_path / "plain").write_text("p")
    finally:
        os.umask(old)
    assert (tmp_path / "a.v").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.v").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    assert (tmp_path / "art").stat().st_mode & 0o777 == 0o755
