"""``nnloom bench smurf``: SMURF against Taylor (Horner), full-LUT and Stanh units.

Per function: the SMURF fit (basis ``auto``: the FSM unless Bernstein fits 2x better), the
Monte-Carlo RMSE and max error of the cycle model (``runs`` LFSR seed sets, input sweep) at
L = 256, 1024, 4096; then, at L = 1024, the cheapest Horner unit and LUT whose error is at
most SMURF's Monte-Carlo RMSE (matched accuracy), all synthesized by the same flow.

Area for the ratios is in LUT4-equivalents: ``LUT4 + FF + block-RAM ROM bits / 16 (a LUT4
holds 16 bits) + 150 per DSP multiplier`` (our estimate of an 8x16 multiplier in LUT4s); a
LUT baseline too big for the device's block RAM is charged ``ROM bits / 16`` unsynthesized. The
paper's ratios are ASIC areas; these are not the same units. ADP = area * (latency + 1)
clocks / Fmax, in LUT4-eq * us.

With ``breakdown``, the SMURF unit is also synthesized with its hierarchy kept and its area
split by part (input SNGs, basis, gate LFSR, ROM + gate, output counters, control); the
ratios are then also given without the random sources (input SNGs and gate LFSR), which
stochastic-computing papers usually count as shared across units — labelled as such. That
area is the flattened one times the share of the other parts in the hierarchical sum.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .baselines import fit_horner, fit_lut
from .basis import FsmBasis
from .design import design, sweep_codes
from .expr import parse
from .plan import SmurfOutput, SmurfPlan
from .unit import PARTS, RANDOM_PARTS, SmurfUnit, part_of

if TYPE_CHECKING:
    from amaranth.lib import wiring
    from rich.console import Console

    #: ``(component, name, family, out_dir) -> report``
    Synthesize = Callable[[wiring.Component, str, str, Path], dict]

__all__ = ["FUNCTIONS", "run_bench", "LENGTHS"]


def _component(design):
    """The component a benchmark row synthesizes: a SMURF plan's unit, or a baseline's own."""
    return SmurfUnit(design) if isinstance(design, SmurfPlan) else design.create()


LENGTHS = (256, 1024, 4096)
DSP_LUT4 = 150
# Block RAM of the benchmark devices: iCE40 UP5K 30 x 4 kbit EBR; ECP5-85F 208 x 18 kbit.
RAM_BLOCK_BITS = {"ice40": 4096, "ecp5": 18432}
RAM_BITS = {"ice40": 30 * 4096, "ecp5": 208 * 18432}
# A LUT ROM above this many bits is not synthesized: Yosys spends tens of minutes on a
# 64 Ki-entry ROM (the 2-input LUTs) and the result is block RAM, which _area charges by bits.
SYNTH_ROM_BITS = 1 << 15
# name -> (expressions, ranges, radix)
FUNCTIONS = {
    "tanh": (["tanh(4*x)"], {}, 8),
    "sigmoid": (["sigmoid(6*x)"], {}, 8),
    "gelu": (["gelu(3*x)/3"], {}, 8),
    "exp": (["exp(-x)"], {"x": (0.0, 1.0)}, 8),
    "euclid": (["sqrt(x**2 + y**2)/sqrt(2)"], {"x": (0.0, 1.0), "y": (0.0, 1.0)}, 8),
    "softmax": (["sigmoid(4*(x - y))", "sigmoid(4*(y - x))"], {}, 8),
}


def _targets(plan, texts, codes):
    x = plan.decode_inputs(codes)
    return np.stack([parse(t, plan.inputs)(*x.T) for t in texts], axis=1)


def monte_carlo(
    plan: SmurfPlan, texts: Sequence[str], codes: np.ndarray, runs: int, seed: int = 0
) -> tuple[float, float, np.ndarray]:
    """RMSE and max |error| of the cycle model against the target over runs x codes."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(1, 1 << 16, size=(runs, plan.n_lfsrs))
    counts = plan.simulate(codes, seeds)  # (S, n, K)
    err = plan.decode_outputs(counts) - _targets(plan, texts, codes)[None]
    return float(np.sqrt((err**2).mean())), float(np.abs(err).max()), counts


def _area(rep: dict, family: str) -> float:
    """LUT4 + FF, plus block-RAM bits in use / 16 and 150 per DSP (ROMs built from LUTs are
    already in the LUT4 count)."""
    ram_bits = min(rep.get("rom_bits", 0), rep.get("ram", 0) * RAM_BLOCK_BITS[family])
    return rep["lut4"] + rep["ff"] + ram_bits / 16 + DSP_LUT4 * rep.get("dsp", 0)


def _match_horner(g, m, bits, lo, hi, texts, eps, codes, exprs):
    x = (lo, hi)
    for degree in range(1, 9 if m == 1 else 6):
        for frac in range(6, 17):
            plan = fit_horner(g, m, bits, degree, frac, *x)
            y = plan.decode(plan.reference(codes))
            if np.sqrt(((y - exprs) ** 2).mean()) <= eps:
                return plan
    return None


def _match_lut(g, m, bits, lo, hi, eps, codes, exprs):
    for out_bits in range(1, 17):
        plan = fit_lut(g, m, bits, out_bits, lo, hi)
        y = plan.decode(plan.reference(codes))
        if np.sqrt(((y - exprs) ** 2).mean()) <= eps:
            return plan
    return None


def stanh_plan(radix: int, length: int) -> SmurfPlan:
    """Brown-Card Stanh: counter >= N/2 gives 1; bipolar y = tanh((N/2) artanh x)."""
    w = tuple(256 if i >= radix // 2 else 0 for i in range(radix))
    return SmurfPlan(
        inputs=("x",),
        ranges=((-1.0, 1.0),),
        bases=(FsmBasis(radix),),
        outputs=(SmurfOutput("stanh", -1.0, 1.0, w),),
        length=length,
        warmup=radix,
    )


def parts_area(modules: dict) -> dict:
    """``{submodule path: {lut4, ff}}`` (hierarchy kept) to ``{part: {lut4, ff, area}}``."""
    parts = {p: {"lut4": 0, "ff": 0} for p in PARTS}
    for path, cells in modules.items():
        part = parts[part_of(path)]
        part["lut4"] += cells["lut4"]
        part["ff"] += cells["ff"]
    for part in parts.values():
        part["area"] = part["lut4"] + part["ff"]
    return parts


def run_bench(
    out: Path,
    *,
    synthesize: Synthesize,
    families: Sequence[str] = ("ice40", "ecp5"),
    functions: Sequence[str] | None = None,
    runs: int = 32,
    synth: bool = True,
    console: Console | None = None,
    plots: bool = True,
    breakdown: Synthesize | None = None,
) -> dict:
    """Run the benchmark; ``synthesize(component, name, family, out_dir) -> dict``;
    ``breakdown(component, name, family, out_dir) -> {submodule path: {lut4, ff}}`` (Yosys
    with the hierarchy kept) adds the SMURF unit's area by part and the ratios without its
    random sources."""
    say = console.print if console is not None else print
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = functions or list(FUNCTIONS)
    unknown = [f for f in chosen if f not in FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown function '{unknown[0]}'; choose from {', '.join(FUNCTIONS)}")
    results = {}
    for name in chosen:
        texts, ranges, radix = FUNCTIONS[name]
        t0 = time.monotonic()
        plan, fit = design(texts, ranges=ranges, radix=radix, basis="auto", length=1024)
        m = plan.m
        codes = sweep_codes(m, plan.input_bits, 64 if m == 1 else 17)
        row = {
            "expressions": texts,
            "basis": fit.basis,
            "fit_rmse": fit.rmse,
            "fit_alternatives": fit.alternatives,
            "states": plan.states,
            "warmup": plan.warmup,
            "accuracy": {},
        }
        if fit.basis != "fsm":
            say(
                f"[yellow]{name}[/]: the FSM basis cannot fit {', '.join(texts)} (fit RMSE "
                f"{max(fit.alternatives['fsm']):.3g}); picked {fit.basis} "
                f"({max(fit.rmse):.3g})"
            )
        mc = {}
        for length in LENGTHS:
            p = dataclasses.replace(plan, length=length)
            rmse, mx, counts = monte_carlo(p, texts, codes, runs)
            mc[length] = (rmse, mx, counts)
            row["accuracy"][str(length)] = {"rmse": rmse, "max_error": mx}
        eps = mc[1024][0]
        # matched-accuracy baselines on the first output
        lo, hi = plan.outputs[0].lo, plan.outputs[0].hi
        expr0 = parse(texts[0], plan.inputs)

        def g(c, plan=plan, expr0=expr0, lo=lo, hi=hi):
            return (expr0(*plan.decode_inputs(c).T) - lo) / (hi - lo)

        full = sweep_codes(m, plan.input_bits, None if m == 1 else 65)
        exact = expr0(*plan.decode_inputs(full).T)
        horner = _match_horner(g, m, plan.input_bits, lo, hi, texts, eps, full, exact)
        lut = _match_lut(g, m, plan.input_bits, lo, hi, eps, full, exact)
        designs = {"smurf": plan}
        if horner is not None:
            designs["taylor"] = horner
            row["taylor"] = {
                "degree": horner.degree,
                "frac_bits": horner.frac_bits,
                "width": horner.width,
            }
        if lut is not None:
            designs["lut"] = lut
            row["lut"] = {"out_bits": lut.out_bits, "rom_bits": lut.rom_bits}
        if name == "tanh":
            st = stanh_plan(radix, 1024)
            st_rmse, st_max, _ = monte_carlo(st, ["tanh(4*x)"], codes, runs)
            row["stanh"] = {"rmse": st_rmse, "max_error": st_max}
            designs["stanh"] = st
        row["synth"] = {}
        if synth:
            for family in families:
                row["synth"][family] = {}
                for kind, d in designs.items():
                    if kind == "lut" and d.rom_bits > RAM_BITS[family]:
                        row["synth"][family][kind] = {
                            "fits": False,
                            "reason": f"{d.rom_bits} ROM bits exceed the "
                            f"{RAM_BITS[family]} bits of block RAM",
                        }
                        continue
                    if kind == "lut" and d.rom_bits > SYNTH_ROM_BITS:
                        row["synth"][family][kind] = {
                            "fits": True,
                            "estimated": True,
                            "rom_bits": d.rom_bits,
                            "ram": -(-d.rom_bits // RAM_BLOCK_BITS[family]),
                            "latency": d.latency_cycles,
                            "area_lut4eq": d.rom_bits / 16,
                            "reason": f"{d.rom_bits} ROM bits: block RAM estimated, not "
                            f"synthesized",
                        }
                        continue
                    rep = synthesize(
                        _component(d),
                        f"{name}_{kind}",
                        family,
                        out / "synth" / family / f"{name}_{kind}",
                    )
                    if kind in ("smurf", "stanh"):
                        rep["rom_bits"] = (
                            (d.coef_bits + 1) * (1 << d.address_bits) * len(d.outputs)
                            if not d.deterministic_gate
                            else 0
                        )
                        rep["latency"] = d.latency_cycles
                    elif kind == "lut":
                        rep["rom_bits"] = d.rom_bits
                        rep["latency"] = d.latency_cycles
                    else:
                        rep["rom_bits"] = 0
                        rep["latency"] = d.latency_cycles
                    if rep.get("fits", True) and rep.get("fmax_mhz"):
                        rep["area_lut4eq"] = _area(rep, family)
                        rep["adp"] = rep["area_lut4eq"] * (rep["latency"] + 1) / rep["fmax_mhz"]
                    row["synth"][family][kind] = rep
                s = row["synth"][family]
                if breakdown is not None and "area_lut4eq" in s["smurf"]:
                    parts = parts_area(
                        breakdown(
                            SmurfUnit(plan),
                            f"{name}_smurf",
                            family,
                            out / "synth" / family / f"{name}_smurf_parts",
                        )
                    )
                    random = sum(parts[p]["area"] for p in RANDOM_PARTS)
                    s["smurf"]["parts"] = parts
                    s["smurf"]["parts_sum"] = sum(p["area"] for p in parts.values())
                    # The flattened area times the non-random share of the parts' sum: the
                    # flattened netlist optimises across parts, so subtracting the parts'
                    # own figures from it would over-credit (softmax: 529 - 519).
                    s["smurf"]["area_without_random"] = s["smurf"]["area_lut4eq"] * (
                        1 - random / s["smurf"]["parts_sum"]
                    )
                for base in ("taylor", "lut"):
                    if base in s and "area_lut4eq" in s[base] and "area_lut4eq" in s["smurf"]:
                        s[f"smurf_over_{base}"] = s["smurf"]["area_lut4eq"] / s[base]["area_lut4eq"]
                    elif base == "lut" and lut is not None and "area_lut4eq" in s["smurf"]:
                        s["smurf_over_lut"] = s["smurf"]["area_lut4eq"] / (lut.rom_bits / 16)
                        s["lut_note"] = "LUT does not fit; its area is ROM bits / 16"
                    if f"smurf_over_{base}" in s and "area_without_random" in s["smurf"]:
                        s[f"smurf_without_random_over_{base}"] = (
                            s[f"smurf_over_{base}"]
                            * s["smurf"]["area_without_random"]
                            / s["smurf"]["area_lut4eq"]
                        )
        row["seconds"] = round(time.monotonic() - t0, 1)
        results[name] = row
        if plots:
            _plot(out / f"{name}.png", name, plan, texts, codes, mc)
        _print_row(say, name, row, families if synth else ())
        (out / "results.json").write_text(json.dumps(results, indent=2, default=_json) + "\n")
    return results


def _json(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def _print_row(say, name, row, families):
    acc = ", ".join(
        f"L={L}: RMSE {v['rmse']:.4f} max {v['max_error']:.3f}" for L, v in row["accuracy"].items()
    )
    say(
        f"[bold]{name}[/] ({row['basis']}, {row['states']} states; fit RMSE "
        f"{max(row['fit_rmse']):.2g}): {acc}"
    )
    if "stanh" in row:
        say(
            f"  Stanh (Brown-Card, L=1024): RMSE {row['stanh']['rmse']:.4f} "
            f"max {row['stanh']['max_error']:.3f}"
        )
    say(
        f"  matched at L=1024: taylor {row.get('taylor', 'none within degree 8')}, "
        f"lut {row.get('lut', 'none')}"
    )
    for family in families:
        s = row["synth"][family]
        for kind in ("smurf", "taylor", "lut", "stanh"):
            if kind not in s:
                continue
            r = s[kind]
            if not r.get("fits", True):
                say(f"  {family:5s} {kind:6s} does not fit: {r.get('reason', '')}")
                continue
            if r.get("estimated"):
                say(
                    f"  {family:5s} {kind:6s} RAM {r['ram']:3d} (estimated: "
                    f"{r['reason']})  area {r['area_lut4eq']:8.1f}"
                )
                continue
            say(
                f"  {family:5s} {kind:6s} LUT4 {r['lut4']:5d} FF {r['ff']:4d} "
                f"RAM {r.get('ram', 0):3d} DSP {r.get('dsp', 0):2d} Fmax "
                f"{r['fmax_mhz']:7.2f} MHz  area {r['area_lut4eq']:8.1f}  ADP "
                f"{r['adp']:10.1f}"
            )
        if "parts" in s.get("smurf", {}):
            sm = s["smurf"]
            say(
                f"  {family:5s} SMURF area by part (LUT4+FF, Yosys with hierarchy kept; sum "
                f"{sm['parts_sum']}, flattened {sm['area_lut4eq']:.0f}): "
                + ", ".join(
                    f"{p} {v['area']} ({v['lut4']}+{v['ff']})" for p, v in sm["parts"].items()
                )
            )
        ratios = "  ".join(
            f"SMURF/{b} {100 * s[f'smurf_over_{b}']:.2f}%"
            for b in ("taylor", "lut")
            if f"smurf_over_{b}" in s
        )
        if ratios:
            say(f"  {family:5s} area ratios: {ratios}  (paper: Taylor 16.07%, LUT 2.22%)")
        ratios = "  ".join(
            f"SMURF/{b} {100 * s[f'smurf_without_random_over_{b}']:.2f}%"
            for b in ("taylor", "lut")
            if f"smurf_without_random_over_{b}" in s
        )
        if ratios:
            say(
                f"  {family:5s} area ratios WITHOUT the SMURF unit's random sources (input "
                f"SNGs and gate LFSR counted as shared, as SC papers do; "
                f"{s['smurf']['area_without_random']:.0f} LUT4-eq, the flattened area scaled "
                f"by the other parts' share): {ratios}"
            )


def _plot(path, name, plan, texts, codes, mc):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = plan.decode_inputs(codes)
    target = _targets(plan, texts, codes)[:, 0]
    if plan.m == 1:
        axis = x[:, 0]
        sel = slice(None)
    else:
        mid = np.unique(codes[:, 1])[len(np.unique(codes[:, 1])) // 2]
        sel = codes[:, 1] == mid
        axis = x[sel, 0]
    analytic = plan.decode_outputs(plan.analytic(codes) * plan.length)[:, 0]
    axes[0].plot(axis, target[sel], "k-", label="target")
    axes[0].plot(axis, analytic[sel], "b--", label="SMURF analytic")
    for length, (_, _, counts) in mc.items():
        p = dataclasses.replace(plan, length=length)
        axes[0].plot(
            axis, p.decode_outputs(counts[0])[sel, 0], ".", ms=3, label=f"SMURF run, L={length}"
        )
        axes[1].plot(
            axis, p.decode_outputs(counts[0])[sel, 0] - target[sel], ".", ms=3, label=f"L={length}"
        )
    axes[1].plot(axis, analytic[sel] - target[sel], "b-", label="analytic")
    title = texts[0] + ("" if plan.m == 1 else f" (slice {plan.inputs[1]} = {x[sel, 1][0]:.2f})")
    axes[0].set_title(title)
    axes[1].set_title("error")
    for a in axes:
        a.set_xlabel(plan.inputs[0])
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
