"""``GemmEngine``: the overlay's top: memories, the sequencer, two cores, the post unit and
perf counters, behind the same element streams as every nnloom engine.

The sequencer fetches one 64-bit instruction (``isa``) from the instruction memory and
executes it: ``LOAD`` takes the input stream into the activation buffer, ``CFG``/``GEMM``
configure and start a core (it runs on while the sequencer goes on, so both cores compute
concurrently), ``SYNC`` waits for both cores' compute (the barrier; their last drains run
on behind it, ahead of the POSTs that read them), ``PCFG``/``POST``/``ADDP``/``ADD``/
``MAX`` run the post unit, ``STORE`` streams results out through the gather table (one
element a cycle, pipelined), ``END``
restarts the program. Every instruction costs a FETCH cycle and an EXEC cycle, plus its
blocking time (``timing``).

Ports: ``i``/``o`` element streams, ``cycles`` (first input to last output transfer of the
last inference, inclusive), ``busy``; perf counters of the last inference per core
(``perf_<core>_busy``, ``_stall``: issue held by a drain, ``_wait``: idle at a barrier the
other core holds); ``pc``. ``observe=False`` leaves out the perf counters and ``pc``: a
board build gives them no load, so Yosys removes them anyway, and an out-of-context synthesis
(the benchmark) has to leave them out to measure what the board gets. With ``loadable`` a
``load`` stream writes any memory (``mem``: 0 imem, 1 idx, 2 DSP weights, 3 LUT weights,
4 params, 5 act) so one RTL runs every program that fits its config; otherwise the memories
are initialised with the images (as stored: coded when ``config.protect`` is not ``none``).

With ``config.protect`` the instruction, weight and parameter memories are coded
(``protect``): their raw words are registered before the decoders (one more FETCH cycle
per instruction under parity, two under SECDED; the weights and parameters are read a
cycle early, no more cycles) and two more ports count, since reset, the words used with a
corrected flip (``ecc_corrected``) and with an error the code cannot correct
(``ecc_errors``), each saturating at 2**16 - 1.

A ``spram`` config (iCE40 UP5K) keeps the activation buffer, the DSP accumulators and the
DSP weights in SB_SPRAM256KA memories (``spram``), each one port shared by its users (no
two in a cycle: the compiler's schedule; ``probes["conflict"]`` flags one in simulation);
the weights reach the core through a block-RAM cache that ``LOAD fill`` copies words into,
and a depthwise layer's activations through the lane cache (``LOAD fill lanes``, ``CFG
dw``). SPRAM has no initial value: its weight image is written through ``load`` before the
first inference (the manifest's ``preload``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from frontends.ir import IntType

from .codes import abits
from .config import ACT_BITS, DSP_WBITS, MULT_BITS, GemmConfig
from .core import GemmCore
from .isa import CORE_SHIFT, FIELDS, OP_SHIFT, OPS, WINDOW_RESET, field_offsets, layout
from .post import PostUnit
from .protect import ErrorCounters, ProtectedRead, codes, constant_bits, with_constants
from .ram import subwords
from .spram import SpramMemory
from .timing import add_period

__all__ = ["GemmEngine", "element_layout", "load_layout", "MEMS"]

# No read of a memory here uses data written in the same cycle (streamed reads wait for a
# credit, POSTs read a drain's accumulator cycles after its write; the engine tests check
# every cycle for it), so Yosys need not emulate the old-data collision rule in front of
# each block RAM (its bypass compare was the UP5K's critical path).
NO_RW_CHECK = {"no_rw_check": 1}

MEMS = {"imem": 0, "idx": 1, "wd": 2, "wl": 3, "params": 4, "act": 5, "tab": 6, "etab": 7}


def element_layout(dtype: IntType) -> data.StructLayout:
    shape = signed(dtype.width) if dtype.signed else unsigned(dtype.width)
    return data.StructLayout({"data": shape, "last": 1})


class _Port:
    """Address, data and enable signals standing for a memory port in front of a shared
    single-ported SPRAM memory (``spram`` configs)."""

    def __init__(self, abits_: int, shape, name: str):
        self.addr = Signal(abits_, name=f"{name}_addr")
        self.data = Signal(shape, name=f"{name}_data")
        self.en = Signal(name=f"{name}_en", init=1)


def load_width(config: GemmConfig) -> int:
    coded = codes(config)
    return max(
        coded["imem"].word_bits,
        config.dsp_lanes * DSP_WBITS,
        config.lut_lanes * config.lut_wbits,
        config.bias_bits + MULT_BITS,
        coded["wd"].word_bits if config.dsp_lanes else 0,
        coded["wl"].word_bits if config.lut_lanes else 0,
        coded["params"].word_bits,
        abits(config.act_depth) + 1,
    )


def load_layout(config: GemmConfig) -> data.StructLayout:
    return data.StructLayout({"mem": 3, "addr": 16, "data": load_width(config)})


class GemmEngine(wiring.Component):
    def __init__(
        self,
        config: GemmConfig,
        *,
        in_dtype: IntType,
        out_dtype: IntType,
        images: dict | None = None,
        loadable: bool = False,
        observe: bool = True,
        smurf: tuple = (),
    ):
        self.config, self.images, self.loadable = config, images or {}, loadable
        self.smurf = tuple(smurf)  # tables.SmurfTable units for TAB (config.smurf_cycles)
        self.observe = observe
        ports = {
            "i": In(stream.Signature(element_layout(in_dtype))),
            "o": Out(stream.Signature(element_layout(out_dtype))),
            "cycles": Out(32),
            "busy": Out(1),
        }
        if observe:
            ports["pc"] = Out(16)
            for core in ("dsp", "lut"):
                for what in ("busy", "stall", "wait"):
                    ports[f"perf_{core}_{what}"] = Out(32)
        if loadable or config.spram:  # spram: the weight SPRAM is written through it
            ports["load"] = In(stream.Signature(load_layout(config)))
        self.protected = config.protect != "none"
        if self.protected:
            ports.update(ecc_corrected=Out(16), ecc_errors=Out(16))
        super().__init__(ports)

    def _constants(self, name: str, depth: int) -> dict[int, int]:
        """Data bits of a coded read-only memory that read the same in every word
        (``protect.constant_bits``); none when the memories are written through ``load``."""
        if self.loadable:
            return {}
        return constant_bits(self.codes[name], self.images.get(name, []), depth)

    def _memory(self, m, name, shape, depth):
        if self.protected and name in self.codes:
            shape = unsigned(self.codes[name].word_bits)
        mem = Memory(
            shape=shape, depth=depth, init=list(self.images.get(name, [])), attrs=NO_RW_CHECK
        )
        m.submodules[name] = mem
        wp = None
        if self.loadable and name in MEMS and name != "act":
            wp = mem.write_port()
            m.d.comb += [
                wp.addr.eq(self.load.payload.addr),
                wp.data.eq(self.load.payload.data),
                wp.en.eq(self.load.valid & (self.load.payload.mem == MEMS[name])),
            ]
        return mem

    def _table_unit(self, m, act_ab: int):
        """The ``TAB`` unit (``tables``): a table memory, or the SMURF units; None without
        either. Its activation reads and writes share the post unit's ports."""
        from .tables import TableUnit

        cfg = self.config
        if cfg.smurf_cycles:
            if not self.smurf:
                raise ValueError("config.smurf_cycles is set but no SMURF units were given")
            unit = TableUnit(act_abits=act_ab, smurf=self.smurf)
        elif cfg.tab_depth:
            tab = self._memory(m, "tab", unsigned(ACT_BITS), cfg.tab_depth)
            unit = TableUnit(act_abits=act_ab, tab_abits=abits(cfg.tab_depth))
            tab_rd = tab.read_port()
            m.d.comb += [tab_rd.addr.eq(unit.tab_addr), unit.tab_data.eq(tab_rd.data)]
        else:
            return None
        m.submodules.tables = unit
        return unit

    def _row_unit(self, m, act_ab: int, idx_ab: int, p_data):
        """The ``ROW`` unit (``rowwise``) and its exp table memory; None without them."""
        from .rowwise import E_BITS, RowUnit

        cfg = self.config
        if not cfg.etab_depth:
            return None
        etab = self._memory(m, "etab", unsigned(E_BITS), cfg.etab_depth)
        unit = RowUnit(
            act_abits=act_ab,
            idx_abits=idx_ab,
            p_abits=abits(cfg.param_depth),
            etab_abits=abits(cfg.etab_depth),
            qbits=max(1, cfg.row_bits),
        )
        rd = etab.read_port()
        m.d.comb += [
            rd.addr.eq(unit.etab_addr),
            unit.etab_data.eq(rd.data),
            unit.p_data.eq(p_data[:MULT_BITS]),
        ]
        m.submodules.rows = unit
        return unit

    def _param_read(self, m, prm_rd, post, ecc_events: list):
        """The parameter memory's read data into the post unit, and the word the units
        beside it read (returned). SECDED: the post unit reads a cycle early
        (``p_addr_early``) into ``ProtectedRead``'s register, so its corrected word comes
        when the plain memory's would; parity: the data bits pass straight on, checked a
        cycle later; the side units (``TAB``/``ROW``/attention) read at ``p_addr``
        through a combinational decoder, uncounted."""
        if not self.protected:
            m.d.comb += post.p_data.eq(prm_rd.data)
            return prm_rd.data
        from ..ecc import EccDecoder

        code = self.codes["params"]
        constants = self._constants("params", self.config.param_depth)
        m.submodules.params_ecc = p_dec = ProtectedRead(
            code, constants, register_output=False, pass_data=True
        )
        m.d.comb += [
            p_dec.word.eq(prm_rd.data),
            post.p_data.eq(p_dec.data),
            p_dec.used.eq(post.p_used),
        ]
        ecc_events.append((p_dec.corrected, p_dec.error))
        m.submodules.params_side_ecc = side = EccDecoder(code)
        m.d.comb += side.word.eq(prm_rd.data)
        return with_constants(m, side.data, constants)

    def _side_mux(self, default, port: str):
        """``port`` of the busy unit beside the post unit (``TAB``, ``ROW``), else
        ``default`` (the post unit's)."""
        out = default
        for unit in getattr(self, "side", ()):
            if port in unit.signature.members:
                out = Mux(unit.busy, getattr(unit, port), out)
        return out

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        self.codes = codes(cfg)
        # coded memories: the (corrected, error) events of each decoder, for the counters
        ecc_events = []
        self.side = []
        act_ab, idx_ab = abits(cfg.act_depth), abits(cfg.idx_depth)
        spram = cfg.spram
        if self.loadable or spram:
            m.d.comb += self.load.ready.eq(1)

        # --- memories ------------------------------------------------------------------------
        imem = self._memory(m, "imem", unsigned(64), cfg.imem_depth)
        idx = self._memory(m, "idx", unsigned(act_ab + 1), cfg.idx_depth)
        prm = self._memory(m, "params", unsigned(cfg.bias_bits + MULT_BITS), cfg.param_depth)
        imem_rd, prm_rd = imem.read_port(), prm.read_port()
        seq_idx = idx.read_port()
        if spram:
            # one single-ported SPRAM memory: the port users below are wired to it at the end
            act_sp = SpramMemory(ACT_BITS, cfg.act_depth, primitive=cfg.primitives)
            m.submodules.act = act_sp
            act_wr = _Port(act_ab, ACT_BITS, "act_wr")
            seq_act = _Port(act_ab, ACT_BITS, "seq_act")
        else:
            act = self._memory(m, "act", unsigned(ACT_BITS), cfg.act_depth)
            act_wr = act.write_port()
            seq_act = act.read_port()
        # block RAM: the sequencer's activation reads (STORE, and the post unit's ADD/MAX/TAB)
        # and the first core's share one read port, so one copy of the buffer fewer: a core
        # reads only while it computes, and the compiler never issues a STORE, ADD, MAX or
        # TAB then (every one follows a SYNC and the POSTs behind it; probes["conflict"]
        # flags one in simulation)
        seq_addr, seq_en = Signal(act_ab), Signal()
        shared = None

        # --- cores ----------------------------------------------------------------------------
        cores = {}
        # memory ports whose reads must not collide with a write (NO_RW_CHECK), for the
        # checks in simulation: act reads as (address, read used); accumulator ports
        acc_ports, act_reads = {}, []
        gemm_ones = Signal(name="gemm_ones")  # the GEMM word's ones field (spram)
        for core, lanes, mode, wbits, wname, aname, wdepth, adepth in (
            ("dsp", cfg.dsp_lanes, "dsp", DSP_WBITS, "wd", "accd", cfg.wd_depth, cfg.accd_depth),
            (
                "lut",
                cfg.lut_lanes,
                cfg.lut_mode,
                cfg.lut_wbits,
                "wl",
                "accl",
                cfg.wl_depth,
                cfg.accl_depth,
            ),
        ):
            if lanes == 0:
                continue
            unit = GemmCore(
                lanes=lanes,
                mode=mode,
                wbits=wbits,
                acc_bits=cfg.acc_widths[core],
                act_abits=act_ab,
                w_abits=abits(wdepth),
                acc_abits=abits(adepth),
                pack=core == "dsp" and cfg.dsp_pack,
                primitives=cfg.primitives,
                mult_regs=core == "dsp" and cfg.dsp_regs,
                windows=cfg.windows,
                lane_acts=core == "dsp" and cfg.lane_cache,
            )
            m.submodules[f"{core}_core"] = unit
            direct = spram and cfg.spram_wbits
            if direct:  # weights read from SPRAM every cycle, accumulators in block RAM
                w_sp, w_rd, acc_wr, acc_rd = self._direct_memories(m, unit, wdepth, adepth)
                a_rd = core_act = _Port(act_ab, ACT_BITS, "core_act")
            elif spram:  # (the DSP core alone: GemmConfig checks it)
                # weights: SPRAM (written through load) -> LOAD fill -> the block-RAM cache
                wsub = subwords(lanes)
                w_sp = SpramMemory(16, max(2, wdepth * wsub), primitive=cfg.primitives)
                m.submodules.wd = w_sp
                wmem = Memory(
                    shape=unsigned(lanes * wbits), depth=cfg.wc_depth, init=[], attrs=NO_RW_CHECK
                )
                m.submodules.wc = wmem
                wc_wr = wmem.write_port()
                acc_sp = SpramMemory(32, max(2, adepth), primitive=cfg.primitives)
                m.submodules[aname] = acc_sp
                acc_shape = signed(cfg.acc_widths[core])
                acc_wr = _Port(abits(adepth), acc_shape, f"{aname}_wr")
                acc_rd = _Port(abits(adepth), acc_shape, f"{aname}_rd")
                m.d.comb += [
                    acc_sp.we.eq(acc_wr.en),
                    acc_sp.re.eq(~acc_wr.en),
                    acc_sp.addr.eq(Mux(acc_wr.en, acc_wr.addr, acc_rd.addr)),
                    acc_sp.wdata.eq(acc_wr.data),
                    acc_rd.data.eq(acc_sp.rdata),
                ]
                a_rd = core_act = _Port(act_ab, ACT_BITS, "core_act")
            else:
                wmem = self._memory(m, wname, unsigned(lanes * wbits), wdepth)
                amem = Memory(
                    shape=signed(cfg.acc_widths[core]), depth=adepth, init=[], attrs=NO_RW_CHECK
                )
                m.submodules[aname] = amem
                if shared is None:
                    shared, a_rd = unit, seq_act
                else:
                    a_rd = act.read_port()
                acc_wr, acc_rd = amem.write_port(), amem.read_port()
            if not direct:
                w_rd = wmem.read_port()
            if unit.lane_acts:  # the lane cache: a depthwise layer's planes, one a lane
                xc = Memory(
                    shape=unsigned(lanes * ACT_BITS), depth=cfg.xc_depth, init=[], attrs=NO_RW_CHECK
                )
                m.submodules.xc = xc
                xc_wr, xc_rd = xc.write_port(granularity=ACT_BITS), xc.read_port()
                m.d.comb += [xc_rd.addr.eq(unit.act_addr), unit.act_lanes.eq(xc_rd.data)]
            if self.protected:
                # read a cycle early: the raw word registered, then decoded into the
                # core's operand registers, meets the activation read
                m.submodules[f"{wname}_ecc"] = dec = ProtectedRead(
                    self.codes[wname], self._constants(wname, wdepth), register_output=False
                )
                w_used = Signal(name=f"{wname}_used")
                m.d.sync += w_used.eq(unit.w_re)
                m.d.comb += [
                    w_rd.addr.eq(unit.w_addr_early),
                    dec.word.eq(w_rd.data),
                    unit.w_data.eq(dec.data),
                    dec.used.eq(w_used),
                ]
                ecc_events.append((dec.corrected, dec.error))
            else:
                w_data = w_rd.data
                if spram:  # GEMM ones: every weight 1 (average pools), no cache read
                    ones = Signal(name="dsp_ones")
                    ones_word = sum(1 << (wbits * lane) for lane in range(lanes))
                    with m.If(unit.start):
                        m.d.sync += ones.eq(gemm_ones)
                    w_data = Mux(ones, ones_word, self._widen(w_rd.data) if direct else w_rd.data)
                m.d.comb += [w_rd.addr.eq(unit.w_addr), unit.w_data.eq(w_data)]
            if a_rd is not seq_act:
                m.d.comb += a_rd.addr.eq(unit.act_addr)
            m.d.comb += [
                unit.act_data.eq(a_rd.data),
                acc_wr.addr.eq(unit.acc_addr),
                acc_wr.data.eq(unit.acc_data),
                acc_wr.en.eq(unit.acc_en),
            ]
            cores[core] = (unit, acc_rd)
            acc_ports[aname] = (core, acc_wr, acc_rd)
            act_reads.append((a_rd.addr, unit.act_re))

        acc_bits = max(cfg.acc_widths[c] for c in ("dsp", "lut") if cfg.lanes[c])
        post = PostUnit(
            acc_bits=acc_bits,
            bias_bits=cfg.bias_bits,
            act_abits=act_ab,
            idx_abits=idx_ab,
            acc_abits=abits(max(cfg.accd_depth, cfg.accl_depth)),
            p_abits=abits(cfg.param_depth),
            residual=cfg.residual,
            half_even=cfg.half_even,
            add_period=add_period(cfg),
            pool=not spram,  # (the compiler runs no MAX on the single-ported SPRAM)
        )
        m.submodules.post = post
        self.probes = {"post": post, "cores": {}}  # for checks in simulation
        post_core = Signal()  # which accumulator memory the post unit reads
        self.probes.update(cores={c: unit for c, (unit, _) in cores.items()}, post_core=post_core)
        for _core, (_unit, acc_rd) in cores.items():
            m.d.comb += acc_rd.addr.eq(post.acc_addr)
        if cores:
            if len(cores) == 2:
                m.d.comb += post.acc_data.eq(
                    Mux(
                        post_core,
                        cores["lut"][1].data.as_signed(),
                        cores["dsp"][1].data.as_signed(),
                    )
                )
            else:
                m.d.comb += post.acc_data.eq(next(iter(cores.values()))[1].data)
        p_word = self._param_read(m, prm_rd, post, ecc_events)
        p_early = self.codes["params"].protect == "secded"  # parity passes the data on
        tab_unit = self._table_unit(m, act_ab)
        row_unit = self._row_unit(m, act_ab, idx_ab, p_word)
        mat_unit = None
        if cfg.matmul:
            from .attention import MatUnit

            mat_unit = MatUnit(
                act_abits=act_ab,
                idx_abits=idx_ab,
                p_abits=abits(cfg.param_depth),
                bias_bits=cfg.bias_bits,
            )
            m.submodules.matmul = mat_unit
            m.d.comb += mat_unit.p_data.eq(p_word)
        cadd_unit = None
        if cfg.cadd:
            from .attention import CaddUnit

            cadd_unit = CaddUnit(
                act_abits=act_ab,
                idx_abits=idx_ab,
                p_abits=abits(cfg.param_depth),
                bias_bits=cfg.bias_bits,
            )
            m.submodules.cadd = cadd_unit
            m.d.comb += cadd_unit.p_data.eq(p_word)
        norm_unit = None
        if cfg.norm:
            from .rowwise import NormUnit

            norm_unit = NormUnit(
                act_abits=act_ab,
                idx_abits=idx_ab,
                p_abits=abits(cfg.param_depth),
                bias_bits=cfg.bias_bits,
            )
            m.submodules.norm = norm_unit
            m.d.comb += norm_unit.p_data.eq(p_word)
        side = (tab_unit, row_unit, mat_unit, cadd_unit, norm_unit)
        self.side = [u for u in side if u is not None]
        m.d.comb += [
            prm_rd.addr.eq(self._side_mux(post.p_addr_early if p_early else post.p_addr, "p_addr")),
            post.idx_data.eq(seq_idx.data),
            post.act_rdata.eq(seq_act.data),
        ]
        core_busy = {c: (cores[c][0].busy if c in cores else Const(0)) for c in ("dsp", "lut")}
        core_computing = {
            c: (cores[c][0].computing if c in cores else Const(0)) for c in ("dsp", "lut")
        }

        # --- sequencer -------------------------------------------------------------------------
        pc = Signal(16)
        act_written = Signal()  # LOAD or the post unit writes an activation (streams count)
        ins = imem_rd.data
        if self.protected:
            # the raw (SECDED: and the corrected) instruction is registered: DECODE states
            # between FETCH and EXEC
            m.submodules.imem_ecc = i_dec = ProtectedRead(
                self.codes["imem"], self._constants("imem", cfg.imem_depth)
            )
            m.d.comb += i_dec.word.eq(imem_rd.data)
            ins = i_dec.data
            i_used = Signal()  # the first EXEC cycle of an instruction
            m.d.comb += i_dec.used.eq(i_used)
            ecc_events.append((i_dec.corrected, i_dec.error))
        op = ins[OP_SHIFT : OP_SHIFT + 4]
        core_sel = ins[CORE_SHIFT]

        def word(opname):
            """The instruction word's fields as ``opname``'s layout (``isa.layout``)."""
            shape = layout(opname)
            return data.View(shape, ins[: shape.size])

        def fld(opname, name):
            return word(opname)[name]

        m.d.comb += [imem_rd.addr.eq(pc), gemm_ones.eq(fld("GEMM", "ones"))]
        if self.observe:
            m.d.comb += self.pc.eq(pc)
        # per-core CFG, WIN and WSTEP registers (CFG resets the window to the dense one)
        ccfg, cwin = {}, {}
        for core in ("dsp", "lut"):
            ccfg[core] = {
                name: Signal(width, name=f"{core}_cfg_{name}")
                for name, (_, width, _) in field_offsets("CFG").items()
            }
            cwin[core] = {
                op: Signal(
                    layout(op),
                    name=f"{core}_{op.lower()}",
                    init={k: WINDOW_RESET[k] for k, *_ in FIELDS[op]},
                )
                for op in ("WIN", "WSTEP")
            }
        # PCFG and ADDP registers
        pcfg = {
            name: Signal(signed(width) if s else unsigned(width), name=f"pcfg_{name}")
            for name, (_, width, s) in field_offsets("PCFG").items()
        }
        addp = {
            name: Signal(width, name=f"addp_{name}")
            for name, (_, width, _) in field_offsets("ADDP").items()
        }
        m.d.comb += [
            post.m.eq(pcfg["m"]),
            post.mc.eq(pcfg["mc"]),
            post.shift.eq(pcfg["shift"]),
            post.zp.eq(pcfg["zp"]),
            post.lo.eq(pcfg["lo"]),
            post.hi.eq(pcfg["hi"]),
            post.round.eq(pcfg["round"]),
        ]
        for core, (unit, _) in cores.items():
            c = ccfg[core]
            m.d.comb += [
                unit.cfg_m.eq(c["m"]),
                unit.cfg_k.eq(c["k"]),
                unit.cfg_n.eq(c["n"]),
                unit.cfg_g.eq(c["g"]),
                unit.cfg_tiles.eq(c["tiles"]),
                unit.cfg_xsigned.eq(c["xsigned"]),
                unit.cfg_wbits.eq(c["wbits"]),
                *([unit.cfg_dw.eq(c["dw"])] if unit.lane_acts else []),
                unit.stream.eq(fld("GEMM", "stream")),
                unit.act_written.eq(act_written),
                unit.win.eq(cwin[core]["WIN"]),
                unit.step.eq(cwin[core]["WSTEP"]),
                unit.x_base.eq(fld("GEMM", "x")),
                unit.gstep.eq(fld("GEMM", "gstep")),
                unit.w_base.eq(fld("GEMM", "w")),
                unit.pad.eq(fld("GEMM", "pad")),
            ]

        # (spram_wbits: no weight cache to fill; the lane cache's fill only with one)
        fills = (spram and not cfg.spram_wbits) or cfg.lane_cache
        if fills:  # LOAD fill: SPRAM read address, cache address, words left - 1
            wsub = subwords(cfg.dsp_lanes)
            fill_addr, fill_dst, fill_left = Signal(16), Signal(abits(cfg.wc_depth)), Signal(16)
            fill_issue, fill_last_sub, fill_last_word = Signal(), Signal(), Signal()
            fill_sub = Signal(range(max(wsub, 2)))
            # LOAD fill lanes > 0: activation read address, position in the block, lane
            fill_x = Signal()
            x_addr, x_p, x_n_m2, x_p_last, x_n1 = (
                Signal(16),
                Signal(16),
                Signal(16),
                Signal(),
                Signal(),
            )
            x_lane, x_l_m2, x_lane_last = Signal(5), Signal(5), Signal()
        # counters
        count = Signal(32)
        running = Signal()
        j = Signal(16)
        n_reg, base_reg = Signal(16), Signal(16)  # n_reg: n - 1
        # j_last = (j == n - 1) as a register (the 16-bit compare in front of the sequencer's
        # next-state enable led the UP5K's path); n_m2 = n - 2 gives its next value
        j_last, n_m2 = Signal(), Signal(16)
        wr_ptr, idx_ptr = Signal(16), Signal(16)  # LOAD's act[dst + j], STORE's idx + j
        first_in = self.i.valid & self.i.ready & ~running
        last_out = self.o.valid & self.o.ready & self.o.payload.last
        m.d.comb += self.busy.eq(running)

        sync_wait = Signal()
        perf = {
            (c, w): Signal(32, name=f"perf_{c}_{w}_count")
            for c in ("dsp", "lut")
            for w in ("busy", "stall", "wait")
            if self.observe
        }
        # the perf counters count over the same cycles as ``cycles``, the first input
        # transfer's included (a streamed GEMM is already busy then)
        events = {}
        for c in ("dsp", "lut") if self.observe else ():
            events[c, "busy"] = core_busy[c]
            events[c, "stall"] = cores[c][0].stall if c in cores else Const(0)
            events[c, "wait"] = sync_wait & ~core_busy[c]
        with m.If(first_in):
            m.d.sync += [count.eq(1), running.eq(1)]
            for key, sig in perf.items():
                m.d.sync += sig.eq(events[key])
        with m.Elif(running):
            m.d.sync += count.eq(count + 1)
            for key, sig in perf.items():
                m.d.sync += sig.eq(sig + events[key])
        with m.If(last_out):
            m.d.sync += [running.eq(0), self.cycles.eq(count + 1)]
            for (c, w), sig in perf.items():
                m.d.sync += getattr(self, f"perf_{c}_{w}").eq(sig)

        # activation write port: load stream, LOAD, the post unit or the table unit
        tab_waddr, tab_wdata, tab_we = post.act_waddr, post.act_wdata, Const(0)
        for unit in self.side:
            tab_waddr = Mux(unit.act_we, unit.act_waddr, tab_waddr)
            tab_wdata = Mux(unit.act_we, unit.act_wdata, tab_wdata)
            tab_we = tab_we | unit.act_we
        loading = Signal()
        act_load = Signal()
        if self.loadable:
            m.d.comb += act_load.eq(self.load.valid & (self.load.payload.mem == MEMS["act"]))
        m.d.comb += [
            act_wr.addr.eq(
                Mux(
                    act_load,
                    self.load.payload.addr if self.loadable else 0,
                    Mux(loading, wr_ptr, tab_waddr),
                )
            ),
            act_wr.data.eq(
                Mux(
                    act_load,
                    self.load.payload.data if self.loadable else 0,
                    Mux(loading, self.i.payload.data, tab_wdata),
                )
            ),
            act_wr.en.eq(act_load | Mux(loading, self.i.valid, post.act_we | tab_we)),
            act_written.eq(~act_load & Mux(loading, self.i.valid, post.act_we)),
        ]
        storing = Signal()
        st_v1, st_v2, st_done, st_hold = Signal(), Signal(), Signal(), Signal()
        # STORE stream: element j goes once the POSTs since the last PCFG have written j + 1
        # (st_credit: written, not yet taken; st_has: st_credit != 0 as a register)
        st_stream, st_has, st_go = Signal(), Signal(), Signal()
        st_credit = Signal(16)
        st_take = storing & ~st_hold & st_go & st_stream
        m.d.sync += st_credit.eq(st_credit + post.act_we - st_take)
        with m.If(post.act_we):
            m.d.sync += st_has.eq(1)
        with m.Elif(st_take):
            m.d.sync += st_has.eq(st_credit != 1)
        st_n = Signal(16)  # STORE: elements issued
        m.d.comb += [
            seq_idx.addr.eq(Mux(storing, idx_ptr, self._side_mux(post.idx_addr, "idx_addr"))),
            seq_addr.eq(
                Mux(
                    storing,
                    base_reg + seq_idx.data[:act_ab],
                    self._side_mux(post.act_raddr, "act_raddr"),
                )
            ),
            seq_idx.en.eq(~st_hold),
            seq_en.eq(~st_hold),
        ]
        if shared is None:
            m.d.comb += [seq_act.addr.eq(seq_addr), seq_act.en.eq(seq_en)]
        else:
            m.d.comb += [
                seq_act.addr.eq(Mux(shared.computing, shared.act_addr, seq_addr)),
                seq_act.en.eq(shared.computing | seq_en),
            ]
        seq_act_used = Signal()
        post_re = post.act_re
        for unit in self.side:
            post_re = post_re | unit.act_re
        m.d.comb += seq_act_used.eq(Mux(storing, st_v1 & ~st_hold, post_re))
        act_reads.append((seq_act.addr, seq_act_used))
        if shared is not None:
            # a sequencer read while the sharing core computes would get the core's address
            conflict = Signal(name="act_port_conflict")
            m.d.comb += conflict.eq(shared.computing & seq_act_used)
            self.probes["conflict"] = conflict
        self.probes["ports"] = {
            "act": ([(act_wr.addr, act_wr.en)], act_reads),
            **{
                name: (
                    [(wr.addr, wr.en)],
                    [
                        (
                            rd.addr,
                            post.acc_re & (post_core == (core == "lut"))
                            if len(acc_ports) == 2
                            else post.acc_re,
                        )
                    ],
                )
                for name, (core, wr, rd) in acc_ports.items()
            },
        }
        m.d.comb += [self.o.payload.data.eq(seq_act.data), self.o.payload.last.eq(j_last)]

        # The post unit's start is registered: the instruction word's decode fanning out to
        # every post register's enable was the UP5K's critical path (34.5 MHz). The unit
        # samples its fields the cycle after EXEC, in POSTING, where the word is unchanged
        # (pc holds), so the fields are decoded from the word, not from the FSM state.
        post_go, post_start = Signal(), Signal()
        m.d.sync += post_start.eq(post_go)
        post_early = Signal()
        is_post, is_add, is_max = op == OPS["POST"], op == OPS["ADD"], op == OPS["MAX"]
        is_tab, is_row = op == OPS["TAB"], op == OPS["ROW"]
        post_only = post_start
        if tab_unit is not None:
            post_only = post_only & ~is_tab
        if any(u is not None for u in (row_unit, mat_unit, cadd_unit, norm_unit)):
            post_only = post_only & ~is_row
        m.d.comb += [
            post.start.eq(post_only),
            post.add.eq(is_add),
            post.pool.eq(is_max),
            post.n.eq(
                Mux(is_post, fld("POST", "n"), Mux(is_add, fld("ADD", "n"), fld("MAX", "n")))
            ),
            post.y.eq(Mux(is_post, fld("POST", "y"), addp["y"])),
            post.p.eq(Mux(is_post, fld("POST", "p"), addp["q"])),
            post.i.eq(addp["i"]),
            post.a.eq(Mux(is_add, fld("ADD", "a"), fld("MAX", "x"))),
            post.b.eq(fld("ADD", "b")),
            post.k.eq(fld("MAX", "k")),
            post.gather.eq(~is_add | fld("ADD", "gather")),
            post.xsigned.eq(Mux(is_add, fld("ADD", "xsigned"), fld("MAX", "xsigned"))),
        ]
        post_busy = post.busy
        for unit in self.side:
            post_busy = post_busy | unit.busy
        kind = fld("ROW", "kind")
        for unit, start in (
            (row_unit, kind == 0),
            (norm_unit, kind == 1),
            (mat_unit, kind == 2),
            (cadd_unit, kind == 3),
        ):
            if unit is None:
                continue
            fields = [f for f in ("rows", "len", "x", "t", "rs", "xsigned") if hasattr(unit, f)]
            m.d.comb += [
                unit.start.eq(post_start & is_row & start),
                *(getattr(unit, f).eq(fld("ROW", f)) for f in fields),
                unit.y.eq(addp["y"]),
                unit.q.eq(addp["q"]),
                unit.i.eq(addp["i"]),
                *(getattr(unit, f).eq(pcfg[f]) for f in ("shift", "zp", "lo", "hi", "round")),
                unit.act_rdata.eq(seq_act.data),
                unit.idx_data.eq(seq_idx.data),
            ]
        if tab_unit is not None:
            m.d.comb += [
                tab_unit.start.eq(post_start & is_tab),
                tab_unit.n.eq(fld("TAB", "n")),
                tab_unit.x.eq(fld("TAB", "x")),
                tab_unit.y.eq(fld("TAB", "y")),
                tab_unit.t.eq(fld("TAB", "t")),
                tab_unit.act_rdata.eq(seq_act.data),
            ]
        # The sequencer's states are one-hot flags, not an ``m.FSM``: Amaranth encodes an FSM
        # in binary and Yosys keeps that (it does not re-encode a register with an initial
        # value), and the binary state's decode in front of its own enable was the UP5K's
        # critical path (seven LUT levels, 37.5 MHz DSP-only).
        states = ("FETCH", "EXEC", "LOADING", "POSTING", "STORING")
        # the instruction decoder's stages (``timing.fetch_cycles``)
        decode_states = tuple(f"DECODE{i}" for i in range(self.codes["imem"].stages))
        states += decode_states
        if fills:
            states += ("FILLING",)
        state = {name: Signal(init=name == "FETCH", name=f"seq_{name.lower()}") for name in states}

        def goto(target):
            m.d.sync += [flag.eq(name == target) for name, flag in state.items()]

        def restart():
            """Writing memories through ``load`` (between inferences) restarts the program;
            the sequencer is then in FETCH, EXEC (of a NOP: empty memory) or LOADING."""
            if self.loadable:
                with m.If(self.load.valid):
                    m.d.sync += pc.eq(0)
                    goto("FETCH")
                    for unit, _ in cores.values():
                        m.d.comb += unit.abort.eq(1)

        with m.If(state["FETCH"]):
            goto(decode_states[0] if decode_states else "EXEC")
            restart()
        for i, name in enumerate(decode_states):
            with m.If(state[name]):
                goto(decode_states[i + 1] if i + 1 < len(decode_states) else "EXEC")
                restart()
        if self.protected:
            m.d.sync += i_used.eq(state[decode_states[-1]])
            m.submodules.ecc_counters = counters = ErrorCounters(len(ecc_events))
            for i, (corrected, error) in enumerate(ecc_events):
                m.d.comb += [counters.corrected_in[i].eq(corrected), counters.error_in[i].eq(error)]
            m.d.comb += [
                self.ecc_corrected.eq(counters.corrected),
                self.ecc_errors.eq(counters.errors),
            ]
        with m.If(state["EXEC"]):

            def advance():
                m.d.sync += pc.eq(pc + 1)
                goto("FETCH")

            with m.Switch(op):
                with m.Case(OPS["LOAD"]):
                    m.d.sync += [
                        n_reg.eq(fld("LOAD", "n") - 1),
                        n_m2.eq(fld("LOAD", "n") - 2),
                        j_last.eq(fld("LOAD", "n") == 1),
                        wr_ptr.eq(fld("LOAD", "dst")),
                        j.eq(0),
                    ]
                    if fills:
                        with m.If(fld("LOAD", "fill")):
                            m.d.sync += [
                                fill_addr.eq(fld("LOAD", "src")),
                                fill_dst.eq(fld("LOAD", "dst")),
                                fill_issue.eq(1),
                                fill_last_sub.eq(wsub == 1),
                                fill_sub.eq(0),
                                fill_left.eq(fld("LOAD", "n") - 1),
                                fill_last_word.eq(fld("LOAD", "n") == 1),
                                fill_x.eq(fld("LOAD", "lanes") != 0),
                                x_addr.eq(fld("LOAD", "src")),
                                x_p.eq(0),
                                x_n_m2.eq(fld("LOAD", "n") - 2),
                                x_n1.eq(fld("LOAD", "n") == 1),
                                x_p_last.eq(fld("LOAD", "n") == 1),
                                x_lane.eq(0),
                                x_l_m2.eq(fld("LOAD", "lanes") - 2),
                                x_lane_last.eq(fld("LOAD", "lanes") == 1),
                            ]
                            goto("FILLING")
                        with m.Else():
                            goto("LOADING")
                    else:
                        goto("LOADING")
                with m.Case(OPS["CFG"]):
                    for ci, core in enumerate(("dsp", "lut")):
                        with m.If(core_sel == ci):
                            for name, sig in ccfg[core].items():
                                m.d.sync += sig.eq(fld("CFG", name))
                            for op_name, sig in cwin[core].items():
                                m.d.sync += sig.eq(
                                    sig.shape().const(
                                        {k: WINDOW_RESET[k] for k, *_ in FIELDS[op_name]}
                                    )
                                )
                    advance()
                with m.Case(OPS["WIN"], OPS["WSTEP"]):
                    for ci, core in enumerate(("dsp", "lut")):
                        with m.If(core_sel == ci):
                            with m.If(op == OPS["WIN"]):
                                m.d.sync += cwin[core]["WIN"].eq(word("WIN"))
                            with m.Else():
                                m.d.sync += cwin[core]["WSTEP"].eq(word("WSTEP"))
                    advance()
                with m.Case(OPS["GEMM"]):
                    for ci, core in enumerate(("dsp", "lut")):
                        if core not in cores:
                            continue
                        # a draining core takes the next GEMM (it waits for the drain)
                        with m.If((core_sel == ci) & ~core_computing[core]):
                            m.d.comb += cores[core][0].start.eq(1)
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
                    done = core_busy if spram else core_computing
                    with m.If(done["dsp"] | done["lut"]):
                        m.d.comb += sync_wait.eq(1)
                    with m.Else():
                        advance()
                with m.Case(OPS["PCFG"]):
                    for name, sig in pcfg.items():
                        m.d.sync += sig.eq(fld("PCFG", name))
                    m.d.sync += [st_credit.eq(0), st_has.eq(0)]  # (no write: idle)
                    advance()
                with m.Case(OPS["POST"]):
                    m.d.comb += post_go.eq(1)
                    m.d.sync += [post_core.eq(core_sel), post_early.eq(fld("POST", "early"))]
                    goto("POSTING")
                with m.Case(OPS["ADDP"]):
                    for name, sig in addp.items():
                        m.d.sync += sig.eq(fld("ADDP", name))
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
                        base_reg.eq(fld("STORE", "x")),
                        idx_ptr.eq(fld("STORE", "idx")),
                        j.eq(0),
                        st_n.eq(0),
                        st_done.eq(0),
                        st_v1.eq(0),
                        st_v2.eq(0),
                        st_stream.eq(fld("STORE", "stream")),
                    ]
                    goto("STORING")
                with m.Case(OPS["END"]):
                    m.d.sync += pc.eq(0)
                    goto("FETCH")
                with m.Default():
                    advance()
            restart()
        with m.If(state["LOADING"]):
            m.d.comb += [loading.eq(1), self.i.ready.eq(~act_load)]
            with m.If(self.i.valid & ~act_load):
                m.d.sync += [j.eq(j + 1), wr_ptr.eq(wr_ptr + 1), j_last.eq(j == n_m2)]
                with m.If(j_last):
                    m.d.sync += pc.eq(pc + 1)
                    goto("FETCH")
            restart()
        with m.If(state["POSTING"]):
            # a POST with ``early`` ends with its last issue (its pipeline runs on
            # behind the next instructions), others with their last write (post_early:
            # latched at EXEC, so no opcode decode sits in front of pc's enable)
            with m.If(~post_start & Mux(post_early, ~post.issuing, ~post_busy)):
                m.d.sync += pc.eq(pc + 1)
                goto("FETCH")
        with m.If(state["STORING"]):
            # a three-stage pipeline, one element a cycle: gather-table read (idx_ptr),
            # activation read (base + entry), output (the activation port's data); a
            # held output (valid, not ready) freezes both reads and the issue
            m.d.comb += [storing.eq(1), self.o.valid.eq(st_v2), st_hold.eq(st_v2 & ~self.o.ready)]
            m.d.comb += st_go.eq(~st_done & (~st_stream | st_has))
            with m.If(~st_hold):
                m.d.sync += [st_v1.eq(st_go), st_v2.eq(st_v1)]
                with m.If(st_go):
                    m.d.sync += [
                        idx_ptr.eq(idx_ptr + 1),
                        st_n.eq(st_n + 1),
                        st_done.eq(st_n == n_reg),
                    ]
            with m.If(st_v2 & self.o.ready):
                m.d.sync += [j.eq(j + 1), j_last.eq(j == n_m2)]
                with m.If(j_last):
                    m.d.sync += pc.eq(pc + 1)
                    goto("FETCH")
        if fills:
            self._fill_ports(m, locals())
        elif spram:  # direct weights, no lane cache: the SPRAM ports without fills
            self._spram_ports(m, locals(), Const(0), Const(0), None, None)
        return m

    def _direct_memories(self, m, unit, wdepth: int, adepth: int):
        """``spram_wbits``: the weight SPRAM, one weight word wide (``load`` writes it, the
        core reads it through ``_Port`` ``wd_rd``, wired in ``_spram_ports``), and the
        accumulators in block RAM. Returns (SPRAM, read port, accumulator ports)."""
        cfg = self.config
        width = cfg.dsp_lanes * cfg.spram_wbits
        w_sp = SpramMemory(width, max(2, wdepth), primitive=cfg.primitives)
        m.submodules.wd = w_sp
        w_rd = _Port(abits(wdepth), width, "wd_rd")
        amem = Memory(shape=signed(cfg.acc_widths["dsp"]), depth=adepth, init=[], attrs=NO_RW_CHECK)
        m.submodules.accd = amem
        return w_sp, w_rd, amem.write_port(), amem.read_port()

    def _widen(self, word):
        """A ``spram_wbits`` weight word as the core's int8 lanes (each field sign-extended)."""
        bits = self.config.spram_wbits
        fields = [word[bits * lane :][:bits] for lane in range(self.config.dsp_lanes)]
        return Cat(*(Cat(f, f[-1].replicate(DSP_WBITS - bits)) for f in fields))

    def _fill_ports(self, m, env) -> None:
        """``LOAD fill`` (the weight cache of a ``spram`` config, the lane cache of a
        ``lane_cache`` one) and, for ``spram``, the single port of the activation SPRAM,
        shared by LOAD, the DSP core, the post unit, STORE and the lane fill; no two of
        them use it in the same cycle (the compiler's schedule; ``probes["conflict"]``
        shows a violation in simulation).

        Fill: one SPRAM weight read a cycle from EXEC + 1 (``subwords`` a cache word, low
        half first), the word written into the cache the cycle its last half arrives; a
        lane fill reads one activation a cycle likewise, each written into its lane of the
        lane cache a cycle later; the sequencer leaves FILLING in the cycle of the last
        write (``timing.fill_cycles``)."""
        cfg, spram = self.config, self.config.spram
        wsub, state = env["wsub"], env["state"]
        fill_addr, fill_issue = env["fill_addr"], env["fill_issue"]
        fill_sub, fill_last_sub = env["fill_sub"], env["fill_last_sub"]
        fill_left, fill_last_word = env["fill_left"], env["fill_last_word"]
        pc, goto = env["pc"], env["goto"]
        fd_valid, fd_last = Signal(), Signal()
        fill_x = env["fill_x"]
        reading = state["FILLING"] & fill_issue & ~fill_x
        x_reading = state["FILLING"] & fill_issue & fill_x
        with m.If(state["FILLING"]):
            with m.If(x_reading):
                self._lane_fill_counters(m, env)
            with m.Elif(fill_issue):
                m.d.sync += fill_addr.eq(fill_addr + 1)
                with m.If(fill_last_sub):
                    m.d.sync += [fill_sub.eq(0), fill_last_sub.eq(wsub == 1)]
                    with m.If(fill_last_word):
                        m.d.sync += fill_issue.eq(0)
                    with m.Else():
                        m.d.sync += [
                            fill_left.eq(fill_left - 1),
                            fill_last_word.eq(fill_left == 1),
                        ]
                with m.Else():
                    m.d.sync += [fill_sub.eq(fill_sub + 1), fill_last_sub.eq(fill_sub == wsub - 2)]
            with m.Else():  # the last read's data is written this cycle
                m.d.sync += pc.eq(pc + 1)
                goto("FETCH")
        if "xc_wr" in env:  # the lane cache: block element p of lane l, a cycle late
            xc_wr, lanes = env["xc_wr"], cfg.dsp_lanes
            xd_valid, xd_p, xd_lane = Signal(), Signal(16), Signal(5)
            m.d.sync += [xd_valid.eq(x_reading), xd_p.eq(env["x_p"]), xd_lane.eq(env["x_lane"])]
            source = env["act_sp"].rdata if spram else env["seq_act"].data
            m.d.comb += [
                xc_wr.addr.eq(xd_p),
                xc_wr.data.eq(Cat(*([source] * lanes))),
                xc_wr.en.eq(Mux(xd_valid, Const(1, lanes) << xd_lane, 0)),
            ]
        if not spram:  # the lane fill reads through the sequencer's activation port
            with m.If(x_reading):
                m.d.comb += env["seq_act"].addr.eq(env["x_addr"])
            return
        self._spram_ports(m, env, reading, x_reading, fd_valid, fd_last)

    def _spram_ports(self, m, env, reading, x_reading, fd_valid, fd_last) -> None:
        """The weight SPRAM (``load`` writes, the fill reads), the cache word assembly, and
        the activation SPRAM's port (see ``_fill_ports``)."""
        cfg, load = self.config, self.load
        unit = env["cores"]["dsp"][0]
        w_sp = env["w_sp"]
        load_w = load.valid & (load.payload.mem == MEMS["wd"])
        if cfg.spram_wbits:  # the core reads the weight SPRAM itself (``_direct_memories``)
            w_rd = env["w_rd"]
            m.d.comb += [
                w_sp.we.eq(load_w),
                w_sp.re.eq(~load_w),
                w_sp.addr.eq(Mux(load_w, load.payload.addr, w_rd.addr)),
                w_sp.wdata.eq(load.payload.data[: len(w_sp.wdata)]),
                w_rd.data.eq(w_sp.rdata),
            ]
        else:
            self._weight_cache_fill(m, env, reading, load_w, fd_valid, fd_last)
        self._act_port(m, env, unit, load_w, reading, x_reading)

    def _weight_cache_fill(self, m, env, reading, load_w, fd_valid, fd_last) -> None:
        """The weight SPRAM written through ``load`` and read by ``LOAD fill`` into the
        block-RAM cache, ``subwords`` reads a cache word."""
        cfg, load = self.config, self.load
        w_sp, wc_wr, wsub = env["w_sp"], env["wc_wr"], env["wsub"]
        fill_dst, fill_last_sub = env["fill_dst"], env["fill_last_sub"]
        m.d.comb += [
            w_sp.we.eq(load_w),
            w_sp.re.eq(reading & ~load_w),
            w_sp.addr.eq(Mux(load_w, load.payload.addr, env["fill_addr"])),
            w_sp.wdata.eq(load.payload.data[:16]),
        ]
        m.d.sync += [fd_valid.eq(reading), fd_last.eq(fill_last_sub)]
        width = cfg.dsp_lanes * DSP_WBITS
        if wsub > 1:
            held = Signal(16 * (wsub - 1))
            with m.If(fd_valid & ~fd_last):
                m.d.sync += held.eq(Cat(held[16:], w_sp.rdata))
            word = Cat(held, w_sp.rdata)
        else:
            word = w_sp.rdata
        m.d.comb += [
            wc_wr.en.eq(fd_valid & fd_last),
            wc_wr.addr.eq(fill_dst),
            wc_wr.data.eq(word[:width]),
        ]
        with m.If(fd_valid & fd_last):
            m.d.sync += fill_dst.eq(fill_dst + 1)

    def _act_port(self, m, env, unit, load_w, reading, x_reading) -> None:
        """The activation SPRAM's one port (see ``_fill_ports``) and the conflict probe."""
        # the activation SPRAM: a write wins the port; else the core reads while it
        # computes, the sequencer (STORE) or the post unit otherwise
        act_sp, act_wr, seq_act = env["act_sp"], env["act_wr"], env["seq_act"]
        core_act, computing = env["core_act"], env["core_computing"]["dsp"]
        we = act_wr.en
        other = Mux(x_reading, env["x_addr"], seq_act.addr) if "x_addr" in env else seq_act.addr
        m.d.comb += [
            act_sp.we.eq(we),
            act_sp.re.eq(~we & seq_act.en),
            act_sp.addr.eq(Mux(we, act_wr.addr, Mux(computing, core_act.addr, other))),
            act_sp.wdata.eq(act_wr.data),
            seq_act.data.eq(act_sp.rdata),
            core_act.data.eq(act_sp.rdata),
        ]
        conflict = Signal(name="spram_conflict")
        post = env["post"]
        m.d.comb += conflict.eq(
            (we & (unit.act_re | env["seq_act_used"]))
            | (env["acc_ports"]["accd"][1].en & post.acc_re)
            | (load_w & reading)
            | (x_reading & (we | computing))
        )
        self.probes["conflict"] = conflict

    @staticmethod
    def _lane_fill_counters(m, env) -> None:
        """``LOAD fill lanes=L``: reads ``act[src + i]``, ``i < L*n``, one a cycle, element
        ``i % n`` of lane ``i // n``; the last read ends the issue."""
        x_addr, x_p, x_p_last = env["x_addr"], env["x_p"], env["x_p_last"]
        x_lane, x_lane_last = env["x_lane"], env["x_lane_last"]
        m.d.sync += x_addr.eq(x_addr + 1)
        with m.If(x_p_last):
            m.d.sync += [x_p.eq(0), x_p_last.eq(env["x_n1"]), x_lane.eq(x_lane + 1)]
            with m.If(x_lane_last):
                m.d.sync += env["fill_issue"].eq(0)
            with m.Else():
                m.d.sync += x_lane_last.eq(x_lane == env["x_l_m2"])
        with m.Else():
            m.d.sync += [x_p.eq(x_p + 1), x_p_last.eq(x_p == env["x_n_m2"])]
