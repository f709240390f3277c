"""Image-quality measures of the SR literature: PSNR on the Y channel with a border shave.

Y is ITU-R BT.601 luma on the 16–235 range as MATLAB's ``rgb2ycbcr`` computes it (the SR-LUT
and HKLUT evaluation code), kept in floating point: ``16 + (65.481 R + 128.553 G + 24.966 B)
/ 255``. PSNR is ``20 log10(255 / RMSE)`` over the image less ``shave`` pixels each side.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rgb_to_y", "psnr_y", "bicubic_upscale"]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a
    return 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0


def psnr_y(reference: np.ndarray, test: np.ndarray, shave: int = 4) -> float:
    if reference.shape != test.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {test.shape}")
    d = rgb_to_y(reference) - rgb_to_y(test)
    if shave:
        d = d[shave:-shave, shave:-shave]
    mse = float(np.mean(d * d))
    return float("inf") if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse))


def bicubic_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """PIL's bicubic resize by ``scale`` (the baseline of the SR-LUT tables)."""
    from PIL import Image

    a = np.asarray(image, dtype=np.uint8)
    im = Image.fromarray(a)
    return np.asarray(im.resize((a.shape[1] * scale, a.shape[0] * scale), Image.BICUBIC))
