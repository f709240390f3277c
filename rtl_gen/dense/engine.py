"""``DenseEngine``: runs a chain of dense layers, one layer after the other.

Dataflow, per layer: a group of ``lanes`` output channels is computed at a time. Every cycle
one input activation is read from the source buffer, broadcast to the lanes and multiplied
by each lane's weight (one ROM word holds the group's weights for that input); the products
go to per-lane accumulators. When a group's last input is in, its accumulators move to a
hold register and drain, one lane a cycle, through the requantizer
(``+ bias``, ``* multiplier``, ``round, >> shift, + zero_point``, clamp) into the destination
buffer, while the next group accumulates. Two activation buffers alternate as source and
destination.

Latency (input always valid, output always ready), in cycles from the first input transfer
to the last output transfer inclusive: ``n_in + sum_l(groups_l * n_in_l + lanes + 6) +
n_out + 1`` (``DensePlan.cycles``). Throughput: one MAC per lane per cycle while a layer runs.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.fixedpoint import MULTIPLIER_BITS
from frontends.ir import IntType

from ..cycles import count_inference_cycles
from ..ecc import PipelinedDecoder
from .plan import ACT_BITS, WEIGHT_BITS, DensePlan

__all__ = ["DenseEngine", "element_layout"]


def _shape(dtype):
    return signed(dtype.width) if dtype.signed else unsigned(dtype.width)


def element_layout(dtype: IntType) -> data.StructLayout:
    """One tensor element on a stream; ``last`` marks the final element of a vector."""
    return data.StructLayout({"data": _shape(dtype), "last": 1})


class DenseEngine(wiring.Component):
    """Streams an input vector in, runs every layer of ``plan``, streams the result out.

    Ports: ``i`` (input elements, in order), ``o`` (output elements, ``last`` on the final
    one), ``cycles`` (latency of the last inference, see the module docstring) and ``busy``.
    The input's ``last`` flag is not needed: vectors are counted.

    With ``plan.protect`` other than ``none`` the ROM words carry check bits, decoded in
    ``EccCode.stages`` registered stages (``rtl_gen.ecc.PipelinedDecoder``: parity one,
    SECDED two) before the multipliers and before the bias add (two or four cycles more per
    layer), and two more ports count, since reset, the words read with a
    corrected flip (``ecc_corrected``) and with an error the code cannot correct
    (``ecc_errors``; any flip under parity), each saturating at 2**16 - 1. ``images``
    replaces the ROMs' contents (fault injection: ``plan.weight_image()`` and
    ``param_image()`` with bits flipped).
    """

    def __init__(self, plan: DensePlan, images: tuple[list[int], list[int]] | None = None):
        self.plan = plan
        self.images = images
        ports = {
            "i": In(stream.Signature(element_layout(plan.in_dtype))),
            "o": Out(stream.Signature(element_layout(plan.out_dtype))),
            "cycles": Out(32),
            "busy": Out(1),
        }
        if plan.protect != "none":
            ports.update(ecc_corrected=Out(16), ecc_errors=Out(16))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        P, layers = plan.lanes, plan.layers
        n_layers = len(layers)

        # --- memories -----------------------------------------------------------------------
        depth = plan.buffer_depth
        wide = plan.out_bits  # 8, or the last layer's accumulator output
        m.submodules.buf_a = buf_a = Memory(shape=unsigned(wide), depth=depth, init=[])
        m.submodules.buf_b = buf_b = Memory(shape=unsigned(wide), depth=depth, init=[])
        rd_a, wr_a = buf_a.read_port(), buf_a.write_port()
        rd_b, wr_b = buf_b.read_port(), buf_b.write_port()
        w_image, p_image = self.images or (plan.weight_image(), plan.param_image())
        w_code, p_code = plan.weight_code, plan.param_code
        m.submodules.weights = w_mem = Memory(
            shape=unsigned(w_code.word_bits), depth=len(w_image), init=w_image
        )
        m.submodules.params = p_mem = Memory(
            shape=unsigned(p_code.word_bits), depth=len(p_image), init=p_image
        )
        rd_w, rd_p = w_mem.read_port(), p_mem.read_port()
        w_data, p_data = rd_w.data, rd_p.data
        decode = w_code.stages  # registers between a ROM read and its decoded word
        if plan.protect != "none":
            m.submodules.w_ecc = w_ecc = PipelinedDecoder(w_code)
            m.submodules.p_ecc = p_ecc = PipelinedDecoder(p_code)
            m.d.comb += [w_ecc.word.eq(rd_w.data), p_ecc.word.eq(rd_p.data)]
            w_data, p_data = w_ecc.data, p_ecc.data

        # --- per-layer constants, selected by the layer index --------------------------------
        layer = Signal(range(max(n_layers, 2)))
        max_in = max(l.n_in for l in layers)
        max_groups = max(l.groups(P) for l in layers)
        k_last = Signal(range(max_in))
        g_last = Signal(range(max_groups))
        n_out = Signal(range(max(l.n_out for l in layers) + 1))
        in_signed = Signal()
        shift = Signal(range(max(l.shift for l in layers) + 1))
        half = Signal(unsigned(max(l.shift for l in layers)))  # 2**(shift-1): round half up
        zero_point = Signal(signed(ACT_BITS + 1))
        lo, hi = Signal(signed(wide + 1)), Signal(signed(wide + 1))
        with m.Switch(layer):
            for index, l in enumerate(layers):
                with m.Case(index):
                    m.d.comb += [
                        k_last.eq(l.n_in - 1),
                        g_last.eq(l.groups(P) - 1),
                        n_out.eq(l.n_out),
                        in_signed.eq(l.in_dtype.signed),
                        shift.eq(l.shift),
                        half.eq(1 << (l.shift - 1)),
                        zero_point.eq(l.zero_point),
                        lo.eq(l.lo),
                        hi.eq(l.hi),
                    ]
        src_is_a = ~layer[0]  # layer 0 reads A (filled by the input), layer 1 reads B, ...
        final_in_a = (n_layers % 2) == 0

        # --- state ---------------------------------------------------------------------------
        k = Signal(range(max_in))  # input index within the group (stage 0)
        g = Signal(range(max_groups))  # group index (stage 0)
        w_addr = Signal(range(len(w_image)))  # weight ROM: sequential over the inference
        p_addr = Signal(range(len(p_image)))  # param ROM: sequential over the inference
        in_k = Signal(range(plan.n_in))
        out_k = Signal(range(plan.n_out))

        # --- stage 1: memory data; stage 2: products; stage 3: accumulators -------------------
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s2_valid, s2_first, s2_last = Signal(), Signal(), Signal()
        act_raw = Mux(src_is_a, rd_a.data, rd_b.data)[:ACT_BITS]
        act = Signal(signed(ACT_BITS + 1))
        m.d.comb += act.eq(Mux(in_signed, act_raw.as_signed(), act_raw))
        prods = [Signal(signed(ACT_BITS + WEIGHT_BITS + 1), name=f"prod{p}") for p in range(P)]
        accs = [Signal(signed(plan.acc_bits), name=f"acc{p}") for p in range(P)]
        holds = [Signal(signed(plan.acc_bits), name=f"hold{p}") for p in range(P)]
        m1_valid, m1_first, m1_last, m1_act, m1_w = s1_valid, s1_first, s1_last, act, w_data
        decode_valids = []
        for stage in range(decode):
            # the activation and the control wait for the decoder's stages
            nxt = [Signal(name=f"m{stage}_{n}") for n in ("valid", "first", "last")]
            nxt_act = Signal.like(act, name=f"m{stage}_act")
            m.d.sync += [
                nxt[0].eq(m1_valid),
                nxt[1].eq(m1_first),
                nxt[2].eq(m1_last),
                nxt_act.eq(m1_act),
            ]
            (m1_valid, m1_first, m1_last), m1_act = nxt, nxt_act
            decode_valids.append(m1_valid)
        m.d.sync += [s2_valid.eq(m1_valid), s2_first.eq(m1_first), s2_last.eq(m1_last)]
        for p in range(P):
            weight = m1_w[WEIGHT_BITS * p : WEIGHT_BITS * (p + 1)].as_signed()
            m.d.sync += prods[p].eq(m1_act * weight)
        drain_left = Signal(range(P + 1))
        with m.If(s2_valid):
            for p in range(P):
                total = Mux(s2_first, 0, accs[p]) + prods[p]
                m.d.sync += accs[p].eq(total)
                with m.If(s2_last):
                    m.d.sync += holds[p].eq(total)
            with m.If(s2_last):
                m.d.sync += drain_left.eq(P)

        # --- requantizer: r0 drain, r1 + bias, r2 * multiplier, r3 shift/clamp/write ----------
        channel = Signal(range(max_groups * P + 1))
        r1_valid, r2_valid, r3_valid = Signal(), Signal(), Signal()
        r1_ch, r2_ch, r3_ch = (
            Signal(range(max_groups * P + 1), name=f"r{i}_ch") for i in (1, 2, 3)
        )
        r1_acc = Signal(signed(plan.acc_bits))
        r2_sum = Signal(signed(plan.sum_bits))
        r2_mul = Signal(unsigned(MULTIPLIER_BITS))
        r3_prod = Signal(signed(plan.sum_bits + MULTIPLIER_BITS + 1))
        m.d.comb += rd_p.addr.eq(p_addr)
        draining = drain_left != 0
        with m.If(draining & ~(s2_valid & s2_last)):
            m.d.sync += drain_left.eq(drain_left - 1)
            for p in range(P - 1):
                m.d.sync += holds[p].eq(holds[p + 1])
        with m.If(draining):
            m.d.sync += [p_addr.eq(p_addr + 1), channel.eq(channel + 1)]
        m.d.sync += [r1_valid.eq(draining), r1_ch.eq(channel), r1_acc.eq(holds[0])]
        q1_valid, q1_ch, q1_acc, q1_p = r1_valid, r1_ch, r1_acc, p_data
        for stage in range(decode):
            # likewise the decoded parameter word, before the bias add
            nv = Signal(name=f"q{stage}_valid")
            nch, nacc = (
                Signal.like(r1_ch, name=f"q{stage}_ch"),
                Signal.like(r1_acc, name=f"q{stage}_acc"),
            )
            m.d.sync += [nv.eq(q1_valid), nch.eq(q1_ch), nacc.eq(q1_acc)]
            q1_valid, q1_ch, q1_acc = nv, nch, nacc
            decode_valids.append(q1_valid)
        m.d.sync += [
            r2_valid.eq(q1_valid),
            r2_ch.eq(q1_ch),
            r2_sum.eq(q1_acc + q1_p[MULTIPLIER_BITS:].as_signed()),
            r2_mul.eq(q1_p[:MULTIPLIER_BITS]),
            r3_valid.eq(r2_valid),
            r3_ch.eq(r2_ch),
            r3_prod.eq(r2_sum * r2_mul),
        ]
        rounded = Signal(signed(plan.sum_bits + MULTIPLIER_BITS + 1))
        m.d.comb += rounded.eq((r3_prod + half) >> shift)
        shifted = Signal(signed(len(rounded) + 1))
        m.d.comb += shifted.eq(rounded + zero_point)
        result = Signal(signed(wide + 1))
        m.d.comb += result.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted)))
        write_en = r3_valid & (r3_ch < n_out)

        # --- error counters: a weight word is used in stage 1, a param word in r1 ----------
        # (registered first: the counters stay off the read-to-multiply path)
        if plan.protect != "none":
            for port, events in (
                (self.ecc_corrected, (m1_valid & w_ecc.corrected, q1_valid & p_ecc.corrected)),
                (self.ecc_errors, (m1_valid & w_ecc.error, q1_valid & p_ecc.error)),
            ):
                flags = Signal(2, name=f"{port.name}_flags")
                bump = Signal(range(3), name=f"{port.name}_bump")
                m.d.sync += flags.eq(Cat(*events))
                m.d.comb += bump.eq(flags[0] + flags[1])
                with m.If(port + bump > 0xFFFF):
                    m.d.sync += port.eq(0xFFFF)
                with m.Else():
                    m.d.sync += port.eq(port + bump)

        # --- control ------------------------------------------------------------------------
        count_inference_cycles(m, self, first=in_k == 0)

        busy_stages = [s1_valid, s2_valid, draining, r1_valid, r2_valid, r3_valid]
        busy_stages += decode_valids
        idle = (
            ~Cat(*busy_stages).any()
            if plan.protect != "none"
            else ~(s1_valid | s2_valid | draining | r1_valid | r2_valid | r3_valid)
        )
        o_valid = Signal()
        rd_final = rd_a if final_in_a else rd_b
        m.d.comb += [
            self.o.valid.eq(o_valid),
            self.o.payload.data.eq(rd_final.data),
            self.o.payload.last.eq(out_k == plan.n_out - 1),
            rd_w.addr.eq(w_addr),
            rd_a.addr.eq(k),
            rd_b.addr.eq(k),
            # the buffer that is not the source is the destination
            wr_a.addr.eq(r3_ch),
            wr_a.data.eq(result),
            wr_a.en.eq(write_en & ~src_is_a),
            wr_b.addr.eq(r3_ch),
            wr_b.data.eq(result),
            wr_b.en.eq(write_en & src_is_a),
        ]
        m.d.sync += [s1_valid.eq(0), s1_first.eq(k == 0), s1_last.eq(k == k_last)]

        with m.FSM(name="state"):
            with m.State("LOAD"):
                m.d.comb += [
                    self.i.ready.eq(1),
                    wr_a.addr.eq(in_k),
                    wr_a.data.eq(self.i.payload.data),
                    wr_a.en.eq(self.i.valid),
                ]
                with m.If(self.i.valid):
                    m.d.sync += in_k.eq(in_k + 1)
                    with m.If(in_k == plan.n_in - 1):
                        m.d.sync += [
                            in_k.eq(0),
                            layer.eq(0),
                            k.eq(0),
                            g.eq(0),
                            w_addr.eq(0),
                            p_addr.eq(0),
                            channel.eq(0),
                        ]
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [s1_valid.eq(1), w_addr.eq(w_addr + 1)]
                with m.If(k == k_last):
                    m.d.sync += k.eq(0)
                    with m.If(g == g_last):
                        m.next = "FLUSH"
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.State("FLUSH"):
                m.d.comb += self.busy.eq(1)
                with m.If(idle):
                    m.d.sync += [k.eq(0), g.eq(0), channel.eq(0)]
                    if n_layers > 1:
                        m.d.sync += layer.eq(layer + 1)
                    with m.If(layer == n_layers - 1):
                        m.d.sync += [out_k.eq(0), o_valid.eq(0)]
                        m.next = "OUTPUT"
                    with m.Else():
                        m.next = "RUN"
            with m.State("OUTPUT"):
                m.d.comb += self.busy.eq(1)
                advance = o_valid & self.o.ready
                m.d.comb += [
                    rd_final.addr.eq(Mux(advance, out_k + 1, out_k)),
                    rd_final.en.eq(~o_valid | self.o.ready),
                ]
                with m.If(advance):
                    with m.If(out_k == plan.n_out - 1):
                        m.d.sync += [o_valid.eq(0), out_k.eq(0)]
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += out_k.eq(out_k + 1)
                with m.Elif(~o_valid):
                    m.d.sync += o_valid.eq(1)
        return m
