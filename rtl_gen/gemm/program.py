"""The compiler's result and its last phase: ``Program`` (instructions, per-layer
``LayerInfo``, memory contents, the transformed graph whose golden the hardware reproduces),
the checks that every field encodes and every memory fits the board (``check_fields``,
``check_fits``: a named ``ModelError``, never a traceback) and ``program_images`` (the words
each memory is initialised with, for a configuration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frontends.errors import ModelError
from frontends.ir import Graph, IntType

from .codes import abits
from .config import GemmConfig
from .isa import AsmError, Instr, encode
from .ram import subwords


@dataclass(frozen=True, eq=False)
class LayerInfo:
    """What the compiler did with one node: the split and where its instructions are."""

    name: str
    op: str
    source_op: str
    m: int
    k: int
    n: int
    groups: int
    n_dsp: int  # channels on the DSP core
    n_lut: int  # channels on the LUT core
    lut_error: float  # max relative squared error of the LUT channels (0: exact)
    first: int  # index of the layer's first instruction
    last: int  # one past its last instruction
    macs: int
    model_cycles: int = 0  # sequencer cycles of [first, last) (set by the compiler)
    lut_wbits: int = 0  # LUT-core weight precision of this layer (0: no LUT channels)
    lut_rows: int = 0  # output rows on the LUT core, every channel (0: split by channels)


@dataclass(frozen=True, eq=False)
class Program:
    """A compiled network: instructions, memory images, the graph it computes exactly."""

    config: GemmConfig
    instrs: tuple
    act_base: dict  # tensor -> act address of its region
    layout: dict  # tensor -> physical offset of each original flat index
    idx: np.ndarray  # gather table: act offsets, -1 = padding
    wd: tuple  # DSP weight words (int)
    wl: tuple  # LUT weight words (int)
    params: np.ndarray  # (P, 2): bias, multiplier
    layers: tuple
    graph: Graph  # transformed graph: LUT channels requantized
    source: Graph
    needs: dict = field(default_factory=dict)
    tab: tuple = ()  # table memory words (``tables``)
    etab: tuple = ()  # the row unit's exp tables (``rowwise``)
    smurf: tuple = ()  # SMURF units in place of the table memory (``tables.SmurfTable``)

    @property
    def words(self) -> list[int]:
        return [encode(i) for i in self.instrs]

    @property
    def n_in(self) -> int:
        return self.graph.tensor(self.graph.inputs[0]).size

    @property
    def n_out(self) -> int:
        return self.graph.tensor(self.graph.outputs[0]).size

    @property
    def in_dtype(self) -> IntType:
        return self.graph.tensor(self.graph.inputs[0]).dtype

    @property
    def out_dtype(self) -> IntType:
        return self.graph.tensor(self.graph.outputs[0]).dtype

    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def listing(self) -> str:
        return "".join(i.text() + "\n" for i in self.instrs)


def check_fields(instrs: list[Instr], infos: list[LayerInfo], graph: Graph) -> None:
    """Every instruction encodes; else a ``ModelError`` naming the layer and the field."""
    for i, ins in enumerate(instrs):
        try:
            encode(ins)
        except AsmError as exc:
            owner = next((info for info in infos if info.first <= i < info.last), None)
            where = (
                f"layer '{owner.name}' ({owner.source_op})" if owner else f"model '{graph.name}'"
            )
            raise ModelError(
                f"{where}: {exc}; the gemm engine's instruction cannot hold it"
            ) from None


def check_fits(config: GemmConfig, needs: dict, graph: Graph) -> None:
    for name, value in needs.items():
        have = getattr(config, name)
        fits = value <= have
        if name in ("residual", "half_even", "windows", "matmul", "cadd", "norm", "lane_cache"):
            if value and not have:
                raise ModelError(
                    f"model '{graph.name}' needs {name}; the overlay was built "
                    f"without it ({name}=False)"
                )
            continue
        if name == "lut_acc_bits":
            have = config.acc_widths["lut"]
            fits = value <= have
        if not fits:
            what = name.replace("_depth", " memory depth").replace("_bits", " width in bits")
            raise ModelError(f"model '{graph.name}' needs {what} {value}; the overlay has {have}")


def program_images(program: Program, config: GemmConfig | None = None) -> dict:
    """Memory words of ``program`` for ``config`` (default: the program's):
    ``imem``, ``idx`` (offset, pad flag above it), ``wd``, ``wl``, ``params``
    (``bias << mult_bits | multiplier``)."""
    config = config or program.config
    wd = list(program.wd)
    if config.spram and not config.spram_wbits:  # the SPRAM's 16-bit words, low half first
        wsub = subwords(config.dsp_lanes)
        wd = [(int(word) >> (16 * i)) & 0xFFFF for word in wd for i in range(wsub)]
    pad_bit = 1 << abits(config.act_depth)
    bias_mask = (1 << config.bias_bits) - 1
    return {
        "imem": program.words,
        # -1: padding; -(offset + 2): the offset with the flag set (a row unit's sign)
        "idx": [
            pad_bit if int(e) == -1 else pad_bit | (-int(e) - 2) if int(e) < 0 else int(e)
            for e in program.idx
        ],
        "wd": wd,
        "wl": list(program.wl),
        "params": [
            ((int(b) & bias_mask) << config.mult_bits) | int(mu) for b, mu in program.params
        ],
        **({"tab": list(program.tab)} if config.tab_depth and not program.smurf else {}),
        **({"etab": list(program.etab)} if config.etab_depth else {}),
    }
