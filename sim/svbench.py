"""A self-checking SystemVerilog testbench for an artefact, runnable with no Python.

``write_sv_bench(artefact)`` reads only the artefact folder (``manifest.json``, ``rtl/``,
``vectors/``) and writes:

- ``rtl/tb_<top>.sv``: drives the golden input words through the engine's input stream (and
  its ``load`` stream, if any) with seeded random ``valid`` gaps and ``ready`` stalls, compares
  every output word (data and ``last``) with the golden, prints a PASS/FAIL count and ends with
  ``$fatal`` on a mismatch or a time-out. The stall pattern comes from a xorshift32 in the
  bench, so Verilator and Icarus see the same cycles for the same ``+seed``.
- ``vectors/in.hex``, ``vectors/out.hex`` (and ``vectors/load.hex``): one payload word a line,
  as ``$readmemh`` reads it.

The engines' ports differ only in what the manifest states: the ``i``/``o`` element streams
(``streams.payload``: data bits, ``last`` bit, channels packed 8 bits each), an optional
``load`` stream with ``ready`` and a ``done`` flag (lutnet HKLUT/ICELUT; ``per_frame``: one
block per vector, loaded alongside the pixels), or the GEMM overlay's ``load`` port without
``ready`` (one memory word a cycle, ``vectors/images.npz``). Every other input port is held
at 0.

Run it from the artefact folder::

    verilator --binary --timing -Wno-fatal rtl/*.v rtl/tb_<top>.sv --top-module tb_<top>
    ./obj_dir/Vtb_<top> +seed=1
    iverilog -g2012 -o tb.vvp rtl/*.v rtl/tb_<top>.sv && vvp tb.vvp +seed=1

Plusargs: ``+seed=N`` (stall pattern), ``+stall=0`` (no gaps, no stalls), ``+limit=N`` (the
first N vectors), ``+vectors=DIR`` (default ``vectors``). With ``` `define VUNIT``` the bench is a VUnit test suite (``run.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtl_gen.artefact import Artefact, ArtefactError, atomic_write

__all__ = ["write_sv_bench", "bench_name", "SvStreams", "sv_streams"]

# Probability (percent) of a gap before an input word and of ``ready`` low on an output cycle:
# the cocotb benches' 25 % and 30 %.
STALL_IN, STALL_OUT = 25, 30


def bench_name(artefact: Artefact) -> str:
    return f"tb_{artefact.top}"


@dataclass(frozen=True)
class SvStreams:
    """The words the bench drives and expects, and how the streams are wired."""

    inputs: np.ndarray  # (N, transfers) uint payload words, ``last`` included
    outputs: np.ndarray  # (N, transfers) expected payload words
    compare_bits: int  # low bits of an output word compared (data and last)
    load: np.ndarray | None  # load words, (N, words) per frame or (words,) once
    load_kind: str  # "", "ready" (valid/ready, then ``done``), "no_ready"
    load_done: str | None  # the output flag that rises once the load is taken
    load_per_frame: bool


def _pack(codes: np.ndarray, channels: int, width: int, last_bit: int) -> np.ndarray:
    """(N, elements) codes -> (N, elements / channels) words: channel ``c`` in bits
    ``[width*c, width*(c+1))``, ``last`` on each vector's final word."""
    n = codes.shape[0]
    codes = codes.reshape(n, -1, channels).astype(np.int64) & ((1 << width) - 1)
    words = (codes << (width * np.arange(channels, dtype=np.int64))).sum(axis=2)
    words[:, -1] |= 1 << last_bit
    return words.astype(object)


def sv_streams(artefact: Artefact, limit: int = 0) -> SvStreams:
    """The bench's words from the artefact's manifest and golden vectors (the first
    ``limit`` vectors; 0: all)."""
    manifest = artefact.manifest
    streams = manifest.get("streams")
    if not streams or "input" not in streams or "output" not in streams:
        raise ArtefactError(
            f"{artefact.path}: the manifest names no input/output streams; "
            f"the SystemVerilog bench needs them"
        )
    payload = streams.get("payload", {"data": [0, 8], "last": 8})
    channels = int(payload.get("channels", 1))
    last_bit = int(payload["last"])
    vectors = artefact.vectors()
    n = len(vectors["inputs"]) if not limit else min(limit, len(vectors["inputs"]))
    ins = np.asarray(vectors["inputs"])[:n].reshape(n, -1)
    outs = np.asarray(vectors["outputs"])[:n].reshape(n, -1)
    width_in = int(streams["input"]["dtype"]["width"])
    width_out = int(streams["output"]["dtype"]["width"])
    load, kind, done, per_frame = None, "", None, False
    spec = streams.get("load")
    port_names = {p["name"] for p in manifest.get("ports", [])}
    if spec:
        words = np.asarray(vectors[spec["vector"]]).astype(np.int64)
        per_frame = bool(spec.get("per_frame"))
        load = words[:n].astype(object) if per_frame else words.ravel().astype(object)
        kind, done = "ready", spec.get("done")
    elif manifest.get("gemm", {}).get("loadable") or manifest.get("gemm", {}).get("preload"):
        mems = manifest["gemm"]["mems"]
        with np.load(artefact.path / "vectors" / "images.npz") as f:
            words = [
                mems[name] | (addr << 3) | (int(word) << 19)
                for name in f.files
                for addr, word in enumerate(f[name])
            ]
        load, kind = np.array(words, dtype=object), "no_ready"
    if kind == "ready" and "load__ready" not in port_names:
        kind = "no_ready"
    return SvStreams(
        inputs=_pack(ins, channels, width_in, last_bit),
        outputs=_pack(outs, channels, width_out, last_bit),
        compare_bits=last_bit + 1,
        load=load,
        load_kind=kind,
        load_done=done,
        load_per_frame=per_frame,
    )


def _hex(words, width: int) -> str:
    digits = max(1, (width + 3) // 4)
    return "".join(f"{int(w):0{digits}x}\n" for w in np.ravel(words))


def _ports(manifest: dict) -> dict[str, tuple[str, int]]:
    return {p["name"]: (p["dir"], int(p["width"])) for p in manifest["ports"]}


def write_sv_bench(artefact: Artefact | str | Path, *, limit: int = 0) -> list[Path]:
    """Write ``rtl/tb_<top>.sv`` and its ``vectors/*.hex`` (the first ``limit`` golden
    vectors; 0: all); returns the paths written."""
    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    manifest = artefact.manifest
    s = sv_streams(artefact, limit)
    ports = _ports(manifest)
    name = bench_name(artefact)
    in_w = ports["i__payload"][1]
    out_w = ports["o__payload"][1]
    written = [artefact.path / "vectors" / "in.hex", artefact.path / "vectors" / "out.hex"]
    atomic_write(written[0], _hex(s.inputs, in_w))
    atomic_write(written[1], _hex(s.outputs, out_w))
    load_w = 0
    if s.load is not None:
        load_w = ports["load__payload"][1]
        written.append(artefact.path / "vectors" / "load.hex")
        atomic_write(written[-1], _hex(s.load, load_w))
    text = _bench_text(manifest, s, ports, name, load_w)
    path = artefact.path / "rtl" / f"{name}.sv"
    atomic_write(path, text)
    return [path, *written]


def _budget(manifest: dict, s: SvStreams) -> int:
    """Cycles after which the bench gives up: generous against stalls (each transfer may wait
    several cycles) and the longest inference the model states."""
    n, per_in = s.inputs.shape
    per_out = s.outputs.shape[1]
    latency = int(manifest.get("latency_cycles") or 0)
    loads = 0 if s.load is None else int(np.size(s.load))
    return 8 * (n * (latency + per_in + per_out) + loads) + 100_000


def _bench_text(manifest: dict, s: SvStreams, ports: dict, name: str, load_w: int) -> str:
    clock = manifest.get("clock", {})
    clk, rst = clock.get("name", "clk"), clock.get("reset", "rst")
    rst_on = 0 if clock.get("reset_active") == "low" else 1
    n, per_in = s.inputs.shape
    per_out = s.outputs.shape[1]
    in_w, out_w = ports["i__payload"][1], ports["o__payload"][1]
    driven = {clk, rst, "i__payload", "i__valid", "o__ready"}
    if s.load is not None:
        driven |= {"load__payload", "load__valid"}
    held = [p for p, (d, _w) in ports.items() if d == "in" and p not in driven]
    outputs = [p for p, (d, _w) in ports.items() if d == "out"]
    decl = []
    for p in held + sorted(driven - {clk, rst}):
        decl.append(f"    logic [{ports[p][1] - 1}:0] {p} = '0;")
    for p in outputs:
        decl.append(f"    wire [{ports[p][1] - 1}:0] {p};")
    conns = ",\n".join(f"        .{p}({p})" for p in ports)
    load_words = 0 if s.load is None else int(np.size(s.load))
    load_per = 0 if s.load is None or not s.load_per_frame else int(s.load.shape[1])
    top = manifest["top"]
    mask = f"{out_w}'h{(1 << min(s.compare_bits, out_w)) - 1:x}"
    load_decl = ""
    if s.load is not None:
        load_decl = (
            f"    localparam int LOAD_WORDS = {load_words};\n"
            f"    localparam int LOAD_PER_VECTOR = {load_per};  // 0: one load\n"
            f"    logic [{load_w - 1}:0] load_mem [0:LOAD_WORDS-1];\n"
        )
    load_task = _load_task(s)
    run_load_before, run_load_fork = "", ""
    if s.load is not None and not s.load_per_frame:
        run_load_before = "        send_load;\n"
    elif s.load is not None:
        run_load_fork = "            send_load;\n"
    sources = " ".join(f"rtl/{f}" for f in manifest["rtl"])
    return f"""\
// Self-checking testbench for {top} (nnloom), written by sim/svbench.py from the artefact's
// manifest and golden vectors: {n} vectors, {per_in} input and {per_out} output words each.
// To run it from the artefact folder with Icarus or Verilator (with g++ 12 add
// -CFLAGS "-std=c++20 -fcoroutines"):
//   $ iverilog -g2012 -s {name} -o {name}.vvp {sources} rtl/{name}.sv && vvp {name}.vvp
//   $ verilator --binary --timing -Wno-fatal --top-module {name} {sources} rtl/{name}.sv
//   $ obj_dir/V{name}
// Plusargs: +seed=N (stall pattern), +stall=0 (no gaps or stalls), +limit=N (the first N
// vectors), +vectors=DIR.
// With `define VUNIT it is a VUnit test suite (rtl/run.py).
`ifdef VUNIT
`include "vunit_defines.svh"
`endif

module {name};
    parameter VECTORS = "vectors";
    localparam int N_VECTORS = {n};
    localparam int IN_PER_VECTOR = {per_in};
    localparam int OUT_PER_VECTOR = {per_out};
    localparam int N_IN = N_VECTORS * IN_PER_VECTOR;
    localparam int N_OUT = N_VECTORS * OUT_PER_VECTOR;
    localparam int MAX_CYCLES = {_budget(manifest, s)};
    localparam int MAX_REPORTED = 10;
    localparam int PROGRESS_EVERY = {max(1, n // 100)};  // vectors between PROGRESS lines

    logic {clk} = 1'b0;
    logic {rst} = 1'b{rst_on};
{chr(10).join(decl)}
    logic [{in_w - 1}:0] in_mem [0:N_IN-1];
    logic [{out_w - 1}:0] out_mem [0:N_OUT-1];
{load_decl}
    {top} dut (
{conns}
    );

    always #5 {clk} = ~{clk};

    string dir;
    int seed, stall_in, stall_out;
    int mismatches = 0, checked = 0, n_vectors, n_in, n_out;
    longint unsigned cycle = 0;
    logic [31:0] rng_in, rng_out, rng_load;

    always @(posedge {clk}) cycle <= cycle + 1;

    // xorshift32: the same stall pattern in every simulator for one seed
    function automatic logic [31:0] next(input logic [31:0] x);
        x = x ^ (x << 13);
        x = x ^ (x >> 17);
        x = x ^ (x << 5);
        return x;
    endfunction

    // A word is offered after a random gap and held until taken; values change on the
    // falling edge and are sampled just before the rising edge (#4), where a transfer
    // happens if valid & ready.
    task automatic send_inputs;
        int k;
        bit fire;
        k = 0;
        fire = 1'b0;
        while (k < n_in) begin
            @(negedge {clk});
            if (fire) begin
                k = k + 1;
                i__valid = 1'b0;
            end
            if (k < n_in && !i__valid) begin
                rng_in = next(rng_in);
                if ((rng_in % 100) >= stall_in) begin
                    i__payload = in_mem[k];
                    i__valid = 1'b1;
                end
            end
            #4;
            fire = i__valid && i__ready;
        end
    endtask

    task automatic receive_outputs;
        int m;
        m = 0;
        while (m < n_out) begin
            @(negedge {clk});
            rng_out = next(rng_out);
            o__ready = ((rng_out % 100) >= stall_out);
            #4;
            if (o__valid && o__ready) begin
                checked = checked + 1;
                if ((o__payload & {mask}) !== (out_mem[m] & {mask})) begin
                    mismatches = mismatches + 1;
                    if (mismatches <= MAX_REPORTED)
                        $display("MISMATCH vector %0d, output word %0d: expected %h, got %h",
                                 m / OUT_PER_VECTOR, m % OUT_PER_VECTOR,
                                 out_mem[m] & {mask}, o__payload & {mask});
                end
                m = m + 1;
                if (m % (OUT_PER_VECTOR * PROGRESS_EVERY) == 0 || m == n_out)
                begin
                    $display("PROGRESS %0d/%0d vectors", m / OUT_PER_VECTOR, n_vectors);
                    $fflush;
                end
            end
        end
        @(negedge {clk});
        o__ready = 1'b0;
    endtask
{load_task}
    always @(posedge {clk}) begin
        if (cycle >= MAX_CYCLES) begin
            $display("FAIL {name}: timed out after %0d cycles, %0d of %0d output words received",
                     cycle, checked, n_out);
            $fatal(1, "{name}: timed out");
        end
    end

    task automatic run_bench;
        if (!$value$plusargs("vectors=%s", dir)) dir = VECTORS;
        if (!$value$plusargs("seed=%d", seed)) seed = 1;
        if (!$value$plusargs("limit=%d", n_vectors) || n_vectors <= 0 || n_vectors > N_VECTORS)
            n_vectors = N_VECTORS;
        n_in = n_vectors * IN_PER_VECTOR;
        n_out = n_vectors * OUT_PER_VECTOR;
        if (!$value$plusargs("stall=%d", stall_in)) stall_in = {STALL_IN};
        stall_out = stall_in == 0 ? 0 : {STALL_OUT};
        rng_in = 32'h9e3779b9 ^ seed;
        rng_out = 32'h85ebca6b ^ (seed * 3 + 1);
        rng_load = 32'hc2b2ae35 ^ (seed * 7 + 2);
        $readmemh({{dir, "/in.hex"}}, in_mem);
        $readmemh({{dir, "/out.hex"}}, out_mem);
{'        $readmemh({dir, "/load.hex"}, load_mem);' + chr(10) if s.load is not None else ""}\
        {rst} = 1'b{rst_on};
        repeat (3) @(posedge {clk});
        @(negedge {clk});
        {rst} = 1'b{1 - rst_on};
        @(negedge {clk});
{run_load_before}\
        fork
            send_inputs;
            receive_outputs;
{run_load_fork}\
        join
        if (mismatches == 0 && checked == n_out) begin
            $display("PASS {name}: %0d vectors, %0d output words equal the golden (seed %0d, %0d cycles)",
                     n_vectors, checked, seed, cycle);
        end else begin
            $display("FAIL {name}: %0d of %0d output words differ from the golden (seed %0d)",
                     mismatches, checked, seed);
            $fatal(1, "{name}: %0d mismatches", mismatches);
        end
    endtask

`ifdef VUNIT
    `TEST_SUITE begin
        `TEST_CASE("outputs_match_golden") begin
            run_bench;
        end
    end
`else
    initial begin
        run_bench;
        $finish;
    end
`endif
endmodule
"""


def _load_task(s: SvStreams) -> str:
    if s.load is None:
        return ""
    if s.load_kind == "no_ready":
        return """
    task automatic send_load;
        for (int k = 0; k < LOAD_WORDS; k++) begin
            load__payload = load_mem[k];
            load__valid = 1'b1;
            @(negedge clk);
        end
        load__valid = 1'b0;
        @(negedge clk);
    endtask
"""
    wait_done = ""
    if s.load_done and not s.load_per_frame:
        wait_done = f"""
        while (!{s.load_done}) @(negedge clk);"""
    return f"""
    task automatic send_load;
        int k, n_load;
        bit fire;
        k = 0;
        fire = 1'b0;
        n_load = LOAD_PER_VECTOR == 0 ? LOAD_WORDS : n_vectors * LOAD_PER_VECTOR;
        while (k < n_load) begin
            @(negedge clk);
            if (fire) begin
                k = k + 1;
                load__valid = 1'b0;
            end
            if (k < n_load && !load__valid) begin
                rng_load = next(rng_load);
                if ((rng_load % 100) >= stall_in) begin
                    load__payload = load_mem[k];
                    load__valid = 1'b1;
                end
            end
            #4;
            fire = load__valid && load__ready;
        end{wait_done}
    endtask
"""
