"""The command line under mutated models and data files: ``inspect`` (table and JSON) and
``generate`` for every engine that takes ONNX, in-process (typer's CliRunner).

Mutation kinds: the importer fuzz's graph mutations (missing/misshapen initializers, bad
attributes, swapped ops, dangling inputs, reordered nodes, bad external data), byte flips
and truncations, extreme scales and zero points, huge or zero dims, opsets, graph outputs,
and malformed ``--data`` files. Every run must either succeed or refuse with exit status 1
and one line on stderr starting ``error:`` that names the model file, a node, a tensor, the
data file or the engine (no traceback, no other exception). A model that
``generate`` accepts must not be silently wrong: its golden vectors are recomputed from the
model, and wherever onnxruntime runs the mutant its outputs must lie within one code of the
golden's. 40 mutants in the default tier, 400 under ``slow``.
"""

from __future__ import annotations

import os
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()

ENGINES = ("dense", "gemm", "snn", "smurf", "auto")
SCALES = (1e-45, 1e-38, 1e-30, 1e-12, 1e12, 1e30, 3.4e38, np.inf, np.nan, 0.0, -1.0)
KINDS = ("graph", "bytes", "scale", "zero point", "dims", "opset", "outputs", "data")


def _bases(tmp_path):
    from models import qdq_mlp

    from tests.frontends.test_fuzz import _bases as importer_bases

    mlp = onnx.load(str(qdq_mlp(tmp_path / "mlp.onnx", sizes=(16, 12, 5))))
    return [mlp, *importer_bases(tmp_path)]


def _data_files(tmp_path, rng) -> list:
    """Good and malformed .npz files (and a file that is not one)."""
    d = tmp_path / "data"
    d.mkdir()
    files = []

    def save(name, **arrays):
        path = d / name
        np.savez(path, **arrays)
        files.append(path)

    good = rng.uniform(-1, 1, (6, 16)).astype(np.float32)
    save("good16.npz", x=good, y=rng.integers(0, 5, 6))
    save("good128.npz", x=rng.uniform(-1, 1, (4, 2, 8, 8)).astype(np.float32))
    save("nan.npz", x=np.where(good > 0.9, np.nan, good))
    save("inf.npz", x=np.where(good > 0.5, np.inf, -1e30).astype(np.float64))
    save("complex.npz", x=good * (1 + 1j))
    save("strings.npz", x=np.array([["a"] * 16] * 2))
    save("labels_strings.npz", x=good, y=np.array(["cat"] * 6))
    save("labels_short.npz", x=good, y=np.arange(3))
    save("labels_2d.npz", x=good, y=np.zeros((6, 2)))
    save("empty.npz", x=np.zeros((0, 16), np.float32))
    save("scalar.npz", x=np.float32(1.0))
    save("wrong_size.npz", x=rng.uniform(size=(3, 7)))
    save("no_x.npz", inputs=good)
    save("int_x.npz", x=rng.integers(-300, 300, (5, 16)))
    bad = d / "not_npz.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip file" * 3)
    files.append(bad)
    pickled = d / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    files.append(pickled)
    return files


def _extreme_scale(g, rng):
    floats = [
        t
        for t in g.initializer
        if t.data_type == onnx.TensorProto.FLOAT
        and t.data_location != onnx.TensorProto.EXTERNAL
        and numpy_helper.to_array(t).size == 1
    ]
    if floats:
        t = floats[int(rng.integers(len(floats)))]
        v = np.float32(rng.choice(SCALES))
        t.CopyFrom(
            numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, v, np.float32), t.name)
        )


def _extreme_zero_point(g, rng):
    ints = [
        t for t in g.initializer if t.data_type in (2, 3, 6) and numpy_helper.to_array(t).size == 1
    ]
    if ints:
        t = ints[int(rng.integers(len(ints)))]
        a = numpy_helper.to_array(t)
        info = np.iinfo(a.dtype)
        choice = int(rng.integers(4))
        if choice == 3:  # another integer type than the codes'
            a = a.astype(rng.choice([np.int8, np.uint8, np.int32, np.int16]))
        else:
            a = np.full(a.shape, (info.min, info.max, 0)[choice], a.dtype)
        t.CopyFrom(numpy_helper.from_array(a, t.name))


def _dims(g, rng):
    dims = g.input[0].type.tensor_type.shape.dim
    if len(dims):
        dims[int(rng.integers(len(dims)))].dim_value = int(
            rng.choice([0, 1, 4096, 1 << 20, (1 << 31) - 1])
        )


def _opset(m, rng):
    known = onnx.defs.onnx_opset_version()
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = int(rng.choice([1, 9, 10, 13, 17, known, known + 1, 99]))


def _outputs(g, rng):
    choice = int(rng.integers(4))
    if choice == 0:
        del g.output[:]
    elif choice == 1:
        g.output.append(g.output[0])
    elif choice == 2:
        internal = [o for n in g.node for o in n.output if o]
        g.output.append(onnx.ValueInfoProto(name=internal[int(rng.integers(len(internal)))]))
    else:
        g.output[0].name = "nowhere"


def _mutant(base, kind: str, rng) -> bytes:
    from tests.frontends.test_fuzz import _mutate

    if kind == "graph":
        return _mutate(base, rng)[0]
    m = onnx.ModelProto()
    m.CopyFrom(base)
    if kind == "bytes":
        data = bytearray(m.SerializeToString())
        data = data[: int(rng.integers(len(data) // 2, len(data) + 1))]
        for _ in range(int(rng.integers(1, 4))):
            if data:
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        return bytes(data)
    {
        "scale": lambda: _extreme_scale(m.graph, rng),
        "zero point": lambda: _extreme_zero_point(m.graph, rng),
        "dims": lambda: _dims(m.graph, rng),
        "opset": lambda: _opset(m, rng),
        "outputs": lambda: _outputs(m.graph, rng),
        "data": lambda: None,
    }[kind]()
    return m.SerializeToString()


def _check_refusal(result, args):
    err = (result.stderr or "").strip()
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
    # it names the user's thing: the model file, a node, a tensor, the data file, an engine
    assert re.search(
        r"fuzz\.onnx|node '|tensor '|input '|output '|\.npz|engine|model '", lines[0]
    ), lines[0]


def _ort_codes(path, graph, x):
    """onnxruntime's (unfused) output codes for float inputs x, or None when it cannot run
    the model."""
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 4
        s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in s.get_inputs()[0].shape]
        outs = [
            s.run(None, {name: x[i : i + 1].reshape(shape).astype(np.float32)})[0]
            for i in range(len(x))
        ]
    except Exception:  # noqa: BLE001 -- onnxruntime refusing a mutant is no verdict
        return None
    y = np.concatenate([o.reshape(1, -1) for o in outs])
    if y.dtype.kind != "f":
        return y.astype(np.int64)
    q = graph.tensor(graph.outputs[0]).quant
    with np.errstate(all="ignore"):
        return np.rint(y / np.float32(q.scale)) + int(q.zero_point)


def _check_generated(model, out: str):
    """The artefact of an accepted mutant: golden vectors recomputed, and within one code of
    onnxruntime wherever onnxruntime runs the mutant."""
    from frontends import reference
    from frontends.onnx_import import import_onnx

    graph = import_onnx(model)
    with np.load(os.path.join(out, "vectors", "golden.npz")) as f:
        inputs, outputs = f["inputs"], f["outputs"]
    t = graph.tensor(graph.inputs[0])
    env = reference.run(graph, inputs.reshape((len(inputs),) + t.shape))
    np.testing.assert_array_equal(env[graph.outputs[0]].reshape(len(inputs), -1), outputs)
    q = t.quant
    if q is None or q.rounding != "onnx" or not len(inputs):
        return
    rows = inputs[:8]
    x = (rows.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)
    if not np.all(np.isfinite(x)):
        return
    theirs = _ort_codes(model, graph, x)
    if theirs is None:
        return
    ours = outputs[:8].reshape(len(rows), -1)
    if theirs.shape == ours.shape:
        assert np.abs(ours - theirs).max() <= 1, (model, ours, theirs)


def _fuzz(tmp_path, n: int, seed: int):
    rng = np.random.default_rng(seed)
    bases = _bases(tmp_path)
    (tmp_path / "link.data").symlink_to(tmp_path / "ext.onnx.data")
    data_files = _data_files(tmp_path, rng)
    model = tmp_path / "fuzz.onnx"
    outcomes = {"ok": 0, "refused": 0}
    kinds = dict.fromkeys(KINDS, 0)
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        kinds[kind] += 1
        base = bases[int(rng.integers(len(bases)))]
        model.write_bytes(_mutant(base, kind, rng))
        out = str(tmp_path / f"out{i}")
        command = int(rng.integers(4))
        if command == 0:
            args = ["inspect", str(model)] + (["--json"] if rng.random() < 0.5 else [])
        else:
            args = [
                "generate",
                str(model),
                "-o",
                out,
                "--engine",
                ENGINES[int(rng.integers(len(ENGINES)))],
            ]
            if kind == "data" or rng.random() < 0.3:
                args += ["--data", str(data_files[int(rng.integers(len(data_files)))])]
        result = runner.invoke(app, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            result.exception,
            result.output,
        )
        assert result.exit_code in (0, 1), (args, result.output)
        if result.exit_code == 1:
            _check_refusal(result, args)
            assert not os.path.exists(out), args
            outcomes["refused"] += 1
            continue
        outcomes["ok"] += 1
        if args[0] == "generate":
            _check_generated(model, out)
    return outcomes, kinds


@pytest.mark.filterwarnings("ignore")
def test_cli_survives_40_mutants(tmp_path):
    outcomes, kinds = _fuzz(tmp_path, 40, seed=1)
    assert outcomes["refused"] >= 10 and outcomes["ok"] >= 3, outcomes
    assert min(kinds.values()) >= 5, kinds


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_cli_survives_400_mutants(tmp_path):
    outcomes, kinds = _fuzz(tmp_path, 400, seed=2)
    assert outcomes["refused"] >= 100 and outcomes["ok"] >= 20, outcomes
