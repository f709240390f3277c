"""``GemmEngine``: the overlay's top: memories, the ``Sequencer`` (``sequencer``), two
cores, the post unit and the units beside it, and perf counters, behind the same element
streams as every nnloom engine.

The sequencer executes the program (``isa``) one 64-bit instruction at a time: ``LOAD``
takes the input stream into the activation buffer, ``CFG``/``GEMM`` configure and start a
core (it runs on while the sequencer goes on, so both cores compute concurrently),
``SYNC`` is the barrier, ``PCFG``/``POST``/``ADDP``/``ADD``/``MAX``/``TAB``/``ROW`` run the
post unit or a unit beside it, ``STORE`` streams results out through the gather table, one
element a cycle. Every instruction costs a FETCH and an EXEC cycle, plus its blocking time
(``timing``). This module builds the memories and units and wires them to the sequencer.

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
from .config import ACT_BITS, DSP_WBITS, GemmConfig
from .core import GemmCore
from .isa import OP_SHIFT, OPS, layout
from .post import PostUnit
from .protect import (
    ErrorCounters,
    ProtectedRead,
    codes,
    constant_bits,
    shares_port,
    with_constants,
)
from .ram import subwords
from .sequencer import CORES, Sequencer
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
        config.bias_bits + config.mult_bits,
        coded["wd"].word_bits if config.dsp_lanes else 0,
        coded["wl"].word_bits if config.lut_lanes else 0,
        coded["params"].word_bits,
        abits(config.act_depth) + 1,
    )


def load_layout(config: GemmConfig) -> data.StructLayout:
    return data.StructLayout({"mem": 3, "addr": 16, "data": load_width(config)})


def _field(ins, opname: str, name: str):
    """Field ``name`` of the instruction word ``ins`` read as ``opname`` (``isa.layout``)."""
    shape = layout(opname)
    return data.View(shape, ins[: shape.size])[name]


class _Net:
    """The wiring the parts of ``GemmEngine.elaborate`` share: memory ports, the cores
    (``core: (unit, accumulator read port)``), the memory ports whose reads must not
    collide with a write (``NO_RW_CHECK``; checked in simulation: activation reads as
    (address, read used), accumulator ports), the coded memories' decoder events."""

    def __init__(self):
        self.cores: dict = {}
        self.acc_ports: dict = {}
        self.act_reads: list = []
        self.ecc_events: list = []  # (corrected, error) of each decoder, for the counters
        self.shared = None  # the core sharing the sequencer's activation read port
        self.gemm_ones = Signal(name="gemm_ones")  # the GEMM word's ones field (spram)
        self.act = self.act_sp = self.act_wr = self.seq_act = self.core_act = None
        self.w_sp = self.w_rd = self.wc_wr = self.xc_wr = None
        self.seq = self.post = self.seq_act_used = self.computing = None


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

    def _shared_memory(self, m):
        """The instruction and parameter memories as one block RAM (``protect.shares_port``):
        parameter ``a`` at ``a``, instruction ``a`` at ``half + a``, ``half`` the power of two
        above both depths, so the address is a concatenation. Returns its read port and the
        two stand-in ports whose addresses ``_wire_shared`` multiplexes onto it."""
        cfg = self.config
        ab = max(abits(cfg.imem_depth), abits(cfg.param_depth))
        half = 1 << ab
        word_bits = self.codes["imem"].word_bits
        imem, prm = list(self.images.get("imem", [])), list(self.images.get("params", []))
        init = prm + [0] * (half - len(prm)) + imem if imem or prm else []
        mem = Memory(
            shape=unsigned(word_bits), depth=half + cfg.imem_depth, init=init, attrs=NO_RW_CHECK
        )
        m.submodules.imem_params = mem
        if self.loadable:
            wp = mem.write_port()
            kind = self.load.payload.mem
            m.d.comb += [
                wp.addr.eq(Cat(self.load.payload.addr[:ab], kind == MEMS["imem"])),
                wp.data.eq(self.load.payload.data),
                wp.en.eq(self.load.valid & ((kind == MEMS["imem"]) | (kind == MEMS["params"]))),
            ]
        self._shared_abits = ab
        rd = mem.read_port()
        word = unsigned(word_bits)
        return rd, _Port(16, word, "imem_rd"), _Port(ab, word, "prm_rd")

    def _wire_shared(self, m, rd, imem_rd, prm_rd, fetch) -> None:
        """The shared port reads the instruction in the sequencer's FETCH cycle, else the
        parameter the post unit (or a unit beside it) addresses."""
        ab = self._shared_abits
        m.d.comb += [
            rd.addr.eq(Mux(fetch, Cat(imem_rd.addr[:ab], 1), prm_rd.addr)),
            imem_rd.data.eq(rd.data),
            prm_rd.data.eq(rd.data),
        ]

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

    def _row_unit(self, m, act_ab: int, idx_ab: int):
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
            shared_requant=True,
        )
        rd = etab.read_port()
        m.d.comb += [rd.addr.eq(unit.etab_addr), unit.etab_data.eq(rd.data)]
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
        # (the constant bits go in behind the decoder: under SECDED it decodes the
        # instructions too, whose constant bits are others)
        m.submodules.params_ecc = p_dec = ProtectedRead(code, register_output=False, pass_data=True)
        self._shared_dec = p_dec
        m.d.comb += [
            p_dec.word.eq(prm_rd.data),
            post.p_data.eq(with_constants(m, p_dec.data, constants)),
            p_dec.used.eq(post.p_used | self._i_take),
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
        net = self._net = _Net()
        ecc_events = net.ecc_events
        self._i_take = Signal(name="i_take")  # (shares_port) the decoded instruction is taken
        self.side = []
        act_ab, idx_ab = abits(cfg.act_depth), abits(cfg.idx_depth)
        spram = cfg.spram
        if self.loadable or spram:
            m.d.comb += self.load.ready.eq(1)

        # --- memories ------------------------------------------------------------------------
        one_port = shares_port(cfg)
        if one_port:
            shared_rd, imem_rd, prm_rd = self._shared_memory(m)
        else:
            imem = self._memory(m, "imem", unsigned(64), cfg.imem_depth)
            prm = self._memory(
                m, "params", unsigned(cfg.bias_bits + cfg.mult_bits), cfg.param_depth
            )
            imem_rd, prm_rd = imem.read_port(), prm.read_port()
        idx = self._memory(m, "idx", unsigned(act_ab + 1), cfg.idx_depth)
        seq_idx = idx.read_port()
        if spram:
            # one single-ported SPRAM memory: the port users below are wired to it at the end
            act_sp = net.act_sp = SpramMemory(ACT_BITS, cfg.act_depth, primitive=cfg.primitives)
            m.submodules.act = act_sp
            act_wr = _Port(act_ab, ACT_BITS, "act_wr")
            seq_act = _Port(act_ab, ACT_BITS, "seq_act")
        else:
            act = net.act = self._memory(m, "act", unsigned(ACT_BITS), cfg.act_depth)
            act_wr = act.write_port()
            seq_act = act.read_port()
        # block RAM: the sequencer's activation reads (STORE, and the post unit's ADD/MAX/TAB)
        # and the first core's share one read port, so one copy of the buffer fewer: a core
        # reads only while it computes, and the compiler never issues a STORE, ADD, MAX or
        # TAB then (every one follows a SYNC and the POSTs behind it; probes["conflict"]
        # flags one in simulation)
        seq_addr, seq_en = Signal(act_ab), Signal()
        net.seq_act, net.act_wr = seq_act, act_wr

        # --- cores ----------------------------------------------------------------------------
        gemm_ones = net.gemm_ones
        for core in CORES:
            if cfg.lanes[core]:
                self._core(m, net, core)
        cores, act_reads, shared = net.cores, net.act_reads, net.shared

        acc_bits = max(cfg.acc_widths[c] for c in ("dsp", "lut") if cfg.lanes[c])
        # the units beside the post unit, built first: their products go to its requantizer
        tab_unit = self._table_unit(m, act_ab)
        row_unit = self._row_unit(m, act_ab, idx_ab)
        mat_unit, cadd_unit, norm_unit = self._matrix_row_units(m, act_ab, idx_ab)
        side = (tab_unit, row_unit, mat_unit, cadd_unit, norm_unit)
        self.side = [u for u in side if u is not None]
        rq_units = [u for u in self.side if "rq_valid" in u.signature.members]
        post = PostUnit(
            acc_bits=acc_bits,
            bias_bits=cfg.bias_bits,
            act_abits=act_ab,
            idx_abits=idx_ab,
            acc_abits=abits(max(cfg.accd_depth, cfg.accl_depth)),
            p_abits=abits(cfg.param_depth),
            residual=cfg.residual,
            half_even=cfg.half_even or bool(rq_units),  # (the row units round half-even)
            add_period=add_period(cfg),
            pool=not spram,  # (the compiler runs no MAX on the single-ported SPRAM)
            mult_bits=cfg.mult_bits,
            ext_bits=max((len(u.rq_prod) for u in rq_units), default=0),
        )
        m.submodules.post = post
        self.probes = {"post": post, "cores": {}}  # for checks in simulation
        self.probes.update(cores={c: unit for c, (unit, _) in cores.items()})
        p_word = self._param_read(m, prm_rd, post, ecc_events)
        p_early = self.codes["params"].protect == "secded"  # parity passes the data on
        for unit in (row_unit, mat_unit, cadd_unit, norm_unit):
            if unit is not None:
                m.d.comb += unit.p_data.eq(p_word[: len(unit.p_data)])
        post_we = post.act_we  # the post unit's own writes (POST, ADD, MAX)
        if rq_units:
            self._shared_requant(m, post, rq_units)
            post_we = post.post_we
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
        act_written = Signal()  # LOAD or the post unit writes an activation (streams count)
        # (spram_wbits: no weight cache to fill; the lane cache's fill only with one)
        fills = (spram and not cfg.spram_wbits) or cfg.lane_cache
        m.submodules.seq = seq = Sequencer(
            cores=tuple(cores),
            decode_stages=self.codes["imem"].stages,
            restarts=self.loadable,
            ins_reg=cfg.ins_reg,
            spram=spram,
            fills=fills,
            wsub=subwords(cfg.dsp_lanes),
            # spram: a lane fill's dst too
            wc_abits=abits(max(cfg.wc_depth, cfg.xc_depth if spram else 2)),
        )
        ins = imem_rd.data
        if one_port:
            # the decoded instruction, taken in the last DECODE cycle (the raw word is
            # registered in the first; FETCH reads it): the port then reads parameters
            self._wire_shared(m, shared_rd, imem_rd, prm_rd, seq.fetch)
            take = Signal(2, name="i_take_pipe")
            m.d.sync += take.eq(Cat(seq.fetch, take[0]))
            m.d.comb += self._i_take.eq(take[1])
            ins_r = Signal(64, name="ins_r", reset_less=True)
            with m.If(self._i_take):
                m.d.sync += ins_r.eq(self._shared_dec.data)
            # (bits that read the same in every instruction: constants, as unshared)
            ins = with_constants(m, ins_r, self._constants("imem", cfg.imem_depth))
            self._error_counters(m, ecc_events)
        elif self.protected:
            # the raw (SECDED: and the corrected) instruction is registered: DECODE states
            # between FETCH and EXEC
            m.submodules.imem_ecc = i_dec = ProtectedRead(
                self.codes["imem"], self._constants("imem", cfg.imem_depth)
            )
            m.d.comb += [i_dec.word.eq(imem_rd.data), i_dec.used.eq(seq.i_used)]
            ins = i_dec.data
            ecc_events.append((i_dec.corrected, i_dec.error))
            self._error_counters(m, ecc_events)

        m.d.comb += seq.ins.eq(ins)
        if cfg.ins_reg:
            ins = seq.word  # the fields from the sequencer's registered word

        def fld(opname, name):
            return _field(ins, opname, name)

        m.d.comb += [
            imem_rd.addr.eq(seq.pc),
            gemm_ones.eq(fld("GEMM", "ones")),
            seq.i_valid.eq(self.i.valid),
            self.i.ready.eq(seq.i_ready),
            self.o.valid.eq(seq.o_valid),
            seq.o_ready.eq(self.o.ready),
            seq.post_wrote.eq(post_we),
            seq.post_issuing.eq(post.issuing),
        ]
        if self.loadable:
            m.d.comb += seq.restart.eq(self.load.valid)
        if self.observe:
            m.d.comb += self.pc.eq(seq.pc)
        pcfg = seq.pcfg
        m.d.comb += [
            post.m.eq(pcfg.m),
            post.mc.eq(pcfg.mc),
            post.shift.eq(pcfg.shift),
            post.zp.eq(pcfg.zp),
            post.lo.eq(pcfg.lo),
            post.hi.eq(pcfg.hi),
            post.round.eq(pcfg.round),
        ]
        self._core_control(m, seq, ins, act_written)
        self._cycle_counters(m, cores, core_busy, seq.sync_wait)

        # activation write port: load stream, LOAD, the post unit or the table unit
        tab_waddr, tab_wdata, tab_we = post.act_waddr, post.act_wdata, Const(0)
        for unit in self.side:
            if unit in rq_units:
                continue  # (its writes are the post unit's)
            tab_waddr = Mux(unit.act_we, unit.act_waddr, tab_waddr)
            tab_wdata = Mux(unit.act_we, unit.act_wdata, tab_wdata)
            tab_we = tab_we | unit.act_we
        loading = seq.loading
        act_load = Signal()
        if self.loadable:
            m.d.comb += act_load.eq(self.load.valid & (self.load.payload.mem == MEMS["act"]))
        m.d.comb += [
            seq.i_hold.eq(act_load),
            act_wr.addr.eq(
                Mux(
                    act_load,
                    self.load.payload.addr if self.loadable else 0,
                    Mux(loading, seq.wr_ptr, tab_waddr),
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
            act_written.eq(~act_load & Mux(loading, self.i.valid, post_we)),
        ]
        storing = seq.storing
        m.d.comb += [
            seq_idx.addr.eq(Mux(storing, seq.idx_addr, self._side_mux(post.idx_addr, "idx_addr"))),
            seq_addr.eq(
                Mux(
                    storing,
                    seq.base + seq_idx.data[:act_ab],
                    self._side_mux(post.act_raddr, "act_raddr"),
                )
            ),
            seq_idx.en.eq(~seq.st_hold),
            seq_en.eq(~seq.st_hold),
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
        m.d.comb += seq_act_used.eq(Mux(storing, seq.st_read, post_re))
        act_reads.append((seq_act.addr, seq_act_used))
        if shared is not None:
            # a sequencer read while the sharing core computes would get the core's address
            conflict = Signal(name="act_port_conflict")
            m.d.comb += conflict.eq(shared.computing & seq_act_used)
            self.probes["conflict"] = conflict
        post_core = seq.post_core  # which accumulator memory the post unit reads
        self.probes.update(post_core=post_core)
        for _core, (_unit, acc_rd) in cores.items():
            m.d.comb += acc_rd.addr.eq(post.acc_addr)
        if len(cores) == 2:
            m.d.comb += post.acc_data.eq(
                Mux(post_core, cores["lut"][1].data.as_signed(), cores["dsp"][1].data.as_signed())
            )
        elif cores:
            m.d.comb += post.acc_data.eq(next(iter(cores.values()))[1].data)
        self._port_probes(act_wr, post, post_core)
        m.d.comb += [self.o.payload.data.eq(seq_act.data), self.o.payload.last.eq(seq.o_last)]

        units = (tab_unit, row_unit, mat_unit, cadd_unit, norm_unit)
        self._post_control(m, seq, ins, post, units, seq_act.data, seq_idx.data)
        net.seq, net.post, net.seq_act_used = seq, post, seq_act_used
        net.computing = core_computing["dsp"]
        if fills:
            self._fill_ports(m, net)
        elif spram:  # direct weights, no lane cache: the SPRAM ports without fills
            self._spram_ports(m, net, Const(0), Const(0), None, None)
        return m

    def _core(self, m, net: _Net, core: str) -> None:
        """Core ``core`` (``dsp``/``lut``), its weight, accumulator (and lane-cache)
        memories, a weight decoder when they are coded, and its activation read port."""
        cfg, spram, act_ab = self.config, self.config.spram, abits(self.config.act_depth)
        lanes, mode, wbits, wname, aname, wdepth, adepth = {
            "dsp": (cfg.dsp_lanes, "dsp", DSP_WBITS, "wd", "accd", cfg.wd_depth, cfg.accd_depth),
            "lut": (
                cfg.lut_lanes,
                cfg.lut_mode,
                cfg.lut_wbits,
                "wl",
                "accl",
                cfg.wl_depth,
                cfg.accl_depth,
            ),
        }[core]
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
            net.w_sp, net.w_rd = w_sp, w_rd
            a_rd = net.core_act = _Port(act_ab, ACT_BITS, "core_act")
        elif spram:  # (the DSP core alone: GemmConfig checks it)
            # weights: SPRAM (written through load) -> LOAD fill -> the block-RAM cache
            wsub = subwords(lanes)
            w_sp = SpramMemory(16, max(2, wdepth * wsub), primitive=cfg.primitives)
            m.submodules.wd = net.w_sp = w_sp
            wmem = Memory(
                shape=unsigned(lanes * wbits), depth=cfg.wc_depth, init=[], attrs=NO_RW_CHECK
            )
            m.submodules.wc = wmem
            net.wc_wr = wmem.write_port()
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
            a_rd = net.core_act = _Port(act_ab, ACT_BITS, "core_act")
        else:
            wmem = self._memory(m, wname, unsigned(lanes * wbits), wdepth)
            amem = Memory(
                shape=signed(cfg.acc_widths[core]), depth=adepth, init=[], attrs=NO_RW_CHECK
            )
            m.submodules[aname] = amem
            if net.shared is None:
                net.shared, a_rd = unit, net.seq_act
            else:
                a_rd = net.act.read_port()
            acc_wr, acc_rd = amem.write_port(), amem.read_port()
        if not direct:
            w_rd = wmem.read_port()
        if unit.lane_acts:  # the lane cache: a depthwise layer's planes, one a lane
            xc = Memory(
                shape=unsigned(lanes * ACT_BITS), depth=cfg.xc_depth, init=[], attrs=NO_RW_CHECK
            )
            m.submodules.xc = xc
            net.xc_wr, xc_rd = xc.write_port(granularity=ACT_BITS), xc.read_port()
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
            net.ecc_events.append((dec.corrected, dec.error))
        else:
            w_data = w_rd.data
            if spram:  # GEMM ones: every weight 1 (average pools), no cache read
                ones = Signal(name="dsp_ones")
                ones_word = sum(1 << (wbits * lane) for lane in range(lanes))
                with m.If(unit.start):
                    m.d.sync += ones.eq(net.gemm_ones)
                w_data = Mux(ones, ones_word, self._widen(w_rd.data) if direct else w_rd.data)
            m.d.comb += [w_rd.addr.eq(unit.w_addr), unit.w_data.eq(w_data)]
        if a_rd is not net.seq_act:
            m.d.comb += a_rd.addr.eq(unit.act_addr)
        m.d.comb += [
            unit.act_data.eq(a_rd.data),
            acc_wr.addr.eq(unit.acc_addr),
            acc_wr.data.eq(unit.acc_data),
            acc_wr.en.eq(unit.acc_en),
        ]
        net.cores[core] = (unit, acc_rd)
        net.acc_ports[aname] = (core, acc_wr, acc_rd)
        net.act_reads.append((a_rd.addr, unit.act_re))

    def _core_control(self, m, seq: Sequencer, ins, act_written) -> None:
        """Each core's start, abort and registers from the sequencer, its GEMM operands
        from the instruction word ``ins``."""

        def fld(opname, name):
            return _field(ins, opname, name)

        for core, (unit, _) in self._net.cores.items():
            m.d.comb += [
                getattr(seq, f"{core}_busy").eq(unit.busy),
                getattr(seq, f"{core}_computing").eq(unit.computing),
                unit.start.eq(getattr(seq, f"{core}_start")),
                unit.abort.eq(seq.abort),
                unit.cfg.eq(getattr(seq, f"{core}_cfg")),
                unit.stream.eq(fld("GEMM", "stream")),
                unit.act_written.eq(act_written),
                unit.win.eq(getattr(seq, f"{core}_win")),
                unit.step.eq(getattr(seq, f"{core}_wstep")),
                unit.x_base.eq(fld("GEMM", "x")),
                unit.gstep.eq(fld("GEMM", "gstep")),
                unit.w_base.eq(fld("GEMM", "w")),
                unit.pad.eq(fld("GEMM", "pad")),
            ]

    def _port_probes(self, act_wr, post: PostUnit, post_core) -> None:
        """``probes["ports"]``: each memory's (address, write enable) and (address, read
        used) pairs, for the read-during-write checks in simulation (``NO_RW_CHECK``)."""
        act_reads, acc_ports = self._net.act_reads, self._net.acc_ports
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

    def _post_control(self, m, seq: Sequencer, ins, post: PostUnit, units, act_rdata, idx_data):
        """The post unit's and the side units' starts and operands: the fields of the
        instruction ``ins`` (``isa.layout``) and the PCFG/ADDP registers."""
        tab_unit, row_unit, mat_unit, cadd_unit, norm_unit = units
        op = ins[OP_SHIFT : OP_SHIFT + 4]
        pcfg = seq.pcfg

        def fld(opname, name):
            return _field(ins, opname, name)

        # The post unit's start is registered (``Sequencer.post_start``): the instruction
        # word's decode fanning out to every post register's enable was the UP5K's critical
        # path (34.5 MHz). The unit samples its fields the cycle after EXEC, in POSTING,
        # where the word is unchanged (pc holds), so the fields are decoded from the word.
        post_start, addp = seq.post_start, seq.addp
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
            post.y.eq(Mux(is_post, fld("POST", "y"), addp.y)),
            post.p.eq(Mux(is_post, fld("POST", "p"), addp.q)),
            post.i.eq(addp.i),
            post.a.eq(Mux(is_add, fld("ADD", "a"), fld("MAX", "x"))),
            post.b.eq(fld("ADD", "b")),
            post.k.eq(fld("MAX", "k")),
            post.gather.eq(~is_add | fld("ADD", "gather")),
            post.xsigned.eq(Mux(is_add, fld("ADD", "xsigned"), fld("MAX", "xsigned"))),
        ]
        post_busy = post.busy
        for unit in self.side:
            post_busy = post_busy | unit.busy
        m.d.comb += seq.post_busy.eq(post_busy)
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
                unit.y.eq(addp.y),
                unit.q.eq(addp.q),
                unit.i.eq(addp.i),
                *(getattr(unit, f).eq(pcfg[f]) for f in ("shift", "zp", "lo", "hi", "round")),
                unit.act_rdata.eq(act_rdata),
                unit.idx_data.eq(idx_data),
            ]
        if tab_unit is not None:
            m.d.comb += [
                tab_unit.start.eq(post_start & is_tab),
                tab_unit.n.eq(fld("TAB", "n")),
                tab_unit.x.eq(fld("TAB", "x")),
                tab_unit.y.eq(fld("TAB", "y")),
                tab_unit.t.eq(fld("TAB", "t")),
                tab_unit.act_rdata.eq(act_rdata),
            ]

    def _matrix_row_units(self, m, act_ab: int, idx_ab: int) -> tuple:
        """The attention units (``MatUnit``: activation x activation, ``CaddUnit``) and the
        ``NormUnit`` the program uses (``config.matmul``, ``cadd``, ``norm``); None for a
        unit it does not."""
        from .attention import CaddUnit, MatUnit
        from .rowwise import NormUnit

        cfg, units = self.config, []
        for used, name, cls in (
            (cfg.matmul, "matmul", MatUnit),
            (cfg.cadd, "cadd", CaddUnit),
            (cfg.norm, "norm", NormUnit),
        ):
            unit = None
            if used:
                unit = cls(
                    act_abits=act_ab,
                    idx_abits=idx_ab,
                    p_abits=abits(cfg.param_depth),
                    bias_bits=cfg.bias_bits,
                    mult_bits=cfg.mult_bits,
                    shared_requant=True,
                )
                m.submodules[name] = unit
            units.append(unit)
        return tuple(units)

    @staticmethod
    def _shared_requant(m, post: PostUnit, units: list) -> None:
        """The units beside the post unit into its requantizer (``PostUnit.ext_*``): they
        never produce in the same cycle (one runs at a time, each after the post unit's
        pipeline has drained, and their first product comes many cycles after their start),
        so their products meet in an AND-OR."""
        width = len(post.ext_prod)
        valid, prod, addr = Const(0), Const(0, signed(width)), Const(0, 16)
        for unit in units:
            gated_prod, gated_addr = Signal(signed(width)), Signal(16)
            m.d.comb += [
                gated_prod.eq(Mux(unit.rq_valid, unit.rq_prod, 0)),
                gated_addr.eq(Mux(unit.rq_valid, unit.rq_addr, 0)),
            ]
            valid, prod, addr = valid | unit.rq_valid, prod | gated_prod, addr | gated_addr
        m.d.comb += [post.ext_valid.eq(valid), post.ext_prod.eq(prod), post.ext_addr.eq(addr)]

    def _cycle_counters(self, m, cores: dict, core_busy: dict, sync_wait) -> None:
        """``cycles``, ``busy`` and (``observe``) the per-core perf counters of the last
        inference, counted over the same cycles as ``cycles``, the first input transfer's
        included (a streamed GEMM is already busy then)."""
        count, running = Signal(32), Signal()
        first_in = self.i.valid & self.i.ready & ~running
        last_out = self.o.valid & self.o.ready & self.o.payload.last
        m.d.comb += self.busy.eq(running)
        perf = {
            (c, w): Signal(32, name=f"perf_{c}_{w}_count")
            for c in ("dsp", "lut")
            for w in ("busy", "stall", "wait")
            if self.observe
        }
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

    def _error_counters(self, m, ecc_events: list) -> None:
        """``ecc_corrected``/``ecc_errors``: the coded memories' decoders' events, counted."""
        m.submodules.ecc_counters = counters = ErrorCounters(len(ecc_events))
        for i, (corrected, error) in enumerate(ecc_events):
            m.d.comb += [counters.corrected_in[i].eq(corrected), counters.error_in[i].eq(error)]
        m.d.comb += [self.ecc_corrected.eq(counters.corrected), self.ecc_errors.eq(counters.errors)]

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

    def _fill_ports(self, m, net: _Net) -> None:
        """The memory side of ``LOAD fill`` (the sequencer's fill counters drive it): the
        weight cache of a ``spram`` config, the lane cache of a ``lane_cache`` one, and, for
        ``spram``, the single port of the activation SPRAM, shared by LOAD, the DSP core,
        the post unit, STORE and the lane fill; no two of them use it in the same cycle
        (the compiler's schedule; ``probes["conflict"]`` shows a violation in simulation).

        A weight read's cache word is written the cycle its last half arrives; a lane fill's
        element into its lane of the lane cache a cycle after its read. A lane fill may run
        while a depthwise GEMM computes (it reads the lane cache, not the activations)."""
        cfg, spram, seq = self.config, self.config.spram, net.seq
        fd_valid, fd_last = Signal(), Signal()
        reading, x_reading = seq.fill_read, seq.x_read
        if net.xc_wr is not None:  # the lane cache: block element p of lane l, a cycle late
            xc_wr, lanes = net.xc_wr, cfg.dsp_lanes
            xd_valid, xd_p, xd_lane = Signal(), Signal(abits(cfg.xc_depth)), Signal(5)
            # spram: at the fill's dst (the double-buffered half, see ``chunks``)
            xd = seq.x_p + seq.fill_dst if spram else seq.x_p
            m.d.sync += [xd_valid.eq(x_reading), xd_p.eq(xd), xd_lane.eq(seq.x_lane)]
            source = net.act_sp.rdata if spram else net.seq_act.data
            m.d.comb += [
                xc_wr.addr.eq(xd_p),
                xc_wr.data.eq(Cat(*([source] * lanes))),
                xc_wr.en.eq(Mux(xd_valid, Const(1, lanes) << xd_lane, 0)),
            ]
        if not spram:  # the lane fill reads through the sequencer's activation port
            with m.If(x_reading):
                m.d.comb += net.seq_act.addr.eq(seq.x_addr)
            return
        self._spram_ports(m, net, reading, x_reading, fd_valid, fd_last)

    def _spram_ports(self, m, net: _Net, reading, x_reading, fd_valid, fd_last) -> None:
        """The weight SPRAM (``load`` writes, the fill reads), the cache word assembly, and
        the activation SPRAM's port (see ``_fill_ports``)."""
        cfg, load = self.config, self.load
        unit, w_sp = net.cores["dsp"][0], net.w_sp
        load_w = load.valid & (load.payload.mem == MEMS["wd"])
        if cfg.spram_wbits:  # the core reads the weight SPRAM itself (``_direct_memories``)
            w_rd = net.w_rd
            m.d.comb += [
                w_sp.we.eq(load_w),
                w_sp.re.eq(~load_w),
                w_sp.addr.eq(Mux(load_w, load.payload.addr, w_rd.addr)),
                w_sp.wdata.eq(load.payload.data[: len(w_sp.wdata)]),
                w_rd.data.eq(w_sp.rdata),
            ]
        else:
            self._weight_cache_fill(m, net, reading, load_w, fd_valid, fd_last)
        self._act_port(m, net, unit, load_w, reading, x_reading)

    def _weight_cache_fill(self, m, net: _Net, reading, load_w, fd_valid, fd_last) -> None:
        """The weight SPRAM written through ``load`` and read by ``LOAD fill`` into the
        block-RAM cache, ``subwords`` reads a cache word."""
        cfg, load, seq = self.config, self.load, net.seq
        w_sp, wc_wr, wsub = net.w_sp, net.wc_wr, subwords(cfg.dsp_lanes)
        m.d.comb += [
            w_sp.we.eq(load_w),
            w_sp.re.eq(reading & ~load_w),
            w_sp.addr.eq(Mux(load_w, load.payload.addr, seq.fill_addr)),
            w_sp.wdata.eq(load.payload.data[:16]),
        ]
        m.d.sync += [fd_valid.eq(reading), fd_last.eq(seq.fill_last_sub)]
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
            wc_wr.addr.eq(seq.fill_dst),
            wc_wr.data.eq(word[:width]),
            seq.fill_written.eq(fd_valid & fd_last),
        ]

    def _act_port(self, m, net: _Net, unit, load_w, reading, x_reading) -> None:
        """The activation SPRAM's one port (see ``_fill_ports``) and the conflict probe."""
        # the activation SPRAM: a write wins the port; else the core reads while it
        # computes, the sequencer (STORE) or the post unit otherwise
        act_sp, act_wr, seq_act, seq = net.act_sp, net.act_wr, net.seq_act, net.seq
        core_act, computing = net.core_act, net.computing
        we = act_wr.en
        lane_fill = "x_addr" in seq.signature.members
        # a lane fill before the computing core: a depthwise GEMM reads no activations
        read = Mux(computing, core_act.addr, seq_act.addr)
        read = Mux(x_reading, seq.x_addr, read) if lane_fill else read
        m.d.comb += [
            act_sp.we.eq(we),
            act_sp.re.eq(~we & seq_act.en),
            act_sp.addr.eq(Mux(we, act_wr.addr, read)),
            act_sp.wdata.eq(act_wr.data),
            seq_act.data.eq(act_sp.rdata),
            core_act.data.eq(act_sp.rdata),
        ]
        conflict = Signal(name="spram_conflict")
        post = net.post
        m.d.comb += conflict.eq(
            (we & (unit.act_re | net.seq_act_used))
            | (net.acc_ports["accd"][1].en & post.acc_re)
            | (load_w & reading)
            | (x_reading & (we | unit.act_re))
        )
        self.probes["conflict"] = conflict
