"""The overlay's Python model: runs a program on its memory images, instruction by
instruction, bit for bit as the RTL does, and schedules it cycle by cycle.

``run(program, codes)`` returns the output codes; ``schedule(program)`` returns when each
instruction is
fetched, the cores' busy windows and the perf counters the RTL reports, with the input
always valid and the output always ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import timing
from .attention import CADD, MATMUL, cadd_cycles, matmul_cycles, run_cadd, run_matmul
from .codes import as_code, planes_of, requant
from .config import DSP_WBITS, GemmConfig
from .isa import WINDOW_RESET, Instr
from .program import Program
from .ram import subwords
from .rowwise import LAYERNORM, norm_cycles, row_cycles, run_norm, run_row
from .tables import run_tab, tab_cycles

__all__ = [
    "run",
    "schedule",
    "Schedule",
    "instruction_cycles",
    "unpack_lanes",
]


def unpack_lanes(word: int, lanes: int, width: int) -> list[int]:
    out, mask = [], (1 << width) - 1
    for lane in range(lanes):
        v = (word >> (lane * width)) & mask
        out.append(v - (1 << width) if v >> (width - 1) else v)
    return out


def run(program: Program, codes: np.ndarray) -> np.ndarray:
    """Output codes (B, n_out) of the program for input codes (B, n_in)."""
    blocks: dict = {}  # weight blocks, unpacked once for every vector
    return np.stack(
        [_run_one(program, np.asarray(c).reshape(-1), blocks)[0] for c in np.asarray(codes)]
    )


def _weight_block(
    program, core: str, base: int, g: int, tiles: int, k: int, planes: int, words=None
) -> np.ndarray:
    """Weights (g, tiles * lanes, k) of a GEMM from the weight words at ``base`` (of
    ``words``: default the program's; a ``spram`` config's DSP core reads its cache)."""
    cfg = program.config
    words, lanes = (
        (program.wd if words is None else words, cfg.dsp_lanes)
        if core == "dsp"
        else (program.wl, cfg.lut_lanes)
    )
    if core == "lut" and cfg.lut_mode == "bitserial":
        bits = np.array(
            [
                [(words[base + i] >> lane) & 1 for lane in range(lanes)]
                for i in range(g * tiles * planes * k)
            ],
            np.int64,
        )
        bits = bits.reshape(g, tiles, planes, k, lanes)
        weight = -(1 << (planes - 1)) * bits[:, :, 0]  # sign plane first
        for p in range(1, planes):
            weight = weight + (1 << (planes - 1 - p)) * bits[:, :, p]
        w = weight  # (g, tiles, k, lanes)
    else:
        width = (cfg.spram_wbits or DSP_WBITS) if core == "dsp" else cfg.lut_wbits
        w = np.array(
            [unpack_lanes(words[base + i], lanes, width) for i in range(g * tiles * k)], np.int64
        ).reshape(g, tiles, k, lanes)
    return w.transpose(0, 1, 3, 2).reshape(g, tiles * lanes, k)


def window_addresses(c: dict, x: int, gstep: int) -> tuple[np.ndarray, np.ndarray]:
    """``(address, inside)`` (m, g, k) of every step of a GEMM whose core has CFG/WIN/WSTEP
    fields ``c``, in the closed form ``isa`` gives (the core's counters add steps)."""
    m, g, k = c["m"], c["g"], c["k"]
    kh, kw, ow = c["kh"], c["kw"], c["ow"]
    dx, dy = c["dx"], c["dy"]
    R = c["sky"] + (kw - 1) * dx
    P = c["sci"] + (kh - 1) * R + (kw - 1) * dx
    Q = c["srow"] + (ow - 1) * c["sx"]
    p = np.arange(m)[:, None, None]
    oy, ox = p // ow, p % ow
    gi = np.arange(g)[None, :, None]
    kk = np.arange(k)[None, None, :]
    ci, ky, kx = kk // (kh * kw), (kk // kw) % kh, kk % kw
    addr = (x + gi * gstep + oy * Q + ox * c["sx"] + ci * P + ky * R + kx * dx) % (1 << 16)
    iy = oy * c["sy"] - c["pt"] + ky * dy
    ix = ox * c["sx"] - c["pl"] + kx * dx
    inside = (iy >= 0) & (iy < c["h"]) & (ix >= 0) & (ix < c["w"])
    shape = (m, g, k)
    return np.broadcast_to(addr, shape), np.broadcast_to(inside, shape)


def _run_one(program, code: np.ndarray, blocks: dict | None = None):
    blocks = {} if blocks is None else blocks
    cfg = program.config
    act = np.zeros(max(cfg.act_depth, program.needs.get("act_depth", 1)), np.int64)
    idx, params = program.idx, program.params
    core_cfg: dict[str, Instr] = {}
    accs: dict[str, np.ndarray] = {}
    pcfg = addp = None
    out = None
    deferred = []  # streamed GEMMs: they read what the LOAD or POSTs behind them write
    cache = [0] * max(
        cfg.wc_depth, program.needs.get("wc_depth", 1)
    )  # spram: the DSP core's weight cache
    wsub = subwords(cfg.dsp_lanes)
    # spram: the lane cache, (words, lanes) activation codes (raw bytes)
    xcache = np.zeros(
        (max(cfg.xc_depth, program.needs.get("xc_depth", 1)), cfg.dsp_lanes), np.int64
    )

    def gemm(ins, c):
        f = ins.fields
        k, n, g, tiles = c["k"], c["n"], c["g"], c["tiles"]
        spram = cfg.spram and ins.core == "dsp"
        if spram and f["ones"]:
            w = np.ones((g, tiles * cfg.dsp_lanes, k), np.int64)
        elif spram and not cfg.spram_wbits:  # (spram_wbits: the words themselves)
            w = _weight_block(
                program, ins.core, f["w"], g, tiles, k, planes_of(cfg, ins.core, c), cache
            )
        else:
            key = (ins.core, f["w"], g, tiles, k, planes_of(cfg, ins.core, c))
            if key not in blocks:
                blocks[key] = _weight_block(program, *key)
            w = blocks[key]
        addr, inside = window_addresses(c, f["x"], f["gstep"])
        pad = as_code(np.array([f["pad"]]), bool(c["xsigned"]))[0]
        if c.get("dw"):
            # lane l reads lane l of the lane cache: acc[p*n + l] = sum_k a_l * w[l, k]
            lanes = cfg.dsp_lanes
            raw = xcache[np.where(inside, addr, 0)[:, 0, :] % len(xcache)]  # (m, k, lanes)
            a = np.where(inside[:, 0, :, None], as_code(raw, bool(c["xsigned"])), pad)
            if cfg.dsp_pack and not c["xsigned"]:
                a = a - 128
            acc = np.einsum("pkl,lk->pl", a, w[0, :lanes])
            accs[ins.core] = acc[:, :n].reshape(-1)
            return
        a = np.where(
            inside, as_code(act[np.where(inside, addr, 0) % len(act)], bool(c["xsigned"])), pad
        )
        if ins.core == "dsp" and cfg.dsp_pack and not c["xsigned"]:
            a = a - 128  # SB_MAC16 8x8 operands: int8 activations
        acc = np.einsum("pgk,gck->pgc", a, w[:, :n]).reshape(-1)  # q*g*n + gi*n + c
        # the accumulators wrap at their width (only flipped weights get there)
        half = 1 << (cfg.acc_widths[ins.core] - 1)
        accs[ins.core] = (acc + half) % (2 * half) - half

    for ins in program.instrs:
        f = ins.fields
        if ins.op == "LOAD" and f["fill"] and f["lanes"]:
            for lane in range(f["lanes"]):
                base = f["src"] + lane * f["n"]
                xcache[f["dst"] : f["dst"] + f["n"], lane] = act[base : base + f["n"]]
        elif ins.op == "LOAD" and f["fill"]:
            src = f["src"] // wsub
            cache[f["dst"] : f["dst"] + f["n"]] = program.wd[src : src + f["n"]]
        elif ins.op == "LOAD":
            act[f["dst"] : f["dst"] + f["n"]] = np.asarray(code[: f["n"]]) & 0xFF
        elif ins.op == "SYNC":
            for args in deferred:  # their input is written by now
                gemm(*args)
            deferred.clear()
        elif ins.op == "CFG":
            core_cfg[ins.core] = {**ins.fields, **WINDOW_RESET}
        elif ins.op in ("WIN", "WSTEP"):
            core_cfg[ins.core] = {**core_cfg[ins.core], **ins.fields}
        elif ins.op == "GEMM":
            if f.get("stream"):
                deferred.append((ins, core_cfg[ins.core]))
            else:
                gemm(ins, core_cfg[ins.core])
        elif ins.op == "PCFG":
            pcfg = f
        elif ins.op == "POST":
            pitch, n = pcfg["m"], f["n"]
            m = pcfg["mc"] or pitch
            acc = accs[ins.core][: m * n].reshape(m, n)
            bias = params[f["p"] : f["p"] + n, 0]
            mult = params[f["p"] : f["p"] + n, 1]
            y = requant(
                acc + bias[None],
                mult[None],
                pcfg["shift"],
                pcfg["zp"],
                pcfg["lo"],
                pcfg["hi"],
                pcfg["round"],
            )  # (m, n)
            rows = f["y"] + pitch * np.arange(n)[:, None] + np.arange(m)[None]
            act[rows] = y.T & 0xFF
        elif ins.op == "ADDP":
            addp = f
        elif ins.op == "ADD":
            n, s = f["n"], bool(f["xsigned"])
            (za, ma), (zb, mb) = params[addp["q"]], params[addp["q"] + 1]
            a = as_code(act[f["a"] : f["a"] + n], s)
            offsets = idx[addp["i"] : addp["i"] + n] if f["gather"] else np.arange(n)
            b = as_code(act[f["b"] + offsets], s)
            acc = (a - za) * ma + (b - zb) * mb
            y = requant(acc, 1, pcfg["shift"], pcfg["zp"], pcfg["lo"], pcfg["hi"], pcfg["round"])
            act[addp["y"] : addp["y"] + n] = y & 0xFF
        elif ins.op == "MAX":
            n, k, s = f["n"], f["k"], bool(f["xsigned"])
            z, mu = params[addp["q"]]
            table = idx[addp["i"] : addp["i"] + n * k].reshape(n, k)
            vals = as_code(act[f["x"] + np.maximum(table, 0)], s)
            v = np.where(table < 0, np.iinfo(np.int64).min, vals).max(axis=1)
            y = requant(v - z, mu, pcfg["shift"], pcfg["zp"], pcfg["lo"], pcfg["hi"], pcfg["round"])
            act[addp["y"] : addp["y"] + n] = y & 0xFF
        elif ins.op == "TAB":
            run_tab(program, act, f)
        elif ins.op == "ROW" and f["kind"] == MATMUL:
            run_matmul(program, act, f, addp, pcfg)
        elif ins.op == "ROW" and f["kind"] == CADD:
            run_cadd(program, act, f, addp, pcfg)
        elif ins.op == "ROW" and f["kind"] == LAYERNORM:
            run_norm(program, act, f, addp, pcfg)
        elif ins.op == "ROW":
            run_row(program, act, f, addp, pcfg)
        elif ins.op == "STORE":
            out = act[f["x"] + idx[f["idx"] : f["idx"] + f["n"]]]
        elif ins.op == "END":
            break
    return as_code(out, program.out_dtype.signed), act


# --- timing ------------------------------------------------------------------------------------


@dataclass
class Schedule:
    """When things happen in one inference (cycle 0: FETCH of instruction 0)."""

    fetch: list = field(default_factory=list)  # FETCH cycle of every instruction, + end
    first_in: int = 0  # cycle of the first input transfer
    last_out: int = 0  # cycle of the last output transfer
    busy: dict = field(default_factory=lambda: {"dsp": 0, "lut": 0})
    stall: dict = field(default_factory=lambda: {"dsp": 0, "lut": 0})
    wait: dict = field(default_factory=lambda: {"dsp": 0, "lut": 0})

    @property
    def cycles(self) -> int:
        """First input transfer to last output transfer, inclusive (the RTL's ``cycles``)."""
        return self.last_out - self.first_in + 1


def schedule(
    program_or_instrs: Program | list[Instr], config: GemmConfig | None = None
) -> Schedule:
    """When each instruction of a program (or of ``instrs`` for ``config``) is fetched, the
    cores' busy windows and the perf counters (module docstring)."""
    if config is None:
        instrs, config = program_or_instrs.instrs, program_or_instrs.config
    else:
        instrs = program_or_instrs
    s = Schedule()
    t = 0
    free = {"dsp": 0, "lut": 0}  # first cycle a core is not busy
    computed = {"dsp": 0, "lut": 0}  # first cycle it is not computing (drain aside)
    core_cfg: dict[str, dict] = {}
    pcfg_m = 1
    writes: list[int] = []  # cycle of every activation write (LOAD, POST)
    drained = {"dsp": 0, "lut": 0}  # first cycle a GEMM's first unit may end (drain)
    w_pcfg = 0  # writes before the last PCFG
    busy_from = {"dsp": 0, "lut": 0}  # the last GEMM's busy cycles are counted from
    pending: dict[str, tuple] = {}  # streamed GEMMs short of input: (EXEC, k, writes)

    def settle():
        """Streamed GEMMs whose input is written: the first unit issues step i at the
        later of its own pace (from EXEC + 2) and the cycle after its input's write. The
        perf counters see the held cycles from the first input on."""
        for core, (g, k, w0) in list(pending.items()):
            if len(writes) - w0 < k:
                continue
            issue, times = g + 1, []
            for i in range(k):
                issue = max(issue + 1, writes[w0 + i] + 1)
                times.append(issue)
            issue = times[-1] = max(issue, drained[core])
            extra = issue - (g + 1 + k)
            free[core] += extra
            computed[core] += extra
            s.busy[core] += free[core] - max(g + 1, busy_from[core], s.first_in)
            lo = max(g + 2, s.first_in)
            s.stall[core] += max(0, issue - lo + 1) - sum(t >= lo for t in times)
            del pending[core]

    for ins in instrs:
        s.fetch.append(t)
        e = t + timing.fetch_cycles(config)
        f = ins.fields
        nxt = None
        if ins.op in ("CFG", "GEMM", "WIN", "WSTEP"):
            if ins.core in pending:
                raise ValueError(
                    f"{ins.op} {ins.core}: that core's streamed GEMM has not "
                    f"had its input written yet"
                )
            if ins.op == "GEMM":  # CFG only writes registers the core sampled at start
                e = max(e, computed[ins.core])
        elif ins.op in ("SYNC", "ADD", "MAX", "TAB", "ROW", "STORE", "END") and pending:
            raise ValueError(
                f"{ins.op}: a streamed GEMM ({', '.join(pending)}) has not had "
                f"its input written before it"
            )
        if ins.op == "CFG":
            core_cfg[ins.core] = f
        elif ins.op == "GEMM":
            c = core_cfg[ins.core]
            lanes = config.lanes[ins.core]
            planes = planes_of(config, ins.core, c)
            pipe = timing.core_pipe(config, ins.core)
            busy = timing.core_busy_cycles(lanes, c["m"], c["k"], c["n"], c["g"], planes, pipe)
            issue, _ = timing.core_issue_cycles(lanes, c["m"], c["k"], c["n"], c["g"], planes)
            # the last GEMM's drain may still run: the first unit's last step waits for it
            # (a unit whose last step issues at t drains d lanes until t + d)
            drained[ins.core] = free[ins.core] - pipe
            busy_from[ins.core] = free[ins.core]
            held = max(0, drained[ins.core] - (e + 1 + c["k"] * planes))
            free[ins.core] = e + 1 + busy
            computed[ins.core] = (
                e
                + 1
                + timing.core_compute_cycles(lanes, c["m"], c["k"], c["n"], c["g"], planes, pipe)
            )
            s.stall[ins.core] += issue - c["m"] * c["g"] * c["tiles"] * c["k"] * planes
            if f.get("stream"):
                pending[ins.core] = (e, c["k"], len(writes))  # busy: when settled
            else:
                free[ins.core] += held
                computed[ins.core] += held
                s.stall[ins.core] += held
                s.busy[ins.core] += free[ins.core] - max(e + 1, busy_from[ins.core])
        elif ins.op == "SYNC":
            start = e
            # spram: the accumulator SPRAM has one port, so the POSTs wait for the drain too
            done = free if config.spram else computed
            e = max(e, done["dsp"], done["lut"])
            for core in ("dsp", "lut"):
                s.wait[core] += max(0, e - max(start, free[core]))
        elif ins.op == "PCFG":
            pcfg_m = f["mc"] or f["m"]
            w_pcfg = len(writes)
        elif ins.op == "LOAD" and f["fill"]:
            per = f["lanes"] or subwords(config.dsp_lanes)
            nxt = e + timing.fill_cycles(f["n"], per)
        elif ins.op == "LOAD":
            if f["n"]:
                s.first_in = e + 1
            writes.extend(e + 1 + j for j in range(f["n"]))
            settle()
            nxt = e + timing.load_cycles(f["n"])
        elif ins.op == "POST":
            writes.extend(e + timing.POST_WRITE + j for j in range(f["n"] * pcfg_m))
            settle()
            nxt = e + (timing.post_issue_cycles if f.get("early") else timing.post_cycles)(
                f["n"], pcfg_m
            )
        elif ins.op == "ADD":
            nxt = e + timing.add_cycles(f["n"], timing.add_period(config))
        elif ins.op == "MAX":
            nxt = e + timing.max_cycles(f["n"], f["k"])
        elif ins.op == "TAB":
            nxt = e + tab_cycles(f["n"], config.smurf_cycles)
        elif ins.op == "ROW" and f["kind"] == MATMUL:
            nxt = e + matmul_cycles(f["rs"], f["rows"], f["t"], f["len"])
        elif ins.op == "ROW" and f["kind"] == CADD:
            nxt = e + cadd_cycles(f["rows"] * f["len"])
        elif ins.op == "ROW" and f["kind"] == LAYERNORM:
            nxt = e + norm_cycles(f["rows"], f["len"], f["rs"])
        elif ins.op == "ROW":
            nxt = e + row_cycles(f["rows"], f["len"], f["rs"])
        elif ins.op == "STORE":
            # element j issues at e + 1 + j, or (stream) a cycle after the j-th write since
            # the PCFG; it leaves two cycles after its issue
            issue = e
            for j in range(f["n"]):
                issue = max(issue + 1, writes[w_pcfg + j] + 1 if f.get("stream") else 0)
            s.last_out = issue + 2
            nxt = s.last_out + 1
        t = nxt if nxt is not None else e + 1
        if ins.op == "END":
            break
    s.fetch.append(t)
    return s


def instruction_cycles(program: Program) -> list[int]:
    """FETCH cycle of every instruction and, last, of the instruction after ``END``."""
    return schedule(program).fetch
