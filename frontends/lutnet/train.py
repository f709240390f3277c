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

import functools
import json
import logging
import time
from pathlib import Path

import numpy as np

from .pattern import BLOCK_ROT, PATTERNS, rotated_pattern
from .resize import imresize_down
from .srlut import SrlutPlan

__all__ = ["train_srlut", "fit_srlut_table", "training_images"]

log = logging.getLogger(__name__)

# Each rotation's share of the centre pixel, in table units over 127: 4·127·NEAREST = 255.
NEAREST = 255 / (4 * 127)

TRAIN_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "camera",
    "coins",
    "clock",
    "text",
    "page",
    "moon",
)


@functools.lru_cache(maxsize=2)
def training_images(scale: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
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
        lrs.append(lr[y : y + crop, x : x + crop])
        hrs.append(hr[y * scale : (y + crop) * scale, x * scale : (x + crop) * scale])
    to = lambda a: torch.from_numpy(np.stack(a)[:, None].astype(np.float32))  # noqa: E731
    return to(lrs), to(hrs)


def _net(channels: int, scale: int):
    """SR-LUT's model S with a skip: ``mlp(patch) + NEAREST·patch[0, 0]``, so the four
    rotations start from nearest-neighbour upscaling and the MLP learns the detail."""
    import torch.nn as nn

    class SrNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(1, channels, 2)]
            for _ in range(4):
                layers += [nn.ReLU(), nn.Conv2d(channels, channels, 1)]
            layers += [nn.ReLU(), nn.Conv2d(channels, scale * scale, 1)]
            self.mlp = nn.Sequential(*layers)

        def forward(self, x):
            return self.mlp(x) + NEAREST * x[:, :, :-1, :-1]

    return SrNet()


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
        v = torch.stack(
            [
                padded[:, p + dy : p + dy + h, p + dx : p + dx + w]
                for dy, dx in rotated_pattern(PATTERNS[plan.pattern], k)
            ]
        )
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
    out = _ste_round(total / q)  # ties are measure-zero for the gradient; golden rounds even
    return out.permute(0, 1, 3, 2, 4).reshape(B, 1, h * r, w * r)


def train_srlut(
    out: str | Path,
    *,
    iterations: int = 2000,
    finetune: int = 500,
    interval_bits: int = 5,
    channels: int = 32,
    scale: int = 4,
    batch: int = 8,
    crop: int = 24,
    seed: int = 0,
    threads: int = 2,
) -> dict:
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
    torch.onnx.export(
        net,
        torch.zeros(1, 1, 2, 2),
        str(onnx_path),
        input_names=["patch"],
        output_names=["block"],
        dynamic_axes={"patch": {0: "batch"}, "block": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    plan = transfer_onnx(onnx_path, interval_bits=interval_bits)
    np.save(out / f"table_{interval_bits}bit.npy", plan.table)

    table = torch.nn.Parameter(torch.from_numpy(plan.table.astype(np.float32)))
    opt = torch.optim.Adam([table], lr=0.2)
    t1 = time.monotonic()
    for _it in range(finetune):
        lr, hr = _sample(pairs, rng, batch, crop, scale)
        loss = torch.mean((_lut_forward(table, lr, plan) - hr) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tuned = np.clip(np.round(table.detach().numpy()), -128, 127).astype(np.int8)
    np.save(out / f"table_{interval_bits}bit_ft.npy", tuned)
    result = {
        "iterations": iterations,
        "finetune_iterations": finetune,
        "channels": channels,
        "interval_bits": interval_bits,
        "table_bytes": int(tuned.size),
        "net_seconds": round(net_seconds, 1),
        "finetune_seconds": round(time.monotonic() - t1, 1),
        "net": str(onnx_path),
        "table": str(out / f"table_{interval_bits}bit.npy"),
        "table_finetuned": str(out / f"table_{interval_bits}bit_ft.npy"),
    }
    (out / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _lane_orbits(scale: int) -> list[list[int]]:
    """The r² block lanes grouped into orbits of the quarter turn: rotation k's table lane
    ``perm_k[u]`` lands on upright lane u, so only lanes of one orbit share equations."""
    perms = [
        np.rot90(np.arange(scale * scale).reshape(scale, scale), BLOCK_ROT[k]).ravel()
        for k in range(4)
    ]
    orbits, seen = [], set()
    for u in range(scale * scale):
        if u not in seen:
            orbit = sorted({int(perms[k][u]) for k in range(4)})
            seen.update(orbit)
            orbits.append(orbit)
    return orbits


def _nearest_prior(plan: SrlutPlan) -> np.ndarray:
    """Each rotation's quarter of the pattern's first pixel: nearest-neighbour upscaling."""
    entries = np.arange(plan.levels**plan.n)
    first = entries // plan.strides[0]
    return np.minimum(first * plan.q, 255)[:, None] / 4.0 * np.ones(plan.scale**2)


def fit_srlut_table(
    *,
    pattern: str = "S",
    interval_bits: int = 5,
    scale: int = 4,
    samples: int = 200_000,
    ridge: float = 1.0,
    iterations: int = 300,
    seed: int = 0,
    pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[SrlutPlan, dict]:
    """The table minimising the golden's squared error on scikit-image's bundled images.

    Before its final rounding the golden is linear in the table: HR pixel u of an LR pixel
    is ``Σ_k Σ_j (w_kj / q) · T[idx_kj, perm_k[u]]`` (``SrlutPlan.rotation_vertices``). So
    training is sparse linear least squares over ``samples`` LR pixels drawn (seeded) from
    ``training_images``, one problem per lane orbit, ridge-regularised towards
    nearest-neighbour upscaling (entries no training patch reaches keep that), solved by
    LSQR in at most ``iterations`` steps, then rounded to int8. Deterministic for a seed.
    ``pairs`` replaces the training images by other (LR, HR) uint8 grey pairs.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import lsqr

    t0 = time.monotonic()
    r = scale
    blank = SrlutPlan(
        pattern,
        interval_bits,
        r,
        np.zeros((((256 >> interval_bits) + 1) ** len(PATTERNS[pattern]), r * r), np.int8),
    )
    images = list(TRAIN_IMAGES) if pairs is None else f"{len(pairs)} given pairs"
    pairs = training_images(r) if pairs is None else pairs
    sizes = np.array([lr.size for lr, _ in pairs])
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(sizes.sum(), size=min(samples, int(sizes.sum())), replace=False))
    owner = np.searchsorted(np.cumsum(sizes), picks, side="right")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    verts, weights, targets = [], [], []
    for i, (lr, hr) in enumerate(pairs):
        flat = picks[owner == i] - starts[i]
        if not len(flat):
            continue
        h, w = lr.shape
        p = blank.radius
        padded = np.pad(lr.astype(np.int64), p, mode="reflect")
        y, x = np.divmod(flat, w)
        per_k = [
            blank.simplex(
                np.stack(
                    [padded[p + y + dy, p + x + dx] for dy, dx in rotated_pattern(blank.offsets, k)]
                )
            )
            for k in range(4)
        ]
        verts.append(np.stack([v for v, _ in per_k]))
        weights.append(np.stack([wt for _, wt in per_k]))
        blocks = hr.reshape(h, r, w, r).transpose(0, 2, 1, 3).reshape(h * w, r * r)
        targets.append(blocks[flat])
    verts = np.concatenate(verts, axis=2)  # (4 rotations, n+1, N)
    weights = np.concatenate(weights, axis=2) / blank.q
    targets = np.concatenate(targets).astype(np.float64)  # (N, r²)
    count = targets.shape[0]
    perms = [np.rot90(np.arange(r * r).reshape(r, r), BLOCK_ROT[k]).ravel() for k in range(4)]
    prior = _nearest_prior(blank)
    table = prior.copy()
    residuals = []
    for orbit in _lane_orbits(r):
        pos = {lane: i for i, lane in enumerate(orbit)}
        rows, cols, vals = [], [], []
        for row_block, u in enumerate(orbit):
            row = row_block * count + np.arange(count)
            for k in range(4):
                col_lane = pos[int(perms[k][u])]
                for j in range(verts.shape[1]):
                    rows.append(row)
                    cols.append(verts[k, j] * len(orbit) + col_lane)
                    vals.append(weights[k, j])
        a = csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(orbit) * count, len(prior) * len(orbit)),
        )
        x0 = prior[:, orbit].ravel()
        b = targets[:, orbit].T.ravel() - a @ x0
        sol = lsqr(a, b, damp=np.sqrt(ridge), iter_lim=iterations)
        table[:, orbit] = (x0 + sol[0]).reshape(len(prior), len(orbit))
        residuals.append(float(sol[3]))
    tuned = np.clip(np.round(table), -128, 127).astype(np.int8)
    plan = SrlutPlan(pattern, interval_bits, r, tuned, name=f"fit_{pattern}_{interval_bits}bit")
    info = {
        "method": "least squares on the golden's interpolation (LSQR, ridge to nearest)",
        "pattern": pattern,
        "interval_bits": interval_bits,
        "samples": count,
        "ridge": ridge,
        "iterations": iterations,
        "seed": seed,
        "table_bytes": plan.table_bytes,
        "seconds": round(time.monotonic() - t0, 1),
        "images": images,
    }
    return plan, info
