import json

import numpy as np
import pytest

from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact, ArtefactError, atomic_directory
from rtl_gen.emit import write_artefact


def test_same_input_same_bytes(mlp_graph, tmp_path):
    vectors = golden_vectors(mlp_graph, random=4)
    a = write_artefact(mlp_graph, tmp_path / "a" / "d", vectors=vectors)
    b = write_artefact(mlp_graph, tmp_path / "b" / "d", vectors=vectors)
    for rel in ("rtl/nnloom_dense.v", "manifest.json", "vectors/golden.npz"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # no absolute paths or source locations leak into the Verilog
    text = (a / "rtl/nnloom_dense.v").read_text()
    assert str(tmp_path) not in text and ".py:" not in text


def test_manifest_describes_ports_and_latency(mlp_graph, tmp_path):
    vectors = golden_vectors(mlp_graph, random=4)
    art = Artefact(write_artefact(mlp_graph, tmp_path / "d", vectors=vectors, lanes=3))
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
    write_artefact(mlp_graph, target, vectors=vectors)
    before = (target / "manifest.json").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr("rtl_gen.emit.np.savez", disk_full)  # fails after rtl/ and manifest
    with pytest.raises(OSError, match="disk full"):
        write_artefact(mlp_graph, target, vectors=vectors, lanes=2)
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
