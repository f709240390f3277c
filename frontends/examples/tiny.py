"""``nnloom example tiny-kws | tiny-ic | tiny-ad | tiny-vww``: the MLPerf Tiny reference
networks (``tiny_models``) quantized as users do.

Their datasets (Speech Commands, CIFAR-10, ToyADMOS, COCO person) cannot be downloaded
here, so each model is **trained briefly on synthetic data** made by the code (seeded):

- classifiers: each class is a smooth random template (a random field on a coarse grid,
  upsampled) added at a random strength to smooth noise; the test split is drawn the same
  way, so its accuracy says how well the quantized network keeps the float one's decisions
  on a learnable task, not how it scores on the real benchmark;
- the autoencoder: "normal" frames are a rank-8 mixture plus noise, trained to reconstruct;
  its test split has no labels.

Then: ``torch.onnx.export`` (TorchScript exporter, eval mode: BatchNorm folds into the
preceding Conv where PyTorch folds it; after a Linear it stays a ``BatchNormalization``),
the ``Pad`` in front of a Conv (Keras' asymmetric 'same' padding) folded into the Conv's
``pads`` as Keras' ONNX exporters write it, and onnxruntime ``quantize_static`` (QDQ, int8
activations and weights, per-channel weights, MinMax calibration on training samples).
Files written into ``out_dir``:

- ``<name>_float.onnx``: the float model,
- ``<name>.onnx``: the quantized model nnloom compiles,
- ``<name>_test.npz``: ``x`` (float32 inputs) and, for the classifiers, ``y`` (labels).

Everything is seeded and the export's producer version cleared: the same call writes the same
bytes on this machine (torch runs single-threaded while it trains, so the thread count does
not change the float weights).

``make_tiny_twin(kind, out_dir)`` builds the digits-sized twin of a convolutional
architecture (8x8x1 digits from scikit-learn, 10 classes; the same blocks at smaller widths)
the same way, where accuracy is measured on real data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._training import fit, one_thread, quantize_qdq

if TYPE_CHECKING:
    from onnx import ModelProto
    from torch import nn

__all__ = [
    "TinyExample",
    "TinySpec",
    "SPECS",
    "TWINS",
    "make_tiny",
    "make_tiny_twin",
    "synthetic_classes",
    "synthetic_frames",
    "fold_pads",
]

log = logging.getLogger(__name__)

SEED = 0


@dataclass(frozen=True)
class TinyExample:
    name: str
    quantized: Path
    float_model: Path
    test_data: Path
    float_accuracy: float | None  # on the test split (classifiers only)
    quantized_accuracy: float | None  # onnxruntime on the quantized model
    float_mse: float | None = None  # the autoencoder's reconstruction error
    quantized_mse: float | None = None
    synthetic: bool = True


@dataclass(frozen=True)
class TinySpec:
    """One example: its module, input shape (without batch), data and training budget."""

    name: str
    what: str
    build: Callable
    input_shape: tuple[int, ...]
    classes: int | None  # None: the autoencoder
    n_train: int
    n_test: int
    epochs: int
    lr: float = 3e-3
    n_calib: int = 64


def _specs() -> dict[str, TinySpec]:
    from . import tiny_models as m

    return {
        "tiny_kws": TinySpec(
            "tiny_kws",
            "keyword spotting DS-CNN (49x10 MFCC, 64 channels, 12 classes)",
            m.ds_cnn,
            (1, 49, 10),
            12,
            768,
            120,
            3,
        ),
        "tiny_ic": TinySpec(
            "tiny_ic",
            "image classification ResNet-8 (32x32x3, 16/32/64, 10 classes)",
            m.resnet8,
            (3, 32, 32),
            10,
            512,
            100,
            3,
        ),
        "tiny_ad": TinySpec(
            "tiny_ad",
            "anomaly detection FC autoencoder (640-128x4-8-128x4-640, BatchNorm)",
            m.fc_autoencoder,
            (640,),
            None,
            512,
            64,
            40,
            lr=1e-3,
        ),
        "tiny_vww": TinySpec(
            "tiny_vww",
            "visual wake words MobileNetV1 0.25 (96x96x3, 2 classes)",
            m.mobilenet_v1,
            (3, 96, 96),
            2,
            384,
            48,
            3,
        ),
    }


SPECS = _specs()


# --- synthetic data ----------------------------------------------------------------------------


def _smooth_field(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """``n`` random fields of ``shape`` (C, H, W), smooth: a coarse random grid upsampled
    bilinearly (the same code for templates and noise)."""
    c, h, w = shape
    gh, gw = max(2, h // 6), max(2, w // 3 if w < 16 else w // 6)
    coarse = rng.standard_normal((n, c, gh, gw))
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = coarse[..., y0, :][..., x0]
    b = coarse[..., y0, :][..., x0 + 1]
    cc = coarse[..., y0 + 1, :][..., x0]
    d = coarse[..., y0 + 1, :][..., x0 + 1]
    return a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + cc * fy * (1 - fx) + d * fy * fx


def synthetic_classes(
    shape: tuple[int, ...],
    classes: int,
    n: int,
    *,
    seed: int,
    split: int,
    strength: tuple[float, float] = (0.8, 1.6),
    noise: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` labelled samples of ``shape``: class template x strength + smooth noise + white
    noise. The templates depend on ``seed`` only; ``split`` picks independent samples."""
    templates = _smooth_field(np.random.default_rng(seed), classes, shape)
    rng = np.random.default_rng([seed, split])
    y = rng.integers(0, classes, n)
    a = rng.uniform(*strength, n)[:, None, None, None]
    x = (
        templates[y] * a
        + noise * _smooth_field(rng, n, shape)
        + 0.1 * rng.standard_normal((n, *shape))
    )
    return x.astype(np.float32), y.astype(np.int64)


def synthetic_frames(n: int, *, dim: int = 640, rank: int = 8, seed: int, split: int) -> np.ndarray:
    """``n`` "normal machine sound" frames: a rank-``rank`` mixture (fixed by ``seed``) of
    smooth spectra plus noise, roughly the range of the reference's log-mel features / 10."""
    rng0 = np.random.default_rng(seed)
    basis = _smooth_field(rng0, rank, (1, 5, dim // 5)).reshape(rank, dim)
    rng = np.random.default_rng([seed, split])
    codes = rng.standard_normal((n, rank))
    return (codes @ basis / np.sqrt(rank) + 0.1 * rng.standard_normal((n, dim))).astype(np.float32)


def _data(spec: TinySpec, seed: int):
    if spec.classes is None:
        return (
            synthetic_frames(spec.n_train, seed=seed, split=0),
            None,
            synthetic_frames(spec.n_test, seed=seed, split=1),
            None,
        )
    x_tr, y_tr = synthetic_classes(spec.input_shape, spec.classes, spec.n_train, seed=seed, split=0)
    x_te, y_te = synthetic_classes(spec.input_shape, spec.classes, spec.n_test, seed=seed, split=1)
    return x_tr, y_tr, x_te, y_te


# --- training, export, quantization ------------------------------------------------------------


def _train(
    model,
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch: int = 32,
):
    import torch

    with one_thread():
        torch.manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        fit(model, x, y, opt, epochs=epochs, seed=seed, batch=batch)
    return model.eval()


def _constant(g, name: str):
    """The value of tensor ``name`` if only constants feed it (an initializer, or a subgraph
    of ``Constant`` nodes, as the TorchScript exporter writes a Pad's pads), else None."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    inits = {i.name: i for i in g.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name])
    producer = {o: n for n in g.node for o in n.output}
    needed, todo = [], [name]
    while todo:
        t = todo.pop()
        if t in inits or not t:
            continue
        node = producer.get(t)
        if node is None:  # a graph input
            return None
        if node not in needed:
            needed.append(node)
            todo += list(node.input)
    order = [n for n in g.node if n in needed]
    used_inits = [inits[i] for n in order for i in n.input if i in inits]
    sub = helper.make_graph(
        order, "pads", [], [helper.make_tensor_value_info(name, 0, None)], initializer=used_inits
    )
    return ReferenceEvaluator(helper.make_model(sub)).run(None, {})[0]


def fold_pads(proto: ModelProto) -> int:
    """Fold each zero ``Pad`` (constant mode, spatial axes only) whose only consumer is a
    ``Conv`` into that Conv's ``pads``, then drop the nodes nothing uses any more; returns
    how many were folded."""
    import onnx
    from onnx import helper

    g = proto.graph
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    folded = 0
    for pad in [n for n in g.node if n.op_type == "Pad"]:
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        pads = _constant(g, pad.input[1]) if len(pad.input) > 1 else None
        value = _constant(g, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0
        users = consumers.get(pad.output[0], [])
        if (
            mode != b"constant"
            or pads is None
            or value is None
            or np.any(np.asarray(value) != 0)
            or len(users) != 1
            or users[0].op_type != "Conv"
            or len(pads) != 8
            or np.any(pads[[0, 1, 4, 5]] != 0)
        ):
            continue
        conv = users[0]
        old = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0] * 4)
        new = [
            int(pads[2]) + old[0],
            int(pads[3]) + old[1],
            int(pads[6]) + old[2],
            int(pads[7]) + old[3],
        ]
        attrs = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
        attrs.append(helper.make_attribute("pads", new))
        del conv.attribute[:]
        conv.attribute.extend(attrs)
        conv.input[0] = pad.input[0]
        g.node.remove(pad)
        folded += 1
    outputs = {o.name for o in g.output}
    while True:  # dead nodes and initializers
        used = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for i in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(i)
    onnx.checker.check_model(proto)
    return folded


def export_and_quantize(
    model: nn.Module,
    input_shape: tuple[int, ...],
    float_path: Path,
    quant_path: Path,
    calib: np.ndarray,
) -> None:
    """Float ONNX (pads folded, producer version cleared) and onnxruntime's static QDQ int8
    per-channel model, both written atomically."""
    import tempfile

    import onnx
    import torch

    from .._atomic import write_bytes_atomic

    with tempfile.TemporaryDirectory(dir=float_path.parent, prefix=".export.") as tmp:
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(1, *input_shape),),
            str(raw),
            input_names=["x"],
            output_names=["y"],
            dynamo=False,
            opset_version=17,
        )
        proto = onnx.load(str(raw))
        proto.producer_version = ""
        fold_pads(proto)
        write_bytes_atomic(float_path, proto.SerializeToString())
        q_tmp = Path(tmp) / "q.onnx"
        quantize_qdq(float_path, q_tmp, calib, per_channel=True)
        write_bytes_atomic(quant_path, q_tmp.read_bytes())


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def _build(spec: TinySpec, out_dir: Path, x_tr, y_tr, x_te, y_te, seed: int, model) -> TinyExample:
    from .._atomic import savez_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    model = _train(model, x_tr, y_tr, epochs=spec.epochs, lr=spec.lr, seed=seed)
    float_path = out_dir / f"{spec.name}_float.onnx"
    quant_path = out_dir / f"{spec.name}.onnx"
    export_and_quantize(model, spec.input_shape, float_path, quant_path, x_tr[: spec.n_calib])
    data = {"x": x_te} if y_te is None else {"x": x_te, "y": y_te}
    data_path = savez_atomic(out_dir / f"{spec.name}_test.npz", **data)
    f_out, q_out = _ort(float_path, x_te), _ort(quant_path, x_te)
    if y_te is None:
        f_mse = float(((f_out - x_te) ** 2).mean())
        q_mse = float(((q_out - x_te) ** 2).mean())
        log.info("%s: reconstruction MSE float %.4f, int8 %.4f", spec.name, f_mse, q_mse)
        return TinyExample(spec.name, quant_path, float_path, data_path, None, None, f_mse, q_mse)
    f_acc = float((f_out.argmax(1) == y_te).mean())
    q_acc = float((q_out.argmax(1) == y_te).mean())
    log.info("%s: test accuracy float %.4f, int8 %.4f", spec.name, f_acc, q_acc)
    return TinyExample(spec.name, quant_path, float_path, data_path, f_acc, q_acc)


def make_tiny(name: str, out_dir: str | Path, *, seed: int = SEED) -> TinyExample:
    """Train (briefly, on synthetic data), export and quantize the MLPerf Tiny example
    ``name`` (``tiny_kws``, ``tiny_ic``, ``tiny_ad``, ``tiny_vww``) into ``out_dir``."""
    import torch

    spec = SPECS[name]
    torch.manual_seed(seed)
    model = spec.build()
    x_tr, y_tr, x_te, y_te = _data(spec, seed)
    return _build(spec, Path(out_dir), x_tr, y_tr, x_te, y_te, seed, model)


# --- digits-sized twins ------------------------------------------------------------------------


def _twin_builders() -> dict[str, tuple[str, Callable]]:
    from . import tiny_models as m

    return {
        "kws": (
            "DS-CNN twin: 3x3 stem, 4 depthwise-separable blocks of 32 channels",
            lambda: m.ds_cnn(
                in_hw=(8, 8), channels=32, classes=10, stem_kernel=(3, 3), stem_stride=1
            ),
        ),
        "ic": (
            "ResNet-8 twin: 8/16/32 filters on 8x8x1",
            lambda: m.resnet8(in_hw=(8, 8), in_channels=1, filters=8),
        ),
        "vww": (
            "MobileNetV1 twin: base 8, first 6 blocks on 8x8x1 (16 to 128 channels)",
            lambda: m.mobilenet_v1(in_hw=(8, 8), in_channels=1, base=8, classes=10, blocks=6),
        ),
    }


TWINS = _twin_builders()


def make_tiny_twin(
    kind: str, out_dir: str | Path, *, seed: int = SEED, epochs: int = 12
) -> TinyExample:
    """The digits-sized twin of ``kind`` (``kws``, ``ic``, ``vww``): the same blocks on
    scikit-learn's 8x8 digits (real data, 10 classes), written as ``tiny_<kind>_digits*``."""
    import torch

    from .digits_mlp import load_digits_split

    x_tr, x_te, y_tr, y_te = load_digits_split(seed)
    x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
    spec = TinySpec(
        f"tiny_{kind}_digits",
        TWINS[kind][0],
        TWINS[kind][1],
        (1, 8, 8),
        10,
        len(x_tr),
        len(x_te),
        epochs,
        lr=3e-3,
        n_calib=128,
    )
    torch.manual_seed(seed)
    made = _build(spec, Path(out_dir), x_tr, y_tr, x_te, y_te, seed, spec.build())
    return TinyExample(**{**made.__dict__, "synthetic": False})


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    print(make_tiny(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "out/models"))
