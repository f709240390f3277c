"""The digits vision transformer fine-tuned with quantization in the loop (torch fake-quant),
exported straight to QDQ ONNX by ``torch.onnx.export``.

``QatViT`` holds the trained ``DigitsViT``'s weights and runs the same network with explicit
ops, so that a quantizer can sit on every tensor the integer golden needs quantized: int8
per-channel weights (``torch.fake_quantize_per_channel_affine``, symmetric) and int8
activations (``torch.fake_quantize_per_tensor_affine``, asymmetric, min/max calibrated on the
training split) on the input, after each Linear (its bias added in float before the
quantizer, as the exporters write it), the residual adds, LayerNorm, both attention MatMuls
(the 1/sqrt(d) scale folded into Q x K^T's output), Softmax, GELU and the token mean. The
operators are those with integer definitions in ``frontends.ir``: Linear, MatMul of two
activations, LayerNormalization, Softmax over the last axis, GELU, mean over the tokens.
Fine-tuning runs the straight-through estimator of torch's fake-quant ops (scales fixed).

``make_digits_vit_qat(out_dir, float_model, x, y)`` writes ``digits_vit_qat.onnx``
(TorchScript exporter) and ``digits_vit_qat_dynamo.onnx`` (dynamo), and returns the
fake-quantized module's and the integer golden's test accuracies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._training import fit, module_accuracy, one_thread

if TYPE_CHECKING:
    from torch import nn

__all__ = ["DigitsVitQat", "make_digits_vit_qat", "qat_vit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigitsVitQat:
    model: Path
    dynamo: Path | None
    qat_accuracy: float
    golden_accuracy: float
    dynamo_error: str = ""


def qat_vit(float_model: nn.Module) -> nn.Module:
    """A ``QatViT`` carrying ``float_model``'s (a ``DigitsViT``) weights, in observe mode."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Act(nn.Module):
        """int8 asymmetric fake quantization; ``observe`` collects min/max first."""

        def __init__(self):
            super().__init__()
            self.observe = True
            self.lo, self.hi = float("inf"), float("-inf")
            self.scale, self.zero_point = 1.0, 0

        def freeze(self):
            lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
            self.scale = max((hi - lo) / 255.0, 1e-8)
            self.zero_point = int(np.clip(round(-128 - lo / self.scale), -128, 127))
            self.observe = False

        def forward(self, x):
            if self.observe:
                self.lo = min(self.lo, float(x.detach().min()))
                self.hi = max(self.hi, float(x.detach().max()))
                return x
            return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, -128, 127)

    def weight_fq(w):
        scale = (w.detach().abs().amax(dim=1) / 127.0).clamp_min(1e-8)
        zp = torch.zeros(w.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -128, 127)

    class Linear(nn.Module):
        """Its bias rounded to the accumulator's scale (input scale x weight scale, int32
        as ONNX's integer ops define it), through the straight-through estimator."""

        def __init__(self, weight, bias, source: Act):
            super().__init__()
            self.weight = nn.Parameter(weight.detach().clone())
            self.bias = nn.Parameter(bias.detach().clone())
            self.source = source  # the quantizer of this layer's input
            self.out = Act()

        def forward(self, x):
            w = self.weight
            bias = self.bias
            if not self.source.observe:
                step = self.source.scale * (w.detach().abs().amax(dim=1) / 127.0).clamp_min(1e-8)
                bias = bias + (torch.round(bias / step) * step - bias).detach()
            return self.out(F.linear(x, weight_fq(w), bias))

    class Norm(nn.Module):
        def __init__(self, ln):
            super().__init__()
            self.weight = nn.Parameter(ln.weight.detach().clone())
            self.bias = nn.Parameter(ln.bias.detach().clone())
            self.eps = ln.eps
            self.out = Act()

        def forward(self, x):
            return self.out(F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps))

    class Block(nn.Module):
        def __init__(self, layer, heads):
            super().__init__()
            attn = layer.self_attn
            self.heads = heads
            self.norm1, self.norm2 = Norm(layer.norm1), Norm(layer.norm2)
            self.scores, self.probs, self.mixed = Act(), Act(), Act()
            self.gelu, self.res1, self.res2 = Act(), Act(), Act()
            self.qkv = Linear(attn.in_proj_weight, attn.in_proj_bias, self.norm1.out)
            self.proj = Linear(attn.out_proj.weight, attn.out_proj.bias, self.mixed)
            self.fc1 = Linear(layer.linear1.weight, layer.linear1.bias, self.norm2.out)
            self.fc2 = Linear(layer.linear2.weight, layer.linear2.bias, self.gelu)

        def forward(self, x):
            b, t, e = x.shape
            d = e // self.heads
            qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, T, d)
            s = self.scores(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / d**0.5))
            a = self.mixed(torch.matmul(self.probs(torch.softmax(s, dim=-1)), v))
            x = self.res1(x + self.proj(a.transpose(1, 2).reshape(b, t, e)))
            h = self.fc2(self.gelu(F.gelu(self.fc1(self.norm2(x)))))
            return self.res2(x + h)

    class QatViT(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.inp = Act()
            self.embed = Linear(m.embed.weight, m.embed.bias, self.inp)
            self.pos = nn.Parameter(m.pos.detach().clone())
            self.pos_out = Act()
            layer0 = m.encoder.layers[0]
            heads = layer0.self_attn.num_heads
            self.blocks = nn.ModuleList(Block(layer, heads) for layer in m.encoder.layers)
            self.mean = Act()
            self.norm = Norm(m.norm)
            self.head = Linear(m.head.weight, m.head.bias, self.norm.out)

        def forward(self, x):
            x = x.reshape(-1, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(-1, 16, 4)
            x = self.pos_out(self.embed(self.inp(x)) + self.pos)
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(self.mean(x.mean(1))))

        def freeze(self):
            for mod in self.modules():
                if isinstance(mod, Act):
                    mod.freeze()

    return QatViT(float_model)


def make_digits_vit_qat(
    out_dir: str | Path,
    float_model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    epochs: int = 8,
) -> DigitsVitQat:
    import torch

    from .. import reference
    from ..errors import ModelError
    from ..onnx_import import import_onnx
    from .vit_export import export_vit

    out_dir = Path(out_dir)
    with one_thread():
        net = qat_vit(float_model).eval()
        with torch.no_grad():
            net(torch.from_numpy(x_train))  # calibrate every activation's range
        net.freeze()
        torch.manual_seed(1)
        opt = torch.optim.Adam(net.parameters(), lr=2e-4)
        fit(net, x_train, y_train, opt, epochs=epochs, seed=1)
        net.eval()
    qat_acc = module_accuracy(net, x_test, y_test)
    path = export_vit(net, out_dir / "digits_vit_qat.onnx", dynamo=False)
    dynamo, error = None, ""
    try:
        dynamo = export_vit(net, out_dir / "digits_vit_qat_dynamo.onnx", dynamo=True)
    except Exception as exc:  # the dynamo exporter's support of fake-quant ops varies
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.warning("digits ViT QAT: the dynamo export failed (%s)", error)
    try:
        graph = import_onnx(path)
        golden = float((reference.predict(graph, x_test).argmax(1) == y_test).mean())
    except ModelError:
        raise
    log.info("digits ViT QAT: fake-quant module %.4f, golden %.4f", qat_acc, golden)
    return DigitsVitQat(path, dynamo, qat_acc, golden, error)
