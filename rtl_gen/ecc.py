"""Error detection and correction for the engines' memories: parity and SECDED.

A protected memory stores, beside each word's ``k`` data bits, the check bits of a
systematic code, in one word: data in bits ``[0, k)``, then the check bits.

- ``parity``: one bit, the XOR of the data bits. Any odd number of flipped bits in a word is
  detected; nothing is corrected.
- ``secded``: an extended Hamming code whose columns are pairs. ``r`` check bits (the
  least ``r`` with ``r (r - 1) / 2 >= k``; at least two), data bit ``i`` in the two of
  them named by the ``i``-th pair ``(a, b)``, ``a < b``, in lexicographic order (so the
  columns are distinct and none is a check bit's), then one overall parity bit over data
  and check bits. One flipped bit in a word is corrected (the data read is the data
  written); two are detected; three or more may be miscorrected, as with every SECDED
  code: by the textbook rule an odd number of flips is taken for one and corrected, an
  even number with a non-zero syndrome is the error (a lookup of the syndromes one flip
  can make cost 8-20 % of a decoder's LUT4 and caught only some triple flips).
  Weight-two columns cost a few more check bits than the densest Hamming code (16 for 96
  data bits, not 8; the block RAM's spare width holds them) but a decoder about a
  quarter smaller: each data bit enters two syndrome trees (a dense code's 3-4), a data
  bit's correction is one LUT4 (its bit, its two syndrome bits, the overall parity), and
  the overall parity reuses the syndrome trees' partial sums (``_syndrome``).

``encode_words``/``decode_words`` are the golden model (numpy, vectorised over words) and
``EccDecoder`` the hardware: combinational, so a protected memory keeps its read latency.
``PipelinedDecoder`` registers it in ``EccCode.stages`` stages (SECDED: the syndrome, then
the correction), for read paths that have the cycles.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from frontends.errors import UsageError

__all__ = ["PROTECTIONS", "EccCode", "EccDecoder", "PipelinedDecoder", "ecc_code"]

PROTECTIONS = ("none", "parity", "secded")


def _columns(k: int) -> tuple[list[int], int]:
    """The columns of ``k`` data bits (bit masks of two check bits each) and the number of
    check bits ``r`` (the overall parity bit not counted)."""
    r = 2
    while r * (r - 1) // 2 < k:
        r += 1
    cols = [(1 << a) | (1 << b) for a, b in itertools.combinations(range(r), 2)][:k]
    return cols, r


def _pair(col: int) -> tuple[int, int]:
    """The two check bits ``(a, b)``, ``a < b``, of a column."""
    return (col & -col).bit_length() - 1, col.bit_length() - 1


@dataclass(frozen=True)
class EccCode:
    """The code of one memory: ``data_bits`` protected by ``check_bits`` more."""

    protect: str
    data_bits: int

    def __post_init__(self):
        if self.protect not in PROTECTIONS:
            raise UsageError(f"--protect {self.protect}: expected one of {', '.join(PROTECTIONS)}")
        if self.data_bits < 1:
            raise ValueError(f"a protected word needs at least one data bit, not {self.data_bits}")

    @property
    def hamming_bits(self) -> int:
        return _columns(self.data_bits)[1] if self.protect == "secded" else 0

    @property
    def check_bits(self) -> int:
        return {"none": 0, "parity": 1, "secded": self.hamming_bits + 1}[self.protect]

    @property
    def word_bits(self) -> int:
        return self.data_bits + self.check_bits

    @property
    def stages(self) -> int:
        """Registers ``PipelinedDecoder`` puts between a read and its decoded word."""
        return {"none": 0, "parity": 1, "secded": 2}[self.protect]

    # --- golden model ----------------------------------------------------------------------

    def _bits(self, words: np.ndarray, n: int) -> np.ndarray:
        """``(len(words), n)`` array of bits, LSB first (Python ints: words may pass 64 bits)."""
        return np.array(
            [[(int(w) >> b) & 1 for b in range(n)] for w in words], dtype=np.int64
        ).reshape(len(words), n)

    def _words(self, bits: np.ndarray) -> list[int]:
        weights = [1 << b for b in range(bits.shape[1])]
        return [sum(w for w, bit in zip(weights, row) if bit) for row in bits]

    def _hamming(self, data_bits: np.ndarray) -> np.ndarray:
        cols, r = _columns(self.data_bits)
        h = np.array([[(c >> j) & 1 for j in range(r)] for c in cols], dtype=np.int64)
        return (data_bits @ h) & 1

    def encode_words(self, words: Iterable[int]) -> list[int]:
        """Codewords of ``words`` (each an unsigned integer below ``2**data_bits``)."""
        words = [int(w) for w in words]
        if self.protect == "none" or not words:
            return words
        d = self._bits(words, self.data_bits)
        if self.protect == "parity":
            check = d.sum(axis=1, keepdims=True) & 1
        else:
            c = self._hamming(d)
            overall = (d.sum(axis=1) + c.sum(axis=1)) & 1
            check = np.concatenate([c, overall[:, None]], axis=1)
        return self._words(np.concatenate([d, check], axis=1))

    def decode_words(self, codewords: Iterable[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
        """What the decoder reads from ``codewords``: the data words, and per word whether a
        flip was corrected and whether an error was detected that it could not correct."""
        codewords = [int(w) for w in codewords]
        n = len(codewords)
        none = np.zeros(n, dtype=bool)
        if self.protect == "none" or not n:
            return codewords, none, none.copy()
        bits = self._bits(codewords, self.word_bits)
        d = bits[:, : self.data_bits].copy()
        if self.protect == "parity":
            return self._words(d), none, (bits.sum(axis=1) & 1).astype(bool)
        cols, r = _columns(self.data_bits)
        c = bits[:, self.data_bits : self.data_bits + r]
        syndrome_bits = (self._hamming(d) + c) & 1
        syndrome = syndrome_bits @ (1 << np.arange(r))
        odd = (bits.sum(axis=1) & 1).astype(bool)
        # as the hardware: with odd parity every data bit whose two syndrome bits are set
        # flips (one column when one bit flipped; a guess, like any SECDED's, beyond that),
        # and the word counts as corrected
        pairs = np.array([_pair(col) for col in cols]).reshape(-1, 2)
        d ^= (syndrome_bits[:, pairs[:, 0]] & syndrome_bits[:, pairs[:, 1]]) * odd[:, None]
        return self._words(d), odd, ~odd & (syndrome != 0)


def ecc_code(protect: str, data_bits: int) -> EccCode:
    return EccCode(protect, data_bits)


class EccDecoder(wiring.Component):
    """Combinational decoder of one ``EccCode``: ``word`` (a codeword as read) in, ``data``,
    ``corrected`` (one flip corrected) and ``error`` (an error it cannot correct: any odd
    flip count under parity; two or more under SECDED) out. Latency 0."""

    def __init__(self, code: EccCode):
        self.code = code
        super().__init__(
            {
                "word": In(code.word_bits),
                "data": Out(code.data_bits),
                "corrected": Out(1),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        code = self.code
        k = code.data_bits
        d = self.word[:k]
        if code.protect == "none":
            m.d.comb += self.data.eq(d)
        elif code.protect == "parity":
            m.d.comb += [self.data.eq(d), self.error.eq(self.word.xor())]
        else:
            cols, r = _columns(k)
            syndrome, odd = _syndrome(m, k, self.word)
            m.d.comb += self.data.eq(d ^ _flips(cols, syndrome, odd))
            m.d.comb += _flags(syndrome, odd, self.corrected, self.error)
        return m


class PipelinedDecoder(wiring.Component):
    """``EccDecoder`` in ``code.stages`` registered stages: parity, the word and its parity
    registered; SECDED, the data, the syndrome and the overall parity registered, then the
    corrected word and its flags (the syndrome's XOR trees and the correction each have a
    cycle). ``word`` in, ``data``/``corrected``/``error`` ``latency`` cycles later: ``code.stages``,
    or with ``register_output=False`` one, the SECDED correction (two LUT levels) then
    combinational behind the registered syndrome, for a consumer that registers it."""

    def __init__(self, code: EccCode, *, register_output: bool = True):
        self.code, self.register_output = code, register_output
        self.latency = code.stages if register_output else min(code.stages, 1)
        super().__init__(
            {
                "word": In(code.word_bits),
                "data": Out(code.data_bits),
                "corrected": Out(1),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        code, k = self.code, self.code.data_bits
        if code.protect == "none":
            m.d.comb += self.data.eq(self.word[:k])
            return m
        if code.protect == "parity":
            data = Signal(k, reset_less=True)
            m.d.sync += [data.eq(self.word[:k]), self.error.eq(self.word.xor())]
            m.d.comb += self.data.eq(data)
            return m
        r = _columns(k)[1]
        syndrome, odd, data = Signal(r), Signal(), Signal(k, reset_less=True)
        comb_syndrome, comb_odd = _syndrome(m, k, self.word)
        m.d.sync += [syndrome.eq(comb_syndrome), odd.eq(comb_odd), data.eq(self.word[:k])]
        # stage 2: an EccDecoder on a codeword whose syndrome is the registered one: its
        # check bits are the syndrome (the data's Hamming bits cancel), its overall bit odd
        m.submodules.correct = dec = _Corrector(code)
        m.d.comb += [dec.data.eq(data), dec.syndrome.eq(syndrome), dec.odd.eq(odd)]
        if not self.register_output:
            m.d.comb += [
                self.data.eq(dec.out),
                self.corrected.eq(dec.corrected),
                self.error.eq(dec.error),
            ]
            return m
        out = Signal(k, reset_less=True)
        m.d.sync += [out.eq(dec.out), self.corrected.eq(dec.corrected), self.error.eq(dec.error)]
        m.d.comb += self.data.eq(out)
        return m


class _Corrector(wiring.Component):
    """SECDED's second half: the data corrected from a syndrome and the overall parity
    (``EccDecoder``'s correction and flags, combinational)."""

    def __init__(self, code: EccCode):
        self.code = code
        r = _columns(code.data_bits)[1]
        super().__init__(
            {
                "data": In(code.data_bits),
                "syndrome": In(r),
                "odd": In(1),
                "out": Out(code.data_bits),
                "corrected": Out(1),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cols, r = _columns(self.code.data_bits)
        m.d.comb += [
            self.out.eq(self.data ^ _flips(cols, self.syndrome, self.odd)),
            *_flags(self.syndrome, self.odd, self.corrected, self.error),
        ]
        return m


def _syndrome(m: Module, k: int, word) -> tuple[Signal, Signal]:
    """The syndrome of a codeword ``word`` of ``k`` data bits and its overall parity
    (``odd``: set when an odd number of bits flipped). Each data bit's first syndrome tree
    is split into its own partial sum (``low``), which the overall parity reuses: the
    partial sums hold every data bit once, so the overall parity costs a tree over ``r``
    sums and the check bits, not one over the whole word."""
    cols, r = _columns(k)
    low = Signal(r, name="syndrome_low")
    syndrome, odd = Signal(r, name="syndrome"), Signal(name="odd")
    for j in range(r):
        own = [word[i] for i, col in enumerate(cols) if _pair(col)[0] == j]
        rest = [word[i] for i, col in enumerate(cols) if _pair(col)[1] == j]
        m.d.comb += [
            low[j].eq(Cat(*own).xor() if own else 0),
            syndrome[j].eq(Cat(low[j], *rest, word[k + j]).xor()),
        ]
    m.d.comb += odd.eq(Cat(low, word[k:]).xor())
    return syndrome, odd


def _flips(cols: list[int], syndrome, odd):
    """One bit a data bit: set when the overall parity is odd and both of its column's
    syndrome bits are (with the data bit, one LUT4)."""
    return Cat(*[syndrome[a] & syndrome[b] & odd for a, b in map(_pair, cols)])


def _flags(syndrome, odd, corrected, error) -> list:
    """``corrected``: an odd number of flips, taken for one; ``error``: an even number
    with a non-zero syndrome (two flips, or more)."""
    return [corrected.eq(odd), error.eq(~odd & syndrome.any())]
