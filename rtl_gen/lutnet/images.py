"""Pictures of what a LUT engine does: low resolution, bicubic and nnloom side by side."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

__all__ = ["side_by_side", "side_by_side_png", "example_png", "enhanced_png"]


def side_by_side_png(
    lr: np.ndarray, images: dict[str, np.ndarray], first: str | None = None
) -> bytes:
    """LR (nearest-upscaled), then each named HR-size image, in one captioned row; PNG bytes.
    Images are (H, W) grey or (H, W, 3) RGB uint8; ``first`` captions the LR panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = next(iter(images.values())).shape[0] // lr.shape[0]
    block = np.ones((r, r) + (1,) * (lr.ndim - 2), np.uint8)
    panels = {first or f"low resolution (nearest ×{r})": np.kron(lr, block)}
    panels.update(images)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, img) in zip(axes, panels.items()):
        ax.imshow(
            img, interpolation="nearest", cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255
        )
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def side_by_side(lr: np.ndarray, images: dict[str, np.ndarray], path: Path) -> None:
    """``side_by_side_png`` written to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(side_by_side_png(lr, images))


def example_png(lr: np.ndarray, golden_hr: np.ndarray, name: str) -> bytes:
    """An artefact's first frame: LR, PIL bicubic and the engine's golden output."""
    from frontends.lutnet.metrics import bicubic_upscale

    r = golden_hr.shape[0] // lr.shape[0]
    return side_by_side_png(
        lr, {f"bicubic ×{r}": bicubic_upscale(lr, r), f"nnloom {name} ×{r}": golden_hr}
    )


def enhanced_png(frame: np.ndarray, golden: np.ndarray, name: str) -> bytes:
    """An enhancement artefact's first frame: the input and the engine's golden output."""
    return side_by_side_png(frame, {f"nnloom {name}": golden}, first="input")
