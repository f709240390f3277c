"""cocotb bench for the GEMM overlay (``rtl_gen.gemm``).

For a ``loadable`` artefact it first writes every memory image (``vectors/images.npz``)
through the ``load`` port (for a ``spram`` one, the images the manifest's ``preload``
names). Then, like ``stream_bench`` (``sim.bench.stream``), it streams every golden input
vector, compares every output element bit for bit, and checks the cycle counter and the
perf counters against the model (manifest) when there is no back-pressure. During the first
inference it records the cycle of every change of ``pc``, so ``summary.json`` holds the
RTL's cycles per layer beside the model's.

Environment: as ``stream_bench`` (``NNLOOM_ARTEFACT``, ``NNLOOM_BACKPRESSURE``,
``NNLOOM_SIM_OUT``, ``NNLOOM_SEED``, ``NNLOOM_SIM_LIMIT``).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import FallingEdge, RisingEdge

from rtl_gen.artefact import Artefact

from .common import settings, start, write_results
from .stream import StreamRun, stream_vectors

PERF = [(c, w) for c in ("dsp", "lut") for w in ("busy", "stall", "wait")]


async def _load_images(dut: HierarchyObject, artefact: Artefact, manifest: dict) -> None:
    mems = manifest["gemm"]["mems"]
    with np.load(artefact.path / "vectors" / "images.npz") as f:
        images = {k: [int(v) for v in f[k]] for k in f.files}
    dut.load__valid.value = 1
    for name, words in images.items():
        code = mems[name]
        for addr, word in enumerate(words):
            dut.load__payload.value = code | (addr << 3) | (word << 19)
            await FallingEdge(dut.clk)
    dut.load__valid.value = 0


async def _trace_pc(dut: HierarchyObject, trace: list, stop: list) -> None:
    while not stop:
        await RisingEdge(dut.clk)
        trace.append(int(dut.pc.value.to_unsigned()))


@cocotb.test()
async def outputs_match_golden(dut: HierarchyObject) -> None:
    bench = settings()
    manifest = bench.artefact.manifest
    # a spram overlay's weight SPRAM is written through load too (it has no initial value)
    loadable = manifest["gemm"]["loadable"] or bool(manifest["gemm"].get("preload"))

    await start(dut, idle={"load__valid": 0} if loadable else None)
    if loadable:
        await _load_images(dut, bench.artefact, manifest)
        await FallingEdge(dut.clk)

    perf = np.zeros((len(bench.inputs), len(PERF)), dtype=np.int64)
    trace: list[int] = []

    def read_perf(n: int, run: StreamRun) -> None:
        perf[n] = [getattr(dut, f"perf_{c}_{w}").value.to_unsigned() for c, w in PERF]

    run = await stream_vectors(
        dut, bench, tracer=lambda stop: _trace_pc(dut, trace, stop), each=read_perf
    )

    # cycle of the first fetch of every instruction index during the first inference
    first_seen: dict[int, int] = {}
    for cycle, pc in enumerate(trace):
        first_seen.setdefault(pc, cycle)
    layers = []
    for layer in manifest["layers"]:
        a, b = layer["instructions"]
        rtl = first_seen[b] - first_seen[a] if a in first_seen and b in first_seen else None
        layers.append({"name": layer["name"], "model": layer["cycles"], "rtl": rtl})

    # a protected engine's memory-error counters after the run (``rtl_gen.gemm.protect``)
    memory = None
    if manifest["parameters"].get("protect", "none") != "none":
        for _ in range(8):  # the END and the next LOAD's fetch
            await RisingEdge(dut.clk)
        memory = {
            "corrected": int(dut.ecc_corrected.value.to_unsigned()),
            "errors": int(dut.ecc_errors.value.to_unsigned()),
        }
    perf_rtl = {f"{c}_{w}": int(perf[0, i]) for i, (c, w) in enumerate(PERF)}
    perf_model = {f"{c}_{w}": int(manifest["perf"][w][c]) for c, w in PERF}
    write_results(
        bench.out_dir,
        {
            **run.summary(bench),
            "layers": layers,
            "perf": {"rtl": perf_rtl, "model": perf_model},
            **({"memory": memory} if memory is not None else {}),
        },
        outputs=run.got,
        cycles=run.cycles,
        perf=perf,
    )

    run.assert_exact()
    run.assert_latency(bench)
    if not bench.backpressure:
        assert perf_rtl == perf_model, (
            f"perf counters {perf_rtl} differ from the model's {perf_model}"
        )
