"""Resource model and core-size sweep of the overlay.

``estimate(config, family)``: LUT4, DSP and block-RAM counts from a linear model
``LUT4 = base + a_dsp * dsp_lanes + a_lut(mode) * lut_lanes`` whose coefficients were fitted to
Yosys runs of whole engines (``synth_ice40 -dsp`` / ``synth_ecp5``, digits MLP programs, see
``FIT``); block RAMs are counted from the memories' shapes and read ports. ``sweep`` compiles
a graph for a grid of core sizes and returns every point with its exact modelled cycles, the
estimated LUT4, the accuracy on data, and which points are Pareto-optimal in (cycles, LUT4,
accuracy loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from frontends.ir import Graph

from .config import DSP_WBITS, GemmConfig

__all__ = ["estimate", "sweep", "SweepPoint", "FIT"]

# family -> (base LUT4, LUT4 per DSP lane, {mode: LUT4 per LUT lane}, DSPs the post unit uses)
# iCE40: yosys synth_ice40 -dsp on (6, 0) 1364, (0, 12) 2743, (6, 8) 2967 LUT4. The
# bit-serial lane figures are estimates (no synthesis fitted yet).
FIT = {
    "ice40": (390, 160, {"shiftadd": 200, "ternary": 150, "bitserial": 60}, 2),
    "ecp5": (450, 120, {"shiftadd": 160, "ternary": 120, "bitserial": 50}, 2),
}
_EBR_BITS = {"ice40": 4096, "ecp5": 18432}


def _brams(depth: int, width: int, ports: int, family: str) -> int:
    if depth <= 2 or width == 0:
        return 0
    max_w = 16 if family == "ice40" else 36
    cols = math.ceil(width / max_w)
    rows = math.ceil(depth * min(width, max_w) / _EBR_BITS[family])
    return cols * rows * ports


def estimate(config: GemmConfig, family: str) -> dict:
    base, a_d, a_l, post_dsp = FIT[family]
    lut4 = base + a_d * config.dsp_lanes + a_l[config.lut_mode] * config.lut_lanes
    abits = max(1, (config.act_depth - 1).bit_length())
    cores = int(config.dsp_lanes > 0) + int(config.lut_lanes > 0)
    ram = (
        _brams(config.imem_depth, 64, 1, family)
        + _brams(config.act_depth, 8, 1 + cores, family)
        + _brams(config.idx_depth, abits + 1, 1 + cores, family)
        + _brams(config.param_depth, config.bias_bits + config.mult_bits, 1, family)
        + _brams(config.wd_depth, config.dsp_lanes * DSP_WBITS, 1, family)
        + _brams(config.wl_depth, config.lut_lanes * config.lut_wbits, 1, family)
        + _brams(config.accd_depth, config.acc_widths["dsp"], 1, family)
        + _brams(config.accl_depth, config.acc_widths["lut"], 1, family)
    )
    dsp = (config.dsp_lanes + 1) // 2 if config.dsp_pack else config.dsp_lanes
    return {"lut4": lut4, "dsp": dsp + post_dsp, "bram": ram}


@dataclass(frozen=True)
class SweepPoint:
    dsp_lanes: int
    lut_lanes: int
    cycles: int
    lut4: int
    dsp: int
    bram: int
    accuracy: float | None
    pareto: bool = False


def sweep(
    graph: Graph,
    *,
    family: str,
    dsp_options: Iterable[int],
    lut_options: Iterable[int],
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    tau: float = 0.02,
    dsp_limit: int | None = None,
    lut4_limit: int | None = None,
    base: GemmConfig = GemmConfig(),
) -> list[SweepPoint]:
    """Every (dsp_lanes, lut_lanes) in the grid that fits the limits, with the Pareto set
    over (cycles, LUT4, accuracy loss) marked."""
    from frontends.reference import quantize_inputs, run

    from .compiler import compile_graph
    from .model import schedule

    codes = quantize_inputs(graph, x) if x is not None else None
    points = []
    for d in dsp_options:
        for lanes in lut_options:
            if d + lanes == 0:
                continue
            program = compile_graph(
                graph, replace(base, dsp_lanes=d, lut_lanes=lanes), split="auto", tau=tau
            )
            res = estimate(program.config, family)
            if (dsp_limit is not None and res["dsp"] > dsp_limit) or (
                lut4_limit is not None and res["lut4"] > lut4_limit
            ):
                continue
            acc = None
            if codes is not None and y is not None:
                out = run(program.graph, codes)[graph.outputs[0]].reshape(len(codes), -1)
                acc = float((out.argmax(axis=1) == y).mean())
            points.append(
                SweepPoint(
                    d, lanes, schedule(program).cycles, res["lut4"], res["dsp"], res["bram"], acc
                )
            )
    marked = []
    for p in points:
        loss = -(p.accuracy or 0.0)
        dominated = any(
            (q.cycles <= p.cycles and q.lut4 <= p.lut4 and -(q.accuracy or 0.0) <= loss)
            and (q.cycles, q.lut4, -(q.accuracy or 0.0)) != (p.cycles, p.lut4, loss)
            for q in points
        )
        marked.append(replace(p, pareto=not dominated))
    return marked
