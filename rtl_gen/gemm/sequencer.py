"""``Sequencer``: the overlay's control: it fetches one 64-bit instruction (``isa``) at
``pc`` and executes it, holding the registers the instructions set.

- ``LOAD`` takes ``n`` elements of the input stream (``loading``, ``wr_ptr``: where the
  engine writes element ``j``); ``LOAD fill`` instead runs the fill counters (FILLING: the
  weight cache's SPRAM reads, or with ``lanes`` a depthwise layer's lane-cache reads).
- ``CFG``/``WIN``/``WSTEP`` set a core's registers; ``GEMM`` starts a core (``<core>_start``)
  once it no longer computes; ``SYNC`` waits for both cores' compute (with ``spram`` their
  drains too; ``sync_wait`` while it waits).
- ``PCFG``/``ADDP`` set the post unit's registers; ``POST``/``ADD``/``MAX``/``TAB``/``ROW``
  start the post unit or the unit beside it (``post_start``, the cycle after EXEC) and wait
  for its last write, or for its last issue under ``POST early``.
- ``STORE`` streams ``n`` elements out: a three-stage pipeline, one element a cycle
  (gather-table read at ``idx_addr``, activation read at ``base`` plus the entry, output),
  issuing element ``j`` of a streamed STORE once the post unit has written ``j + 1``
  (``post_wrote``); a held output freezes both reads and the issue (``st_hold``).
- ``END`` restarts the program.

Every instruction costs a FETCH cycle, ``decode_stages`` DECODE cycles (a coded
instruction memory's decoder, ``protect``), with ``ins_reg`` a LATCH cycle, and an EXEC
cycle, plus its blocking time (``timing``). With ``ins_reg`` the engine decodes ``word``, a
register loaded in LATCH, so no block RAM's clock-to-out sits in front of the opcode decode
and the fields (on the ECP5 the instruction DP16KD's 5.8 ns, then the decode into the post
unit's write address adder, was the ResNet-8 board's critical path, 71.5 MHz); else
``ins``. With ``restarts`` a ``restart`` (a write through the engine's ``load`` stream,
between inferences) sends the sequencer back to ``pc`` 0 and aborts the cores.

The states are one-hot flags, not an ``m.FSM``: Amaranth encodes an FSM in binary and
Yosys keeps that (it does not re-encode a register with an initial value), and the binary
state's decode in front of its own enable was the UP5K's critical path (seven LUT levels,
37.5 MHz DSP-only).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .isa import CORE_SHIFT, FIELDS, OP_SHIFT, OPS, WINDOW_RESET, layout

__all__ = ["Sequencer", "CORES"]

CORES = ("dsp", "lut")  # core_sel 0 and 1


def _window_reset(op: str) -> dict[str, int]:
    return {k: WINDOW_RESET[k] for k, *_ in FIELDS[op]}


def _reset_const(op: str) -> data.Const:
    return layout(op).const(_window_reset(op))


class Sequencer(wiring.Component):
    """The program sequencer of a ``GemmEngine`` with the cores ``cores``.

    ``fills`` adds the FILLING state and the fill counters (``wsub`` SPRAM reads a weight
    cache word, ``wc_abits`` the cache's address width); ``fill_written`` steps
    ``fill_dst`` when a cache word is written."""

    def __init__(
        self,
        *,
        cores: tuple[str, ...],
        decode_stages: int = 0,
        restarts: bool = False,
        ins_reg: bool = False,
        spram: bool = False,
        fills: bool = False,
        wsub: int = 1,
        wc_abits: int = 1,
    ):
        self.cores, self.decode_stages, self.restarts = cores, decode_stages, restarts
        self.ins_reg = ins_reg
        self.spram, self.fills, self.wsub = spram, fills, wsub
        ports = {
            "ins": In(64),
            "pc": Out(16),
            "i_used": Out(1),  # the cycle the decoded word is first used (EXEC or LATCH)
            "fetch": Out(1),  # FETCH: the instruction memory is read at pc
            "restart": In(1),
            "abort": Out(1),
            # LOAD: the input stream (``i_hold``: the load stream has the buffer's port)
            "i_valid": In(1),
            "i_hold": In(1),
            "i_ready": Out(1),
            "loading": Out(1),
            "wr_ptr": Out(16),
            # STORE: the output stream
            "o_valid": Out(1),
            "o_ready": In(1),
            "o_last": Out(1),
            "storing": Out(1),
            "st_hold": Out(1),
            "st_read": Out(1),  # an activation read of the STORE pipeline is used
            "idx_addr": Out(16),
            "base": Out(16),
            "post_wrote": In(1),
            # the post unit and the units beside it
            "post_start": Out(1),
            "post_core": Out(1),
            "post_issuing": In(1),
            "post_busy": In(1),
            "pcfg": Out(layout("PCFG")),
            "addp": Out(layout("ADDP")),
            "sync_wait": Out(1),
        }
        for core in cores:
            ports.update(
                {
                    f"{core}_start": Out(1),
                    f"{core}_busy": In(1),
                    f"{core}_computing": In(1),
                    f"{core}_cfg": Out(layout("CFG")),
                    f"{core}_win": Out(layout("WIN"), init=_window_reset("WIN")),
                    f"{core}_wstep": Out(layout("WSTEP"), init=_window_reset("WSTEP")),
                }
            )
        if ins_reg:
            ports["word"] = Out(64)  # the instruction decoded, registered in LATCH
        if fills:
            ports.update(
                {
                    "fill_read": Out(1),  # a weight SPRAM read this cycle
                    "fill_addr": Out(16),
                    "fill_last_sub": Out(1),
                    "fill_dst": Out(wc_abits),
                    "fill_written": In(1),
                    "x_read": Out(1),  # a lane-fill activation read this cycle
                    "x_addr": Out(16),
                    "x_p": Out(16),
                    "x_lane": Out(5),
                }
            )
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        ins, pc = (self.word if self.ins_reg else self.ins), self.pc
        op = ins[OP_SHIFT : OP_SHIFT + 4]
        core_sel = ins[CORE_SHIFT]

        def word(opname):
            """The instruction word's fields as ``opname``'s layout (``isa.layout``)."""
            shape = layout(opname)
            return data.View(shape, ins[: shape.size])

        def fld(opname, name):
            return word(opname)[name]

        # j counts LOAD's and STORE's elements; j_last = (j == n - 1) as a register (the
        # 16-bit compare in front of the next-state enable led the UP5K's path) and
        # n_m2 = n - 2 gives its next value
        j, j_last, n_m2, n_reg = Signal(16), Signal(), Signal(16), Signal(16)  # n_reg: n - 1
        m.d.comb += self.o_last.eq(j_last)

        states = ("FETCH", "EXEC", "LOADING", "POSTING", "STORING")
        decode_states = tuple(f"DECODE{i}" for i in range(self.decode_stages))
        decode_states += ("LATCH",) if self.ins_reg else ()
        states += decode_states
        if self.fills:
            states += ("FILLING",)
        state = {name: Signal(init=name == "FETCH", name=f"seq_{name.lower()}") for name in states}

        def goto(target):
            m.d.sync += [flag.eq(name == target) for name, flag in state.items()]

        def restart():
            """A write through ``load`` restarts the program; the sequencer is then in
            FETCH, EXEC (of a NOP: empty memory) or LOADING."""
            if self.restarts:
                with m.If(self.restart):
                    m.d.sync += pc.eq(0)
                    goto("FETCH")
                    m.d.comb += self.abort.eq(1)

        def advance():
            m.d.sync += pc.eq(pc + 1)
            goto("FETCH")

        m.d.comb += self.fetch.eq(state["FETCH"])
        with m.If(state["FETCH"]):
            goto(decode_states[0] if decode_states else "EXEC")
            restart()
        for i, name in enumerate(decode_states):
            with m.If(state[name]):
                goto(decode_states[i + 1] if i + 1 < len(decode_states) else "EXEC")
                if name == "LATCH":
                    m.d.sync += self.word.eq(self.ins)
                restart()
        if self.ins_reg:
            m.d.sync += self.i_used.eq(state[(("FETCH",) + decode_states)[-2]])
        elif decode_states:
            m.d.sync += self.i_used.eq(state[decode_states[-1]])

        self._fill = _FillRegs(self.wsub) if self.fills else None
        post_go, post_early = Signal(), Signal()
        m.d.sync += self.post_start.eq(post_go)
        st = self._store_pipeline(m, state, j, j_last, n_m2, n_reg, goto)
        with m.If(state["EXEC"]):
            with m.Switch(op):
                with m.Case(OPS["LOAD"]):
                    m.d.sync += [
                        n_reg.eq(fld("LOAD", "n") - 1),
                        n_m2.eq(fld("LOAD", "n") - 2),
                        j_last.eq(fld("LOAD", "n") == 1),
                        self.wr_ptr.eq(fld("LOAD", "dst")),
                        j.eq(0),
                    ]
                    if self.fills:
                        with m.If(fld("LOAD", "fill")):
                            self._start_fill(m, word("LOAD"))
                            goto("FILLING")
                        with m.Else():
                            goto("LOADING")
                    else:
                        goto("LOADING")
                with m.Case(OPS["CFG"]):
                    for ci, core in enumerate(CORES):
                        if core not in self.cores:
                            continue
                        with m.If(core_sel == ci):
                            m.d.sync += [
                                getattr(self, f"{core}_cfg").eq(word("CFG")),
                                getattr(self, f"{core}_win").eq(_reset_const("WIN")),
                                getattr(self, f"{core}_wstep").eq(_reset_const("WSTEP")),
                            ]
                    advance()
                with m.Case(OPS["WIN"], OPS["WSTEP"]):
                    for ci, core in enumerate(CORES):
                        if core not in self.cores:
                            continue
                        with m.If(core_sel == ci):
                            with m.If(op == OPS["WIN"]):
                                m.d.sync += getattr(self, f"{core}_win").eq(word("WIN"))
                            with m.Else():
                                m.d.sync += getattr(self, f"{core}_wstep").eq(word("WSTEP"))
                    advance()
                with m.Case(OPS["GEMM"]):
                    for ci, core in enumerate(CORES):
                        if core not in self.cores:
                            continue
                        # a draining core takes the next GEMM (it waits for the drain)
                        with m.If((core_sel == ci) & ~getattr(self, f"{core}_computing")):
                            m.d.comb += getattr(self, f"{core}_start").eq(1)
                            advance()
                with m.Case(OPS["SYNC"]):
                    # the barrier waits for the cores' compute, not their last drain:
                    # a POST reads one accumulator a cycle in the drain's (ascending)
                    # order, its first read at least 4 cycles after the last unit's
                    # capture (SYNC's release, FETCH, EXEC, start), while that drain
                    # writes one a cycle from the cycle after the capture, so every
                    # read comes after its write (tests: test_post_reads_after_drain)
                    # (spram: the accumulator SPRAM has one port, so the barrier waits for
                    # the drain too)
                    done = "busy" if self.spram else "computing"
                    pending = [getattr(self, f"{core}_{done}") for core in self.cores]
                    with m.If(Cat(*pending).any()):
                        m.d.comb += self.sync_wait.eq(1)
                    with m.Else():
                        advance()
                with m.Case(OPS["PCFG"]):
                    m.d.sync += self.pcfg.eq(word("PCFG"))
                    m.d.sync += [st.credit.eq(0), st.has.eq(0)]  # (no write: idle)
                    advance()
                with m.Case(OPS["POST"]):
                    m.d.comb += post_go.eq(1)
                    m.d.sync += [self.post_core.eq(core_sel), post_early.eq(fld("POST", "early"))]
                    goto("POSTING")
                with m.Case(OPS["ADDP"]):
                    m.d.sync += self.addp.eq(word("ADDP"))
                    advance()
                with m.Case(OPS["ADD"], OPS["MAX"], OPS["TAB"], OPS["ROW"]):
                    m.d.comb += post_go.eq(1)
                    m.d.sync += post_early.eq(0)
                    goto("POSTING")
                with m.Case(OPS["STORE"]):
                    m.d.sync += [
                        n_reg.eq(fld("STORE", "n") - 1),
                        n_m2.eq(fld("STORE", "n") - 2),
                        j_last.eq(fld("STORE", "n") == 1),
                        self.base.eq(fld("STORE", "x")),
                        self.idx_addr.eq(fld("STORE", "idx")),
                        j.eq(0),
                        st.n.eq(0),
                        st.done.eq(0),
                        st.v1.eq(0),
                        st.v2.eq(0),
                        st.stream.eq(fld("STORE", "stream")),
                    ]
                    goto("STORING")
                with m.Case(OPS["END"]):
                    m.d.sync += pc.eq(0)
                    goto("FETCH")
                with m.Default():
                    advance()
            restart()
        with m.If(state["LOADING"]):
            m.d.comb += [self.loading.eq(1), self.i_ready.eq(~self.i_hold)]
            with m.If(self.i_valid & ~self.i_hold):
                m.d.sync += [j.eq(j + 1), self.wr_ptr.eq(self.wr_ptr + 1), j_last.eq(j == n_m2)]
                with m.If(j_last):
                    m.d.sync += pc.eq(pc + 1)
                    goto("FETCH")
            restart()
        with m.If(state["POSTING"]):
            # a POST with ``early`` ends with its last issue (its pipeline runs on
            # behind the next instructions), others with their last write (post_early:
            # latched at EXEC, so no opcode decode sits in front of pc's enable)
            busy = Mux(post_early, self.post_issuing, self.post_busy)
            with m.If(~self.post_start & ~busy):
                m.d.sync += pc.eq(pc + 1)
                goto("FETCH")
        with m.If(state["STORING"]):
            with m.If(self.o_valid & self.o_ready):
                m.d.sync += [j.eq(j + 1), j_last.eq(j == n_m2)]
                with m.If(j_last):
                    m.d.sync += pc.eq(pc + 1)
                    goto("FETCH")
        if self.fills:
            self._filling(m, state, goto)
        return m

    def _store_pipeline(self, m, state, j, j_last, n_m2, n_reg, goto) -> _StoreRegs:
        """STORE's issue and its pipeline valids; element j of a streamed STORE goes once
        the POSTs since the last PCFG have written j + 1 (``credit``: written, not yet
        taken; ``has``: credit != 0 as a register)."""
        st = _StoreRegs()
        take = self.storing & ~self.st_hold & st.go & st.stream
        m.d.sync += st.credit.eq(st.credit + self.post_wrote - take)
        with m.If(self.post_wrote):
            m.d.sync += st.has.eq(1)
        with m.Elif(take):
            m.d.sync += st.has.eq(st.credit != 1)
        m.d.comb += self.st_read.eq(st.v1 & ~self.st_hold)
        with m.If(state["STORING"]):
            m.d.comb += [
                self.storing.eq(1),
                self.o_valid.eq(st.v2),
                self.st_hold.eq(st.v2 & ~self.o_ready),
                st.go.eq(~st.done & (~st.stream | st.has)),
            ]
            with m.If(~self.st_hold):
                m.d.sync += [st.v1.eq(st.go), st.v2.eq(st.v1)]
                with m.If(st.go):
                    m.d.sync += [
                        self.idx_addr.eq(self.idx_addr + 1),
                        st.n.eq(st.n + 1),
                        st.done.eq(st.n == n_reg),
                    ]
        return st

    def _start_fill(self, m, load: data.View) -> None:
        """EXEC of ``LOAD fill``: the fill counters for ``n`` cache words (``lanes`` 0) or
        ``lanes`` x ``n`` lane-cache elements."""
        f = self._fill
        m.d.sync += [
            self.fill_addr.eq(load.src),
            self.fill_dst.eq(load.dst),
            f.issue.eq(1),
            self.fill_last_sub.eq(self.wsub == 1),
            f.sub.eq(0),
            f.left.eq(load.n - 1),
            f.last_word.eq(load.n == 1),
            f.x.eq(load.lanes != 0),
            self.x_addr.eq(load.src),
            self.x_p.eq(0),
            f.x_n_m2.eq(load.n - 2),
            f.x_n1.eq(load.n == 1),
            f.x_p_last.eq(load.n == 1),
            self.x_lane.eq(0),
            f.x_l_m2.eq(load.lanes - 2),
            f.x_lane_last.eq(load.lanes == 1),
        ]

    def _filling(self, m, state, goto) -> None:
        """FILLING: one SPRAM weight read a cycle from EXEC + 1 (``wsub`` a cache word, low
        half first), or one lane-fill activation read a cycle; the state ends in the cycle
        after the last read, when its data is written (``timing.fill_cycles``)."""
        f = self._fill
        m.d.comb += [
            self.fill_read.eq(state["FILLING"] & f.issue & ~f.x),
            self.x_read.eq(state["FILLING"] & f.issue & f.x),
        ]
        with m.If(self.fill_written):
            m.d.sync += self.fill_dst.eq(self.fill_dst + 1)
        with m.If(state["FILLING"]):
            with m.If(self.x_read):
                self._lane_fill_counters(m, f)
            with m.Elif(f.issue):
                m.d.sync += self.fill_addr.eq(self.fill_addr + 1)
                with m.If(self.fill_last_sub):
                    m.d.sync += [f.sub.eq(0), self.fill_last_sub.eq(self.wsub == 1)]
                    with m.If(f.last_word):
                        m.d.sync += f.issue.eq(0)
                    with m.Else():
                        m.d.sync += [f.left.eq(f.left - 1), f.last_word.eq(f.left == 1)]
                with m.Else():
                    m.d.sync += [f.sub.eq(f.sub + 1), self.fill_last_sub.eq(f.sub == self.wsub - 2)]
            with m.Else():  # the last read's data is written this cycle
                m.d.sync += self.pc.eq(self.pc + 1)
                goto("FETCH")

    def _lane_fill_counters(self, m, f: _FillRegs) -> None:
        """``LOAD fill lanes=L``: reads ``act[src + i]``, ``i < L*n``, one a cycle, element
        ``i % n`` of lane ``i // n``; the last read ends the issue."""
        m.d.sync += self.x_addr.eq(self.x_addr + 1)
        with m.If(f.x_p_last):
            m.d.sync += [self.x_p.eq(0), f.x_p_last.eq(f.x_n1), self.x_lane.eq(self.x_lane + 1)]
            with m.If(f.x_lane_last):
                m.d.sync += f.issue.eq(0)
            with m.Else():
                m.d.sync += f.x_lane_last.eq(self.x_lane == f.x_l_m2)
        with m.Else():
            m.d.sync += [self.x_p.eq(self.x_p + 1), f.x_p_last.eq(self.x_p == f.x_n_m2)]


class _StoreRegs:
    """The STORE pipeline's registers: valids of its two stages, elements issued, the
    streamed STORE's credit."""

    def __init__(self):
        for name in ("v1", "v2", "done", "go", "stream", "has"):
            setattr(self, name, Signal(name=f"st_{name}"))
        self.credit, self.n = Signal(16, name="st_credit"), Signal(16, name="st_n")


class _FillRegs:
    """``LOAD fill``'s counters: sub-word and words left of a weight fill; position,
    lane and their last flags of a lane fill."""

    def __init__(self, wsub: int):
        for name in ("issue", "last_word", "x", "x_p_last", "x_n1", "x_lane_last"):
            setattr(self, name, Signal(name=f"fill_{name}"))
        self.sub = Signal(range(max(wsub, 2)), name="fill_sub")
        self.left, self.x_n_m2 = Signal(16, name="fill_left"), Signal(16, name="fill_x_n_m2")
        self.x_l_m2 = Signal(5, name="fill_x_l_m2")
