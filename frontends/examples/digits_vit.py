"""``nnloom example digits-vit``: a tiny vision transformer on scikit-learn's 8x8 digits,
quantized the ways users do.

The model (``DigitsViT``) cuts the 8x8 image into 2x2 patches (16 tokens of 4 pixels; the
reshape and permute run on the float input, so the host does them), embeds each patch with a
Linear (32 features), adds a learned position embedding, runs two pre-LN encoder blocks
(``torch.nn.TransformerEncoderLayer(norm_first=True, activation="gelu")``: LayerNorm,
``nn.MultiheadAttention`` with 2 heads, residual add, LayerNorm, Linear 64, GELU, Linear 32,
residual add), averages the tokens, normalizes and classifies (Linear 10). Built from torch's
own modules, so the exporters emit the shape subgraphs users' models have.

``make_digits_vit(out_dir)`` trains it (seeded, single-threaded, about a minute of CPU) and
writes:

- ``digits_vit_float.onnx``: the float model (TorchScript exporter, opset 17),
- ``digits_vit.onnx``: onnxruntime ``quantize_static`` of it (QDQ, int8 activations,
  per-channel int8 weights, MinMax calibration on the training split); LayerNorm, Softmax and
  GELU stay float between DequantizeLinear and QuantizeLinear (the GELU's Erf/Add/Mul nodes
  are excluded from quantization),
- ``digits_vit_dynamo.onnx``: the same from ``torch.onnx.export(..., dynamo=True)``,
- ``digits_vit_qat.onnx`` and ``digits_vit_qat_dynamo.onnx``: the model fine-tuned with
  torch fake-quant in the loop and exported to QDQ directly (``digits_vit_qat``),
- ``digits_test.npz``: the held-out split (``x`` float32 N x 64, ``y`` labels), as the other
  digits examples.

It returns the float, onnxruntime-QDQ and integer-golden test accuracies, and the QAT
module's and its golden's.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._training import fit, module_accuracy, one_thread, quantize_qdq
from .vit_export import export_vit

if TYPE_CHECKING:
    from onnx import ModelProto
    from torch import nn

__all__ = [
    "DigitsVit",
    "make_digits_vit",
    "build_vit",
    "train_vit",
    "export_vit",
    "quantize_vit",
    "gelu_island_nodes",
]

log = logging.getLogger(__name__)

SEED = 0
EPOCHS = 60


@dataclass(frozen=True)
class DigitsVit:
    quantized: Path
    dynamo: Path
    float_model: Path
    test_data: Path
    float_accuracy: float
    ort_accuracy: float
    golden_accuracy: float
    qat: Path
    qat_dynamo: Path | None
    qat_accuracy: float
    qat_golden_accuracy: float


def build_vit(
    dim: int = 32, heads: int = 2, blocks: int = 2, mlp: int = 64, seed: int = SEED
) -> nn.Module:
    """The untrained ``DigitsViT`` (seeded)."""
    import torch
    from torch import nn

    class DigitsViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(4, dim)
            self.pos = nn.Parameter(torch.randn(1, 16, dim) * 0.02)
            layer = nn.TransformerEncoderLayer(
                dim,
                heads,
                mlp,
                dropout=0.0,
                activation="gelu",
                norm_first=True,
                batch_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 10)

        def forward(self, x):
            # (B, 64) -> 16 tokens of 2x2 pixels: (B, 4, 2, 4, 2) -> (B, 4, 4, 2, 2)
            x = x.reshape(-1, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(-1, 16, 4)
            x = self.encoder(self.embed(x) + self.pos)
            return self.head(self.norm(x.mean(1)))

    torch.manual_seed(seed)
    return DigitsViT().eval()


def train_vit(
    model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, seed: int = SEED
) -> nn.Module:
    """AdamW with a one-cycle schedule, batches of 64, single-threaded (the same weights on
    any machine's thread count)."""
    import torch

    with one_thread():
        torch.manual_seed(seed)
        steps = epochs * ((len(x) + 63) // 64)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
        model.train()
        fit(model, x, y, opt, epochs=epochs, seed=seed, sched=sched)
    return model.eval()


def gelu_island_nodes(model: ModelProto) -> list[str]:
    """Names of the nodes of each Erf-form GELU (``x / sqrt(2)``, Erf, ``+ 1``, ``* x``,
    ``* 0.5``), kept out of quantization so the GELU stays one float island."""
    prod = {o: n for n in model.graph.node for o in n.output}
    cons: dict = {}
    for n in model.graph.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    out: set = set()
    for n in model.graph.node:
        if n.op_type != "Erf":
            continue
        out.add(n.name)
        p = prod.get(n.input[0])
        if p is not None and p.op_type in ("Div", "Mul"):
            out.add(p.name)
        todo = [n]
        while todo:
            for c in cons.get(todo.pop().output[0], []):
                if c.op_type in ("Add", "Mul", "Div") and c.name not in out:
                    out.add(c.name)
                    todo.append(c)
    return sorted(out)


def quantize_vit(float_path: Path, out_path: Path, calib: np.ndarray) -> Path:
    """onnxruntime ``quantize_static``: QDQ, int8, per-channel weights, the GELU islands
    excluded (LayerNormalization and Softmax get Q/DQ around them, staying float inside)."""
    import onnx

    from .._atomic import write_bytes_atomic

    out_path = Path(out_path)
    exclude = gelu_island_nodes(onnx.load(str(float_path)))
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quant.") as tmp:
        q_tmp = Path(tmp) / "q.onnx"
        quantize_qdq(float_path, q_tmp, calib, per_channel=True, exclude=exclude)
        write_bytes_atomic(out_path, q_tmp.read_bytes())
    return out_path


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs of the model at ``path``, one sample at a time (batch of one,
    the shape it was exported with)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def make_digits_vit(out_dir: str | Path, *, epochs: int = EPOCHS) -> DigitsVit:
    from .. import reference
    from .._atomic import savez_atomic
    from ..onnx_import import import_onnx
    from .digits_mlp import load_digits_split
    from .digits_vit_qat import make_digits_vit_qat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = train_vit(build_vit(), x_train, y_train, epochs=epochs)
    float_acc = module_accuracy(model, x_test, y_test)

    float_path = export_vit(model, out_dir / "digits_vit_float.onnx", dynamo=False)
    quant_path = quantize_vit(float_path, out_dir / "digits_vit.onnx", x_train)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".dynamo.") as tmp:
        raw = export_vit(model, Path(tmp) / "float.onnx", dynamo=True)
        dynamo_path = quantize_vit(raw, out_dir / "digits_vit_dynamo.onnx", x_train)
    data_path = savez_atomic(out_dir / "digits_test.npz", x=x_test, y=y_test)

    ort_acc = float((ort_outputs(quant_path, x_test).argmax(1) == y_test).mean())
    graph = import_onnx(quant_path)
    golden_acc = float((reference.predict(graph, x_test).argmax(1) == y_test).mean())
    log.info(
        "digits ViT: float %.4f, onnxruntime QDQ %.4f, golden %.4f", float_acc, ort_acc, golden_acc
    )
    qat = make_digits_vit_qat(out_dir, model, x_train, y_train, x_test, y_test)
    return DigitsVit(
        quant_path,
        dynamo_path,
        float_path,
        data_path,
        float_acc,
        ort_acc,
        golden_acc,
        qat.model,
        qat.dynamo,
        qat.qat_accuracy,
        qat.golden_accuracy,
    )


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    print(make_digits_vit(sys.argv[1] if len(sys.argv) > 1 else "out/models"))
