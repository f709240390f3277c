"""The instruction format: encode/decode and assemble/disassemble round trips, field
range errors."""

import numpy as np
import pytest

from rtl_gen.gemm.isa import (
    FIELDS,
    OPS,
    AsmError,
    Instr,
    assemble,
    decode,
    disassemble,
    encode,
    field_offsets,
)


def _random_instr(rng, op):
    fields = {}
    for name, (_, width, signed) in field_offsets(op).items():
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        fields[name] = int(rng.integers(lo, hi + 1))
    core = "lut" if op in ("CFG", "GEMM", "POST") and rng.random() < 0.5 else "dsp"
    return Instr(op, core, fields)


def test_every_op_round_trips_through_words_and_text():
    rng = np.random.default_rng(0)
    instrs = [_random_instr(rng, op) for op in OPS for _ in range(20)]
    words = [encode(i) for i in instrs]
    assert all(0 <= w < 2**64 for w in words)
    assert [decode(w) for w in words] == instrs
    assert assemble(disassemble(words)) == words


def test_fields_fit_below_the_header():
    for op, fields in FIELDS.items():
        assert sum(w for _, w, _ in fields) <= 58, op


def test_assembler_reads_comments_and_cores():
    words = assemble("""
        # a layer
        CFG lut m=1 k=13 n=11 g=1 tiles=2 xsigned=0 wbits=4
        GEMM lut x=0 gstep=5 w=7 pad=128   # start it
        SYNC
        PCFG m=1 shift=18 zp=-3 lo=-128 hi=127 round=0
    """)
    assert decode(words[0]).core == "lut" and decode(words[0])["k"] == 13
    assert decode(words[3])["zp"] == -3
    assert decode(words[2]).op == "SYNC"


def test_errors_name_the_field_and_range():
    with pytest.raises(AsmError, match=r"^GEMM field pad=256 does not fit in 8 bits \(0..255\)$"):
        encode(Instr("GEMM", "dsp", {"pad": 256}))
    with pytest.raises(AsmError, match=r"^line 2: cannot parse 'GEMM dsp x=1,2'$"):
        assemble("SYNC\nGEMM dsp x=1,2\n")
    with pytest.raises(AsmError, match=r"^POST: unknown field\(s\) q; fields: n, y, p, early$"):
        Instr("POST", "dsp", {"q": 1})
