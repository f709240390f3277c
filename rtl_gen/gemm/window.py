"""Convolution windows of the GEMM overlay: a GEMM-shaped node's reads as counter geometry.

A ``Window`` is what a core's address counters walk (``isa``: ``WIN``/``WSTEP``/``GEMM``):
``groups`` groups of ``cin_g`` input planes of ``h x w`` elements, an ``oh x ow`` output grid,
a ``kh x kw`` kernel with strides, dilations and top/left padding. Every GEMM-shaped IR node
is one: a dense layer is the window ``h = w = kh = kw = 1`` over ``K`` planes of one element;
a global pool is ``groups`` planes of one element each ``h*w`` long. ``window_of`` derives a
node's window from its attrs and checks it against the node's own gather map (``im2col``,
the golden's definition), so the counters read exactly what the golden reads or the node is
refused by name.

``plane_order`` maps the window onto the physical layout of its input tensor (the producer
may have permuted its channels): the physical plane of each input channel, each group's
planes kept together, and the step order of the reduction that follows it (weights are
permuted alike, so the reduction is the same sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frontends import im2col as _im2col
from frontends.errors import ModelError
from frontends.ir import Graph, Node

__all__ = ["Window", "window_of", "plane_order", "GroupOrderError"]


class GroupOrderError(ModelError):
    """A grouped window's input has a group's channels scattered over several blocks."""


@dataclass(frozen=True)
class Window:
    """Geometry of one GEMM-shaped node's reads (see the module docstring)."""

    cin: int
    h: int
    w: int
    oh: int
    ow: int
    kh: int = 1
    kw: int = 1
    sy: int = 1
    sx: int = 1
    dy: int = 1
    dx: int = 1
    pt: int = 0
    pl: int = 0
    pb: int = 0
    pr: int = 0
    groups: int = 1

    @property
    def plane(self) -> int:
        return self.h * self.w

    @property
    def cin_g(self) -> int:
        return self.cin // self.groups

    @property
    def m(self) -> int:
        return self.oh * self.ow

    @property
    def k(self) -> int:
        return self.cin_g * self.kh * self.kw

    @property
    def dense(self) -> bool:
        """The window ``CFG`` resets a core to (no ``WIN``/``WSTEP`` needed)."""
        return self.plane == 1 and self.kh == self.kw == 1 and self.m == 1

    def table(self) -> np.ndarray:
        """(G, M, K) flat input index each step reads (-1: padding), as ``conv_im2col``."""
        geo = _im2col.Window(
            (self.h, self.w),
            (self.kh, self.kw),
            (self.sy, self.sx),
            (self.pt, self.pl, self.pb, self.pr),
            (self.dy, self.dx),
        )
        return _im2col.conv_im2col(geo, self.cin, self.groups)

    def fields(self) -> tuple[dict, dict]:
        """``WIN`` and ``WSTEP`` fields: the geometry and the counters' address steps."""
        row = self.dy * self.w
        win = {
            "h": self.h,
            "w": self.w,
            "ow": self.ow,
            "kh": self.kh,
            "kw": self.kw,
            "pt": self.pt,
            "pl": self.pl,
            "sy": self.sy,
            "sx": self.sx,
        }
        step = {
            "sky": row - (self.kw - 1) * self.dx,
            "sci": self.plane - (self.kh - 1) * row - (self.kw - 1) * self.dx,
            "srow": self.sy * self.w - (self.ow - 1) * self.sx,
            "dy": self.dy,
            "dx": self.dx,
        }
        return win, step

    def origin(self) -> int:
        """Offset of pixel 0's window origin from the first plane (``-pt`` rows, ``-pl``
        columns)."""
        return -self.pt * self.w - self.pl


def _pairs(node: Node, name: str, default, rank: int) -> tuple:
    value = node.attrs.get(name)
    if value is None:
        return tuple(default)
    value = tuple(int(v) for v in value)
    if rank == 1:  # 1-D: a 1-high plane
        return (default[0],) + value if len(value) == 1 else (0, value[0], 0, value[1])
    return value


def _from_attrs(node: Node, groups: int) -> Window | None:
    a = node.attrs
    shape = a.get("input_shape")
    kernel = a.get("kernel_shape")
    if shape is None or kernel is None:
        return None
    shape = tuple(int(v) for v in shape)
    rank = len(shape) - 1
    if rank not in (1, 2):
        return None
    c, (h, w) = shape[0], ((1, shape[1]) if rank == 1 else shape[1:])
    kh, kw = (1, int(kernel[0])) if rank == 1 else (int(kernel[0]), int(kernel[1]))
    sy, sx = _pairs(node, "strides", (1, 1), rank)
    dy, dx = _pairs(node, "dilations", (1, 1), rank)
    pads = _pairs(node, "pads", (0, 0, 0, 0), rank)
    geo = _im2col.Window(
        (h, w), (kh, kw), (sy, sx), pads, (dy, dx), bool(a.get("ceil_mode", False))
    )
    oh, ow = geo.out_hw
    return Window(
        c, h, w, oh, ow, kh, kw, sy, sx, dy, dx, pads[0], pads[1], pads[2], pads[3], groups
    )


def window_of(node: Node, graph: Graph, im2col: np.ndarray | None) -> Window:
    """The window of a GEMM-shaped node: ``dense``, or ``conv``/``avgpool`` (``im2col``
    (G, M, K), checked). Raises ``ModelError`` naming the node when no window reads what
    its map reads."""
    x_size = graph.tensor(node.inputs[0]).size
    if im2col is None:
        return Window(x_size, 1, 1, 1, 1)
    g, m, k = im2col.shape
    candidates = []
    if m == 1 and x_size % g == 0:  # a global pool / whole-input reduction: no strides
        candidates.append(Window(x_size, 1, 1, 1, 1, groups=g))
    try:
        win = _from_attrs(node, g)
        if win is not None:
            candidates.append(win)
    except (ValueError, ZeroDivisionError):
        pass
    for win in candidates:
        if (
            win.cin * win.plane == x_size
            and win.cin % win.groups == 0
            and win.table().shape == im2col.shape
            and np.array_equal(win.table(), im2col)
        ):
            return win
    raise ModelError(
        f"{node.describe()}: its windows are not a strided, dilated, padded "
        f"convolution window of its input; the gemm engine's address counters "
        f"cannot read them"
    )


def plane_order(win: Window, layout: np.ndarray, node: Node) -> tuple[np.ndarray, np.ndarray]:
    """``(blocks, sub)`` for a window over a tensor whose original flat index ``i`` sits at
    physical offset ``layout[i]``: ``blocks[g]`` is group ``g``'s physical block of
    ``cin_g`` planes, ``sub[c]`` the physical plane of input channel ``c`` within its block.
    Raises ``ModelError`` naming ``node`` unless every plane is contiguous and every group's
    planes form one block (``GroupOrderError`` for the latter: the compiler reorders)."""
    plane = win.plane
    lay = np.asarray(layout, np.int64).reshape(win.cin, plane)
    base = lay[:, :1]
    if not (
        np.array_equal(lay - base, np.broadcast_to(np.arange(plane), lay.shape))
        and np.all(base % plane == 0)
    ):
        raise ModelError(
            f"{node.describe()}: its input's elements are not stored plane by "
            f"plane; the gemm engine's windows read whole planes"
        )
    pos = (base[:, 0] // plane).reshape(win.groups, win.cin_g)
    blocks = pos // win.cin_g
    if np.any(blocks != blocks[:, :1]):
        raise GroupOrderError(
            f"{node.describe()}: its input's channels were reordered across "
            f"its {win.groups} groups by the previous layer's core split; the "
            f"gemm engine reads each group's channels as one block"
        )
    return blocks[:, 0], (pos % win.cin_g).reshape(-1)
