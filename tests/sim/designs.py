"""The smallest design of every engine, written as artefacts for the simulator tests: the
16-12-5 QDQ MLP on the dense, gemm (also with loadable memories) and snn engines, a SMURF
``tanh(4x)`` unit, an SR-LUT engine with a seeded random table and the ICELUT apply engine
with seeded random tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENGINES = ("dense", "gemm", "gemm-loadable", "snn", "smurf", "srlut", "icelut")


def make_design(engine: str, mlp_onnx: Path, out: Path) -> Path:
    """Write ``engine``'s smallest artefact into ``out``; returns its folder."""
    if engine in ("dense", "gemm", "snn"):
        from flows.engines import get_engine

        get_engine(engine).generate(
            mlp_onnx, out, board="icebreaker", data=None, options={"random": 8}
        )
        return out
    if engine == "gemm-loadable":
        from flows.commands.gemm import generate_gemm
        from frontends.vectors import golden_vectors
        from rtl_gen.gemm.emit import write_gemm_artefact

        program = generate_gemm(mlp_onnx, out.with_name(out.name + "-rom"), random=8)
        vectors = golden_vectors(program.graph, random=8)
        return write_gemm_artefact(program, out, vectors=vectors, loadable=True)
    if engine == "smurf":
        from rtl_gen.smurf import design, write_smurf_artefact

        plan, fit = design(["tanh(4*x)"], radix=8, length=64)
        write_smurf_artefact(plan, out, fit=fit)
        return out
    rng = np.random.default_rng(0)
    if engine == "srlut":
        from frontends.lutnet.srlut import SrlutPlan
        from rtl_gen.lutnet.artefact import write_srlut_artefact

        levels = (256 >> 6) + 1
        plan = SrlutPlan("S", 6, 4, rng.integers(-128, 128, (levels**4, 16)).astype(np.int8))
        frames = rng.integers(0, 256, (3, 6, 7), dtype=np.uint8)
        frames[1], frames[2] = 0, 255
        return write_srlut_artefact(plan, out, width=7, height=6, frames=frames)
    if engine in ("hklut-ice40", "hklut-ecp5"):  # not in ENGINES: slow to simulate
        from frontends.lutnet.hklut import random_plan as hklut_plan
        from rtl_gen.lutnet.artefact import write_hklut_artefact

        frames = rng.integers(0, 256, (2, 6, 5), dtype=np.uint8)
        frames[1] = 255
        family = engine.split("-")[1]
        return write_hklut_artefact(
            hklut_plan(3), out, width=5, height=6, frames=frames, family=family
        )
    if engine == "icelut":
        from frontends.lutnet.icelut import random_plan
        from rtl_gen.lutnet.artefact import write_icelut_artefact

        frames = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        return write_icelut_artefact(random_plan(1), out, frames=frames)
    raise ValueError(engine)
