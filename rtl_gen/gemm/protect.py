"""Parity/SECDED on the GEMM overlay's read-only memories (``GemmConfig.protect``).

The instruction memory, both weight memories and the parameter memory store each word with
the check bits of ``rtl_gen.ecc`` above its data (``codes``, ``coded_images``); the
activation, gather-table and accumulator memories are not coded. ``ProtectedRead`` registers
a read port's raw word, then decodes it, so no logic sits between a block RAM's output and
a register:

- weights (``wd``, ``wl``): the core's stage-A weight address (``GemmCore.w_addr_early``)
  reads one cycle ahead, so the decoded word (parity: the raw word; SECDED: corrected behind
  the registered raw word) meets the activation in the core's operand registers as before
  (no cycle more);
- instructions: the sequencer spends ``EccCode.stages`` more cycles fetching each
  instruction (``timing.fetch_cycles``: parity one, the raw word; SECDED two, the raw and
  the corrected word);
- parameters: the post unit addresses them a cycle early (``PostUnit.p_addr_early``), so
  the decoded word reaches its parameter registers when a plain memory's would (the units
  beside it read through a combinational decoder).

Under SECDED the instruction and parameter memories are one block RAM (parameters in the
lower half of its address space, instructions in the upper) read through one decoder
(``shares_port``): the sequencer takes the decoded instruction into its own register in the
last DECODE cycle.

``faulted_images`` is the golden of what the decoders pass on for coded words with bits
flipped, and the words read with a corrected flip and with an error the code cannot correct.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ecc import EccCode
from ..ecc import _columns as ecc_columns
from ..ecc import _flags as ecc_flags
from ..ecc import _flips as ecc_flips
from ..ecc import _syndrome as ecc_syndrome
from .codes import planes_of
from .config import DSP_WBITS, GemmConfig
from .program import Program

__all__ = [
    "PROTECTED",
    "shares_port",
    "codes",
    "coded_images",
    "decoded_images",
    "ProtectedRead",
    "constant_bits",
    "ErrorCounters",
    "read_counts",
    "faulted_program",
    "faulted_instructions",
]

PROTECTED = ("imem", "wd", "wl", "params")  # the coded memories, in fault-injection order


def shares_port(config: GemmConfig) -> bool:
    """The instruction and parameter memories are one block RAM read through one decoder
    (SECDED): the sequencer reads it only in its FETCH cycle, the post unit and the units
    beside it never then (a POST's last parameter read comes a cycle before its last issue,
    the sequencer fetches two cycles after it at the earliest; ADD, MAX, TAB and ROW are
    waited for to their last write), so one decoder serves both (a SECDED decoder of 42
    bits is about 100 LUT4 on the iCE40). Not with ``ins_reg`` (the ULX3S configs): there
    the digits MLP measured 3669 LUT4 shared against 2954 unshared on the ECP5 (Yosys;
    the cause not found yet); on the iCEBreaker 2063 (against 2357 with a decoder on each
    memory and the older flags)."""
    return config.protect == "secded" and not config.ins_reg


def data_bits(config: GemmConfig) -> dict[str, int]:
    """Data bits of a word of each coded memory (a memory of an absent core: 1). A
    parameter and an instruction word sharing one port (``shares_port``) are coded alike,
    their upper bits zero."""
    params = config.bias_bits + config.mult_bits
    shared = max(64, params) if shares_port(config) else 0
    return {
        "imem": shared or 64,
        "wd": max(1, config.dsp_lanes * DSP_WBITS),
        "wl": max(1, config.lut_lanes * config.lut_wbits),
        "params": shared or params,
    }


def codes(config: GemmConfig) -> dict[str, EccCode]:
    """The code of each coded memory under ``config.protect``."""
    return {name: EccCode(config.protect, k) for name, k in data_bits(config).items()}


def coded_images(images: dict, config: GemmConfig) -> dict:
    """``images`` (``compiler.program_images``) with the coded memories' words encoded."""
    if config.protect == "none":
        return dict(images)
    out = dict(images)
    for name, code in codes(config).items():
        out[name] = code.encode_words(images.get(name, []))
    return out


def decoded_images(words: dict, config: GemmConfig) -> tuple[dict, dict, dict]:
    """What the decoders pass on from the coded memories' ``words`` (flipped or not), and per
    memory the per-word flags ``(corrected, uncorrectable)`` as numpy bool arrays."""
    data, corrected, errors = dict(words), {}, {}
    for name, code in codes(config).items():
        data[name], corrected[name], errors[name] = code.decode_words(words.get(name, []))
    return data, corrected, errors


def constant_bits(code: EccCode, words: list[int], depth: int) -> dict[int, int]:
    """Data bits that read the same in every word of a read-only memory holding ``words``
    (``depth`` words, the rest zero), as the decoder passes them on: ``{bit: value}``.
    A decoder may output these as constants: whatever it reads, the golden of the same
    stored words says that value, and Yosys can fold the logic behind them as it does
    behind an unprotected ROM's constant bits (the correction hides them from it)."""
    data = code.decode_words(list(words))[0] + ([0] if len(words) < depth else [])
    if not data:
        return {}
    ones = zeros = (1 << code.data_bits) - 1
    for w in data:
        ones &= w
        zeros &= ~w
    return {b: int((ones >> b) & 1) for b in range(code.data_bits) if ((ones | zeros) >> b) & 1}


def with_constants(m: Module, data: Value, constants: dict[int, int]) -> Value:
    """``data`` with the bits of ``constants`` replaced by their values."""
    if not constants:
        return data
    out = Signal(len(data), name="const_folded")
    m.d.comb += [out[b].eq(constants[b] if b in constants else data[b]) for b in range(len(data))]
    return out


class ProtectedRead(wiring.Component):
    """One read port's decoder: ``word`` (the memory's read data) in; ``data`` ``latency``
    cycles later. The raw word is registered first, so no logic sits between a block RAM's
    output and a register (its clock-to-out, 5.8 ns on the ECP5, and the XOR trees after it
    were the protected overlays' critical path); parity's flag and SECDED's syndrome and
    correction follow the register combinationally. With ``register_output`` (SECDED) the
    corrected word is registered too: latency 2, else 1 (the consumer registers the
    decoded word). The bits of ``constants`` (``constant_bits`` of a read-only memory) come
    out as constants.

    ``used``: the word out on ``data`` is used this cycle; ``corrected``/``error`` are the
    events (a used word with a corrected flip / an error the code cannot correct) for the
    counters, ``flag_delay`` cycles after the use: SECDED's flags come from the syndrome
    registered beside the word (its lookup behind the XOR trees was the ECP5's critical
    path, 110 MHz), so without ``register_output`` they come a cycle after the data.
    ``pass_data`` (parity): the data bits pass straight through, so the memory is read when
    a plain one would be, and the flag comes a cycle after the use."""

    def __init__(
        self,
        code: EccCode,
        constants: dict[int, int] | None = None,
        *,
        register_output: bool = True,
        pass_data: bool = False,
    ):
        self.code, self.constants = code, constants or {}
        self.register_output = register_output and code.protect == "secded"
        # parity has nothing to correct: with pass_data the data bits go straight through
        # (latency 0) and the parity is checked on the registered word, a cycle later
        self.pass_data = pass_data and code.protect == "parity"
        plain = code.protect == "none" or self.pass_data
        self.latency = 0 if plain else 1 + self.register_output
        self.flag_delay = int(
            self.pass_data or (code.protect == "secded" and not self.register_output)
        )
        super().__init__(
            {
                "word": In(code.word_bits),
                "used": In(1),
                "data": Out(code.data_bits),
                "corrected": Out(1),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        code, k = self.code, self.code.data_bits
        if code.protect == "none":
            m.d.comb += self.data.eq(self.word)
            return m
        raw = Signal(code.word_bits, name="raw", reset_less=True)
        m.d.sync += raw.eq(self.word)
        if code.protect == "parity":
            used = self.used
            if self.pass_data:
                used = Signal(name="used_r")
                m.d.sync += used.eq(self.used)
            data = self.word[:k] if self.pass_data else raw[:k]
            m.d.comb += [
                self.data.eq(with_constants(m, data, self.constants)),
                self.error.eq(raw.xor() & used),
            ]
            return m
        cols, r = ecc_columns(k)
        syndrome, odd = ecc_syndrome(m, k, raw)
        data = raw[:k] ^ ecc_flips(cols, syndrome, odd)
        syn_r, odd_r = Signal(r, name="syndrome_r"), Signal(name="odd_r")
        m.d.sync += [syn_r.eq(syndrome), odd_r.eq(odd)]
        used = self.used
        if self.register_output:
            data_r = Signal(k, name="data_r", reset_less=True)
            m.d.sync += data_r.eq(data)
            data = data_r
        else:
            used = Signal(name="used_r")
            m.d.sync += used.eq(self.used)
        corrected, error = Signal(), Signal()
        m.d.comb += ecc_flags(syn_r, odd_r, corrected, error)
        m.d.comb += [
            self.data.eq(with_constants(m, data, self.constants)),
            self.corrected.eq(corrected & used),
            self.error.eq(error & used),
        ]
        return m


class ErrorCounters(wiring.Component):
    """``corrected`` and ``errors``: how many of the ``n`` event inputs were set, summed over
    every cycle since reset (the events are registered first, so the adders stay off the
    read paths), each saturating at 2**16 - 1."""

    def __init__(self, n: int):
        self.n = n
        super().__init__(
            {
                "corrected_in": In(n),
                "error_in": In(n),
                "corrected": Out(16),
                "errors": Out(16),
            }
        )

    def elaborate(self, platform):
        m = Module()
        for events, count in ((self.corrected_in, self.corrected), (self.error_in, self.errors)):
            flags = Signal(self.n, name=f"{count.name}_flags")
            m.d.sync += flags.eq(events)
            bump = Signal(range(self.n + 1), name=f"{count.name}_bump")
            total = flags[0]
            for i in range(1, self.n):
                total = total + flags[i]
            m.d.comb += bump.eq(total)
            with m.If(count + bump > 0xFFFF):
                m.d.sync += count.eq(0xFFFF)
            with m.Else():
                m.d.sync += count.eq(count + bump)
        return m


# --- golden of flipped memories ------------------------------------------------------------------


def read_counts(program: Program) -> dict:
    """How often one inference uses each word of the coded memories (numpy int arrays):
    every instruction once; a GEMM's weight words once per pixel (``m``) and bit-plane; a
    POST's parameter words once per pixel, an ADD's two and a MAX's one once per element.
    (The engine also reads the first instruction once before the first inference.)"""
    cfg = program.config
    images = {
        "imem": program.instrs,
        "wd": program.wd,
        "wl": program.wl,
        "params": program.params,
    }
    reads = {name: np.zeros(len(words), np.int64) for name, words in images.items()}
    reads["imem"][:] = 1
    core_cfg, pcfg_m, addp = {}, 1, None
    for ins in program.instrs:
        f = ins.fields
        if ins.op == "CFG":
            core_cfg[ins.core] = f
        elif ins.op == "GEMM":
            c = core_cfg[ins.core]
            span = c["g"] * c["tiles"] * c["k"] * planes_of(cfg, ins.core, c)
            reads["wd" if ins.core == "dsp" else "wl"][f["w"] : f["w"] + span] += c["m"]
        elif ins.op == "PCFG":
            pcfg_m = f["m"]
        elif ins.op == "POST":
            reads["params"][f["p"] : f["p"] + f["n"]] += pcfg_m
        elif ins.op == "ADDP":
            addp = f
        elif ins.op == "ADD":
            reads["params"][addp["q"] : addp["q"] + 2] += f["n"]
        elif ins.op == "MAX":
            reads["params"][addp["q"]] += f["n"]
        elif ins.op == "END":
            break
    return reads


def _sanitize_ternary(words: list[int], lanes: int) -> list[int]:
    """Ternary lanes multiply by +1 (01), -1 (11) and 0 otherwise: a flipped lane that reads
    10 is 0, as the hardware computes it."""
    out = []
    for word in words:
        for lane in range(lanes):
            if (word >> (2 * lane)) & 3 == 0b10:
                word &= ~(3 << (2 * lane))
        out.append(word)
    return out


def _streams(instrs) -> list[tuple[str, int]]:
    """The input and output elements a program moves, in order, up to its ``END``: what a
    host sends and waits for."""
    out = []
    for ins in instrs:
        if ins.op == "END":
            break
        if ins.op == "LOAD" and not ins.fields.get("fill"):
            out.append(("in", ins.fields["n"]))
        elif ins.op == "STORE":
            out.append(("out", ins.fields["n"]))
    return out


def faulted_instructions(program: Program, imem: list[int]) -> tuple[tuple | None, str]:
    """The instructions the engine of ``program`` executes when its instruction memory's
    decoder passes on ``imem``, and ``""``; or ``None`` and why the golden cannot say
    what the engine does: a word no instruction has, a different input or output stream
    (a host would wait for elements that never come, the board for ones never sent), or
    a program the model and its schedule refuse (a core's GEMM with no CFG, a hazard)."""
    from .isa import AsmError, decode

    words = [int(w) for w in program.words]
    if imem == words:
        return tuple(program.instrs), ""
    instrs = list(program.instrs)
    for i, (got, want) in enumerate(zip(imem, words)):
        if got != want:
            try:
                instrs[i] = decode(got)
            except AsmError as exc:
                return None, f"instruction {i}: {exc}"
    if _streams(instrs) != _streams(program.instrs):
        return None, "the flipped instructions change the input or output stream"
    return tuple(instrs), ""


def faulted_program(program: Program, words: dict) -> tuple[Program | None, dict]:
    """What the engine of ``program`` computes when its coded memories hold ``words`` (the
    stored images, ``emit.stored_images``, with bits flipped): the program of the decoded
    words, for ``model.run``, and per inference the words used with a corrected flip
    (``corrected``) and with an error the code cannot correct (``errors``). A flipped
    instruction that the decoder passes on changes the program (``faulted_instructions``);
    when the golden cannot say what it does the program is ``None`` and ``counts`` says
    why (``undefined``)."""
    from dataclasses import replace

    from .model import schedule

    cfg = program.config
    data, corrected, errors = decoded_images(words, cfg)
    instrs, why = faulted_instructions(program, [int(w) for w in data["imem"]])
    reads = read_counts(program)
    if instrs is not None and instrs != tuple(program.instrs):
        try:  # the data memories' words the changed program reads
            changed = replace(program, instrs=instrs)
            schedule(changed)
            reads.update({k: v for k, v in read_counts(changed).items() if k != "imem"})
        except Exception as exc:  # noqa: BLE001 - any refusal: the golden cannot say
            instrs, why = None, f"the flipped program is not one the model runs ({exc})"
    counts = {
        "corrected": int(sum((corrected[n] * reads[n]).sum() for n in PROTECTED)),
        "errors": int(sum((errors[n] * reads[n]).sum() for n in PROTECTED)),
    }
    if instrs is None:
        return None, {**counts, "undefined": why}
    wl = list(data["wl"])
    if cfg.lut_mode == "ternary":
        wl = _sanitize_ternary(wl, cfg.lut_lanes)
    half = 1 << (cfg.bias_bits - 1)
    mask = (1 << cfg.mult_bits) - 1
    params = np.array(
        [
            [((int(w) >> cfg.mult_bits) + half) % (1 << cfg.bias_bits) - half, int(w) & mask]
            for w in data["params"]
        ],
        np.int64,
    ).reshape(-1, 2)
    faulted = replace(program, instrs=instrs, wd=tuple(data["wd"]), wl=tuple(wl), params=params)
    return faulted, counts
