"""Quantization-aware fine-tuning with bits chosen per layer (APTQ-style mixed precision).

``QatNet.from_float(model, bits=...)`` wraps a float ``nn.Sequential`` of ``Linear``,
``Conv2d`` (a ``BatchNorm2d`` after it is folded in), ``ReLU``, ``Flatten`` and ``MaxPool2d``
in fake-quantized layers whose arithmetic is the integer graph nnloom imports; ``finetune``
trains it with straight-through rounding; ``export_qonnx`` writes it as a QONNX model
(``Quant`` nodes, domain ``qonnx.custom_op.general``, the form Brevitas ``export_qonnx``
writes).

What the fake-quantized network computes (float32, the same steps QONNX ``Quant`` takes):

- input: ``c_x = clamp(round_half_even(x / s_x), lo, hi)``, signed or unsigned ``input_bits``;
- a layer with per-output-channel weight scale ``s_w[n] = max|W[n]| / (2**(b-1) - 1)``
  (2 bits: ``2 * 0.7 * rms(W[n])``, so that the ternary threshold ``s_w / 2`` is TGA's
  ``0.7 sigma``): ``c_w = clamp(round(W / s_w), -(2**(b-1) - 1), 2**(b-1) - 1)`` (narrow, so
  2 bits is ternary); bias ``c_b = round(b / (s_x * s_w))`` clamped to int32, on the
  accumulator's scale (as Brevitas ``Int32Bias``); ``acc = c_x * c_w + c_b`` summed exactly
  (integer-valued float32 while ``|acc| < 2**24``); ``y = acc * s_x * s_w``;
- then an optional ReLU and the activation quantizer ``c_y = clamp(round(y / s_y), lo, hi)``,
  unsigned ``act`` bits after a ReLU, signed otherwise; ``s_y = running max / q_max``,
  observed in training mode and frozen in eval mode;
- MaxPool2d keeps its input's codes and scale (a Quant with the same parameters follows it).

Rounding in the forward pass is ``torch.round`` (half to even) with a straight-through
gradient (identity inside the clamp range, zero outside, as Brevitas does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from frontends.errors import NnloomError

from .._atomic import write_bytes_atomic

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = [
    "LayerBits",
    "QatNet",
    "finetune",
    "accuracy",
    "export_qonnx",
    "fold_batch_norm",
    "QatError",
]

log = logging.getLogger(__name__)

QONNX_DOMAIN = "qonnx.custom_op.general"
_MOMENTUM = 0.1
TERNARY_K = 0.7


class QatError(NnloomError, ValueError):
    """A model or bit choice the QAT helpers cannot take; the message names the module."""


@dataclass(frozen=True)
class LayerBits:
    """Bit widths of one Linear/Conv2d layer: its weights (2 = ternary) and its output
    activations (unsigned after a ReLU)."""

    weight: int = 8
    act: int = 8

    def __post_init__(self):
        if not 2 <= self.weight <= 8:
            raise QatError(f"weight bits {self.weight} are outside 2..8")
        if not 2 <= self.act <= 8:
            raise QatError(f"activation bits {self.act} are outside 2..8")


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.round(v) - v).detach()


def _code_range(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


class ActQuant(nn.Module):
    """Per-tensor activation quantizer: returns integer-valued codes (float32) and keeps the
    scale ``running_max / q_max`` (observed while training, frozen in eval mode)."""

    def __init__(self, bits: int, signed: bool):
        super().__init__()
        self.bits, self.signed = bits, signed
        self.lo, self.hi = _code_range(bits, signed)
        self.register_buffer("running_max", torch.zeros(()))
        self.observe_max = False  # calibration: keep the maximum instead of a moving average

    @property
    def scale(self) -> torch.Tensor:
        top = torch.clamp(self.running_max, min=1e-8)
        return (top / self.hi).to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                seen = x.detach().abs().max() if self.signed else x.detach().clamp(min=0).max()
                if self.observe_max:
                    self.running_max.copy_(torch.maximum(self.running_max, seen))
                elif self.running_max == 0:
                    self.running_max.copy_(seen)
                else:
                    self.running_max.mul_(1 - _MOMENTUM).add_(_MOMENTUM * seen)
        return torch.clamp(_round_ste(x / self.scale), self.lo, self.hi)


class QuantLayer(nn.Module):
    """A Linear or Conv2d on codes: ``acc = c_x * c_w + c_b``; returns ``acc * s_x * s_w``
    (float) and, with ``relu``, its ReLU."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, bits: LayerBits, relu: bool):
        super().__init__()
        self.layer, self.bits, self.relu = layer, bits, relu
        self.q_max = (1 << (bits.weight - 1)) - 1

    def weight_scale(self) -> torch.Tensor:
        w = self.layer.weight.detach().reshape(len(self.layer.weight), -1)
        if self.q_max == 1:
            # Ternary: max|W| / 1 would put the threshold (half the scale) so high that most
            # weights become 0; TGA's threshold k*sigma (k = 0.7) is the scale 2*k*sigma.
            top = 2 * TERNARY_K * w.pow(2).mean(dim=1).sqrt()
        else:
            top = w.abs().max(dim=1).values / self.q_max
        return torch.where(top > 0, top, torch.ones_like(top)).to(torch.float32)

    def weight_codes(self) -> torch.Tensor:
        s = self.weight_scale().reshape((-1,) + (1,) * (self.layer.weight.dim() - 1))
        return torch.clamp(_round_ste(self.layer.weight / s), -self.q_max, self.q_max)

    def bias_scale(self, in_scale: torch.Tensor) -> torch.Tensor:
        return (in_scale * self.weight_scale()).to(torch.float32)

    def bias_codes(self, in_scale: torch.Tensor) -> torch.Tensor | None:
        if self.layer.bias is None:
            return None
        return torch.clamp(
            _round_ste(self.layer.bias / self.bias_scale(in_scale)), -(1 << 31), (1 << 31) - 1
        )

    def forward(self, codes: torch.Tensor, in_scale: torch.Tensor) -> torch.Tensor:
        cw, cb = self.weight_codes(), self.bias_codes(in_scale)
        if isinstance(self.layer, nn.Linear):
            acc = nn.functional.linear(codes, cw, cb)
            scale = self.bias_scale(in_scale)
        else:
            c = self.layer
            acc = nn.functional.conv2d(codes, cw, cb, c.stride, c.padding, c.dilation, c.groups)
            scale = self.bias_scale(in_scale).reshape(-1, 1, 1)
        y = acc * scale
        return torch.relu(y) if self.relu else y


def _as_bits(bits, names: list[str]) -> list[LayerBits]:
    if bits is None or isinstance(bits, LayerBits):
        return [bits or LayerBits()] * len(names)
    if isinstance(bits, Mapping):
        unknown = sorted(set(bits) - set(names))
        if unknown:
            raise QatError(
                f"bits name modules {unknown} that are not Linear/Conv2d layers; "
                f"the layers are {names}"
            )
        return [bits.get(n, LayerBits()) for n in names]
    bits = list(bits)
    if len(bits) != len(names):
        raise QatError(
            f"{len(bits)} bit choices for {len(names)} Linear/Conv2d layers ({', '.join(names)})"
        )
    return bits


@torch.no_grad()
def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an eval-mode BatchNorm2d (running statistics) into ``conv`` in place:
    ``W' = W * g``, ``b' = (b - mean) * g + beta`` with ``g = gamma / sqrt(var + eps)``."""
    g = (
        bn.weight / torch.sqrt(bn.running_var + bn.eps)
        if bn.affine
        else 1 / torch.sqrt(bn.running_var + bn.eps)
    )
    beta = bn.bias if bn.affine else torch.zeros_like(g)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(g)
    conv.weight.mul_(g.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * g + beta)
    return conv


class QatNet(nn.Module):
    """A fake-quantized copy of a float ``nn.Sequential``; ``forward`` returns the float value
    of the output codes, ``codes`` the codes themselves."""

    def __init__(self, steps: list, input_quant: ActQuant):
        super().__init__()
        self.input_quant = input_quant
        self.steps = nn.ModuleList(steps)

    @classmethod
    def from_float(
        cls,
        model: nn.Sequential,
        bits: LayerBits | Sequence[LayerBits] | Mapping[str, LayerBits] | None = None,
        *,
        input_bits: int = 8,
        input_signed: bool = True,
    ) -> QatNet:
        """Wrap a copy of ``model`` (the float model is left as it is). ``bits``: one
        ``LayerBits`` for all layers, one per Linear/Conv2d in order, or a mapping from the
        layer's module name (default ``LayerBits()``: 8/8)."""
        import copy

        if not isinstance(model, nn.Sequential):
            raise QatError(f"QAT wraps an nn.Sequential; got {type(model).__name__}")
        mods = list(model.named_children())
        layers = [n for n, m in mods if isinstance(m, (nn.Linear, nn.Conv2d))]
        if not layers:
            raise QatError("the model has no Linear or Conv2d layer")
        per_layer = dict(zip(layers, _as_bits(bits, layers)))
        steps, i = [], 0
        while i < len(mods):
            name, m = mods[i]
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                layer = copy.deepcopy(m)
                if (
                    isinstance(m, nn.Conv2d)
                    and i + 1 < len(mods)
                    and isinstance(mods[i + 1][1], nn.BatchNorm2d)
                ):
                    fold_batch_norm(layer, mods[i + 1][1])
                    i += 1
                relu = i + 1 < len(mods) and isinstance(mods[i + 1][1], nn.ReLU)
                b = per_layer[name]
                steps += [QuantLayer(layer, b, relu), ActQuant(b.act, not relu)]
                i += 2 if relu else 1
                continue
            if isinstance(m, (nn.Flatten, nn.MaxPool2d)):
                if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
                    raise QatError(f"module '{name}' (Flatten): only start_dim=1, end_dim=-1")
                steps.append(copy.deepcopy(m))
            elif isinstance(m, nn.ReLU):
                raise QatError(f"module '{name}' (ReLU) must follow a Linear/Conv2d layer")
            else:
                raise QatError(
                    f"module '{name}' ({type(m).__name__}) is not supported; QAT "
                    f"takes Linear, Conv2d (+BatchNorm2d), ReLU, Flatten and "
                    f"MaxPool2d"
                )
            i += 1
        return cls(steps, ActQuant(input_bits, input_signed))

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output codes and their scale."""
        c, s = self.input_quant(x), self.input_quant.scale
        pending = None
        for step in self.steps:
            if isinstance(step, QuantLayer):
                pending = step(c, s)
            elif isinstance(step, ActQuant):
                c, s = step(pending), step.scale
            else:
                c = step(c)
        return c, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.codes(x)
        return c * s

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, *, batch: int = 256) -> QatNet:
        """Set every activation scale to the maximum seen on ``x`` (then eval mode)."""
        quants = [self.input_quant] + [s for s in self.steps if isinstance(s, ActQuant)]
        self.train()
        for q in quants:
            q.running_max.zero_()
            q.observe_max = True
        try:
            for chunk in torch.as_tensor(x, dtype=torch.float32).split(batch):
                self.forward(chunk)
        finally:
            for q in quants:
                q.observe_max = False
        return self.eval()


def finetune(
    net: QatNet,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    batch: int = 64,
    seed: int = 0,
) -> QatNet:
    """Cross-entropy fine-tuning of a classifier with straight-through rounding (Adam);
    returns ``net`` in eval mode with its activation scales frozen."""
    torch.manual_seed(seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        log.debug("QAT epoch %d: loss %.4f", epoch, total / len(xt))
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    was = net.training
    net.eval()
    out = net(torch.as_tensor(x, dtype=torch.float32))
    net.train(was)
    return float((out.argmax(1).numpy() == np.asarray(y)).mean())


# --- export ------------------------------------------------------------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


class _Graph:
    def __init__(self):
        self.nodes, self.inits = [], []

    def init(self, name: str, value) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        from onnx import helper

        self.nodes.append(
            helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs)
        )
        return output

    def quant(self, x: str, name: str, scale, bits: int, *, signed: bool, narrow: bool = False):
        ins = [
            x,
            self.init(f"{name}.scale", scale),
            self.init(f"{name}.zeropt", 0.0),
            self.init(f"{name}.bits", float(bits)),
        ]
        return self.node(
            "Quant",
            ins,
            name,
            QONNX_DOMAIN,
            signed=int(signed),
            narrow=int(narrow),
            rounding_mode="ROUND",
        )


def _export_layer(g: _Graph, k: int, step: QuantLayer, x: str, in_scale: torch.Tensor) -> str:
    layer = step.layer
    w_scale = _np(step.weight_scale())
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    w = g.quant(
        g.init(f"l{k}.weight", _np(layer.weight)),
        f"l{k}.weight_q",
        w_scale.reshape(shape),
        step.bits.weight,
        signed=True,
        narrow=True,
    )
    ins = [x, w]
    if layer.bias is not None:
        ins.append(
            g.quant(
                g.init(f"l{k}.bias", _np(layer.bias)),
                f"l{k}.bias_q",
                _np(step.bias_scale(in_scale)),
                32,
                signed=True,
            )
        )
    if isinstance(layer, nn.Linear):
        y = g.node("Gemm", ins, f"l{k}.gemm", transB=1)
    else:
        if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
            raise QatError(
                f"layer {k} (Conv2d): padding '{layer.padding}' "
                f"({layer.padding_mode}) is not exported; give zero padding in "
                f"pixels"
            )
        (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
        y = g.node(
            "Conv",
            ins,
            f"l{k}.conv",
            kernel_shape=list(layer.kernel_size),
            strides=[sh, sw],
            pads=[ph, pw, ph, pw],
            dilations=[dh, dw],
            group=layer.groups,
        )
    return g.node("Relu", [y], f"l{k}.relu") if step.relu else y


def qonnx_model(net: QatNet, input_shape: Sequence[int]) -> ModelProto:
    """The QONNX ``ModelProto`` of ``net`` for one sample of ``input_shape`` (no batch)."""
    from onnx import TensorProto, helper

    net = net.eval()
    g = _Graph()
    q = net.input_quant
    x = g.quant("x", "input_q", _np(q.scale), q.bits, signed=q.signed)
    scale, layer_k, pending = q.scale, 0, None
    for step in net.steps:
        if isinstance(step, QuantLayer):
            pending = _export_layer(g, layer_k, step, x, scale)
        elif isinstance(step, ActQuant):
            x = g.quant(
                pending, f"l{layer_k}.act_q", _np(step.scale), step.bits, signed=step.signed
            )
            scale, layer_k = step.scale, layer_k + 1
        elif isinstance(step, nn.Flatten):
            x = g.node("Flatten", [x], f"flatten{layer_k}", axis=1)
        else:  # MaxPool2d: same codes, same scale
            k, s, p = (step.kernel_size, step.stride, step.padding)
            pair = lambda v: [v, v] if isinstance(v, int) else list(v)
            if step.dilation not in (1, (1, 1)) or step.ceil_mode:
                raise QatError("MaxPool2d with dilation or ceil_mode is not exported")
            y = g.node(
                "MaxPool",
                [x],
                f"pool{layer_k}",
                kernel_shape=pair(k),
                strides=pair(s),
                pads=pair(p) * 2,
            )
            bits, signed = _last_act(net, step)
            x = g.quant(y, f"pool{layer_k}_q", _np(scale), bits, signed=signed)
    g.node("Identity", [x], "y")
    with torch.no_grad():
        out_shape = list(net(torch.zeros((1,) + tuple(input_shape))).shape)
    graph = helper.make_graph(
        g.nodes,
        "qat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        g.inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(QONNX_DOMAIN, 1)],
        ir_version=8,
        producer_name="nnloom.compress.qat",
    )


def _last_act(net: QatNet, before: nn.Module) -> tuple[int, bool]:
    q = net.input_quant
    for step in net.steps:
        if step is before:
            break
        if isinstance(step, ActQuant):
            q = step
    return q.bits, q.signed


def export_qonnx(net: QatNet, path: str | Path, input_shape: Sequence[int]) -> Path:
    """Write ``net`` as a QONNX model at ``path`` (atomically: a temporary file in the same
    folder, then renamed). Same network, same bytes."""
    data = qonnx_model(net, input_shape).SerializeToString(deterministic=True)
    return write_bytes_atomic(path, data)
