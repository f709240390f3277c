"""The GEMM overlay's instruction set: 64-bit macro-instructions, assembler and disassembler.

Every word has the header ``op[63:60] core[59:58]``; its fields are packed from bit 0 upward
in the order listed below. ``core`` routes ``CFG``/``GEMM``/``POST``: 0 = ``dsp`` (the DSP
core, int8 weights), 1 = ``lut`` (the LUT core, low-bit weights). Both cores decode the same
``CFG`` and ``GEMM`` words (N3H-Core's "unified" instruction set).

===========  ====  ==================================================================
op           code  fields (bit 0 upward) and meaning
===========  ====  ==================================================================
``NOP``      0     --
``LOAD``     1     ``n[16] dst[16] src[16] fill[1]``: take ``n`` elements from the input
                   stream into ``act[dst + j]``; with ``fill`` (SPRAM configs) copy
                   the DSP core's weight words ``j < n`` from the weight SPRAM into
                   its weight cache, ``wc[dst + j]`` from the 16-bit words ``src +
                   j*s .. src + j*s + s - 1`` (``s`` = lanes * 8 / 16, low half first);
                   with ``fill`` and ``lanes`` > 0, copy ``lanes`` activation blocks of
                   ``n`` elements into the lane cache: ``xc[dst + j]`` lane ``l`` =
                   ``act[src + l*n + j]`` (a depthwise layer's planes, one a lane)
``CFG``      2     ``m[12] k[12] n[10] g[10] tiles[8] xsigned[1] wbits[4]``: the core's
                   loop bounds: ``g`` groups, each ``n`` output channels (``tiles`` =
                   ceil(n / lanes)), ``m`` output pixels, ``k`` reduction length;
                   activations signed or not; LUT-core weight precision (the
                   bit-serial core runs ``wbits`` bit-plane passes, 2-8); ``dw``
                   (spram configs): lane ``l`` reads its activation from lane ``l`` of
                   the lane cache ``xc`` at the window's address (a depthwise layer's
                   channels on every lane)
``GEMM``     3     ``x[16] gstep[16] w[16] pad[8] stream[1] ones[1]``: start the core
                   (non-blocking); ``ones``: every weight is 1 (average pools; no
                   weight read). With ``stream`` the GEMM comes before the ``LOAD``
                   or ``POST`` instructions that write its input, in address order, and its first
                   unit issues step ``k`` only after ``k + 1`` activation writes since
                   its start (``m = g = 1``, the dense window): the layer computes while
                   its input is written.
                   ``acc[p*g*n + gi*n + c] = sum_k' a(p, gi, k') * W[gi, c, k']``: the
                   window of output pixel ``p = oy*ow + ox`` and tap
                   ``k' = (ci*kh + ky)*kw + kx`` (``WIN``/``WSTEP``) reads ``a = pad`` where
                   ``iy = oy*sy - pt + ky*dy`` or ``ix = ox*sx - pl + kx*dx`` is outside
                   ``[0, h)`` / ``[0, w)``, else ``act[(x + gi*gstep + oy*Q + ox*sx +
                   ci*P + ky*R + kx*dx) mod 2**16]`` with the pitches ``R = sky +
                   (kw-1)*dx``, ``P = sci + (kh-1)*R + (kw-1)*dx``, ``Q = srow +
                   (ow-1)*sx`` (the counters add ``dx``, ``sky``, ``sci``, ``sx``,
                   ``srow``, ``gstep`` as the loops advance; ``x`` is pixel 0's window
                   origin, ``-pt`` rows and ``-pl`` columns off the plane). The
                   weight word of (gi, tile, k') is ``w + (gi*tiles + tile)*k + k'``,
                   lane j of a tile is channel ``tile*lanes + j``. Loops: pixel, group,
                   tile, k (innermost)
``PCFG``     4     ``m[12] shift[6] zp[9] lo[9] hi[9] round[2] mc[11]``: post-processing
                   of the next ``POST``s: pixels per channel (the output's channel
                   pitch), right shift, output zero point, clamp bounds (two's
                   complement), rounding (0 half up, 1 floor, 2 ceil, 3 half to even),
                   pixels a POST writes (0: ``m``; a core that computed a range of
                   output rows)
``POST``     5     ``n[12] y[16] p[14] early[1]``: for the core's pixels ``q < mc`` and
                   channels ``c < n``: ``act[y + c*m + q] = clamp((((acc[q*n + c] +
                   bias[p+c]) * mult[p+c] + r) >> shift) + zp, lo, hi)`` (blocking; with
                   ``early`` only until the last element is issued, its pipeline running
                   on behind the next instructions, which then must not touch the post
                   unit's registers or read what it writes unless streamed)
``SYNC``     6     --: barrier, waits until both cores have computed (their last
                   accumulators may still drain: a POST reads them behind the drain)
``STORE``    7     ``n[16] x[16] idx[16] stream[1]``: stream ``act[x + idx[idx + j]]``,
                   ``j < n``, to the output, ``last`` on the final element; with
                   ``stream`` element ``j`` goes once the POSTs since the last ``PCFG``
                   have written ``j + 1`` elements (they write the output in order)
``END``      8     --: the inference is over; the program restarts at 0
``ADD``      9     ``n[16] a[16] b[16] xsigned[1] gather[1]``: residual add, ``j < n``:
                   ``act[y + j] = clamp((((act[a+j] - za)*ma + (act[b + o_j] - zb)*mb
                   + r) >> shift) + zp, lo, hi)`` with ``PCFG``'s shift/zp/lo/hi/round,
                   ``za, ma = bias[q], mult[q]``, ``zb, mb = bias[q+1], mult[q+1]``,
                   ``o_j = idx[i + j]`` with ``gather``, else ``j`` (blocking)
``ADDP``     10    ``y[16] q[14] i[16]``: destination, parameter base and gather base of
                   the next ``ADD`` or ``MAX``
``MAX``      11    ``n[16] x[16] k[8] xsigned[1]``: window maximum and requantization,
                   ``j < n``: ``v = max_e act[x + idx[i + j*k + e]]``, ``e < k``, over the
                   entries without the pad flag; ``act[y + j] = clamp((((v - z)*mu + r) >>
                   shift) + zp, lo, hi)`` with ``z, mu = bias[q], mult[q]`` and ``PCFG``'s
                   shift/zp/lo/hi/round (max pooling; with ``k = 1`` a requantizing copy:
                   concat, standalone requant) (blocking)
``WIN``      12    ``h[10] w[10] ow[10] kh[5] kw[5] pt[5] pl[5] sy[4] sx[4]``: the
                   core's convolution window (after its ``CFG``, which resets it to the
                   dense window ``h = w = ow = kh = kw = sy = sx = 1``, ``pt = pl = 0``):
                   input plane, output row length, kernel, top/left padding, strides
``WSTEP``    13    ``sky[16s] sci[16s] srow[16s] dy[4] dx[4]``: the window's address
                   steps (see ``GEMM``) and dilations (``CFG`` resets them to
                   ``sci = dy = dx = 1``, ``sky = srow = 0``: step ``k'`` reads ``x + k'``)
``TAB``      14    ``n[16] x[16] y[16] t[8]``: element-wise function, ``j < n``:
                   ``act[y + j] = F_t(act[x + j])``, ``F_t`` the ``t``-th table of the
                   table memory (``tab[t*256 + byte]``, indexed by the stored byte) or
                   the ``t``-th SMURF unit (``tables``) (blocking)
``ROW``      15    ``kind[2] rows[12] len[12] x[16] t[8] rs[6] xsigned[1]``: row-wise
                   op (``rowwise``), kind 0 softmax: ``rows`` rows of ``len`` elements
                   gathered at ``act[x + idx[i + r*len + j]]``, exp table ``t``,
                   reciprocal ``floor(2**rs / sum)``, written at ``act[y + r*len + j]``
                   with ``ADDP``'s ``y``/``q``/``i`` and ``PCFG``'s requantization
                   (blocking)
===========  ====  ==================================================================

Convolutions thus cost two words a core and layer, whatever the image size: the core's
address counters generate every window (no gather table grows with the image). The gather
table (``idx``) is left to ``MAX`` windows, ``STORE``'s output order and an ``ADD`` whose
operands are in different orders.

The assembler reads one instruction per line, ``OP [core] field=value ...`` (``#`` starts a
comment); the disassembler writes the same text, so ``assemble(disassemble(w)) == w``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from frontends.errors import NnloomError

if TYPE_CHECKING:
    from amaranth.lib import data

__all__ = [
    "OPS",
    "CORES",
    "FIELDS",
    "Instr",
    "encode",
    "decode",
    "assemble",
    "disassemble",
    "AsmError",
    "WORD_BITS",
    "WINDOW_RESET",
    "layout",
]

WORD_BITS = 64
OP_SHIFT, CORE_SHIFT = 60, 58

OPS = MappingProxyType(
    {
        "NOP": 0,
        "LOAD": 1,
        "CFG": 2,
        "GEMM": 3,
        "PCFG": 4,
        "POST": 5,
        "SYNC": 6,
        "STORE": 7,
        "END": 8,
        "ADD": 9,
        "ADDP": 10,
        "MAX": 11,
        "WIN": 12,
        "WSTEP": 13,
        "TAB": 14,
        "ROW": 15,
    }
)
OP_NAMES = {v: k for k, v in OPS.items()}
CORES = ("dsp", "lut")
ROUTED = frozenset({"CFG", "GEMM", "POST", "WIN", "WSTEP"})

# (name, width, signed) from bit 0 upward
FIELDS = MappingProxyType(
    {
        "NOP": (),
        "LOAD": (
            ("n", 16, False),
            ("dst", 16, False),
            ("src", 16, False),
            ("fill", 1, False),
            ("lanes", 5, False),
        ),
        "CFG": (
            ("m", 12, False),
            ("k", 12, False),
            ("n", 10, False),
            ("g", 10, False),
            ("tiles", 8, False),
            ("xsigned", 1, False),
            ("wbits", 4, False),
            ("dw", 1, False),
        ),
        "GEMM": (
            ("x", 16, False),
            ("gstep", 16, False),
            ("w", 16, False),
            ("pad", 8, False),
            ("stream", 1, False),
            ("ones", 1, False),
        ),
        "PCFG": (
            ("m", 12, False),
            ("shift", 6, False),
            ("zp", 9, True),
            ("lo", 9, True),
            ("hi", 9, True),
            ("round", 2, False),
            ("mc", 11, False),
        ),
        "POST": (("n", 12, False), ("y", 16, False), ("p", 14, False), ("early", 1, False)),
        "SYNC": (),
        "STORE": (("n", 16, False), ("x", 16, False), ("idx", 16, False), ("stream", 1, False)),
        "END": (),
        "ADD": (
            ("n", 16, False),
            ("a", 16, False),
            ("b", 16, False),
            ("xsigned", 1, False),
            ("gather", 1, False),
        ),
        "ADDP": (("y", 16, False), ("q", 14, False), ("i", 16, False)),
        "MAX": (("n", 16, False), ("x", 16, False), ("k", 8, False), ("xsigned", 1, False)),
        "WIN": (
            ("h", 10, False),
            ("w", 10, False),
            ("ow", 10, False),
            ("kh", 5, False),
            ("kw", 5, False),
            ("pt", 5, False),
            ("pl", 5, False),
            ("sy", 4, False),
            ("sx", 4, False),
        ),
        "WSTEP": (
            ("sky", 16, True),
            ("sci", 16, True),
            ("srow", 16, True),
            ("dy", 4, False),
            ("dx", 4, False),
        ),
        "TAB": (("n", 16, False), ("x", 16, False), ("y", 16, False), ("t", 8, False)),
        "ROW": (
            ("kind", 2, False),
            ("rows", 12, False),
            ("len", 12, False),
            ("x", 16, False),
            ("t", 8, False),
            ("rs", 6, False),
            ("xsigned", 1, False),
        ),
    }
)

# what CFG sets WIN's and WSTEP's registers to: the dense window (step k' reads x + k')
WINDOW_RESET = MappingProxyType(
    {
        "h": 1,
        "w": 1,
        "ow": 1,
        "kh": 1,
        "kw": 1,
        "pt": 0,
        "pl": 0,
        "sy": 1,
        "sx": 1,
        "sky": 0,
        "sci": 1,
        "srow": 0,
        "dy": 1,
        "dx": 1,
    }
)

for _op, _fields in FIELDS.items():
    assert sum(w for _, w, _ in _fields) <= CORE_SHIFT, _op


def layout(op: str) -> data.StructLayout:
    """``op``'s fields as an Amaranth layout over the word's low bits (a ``data.View`` of
    the instruction word decodes them in the RTL)."""
    from amaranth import signed, unsigned
    from amaranth.lib import data

    return data.StructLayout(
        {
            name: signed(width) if is_signed else unsigned(width)
            for name, width, is_signed in FIELDS[op]
        }
    )


def field_offsets(op: str) -> dict[str, tuple[int, int, bool]]:
    """``{field: (lsb, width, signed)}`` of ``op``'s fields."""
    out, lsb = {}, 0
    for name, width, signed in FIELDS[op]:
        out[name] = (lsb, width, signed)
        lsb += width
    return out


class AsmError(NnloomError, ValueError):
    """An instruction that cannot be encoded or a line that cannot be assembled."""


@dataclass(frozen=True)
class Instr:
    """One macro-instruction: ``op``, ``core`` (for CFG/GEMM/POST) and its fields."""

    op: str
    core: str = "dsp"
    fields: dict = field(default_factory=dict)
    comment: str = field(default="", compare=False)

    def __post_init__(self):
        if self.op not in OPS:
            raise AsmError(f"unknown instruction '{self.op}'; known: {', '.join(OPS)}")
        if self.core not in CORES:
            raise AsmError(f"{self.op}: unknown core '{self.core}'; cores: {', '.join(CORES)}")
        known = {name for name, _, _ in FIELDS[self.op]}
        extra = set(self.fields) - known
        if extra:
            raise AsmError(
                f"{self.op}: unknown field(s) {', '.join(sorted(extra))}; "
                f"fields: {', '.join(n for n, _, _ in FIELDS[self.op]) or 'none'}"
            )
        full = {name: int(self.fields.get(name, 0)) for name, _, _ in FIELDS[self.op]}
        object.__setattr__(self, "fields", MappingProxyType(full))

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    def text(self) -> str:
        parts = [self.op]
        if self.op in ROUTED:
            parts.append(self.core)
        parts += [f"{k}={v}" for k, v in self.fields.items()]
        line = " ".join(parts)
        return f"{line}  # {self.comment}" if self.comment else line


def encode(instr: Instr) -> int:
    """The 64-bit word of ``instr``; fields out of range raise ``AsmError``."""
    word = OPS[instr.op] << OP_SHIFT
    if instr.op in ROUTED:
        word |= CORES.index(instr.core) << CORE_SHIFT
    for name, (lsb, width, signed) in field_offsets(instr.op).items():
        value = instr.fields[name]
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= value <= hi:
            raise AsmError(
                f"{instr.op} field {name}={value} does not fit in {width} "
                f"{'signed ' if signed else ''}bits ({lo}..{hi})"
            )
        word |= (value & ((1 << width) - 1)) << lsb
    return word


def decode(word: int) -> Instr:
    """The instruction of a 64-bit word (inverse of ``encode``)."""
    code = (word >> OP_SHIFT) & 0xF
    if code not in OP_NAMES:
        raise AsmError(f"word {word:#018x}: unknown opcode {code}")
    op = OP_NAMES[code]
    core = CORES[(word >> CORE_SHIFT) & 1] if op in ROUTED else "dsp"
    fields = {}
    for name, (lsb, width, signed) in field_offsets(op).items():
        value = (word >> lsb) & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        fields[name] = value
    return Instr(op, core, fields)


_LINE = re.compile(r"^\s*([A-Za-z]+)((?:\s+[A-Za-z_]+(?:=-?\d+)?)*)\s*$")


def assemble(text: str) -> list[int]:
    """Words of an assembly text (one instruction per line, ``#`` comments)."""
    words = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise AsmError(f"line {number}: cannot parse '{raw.strip()}'")
        op = match.group(1).upper()
        core, fields = "dsp", {}
        for token in match.group(2).split():
            if "=" in token:
                name, value = token.split("=")
                fields[name] = int(value)
            elif token in CORES and op in ROUTED:
                core = token
            else:
                raise AsmError(f"line {number}: unexpected '{token}' in '{raw.strip()}'")
        try:
            words.append(encode(Instr(op, core, fields)))
        except AsmError as exc:
            raise AsmError(f"line {number}: {exc}") from None
    return words


def disassemble(words: Iterable[int]) -> str:
    """Assembly text of ``words``, one instruction per line."""
    return "".join(decode(int(w)).text() + "\n" for w in words)
