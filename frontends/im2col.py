"""Window index maps: convolutions and pools as gathers from a flat (C, H, W) tensor.

A map entry is the flat C-order index of the input element that a window position reads, or
-1 where the window lies on padding. Convolutions use one map per group (so a GEMM engine can
run any conv as ``gather + matrix product``); pools use one per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Window", "conv_im2col", "pool_windows"]


@dataclass(frozen=True)
class Window:
    """2-D window geometry (1-D convolutions use H = 1 and a 1-high kernel).

    ``pads`` is ``(top, left, bottom, right)`` as ONNX's ``(x1_begin, x2_begin, x1_end,
    x2_end)``.
    """

    in_hw: tuple[int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    def __post_init__(self):
        for what, v in (
            ("kernel", self.kernel),
            ("strides", self.strides),
            ("dilations", self.dilations),
            ("input size", self.in_hw),
        ):
            if len(v) != 2 or any(int(d) < 1 for d in v):
                raise ValueError(f"{what} must be positive, got {tuple(v)}")
        if len(self.pads) != 4 or any(int(p) < 0 for p in self.pads):
            raise ValueError(f"pads must be 4 non-negative integers, got {tuple(self.pads)}")
        if any(self._span(i) > self.in_hw[i] + self.pads[i] + self.pads[i + 2] for i in (0, 1)):
            raise ValueError(
                f"kernel {self.kernel} (dilations {self.dilations}) is larger "
                f"than the padded input {self.in_hw}"
            )

    def _span(self, i: int) -> int:
        return self.dilations[i] * (self.kernel[i] - 1) + 1

    @property
    def out_hw(self) -> tuple[int, int]:
        out = []
        for i in (0, 1):
            room = self.in_hw[i] + self.pads[i] + self.pads[i + 2] - self._span(i)
            n = -(-room // self.strides[i]) if self.ceil_mode else room // self.strides[i]
            n += 1
            # ONNX/PyTorch ceil mode: the last window must start inside the input or left pad.
            if self.ceil_mode and (n - 1) * self.strides[i] >= self.in_hw[i] + self.pads[i]:
                n -= 1
            out.append(n)
        return tuple(out)

    def pixel_map(self) -> np.ndarray:
        """(Ho*Wo, kh*kw) flat ``h*W + w`` indices into one plane, -1 on padding."""
        (h, w), (kh, kw) = self.in_hw, self.kernel
        ho, wo = self.out_hw
        oy = np.arange(ho)[:, None, None, None] * self.strides[0] - self.pads[0]
        ox = np.arange(wo)[None, :, None, None] * self.strides[1] - self.pads[1]
        ky = np.arange(kh)[None, None, :, None] * self.dilations[0]
        kx = np.arange(kw)[None, None, None, :] * self.dilations[1]
        y, x = oy + ky, ox + kx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        flat = np.where(inside, y * w + x, -1)
        return flat.reshape(ho * wo, kh * kw).astype(np.int64)


def conv_im2col(window: Window, channels: int, group: int) -> np.ndarray:
    """(G, Ho*Wo, (C/G)*kh*kw) map; column order ``(c, ky, kx)`` matches
    ``weight.reshape(Cout, -1)`` of an ONNX (Cout, C/G, kh, kw) weight."""
    if group < 1 or channels % group:
        raise ValueError(f"{channels} input channels do not split into {group} groups")
    pix = window.pixel_map()  # (M, kk)
    plane = window.in_hw[0] * window.in_hw[1]
    cg = channels // group
    c = np.arange(channels).reshape(group, cg)  # (G, cg)
    idx = c[:, None, :, None] * plane + pix[None, :, None, :]  # (G, M, cg, kk)
    idx = np.where(pix[None, :, None, :] < 0, -1, idx)
    return idx.reshape(group, pix.shape[0], cg * pix.shape[1])


def pool_windows(window: Window, channels: int) -> np.ndarray:
    """(C, Ho*Wo, kh*kw) map of each channel's pooling windows."""
    pix = window.pixel_map()
    plane = window.in_hw[0] * window.in_hw[1]
    idx = np.arange(channels)[:, None, None] * plane + pix[None]
    return np.where(pix[None] < 0, -1, idx)
