"""The heterogeneous DSP+LUT GEMM overlay (N3H-Core style): an instruction set, a compiler
from the IR, a Python model of the overlay, and the RTL (sequencer, DSP core, LUT core,
post-processing, perf counters)."""

from .compiler import Program, compile_graph
from .config import BOARDS, GemmConfig
from .isa import Instr, assemble, decode, disassemble, encode

__all__ = [
    "GemmConfig",
    "BOARDS",
    "Program",
    "compile_graph",
    "Instr",
    "assemble",
    "disassemble",
    "encode",
    "decode",
]
