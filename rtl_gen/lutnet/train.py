"""Training SR-LUT-S nets from scikit-image's bundled images, with integer inference in the loop.

1. ``SrNet`` (SR-LUT's model S, narrower): ``Conv2d(1, C, 2×2)`` → 1×1 convs with ReLU →
   ``Conv(C, r²)``, trained through the 4-rotation ensemble (rotate, reflect-pad bottom/right,
   rotate back) with each rotation's output rounded to the table's int8 levels by a
   straight-through estimator, so the forward pass is the table's arithmetic on grid points.
2. Transfer on the sampling grid (``transfer.py``, via the exported ONNX).
3. LUT-aware fine-tuning (MuLUT): the table itself is the parameter and the forward pass is
   the golden's simplex interpolation and round-half-even output, with straight-through
   rounding of entries and pixels. The fine-tuned table is what ``SrlutPlan`` runs.

Low-resolution inputs are MATLAB-bicubic (``resize.imresize_down``), like the benchmarks'.
Set5 is never used here.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from .pattern import BLOCK_ROT, PATTERNS, rotated_pattern
from .resize import imresize_down
from .srlut import SrlutPlan

__all__ = ["train_srlut", "training_images"]

log = logging.getLogger(__name__)

TRAIN_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                "immunohistochemistry", "brick", "grass", "gravel", "camera", "coins",
                "clock", "text", "page", "moon")


def training_images(scale: int = 4):
    """(LR, HR) uint8 grey pairs: every channel of scikit-image's bundled photographs."""
    from skimage import data as skdata
    pairs = []
    for name in TRAIN_IMAGES:
        img = np.asarray(getattr(skdata, name)())
        img = img[..., None] if img.ndim == 2 else img[..., :3]
        h, w = (img.shape[0] // scale) * scale, (img.shape[1] // scale) * scale
        for c in range(img.shape[2]):
            hr = np.ascontiguousarray(img[:h, :w, c])
            pairs.append((imresize_down(hr, scale), hr))
    return pairs


def _ste_round(x):
    return x + (x.round() - x).detach()


def _sample(pairs, rng, batch, crop, scale):
    import torch
    lrs, hrs = [], []
    for _ in range(batch):
        lr, hr = pairs[rng.integers(len(pairs))]
        y = rng.integers(0, lr.shape[0] - crop + 1)
        x = rng.integers(0, lr.shape[1] - crop + 1)
        lrs.append(lr[y:y + crop, x:x + crop])
        hrs.append(hr[y * scale:(y + crop) * scale, x * scale:(x + crop) * scale])
    to = lambda a: torch.from_numpy(np.stack(a)[:, None].astype(np.float32))  # noqa: E731
    return to(lrs), to(hrs)


def _net(channels: int, scale: int):
    import torch.nn as nn
    layers = [nn.Conv2d(1, channels, 2)]
    for _ in range(4):
        layers += [nn.ReLU(), nn.Conv2d(channels, channels, 1)]
    layers += [nn.ReLU(), nn.Conv2d(channels, scale * scale, 1)]
    return nn.Sequential(*layers)


def _ensemble(net, lr, scale):
    """Σ_k rot90⁻¹(round(127·clamp(net(pad(rot90(lr/255, k)))))): HR pixels, 0..255 units."""
    import torch
    import torch.nn.functional as F
    out = 0
    for k in range(4):
        x = torch.rot90(lr / 255.0, k, dims=(2, 3))
        x = F.pad(x, (0, 1, 0, 1), mode="reflect")
        y = F.pixel_shuffle(net(x), scale)
        y = _ste_round(torch.clamp(y, -1, 1) * 127)
        out = out + torch.rot90(y, 4 - k, dims=(2, 3))
    return out


def _lut_forward(table, lr, plan: SrlutPlan):
    """The golden's arithmetic in torch, differentiable in ``table`` (float, L^n × r²)."""
    import torch
    b, q, n, r = plan.interval_bits, plan.q, plan.n, plan.scale
    strides = torch.tensor(plan.strides)
    t = _ste_round(torch.clamp(table, -128, 127))
    x = lr[:, 0].long()
    B, h, w = x.shape
    p = plan.radius
    padded = torch.nn.functional.pad(x[:, None].float(), (p, p, p, p), mode="reflect")[:, 0]
    padded = padded.long()
    total = 0
    for k in range(4):
        v = torch.stack([padded[:, p + dy:p + dy + h, p + dx:p + dx + w]
                         for dy, dx in rotated_pattern(PATTERNS[plan.pattern], k)])
        msb, f = v >> b, v & (q - 1)
        idx = (strides[:, None, None, None] * msb).sum(0)
        fs, order = torch.sort(f, dim=0, descending=True, stable=True)
        acc = (q - fs[0]).unsqueeze(-1) * t[idx]
        for j in range(n):
            idx = idx + strides[order[j]]
            wj = fs[j] - (fs[j + 1] if j < n - 1 else 0)
            acc = acc + wj.unsqueeze(-1) * t[idx]
        blk = acc.reshape(B, h, w, r, r)
        total = total + torch.rot90(blk, BLOCK_ROT[k], dims=(3, 4))
    out = _ste_round(total / q)   # ties are measure-zero for the gradient; golden rounds even
    return out.permute(0, 1, 3, 2, 4).reshape(B, 1, h * r, w * r)


def train_srlut(out: str | Path, *, iterations: int = 2000, finetune: int = 500,
                interval_bits: int = 5, channels: int = 32, scale: int = 4, batch: int = 8,
                crop: int = 24, seed: int = 0, threads: int = 2) -> dict:
    """Train, export ``net.onnx``, transfer to ``table_<b>bit.npy``, fine-tune the table to
    ``table_<b>bit_ft.npy``; returns figures (also written to ``train.json``)."""
    import torch
    from .transfer import transfer_onnx
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = training_images(scale)
    net = _net(channels, scale)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    t0 = time.monotonic()
    for it in range(iterations):
        lr, hr = _sample(pairs, rng, batch, crop, scale)
        loss = torch.mean((_ensemble(net, lr, scale) - hr) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 200 == 0:
            log.info("iteration %d: MSE %.1f", it, loss.item())
    net_seconds = time.monotonic() - t0

    onnx_path = out / "net.onnx"
    net.eval()
    torch.onnx.export(net, torch.zeros(1, 1, 2, 2), str(onnx_path), input_names=["patch"],
                      output_names=["block"], dynamic_axes={"patch": {0: "batch"},
                                                            "block": {0: "batch"}},
                      opset_version=17, dynamo=False)
    plan = transfer_onnx(onnx_path, interval_bits=interval_bits)
    np.save(out / f"table_{interval_bits}bit.npy", plan.table)

    table = torch.nn.Parameter(torch.from_numpy(plan.table.astype(np.float32)))
    opt = torch.optim.Adam([table], lr=0.2)
    t1 = time.monotonic()
    for it in range(finetune):
        lr, hr = _sample(pairs, rng, batch, crop, scale)
        loss = torch.mean((_lut_forward(table, lr, plan) - hr) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tuned = np.clip(np.round(table.detach().numpy()), -128, 127).astype(np.int8)
    np.save(out / f"table_{interval_bits}bit_ft.npy", tuned)
    result = {"iterations": iterations, "finetune_iterations": finetune,
              "channels": channels, "interval_bits": interval_bits,
              "table_bytes": int(tuned.size), "net_seconds": round(net_seconds, 1),
              "finetune_seconds": round(time.monotonic() - t1, 1),
              "net": str(onnx_path), "table": str(out / f"table_{interval_bits}bit.npy"),
              "table_finetuned": str(out / f"table_{interval_bits}bit_ft.npy")}
    (out / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
