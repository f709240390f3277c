"""Long regressions: an artefact's design on many seeded random vectors (plus every edge
code), through its golden model and its RTL.

``regression_artefact(art, n, seed, out)`` writes a copy of ``art`` whose golden vectors are
the edge cases and ``n`` random inputs drawn with ``seed``, made by the engine's own golden
model from what the artefact holds: the source ONNX model (``source/``) for the dense, gemm
and snn engines, the manifest's plan for a SMURF unit. The copy's Verilog must be the
artefact's, byte for byte (else it is not the same design). ``run_regression`` simulates it
with the self-checking SystemVerilog bench (Verilator by default: no Python per transfer) or
the cocotb bench, reporting progress as vectors are checked.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontends.errors import NnloomError
from rtl_gen.artefact import Artefact

from .agreement import source_model

__all__ = ["RegressionError", "RegressionResult", "regression_artefact", "run_regression"]


class RegressionError(NnloomError):
    """An artefact whose golden model cannot be rerun on new vectors."""


@dataclass(frozen=True)
class RegressionResult:
    vectors: int
    mismatching_elements: int
    mismatches: list[str]
    seconds: float
    bench: str
    simulator: str

    @property
    def passed(self) -> bool:
        return self.mismatching_elements == 0 and not self.mismatches

    @property
    def rate(self) -> float:
        return self.vectors / max(self.seconds, 1e-9)


def regression_artefact(art: Artefact, n: int, seed: int, out: Path) -> Artefact:
    """``art``'s design with the edge vectors and ``n`` random ones (``seed``) in ``out``."""
    manifest = art.manifest
    engine = manifest.get("engine")
    out = Path(out)
    if engine in ("dense", "gemm", "snn"):
        from flows.engines import get_engine

        source = source_model(art)
        if source is None:
            raise RegressionError(
                f"{art.path}: no copy of its source model in source/ (made "
                f"before nnloom kept one); regenerate it with `nnloom "
                f"generate` to draw new vectors"
            )
        options = {"random": n, "seed": seed}
        if engine == "dense":
            options["lanes"] = manifest["parameters"]["lanes"]
        board = manifest.get("board_config") or manifest.get("board") or "icebreaker"
        get_engine(engine).generate(source, out, board=board, data=None, options=options)
    elif engine == "smurf":
        import itertools

        from rtl_gen.smurf import write_smurf_artefact
        from rtl_gen.smurf.plan import SmurfPlan

        plan = SmurfPlan.from_dict(manifest["smurf"])
        top = (1 << plan.input_bits) - 1
        edges = list(itertools.product((0, 1, top // 2, top - 1, top), repeat=plan.m))
        rng = np.random.default_rng(seed)
        codes = np.concatenate(
            [
                np.array(edges, dtype=np.int64).reshape(-1, plan.m),
                rng.integers(0, top + 1, (n, plan.m)),
            ]
        )
        write_smurf_artefact(plan, out, codes=codes, top=manifest["top"])
    elif engine == "lutnet" and manifest.get("variant") == "srlut":
        from rtl_gen.lutnet.artefact import write_srlut_artefact

        p = manifest["parameters"]
        h, w = int(p["height"]), int(p["width"])
        rng = np.random.default_rng(seed)
        frames = np.concatenate([_edge_frames(h, w), rng.integers(0, 256, (n, h, w))])
        write_srlut_artefact(
            _srlut_plan(art),
            out,
            width=w,
            height=h,
            frames=frames.astype(np.uint8),
            ports=int(p.get("ports", 1)),
        )
    elif engine == "lutnet" and manifest.get("variant") in ("hklut", "icelut"):
        _lut_regression(art, n, seed, out)
    else:
        raise RegressionError(
            f"{art.path}: a {engine} engine's artefact keeps no golden model "
            f"to draw new vectors from; regenerate it with more frames "
            f"(--data) instead"
        )
    new = Artefact(out)
    for a, b in zip(art.rtl_sources, new.rtl_sources):
        if a.read_bytes() != b.read_bytes():
            shutil.rmtree(out, ignore_errors=True)
            raise RegressionError(
                f"{art.path}: regenerating it from its source gives other "
                f"Verilog ({a.name}); it was made with options nnloom "
                f"cannot recover"
            )
    return new


def _edge_frames(h: int, w: int) -> np.ndarray:
    """Constant black and white, a checkerboard and a horizontal ramp (uint8, (4, h, w))."""
    ramp = np.broadcast_to(np.linspace(0, 255, w).round(), (h, w))
    board = np.indices((h, w)).sum(axis=0) % 2 * 255
    return np.stack([np.zeros((h, w)), np.full((h, w), 255), board, ramp]).astype(np.uint8)


def _lut_regression(art: Artefact, n: int, seed: int, out: Path) -> None:
    """An HKLUT or ICELUT engine's design with the edge frames and ``n`` random ones, from
    the tables in ``source/``. ICELUT frames are RGB: each edge frame on all three channels
    and on one at a time (a colour cast), each with its own residual LUT."""
    from frontends.lutnet.hklut import load_hklut_dir
    from frontends.lutnet.icelut import load_icelut_npz
    from frontends.lutnet.icetransfer import is_icelut_net_dir, transfer_icelut_dir
    from rtl_gen.lutnet.artefact import write_hklut_artefact, write_icelut_artefact

    from .agreement import SOURCE_DIR

    p = art.manifest["parameters"]
    h, w, family = int(p["height"]), int(p["width"]), p["family"]
    folder = art.path / SOURCE_DIR
    found = sorted(folder.iterdir()) if folder.is_dir() else []
    if not found:
        raise RegressionError(
            f"{art.path}: no copy of its tables in {SOURCE_DIR}/ (made before nnloom kept "
            f"one); regenerate it with `nnloom lutnet generate` to draw new frames"
        )
    rng = np.random.default_rng(seed)
    edges = _edge_frames(h, w)
    if art.manifest["variant"] == "hklut":
        frames = np.concatenate([edges, rng.integers(0, 256, (n, h, w), dtype=np.uint8)])
        write_hklut_artefact(
            load_hklut_dir(found[0]), out, width=w, height=h, frames=frames, family=family
        )
        return
    src = found[0]
    plan = (
        transfer_icelut_dir(src)
        if src.is_dir() and is_icelut_net_dir(src)
        else load_icelut_npz(src)
    )
    grey = np.repeat(edges[..., None], 3, axis=3)
    casts = np.zeros((3 * len(edges), h, w, 3), np.uint8)
    for c in range(3):
        casts[c * len(edges) : (c + 1) * len(edges), ..., c] = edges
    frames = np.concatenate([grey, casts, rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)])
    write_icelut_artefact(plan, out, frames=frames, family=family)


def _srlut_plan(art: Artefact):
    """The SR-LUT table an artefact was made from: its ONNX pattern net or table (.npy) in
    ``source/``, at the manifest's interval."""
    from frontends.lutnet.tables import load_srlut_table
    from frontends.lutnet.transfer import transfer_onnx

    from .agreement import SOURCE_DIR

    p = art.manifest["parameters"]
    folder = art.path / SOURCE_DIR
    found = sorted(folder.glob("*.onnx")) + sorted(folder.glob("*.npy")) if folder.is_dir() else []
    if not found:
        raise RegressionError(
            f"{art.path}: no copy of its table or pattern net in {SOURCE_DIR}/ (made "
            f"before nnloom kept one); regenerate it with `nnloom generate` to draw new frames"
        )
    bits = int(p["interval_bits"])
    if found[0].suffix == ".onnx":
        return transfer_onnx(found[0], interval_bits=bits)
    plan = load_srlut_table(found[0], pattern=p["pattern"])
    return plan if plan.interval_bits == bits else plan.resampled(bits)


def run_regression(
    art: Artefact,
    *,
    vectors: int,
    seed: int = 1,
    bench: str = "sv",
    simulator: str = "verilator",
    progress: Callable[[int, int], None] | None = None,
) -> RegressionResult:
    """Draw ``vectors`` random inputs (and the edge cases), simulate them, compare with the
    golden. ``progress(done, total)`` hears the vectors checked. The regression artefact
    goes to ``<art>/sim/regress``."""
    from .bench_files import write_bench_files
    from .runner import run_sim
    from .svrun import run_sv_bench

    target = art.path / "sim" / "regress"
    shutil.rmtree(target, ignore_errors=True)
    reg = regression_artefact(art, vectors, seed, target)
    total = len(reg.vectors()["inputs"])
    progress = progress or (lambda done, total: None)
    start = time.monotonic()
    if bench == "sv":
        write_bench_files(reg)
        result = run_sv_bench(
            reg,
            simulator=simulator,
            seed=seed,
            rewrite=False,
            progress=lambda done: progress(done, total),
            quick=vectors < 1000,
        )
        return RegressionResult(
            vectors=total,
            mismatching_elements=0 if result.passed else max(1, len(result.mismatches)),
            mismatches=[] if result.passed else [result.summary, *result.mismatches],
            seconds=time.monotonic() - start,
            bench=bench,
            simulator=simulator,
        )
    result = run_sim(
        reg,
        simulator=simulator,
        seed=seed,
        progress=lambda stage, done, total_: progress(done or 0, total),
    )
    return RegressionResult(
        vectors=result.vectors,
        mismatching_elements=result.mismatching_elements,
        mismatches=[] if result.passed else result.mismatches,
        seconds=time.monotonic() - start,
        bench=bench,
        simulator=simulator,
    )
