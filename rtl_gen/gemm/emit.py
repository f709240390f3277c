"""Writes a compiled program as an artefact directory (``rtl_gen.artefact``'s writer).

``write_gemm_artefact(program, out, vectors=...)`` writes ``rtl/nnloom_gemm.v``,
``manifest.json`` (``"engine": "gemm"``, the bench ``sim.bench.gemm_bench``, per-layer model
cycles and the instruction range of each layer), ``program.asm`` and ``vectors/golden.npz``.
A config with ``SB_MAC16`` instances (``dsp_pack``) also gets ``rtl/ice40_sb_mac16_sim.v``,
Yosys' simulation model of the primitive, and one with ``MULT18X18D`` instances
(``dsp_regs``) ``rtl/ecp5_mult18x18d_sim.v`` (``dsp.mult18_sim_model_text``), each behind
``ifndef SYNTHESIS`` (Verilator compiles it, synthesis maps the primitive). With ``loadable``
the Verilog has empty memories and a ``load`` port, and ``vectors/images.npz`` holds the
memory images the bench writes through it first: the Verilog then depends only on the
config, so one simulator build serves every program.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from rtl_gen.artefact import (
    Manifest,
    element_streams,
    engine_manifest,
    graph_quant,
    write_artefact_dir,
)
from rtl_gen.emit import emit_verilog

from . import model, spram
from .dsp import MULT18_SIM_MODEL_NAME, SIM_MODEL_NAME, mult18_sim_model_text, sim_model_text
from .engine import MEMS, GemmEngine, load_width
from .program import Program, program_images
from .protect import coded_images

__all__ = ["write_gemm_artefact", "TOP"]

TOP = "nnloom_gemm"
RTL_MTIME = 946684800  # 2000-01-01


def stored_images(program: Program) -> dict:
    """The words the memories of ``program``'s engine hold: ``program_images``, the coded
    memories' words with their check bits (``protect``)."""
    return coded_images(program_images(program), program.config)


def create_engine(
    program: Program,
    *,
    loadable: bool = False,
    primitives: bool = True,
    observe: bool = True,
    images: dict | None = None,
) -> GemmEngine:
    """The engine of ``program``'s config; ``primitives=False`` replaces vendor primitives by
    the same arithmetic in logic (for Amaranth's simulator); ``observe=False`` leaves out the
    perf counters and ``pc`` (what a board build keeps); ``images`` replaces the stored
    words (``stored_images``; fault injection flips some of their bits)."""
    config = program.config if primitives else replace(program.config, primitives=False)
    return GemmEngine(
        config,
        in_dtype=program.in_dtype,
        out_dtype=program.out_dtype,
        images=None if loadable else (images or stored_images(program)),
        loadable=loadable,
        observe=observe,
        smurf=program.smurf,
    )


def sim_models(program: Program) -> dict:
    """The simulation models (file name: text) of the vendor primitives ``program``'s
    engine instantiates, for Verilator; synthesis skips them (``ifndef SYNTHESIS``)."""
    cfg = program.config
    if not (cfg.primitives and cfg.dsp_lanes):
        return {}
    out = {}
    if cfg.dsp_pack:
        out[SIM_MODEL_NAME] = sim_model_text()
    if cfg.dsp_regs:
        out[MULT18_SIM_MODEL_NAME] = mult18_sim_model_text()
    if cfg.spram:
        out[spram.SIM_MODEL_NAME] = spram.sim_model_text()
    return out


def manifest_for(
    program: Program,
    component: GemmEngine,
    *,
    design: str,
    loadable: bool,
    extra: dict | None = None,
) -> Manifest:
    graph = program.graph
    sched = model.schedule(program)
    x_t, y_t = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    return engine_manifest(
        design=design,
        engine="gemm",
        top=TOP,
        component=component,
        rtl=[f"{TOP}.v", *sim_models(program)],
        sim_bench="sim.bench.gemm_bench",
        source={"model": graph.name, "sha256": graph.source_sha256},
        streams=element_streams(
            n_in=program.n_in,
            in_dtype=x_t.dtype,
            in_tensor=graph.inputs[0],
            n_out=program.n_out,
            out_dtype=y_t.dtype,
            out_tensor=graph.outputs[0],
        ),
        parameters=program.config.to_json(),
        layers=[
            {
                "name": l.name,
                "op": l.source_op or l.op,
                "m": l.m,
                "k": l.k,
                "outputs": l.n,
                "groups": l.groups,
                "n_dsp": l.n_dsp,
                "n_lut": l.n_lut,
                "lut_error": round(l.lut_error, 6),
                "lut_wbits": l.lut_wbits,
                "macs": l.macs,
                "cycles": l.model_cycles,
                "instructions": [l.first, l.last],
            }
            for l in program.layers
        ],
        latency_cycles=sched.cycles,
        macs=program.macs(),
        quant=graph_quant(graph),
        perf={"busy": sched.busy, "stall": sched.stall, "wait": sched.wait},
        fetch_cycles=sched.fetch,
        instructions=len(program.instrs),
        gemm={
            "loadable": loadable,
            "load_width": load_width(program.config),
            "mems": MEMS,
            # written through load before the first inference (SPRAM has no initial value)
            "preload": ["wd"] if program.config.spram and not loadable else [],
        },
        **_run_time_load(program, loadable),
        **(extra or {}),
    )


def _run_time_load(program: Program, loadable: bool) -> dict:
    """The manifest's ``run_time_load`` section of a ``spram`` artefact (its weight SPRAM has
    no initial value: a board top writes ``vectors/images.npz``'s ``wd`` through ``load``
    before the first inference, ``boards.protocol.LoadSpec``); none otherwise."""
    if not program.config.spram or loadable:
        return {}
    words = len(stored_images(program)["wd"])
    return {
        "run_time_load": {
            "port": "load",
            "fields": [["mem", 3], ["addr", 16], ["data", load_width(program.config)]],
            "word_bits": 16,  # the weight SPRAM's words
            "image": "vectors/images.npz",
            "mems": {"wd": {"code": MEMS["wd"], "words": words}},
        }
    }


def write_gemm_artefact(
    program: Program,
    out_dir: str | Path,
    *,
    vectors: dict,
    loadable: bool = False,
    extra: dict | None = None,
    verilog_text: str | None = None,
) -> Path:
    """Write the artefact of ``program`` to ``out_dir`` atomically; returns its path.
    ``verilog_text`` reuses Verilog already emitted for the same config (loadable only)."""
    component = create_engine(program, loadable=loadable)
    if verilog_text is None:
        verilog_text = emit_verilog(component, TOP)
    else:
        component._MustUse__silence = True  # only its ports are needed
    manifest = manifest_for(
        program, component, design=Path(out_dir).name, loadable=loadable, extra=extra
    )
    # a spram artefact that is not loadable: only what the bench writes before it runs
    keep = manifest["gemm"]["preload"] if program.config.spram and not loadable else None
    images = {
        k: np.array([int(v) for v in words], dtype=object).astype(str)
        for k, words in stored_images(program).items()
        if keep is None or k in keep
    }
    # Same bytes, same time stamp: cocotb's runner rebuilds when a source is newer than its
    # build, and loadable artefacts of one config share a build.
    return write_artefact_dir(
        out_dir,
        manifest,
        rtl={f"{TOP}.v": verilog_text, **sim_models(program)},
        vectors=vectors,
        npz={"images": images},
        files={"program.asm": program.listing()},
        rtl_mtime=RTL_MTIME,
    )
