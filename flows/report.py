"""``report.html`` and ``report.json``: one page a person reads about an artefact.

Everything comes from the artefact directory: the manifest (model, layers, cycles), the
simulation summary and trace (``sim/``), the build reports (``build/<board>/report.json``),
the accuracies ``nnloom flow`` measured (``accuracy.json``) and any images an engine left in
``images/``. The page is self-contained (charts are PNGs inlined as data URIs; no script), so
it can be mailed or archived as one file; ``report.json`` holds the same figures.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from boards.families import KEY_RESOURCES
from rtl_gen.artefact import Artefact, atomic_write

__all__ = ["collect", "write_report"]


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect(artefact: Artefact) -> dict:
    """The report's figures as one JSON-able dict."""
    manifest = artefact.manifest
    builds = {}
    build_root = artefact.path / "build"
    if build_root.is_dir():
        for path in sorted(build_root.glob("*/report.json")):
            data = _read_json(path)
            data["utilisation"] = {
                k: v for k, v in data["utilisation"].items() if k in KEY_RESOURCES
            }
            builds[path.parent.name] = data
    sim = _read_json(artefact.path / "sim" / "summary.json")
    return {
        "design": artefact.name,
        "engine": manifest.get("engine"),
        "source": manifest.get("source", {}),
        "parameters": manifest.get("parameters", {}),
        "layers": manifest.get("layers", []),
        "latency_cycles": manifest.get("latency_cycles"),
        "macs": manifest.get("macs"),
        "accuracy": _read_json(artefact.path / "accuracy.json") or {},
        "simulation": None
        if sim is None
        else {
            "vectors": sim["vectors"],
            "mismatching_elements": sim["mismatching_elements"],
            "cycles": sim["cycles"],
        },
        "builds": builds,
        "faults": _faults(artefact.path / "faults.json"),
        "images": [p.name for p in sorted((artefact.path / "images").glob("*.png"))]
        if (artefact.path / "images").is_dir()
        else [],
    }


def _faults(path: Path) -> dict | None:
    """``nnloom faults``' last random campaign and targeted attack (``faults.json``)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        return None
    return {mode: data[mode] for mode in ("random", "targeted") if isinstance(data.get(mode), dict)}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figure(width=7.0, height=3.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _resource_chart(builds: dict) -> str | None:
    if not builds:
        return None
    fig, ax = _figure(7, 0.5 + 0.4 * sum(len(b["utilisation"]) for b in builds.values()))
    labels, values = [], []
    for board, data in builds.items():
        for name, entry in data["utilisation"].items():
            labels.append(f"{board}: {name} ({entry['used']}/{entry['available']})")
            values.append(entry["percent"])
    ax.barh(range(len(values)), values, color="#3b7dd8")
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of the device")
    ax.set_title("Resources against device capacity")
    return _png(fig)


def _fmax_chart(builds: dict) -> str | None:
    if not builds:
        return None
    fig, ax = _figure(5, 0.6 + 0.6 * len(builds))
    boards = list(builds)
    fmax = [builds[b]["fmax_mhz"] for b in boards]
    clock = [builds[b]["clock_mhz"] for b in boards]
    ax.barh(range(len(boards)), fmax, color="#2e9e5b", label="Fmax (nextpnr)")
    ax.scatter(
        clock, range(len(boards)), color="#c0392b", marker="|", s=400, zorder=3, label="board clock"
    )
    ax.set_yticks(range(len(boards)), boards)
    ax.set_xlabel("MHz")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Fmax against the target clock")
    return _png(fig)


def _cycles_chart(layers: list) -> str | None:
    layers = [l for l in layers if "cycles" in l]
    if not layers:
        return None
    fig, ax = _figure(7, 0.6 + 0.35 * len(layers))
    ax.barh(range(len(layers)), [l["cycles"] for l in layers], color="#8e44ad")
    ax.set_yticks(
        range(len(layers)), [f"{l['name']} ({l.get('op', '')})" for l in layers], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlabel("cycles")
    ax.set_title("Cycles per layer (latency model; the RTL is checked against it)")
    return _png(fig)


_PROTECT_STYLE = {"none": "#c0392b", "parity": "#e69f00", "secded": "#2e9e5b"}


def _flips_chart(random: dict) -> str | None:
    """Accuracy against random flips per protection: the mean over the trials, the band
    down to the worst trial; x in flips (and % of the weight bits)."""
    rows = random.get("rows") or []
    if not rows or all(r.get("accuracy_mean") is None for r in rows):
        return None
    fig, ax = _figure(6, 3.2)
    for protect in ("none", "parity", "secded"):
        mine = sorted((r for r in rows if r["protect"] == protect), key=lambda r: r["flips"])
        if not mine:
            continue
        x = [r["flips"] for r in mine]
        mean = [100 * r["accuracy_mean"] for r in mine]
        low = [100 * r["accuracy_min"] for r in mine]
        color = _PROTECT_STYLE[protect]
        ax.plot(x, mean, marker="o", color=color, label=f"{protect} (mean)")
        ax.fill_between(x, low, mean, color=color, alpha=0.15)
    if len({r["flips"] for r in rows}) > 2:
        ax.set_xscale("log")
    bits = random.get("weight_data_bits")
    ax.set_xlabel(
        f"flipped bits ({random.get('spread', 'word')})"
        + (f" of {bits} weight bits" if bits else "")
    )
    ax.set_ylabel("accuracy %")
    ax.legend(fontsize=8)
    ax.set_title(
        f"Accuracy against random flips ({random.get('trials')} trials a point; band: worst)"
    )
    return _png(fig)


def _attack_chart(targeted: dict) -> str | None:
    """The targeted attack's success after each flip, unprotected and replayed on parity
    and SECDED memories (the flip parity first detects marked)."""
    success = targeted.get("success") or []
    if not success:
        return None
    fig, ax = _figure(6, 3.0)
    x = list(range(1, len(success) + 1))
    ax.plot(x, [100 * v for v in success], marker="o", color=_PROTECT_STYLE["none"], label="none")
    for protect, what in (targeted.get("protected") or {}).items():
        rates = what.get("success")
        if rates:
            ax.plot(
                x,
                [100 * v for v in rates],
                marker=".",
                color=_PROTECT_STYLE[protect],
                label=protect,
            )
        first = what.get("first_detected_flip")
        if first:
            ax.axvline(first, color=_PROTECT_STYLE[protect], linestyle=":", linewidth=1)
    ax.set_xlabel("flips (the search's order; dotted: first flip the code detects)")
    ax.set_ylabel(f"class {targeted.get('source')} → {targeted.get('target')} %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("Targeted bit flips (T-BFA-style search)")
    return _png(fig)


def _faults_section(faults: dict) -> list[str]:
    parts = ["<h2>Bit flips in the weight memories</h2>"]
    random, targeted = faults.get("random"), faults.get("targeted")
    if random:
        parts.append(
            _table(
                [
                    [
                        r["protect"],
                        r["flips"],
                        _pct(r["accuracy_mean"]),
                        _pct(r["accuracy_min"]),
                        f"{r['trials_changed']}/{r['trials']}",
                        f"{r['trials_detected']}/{r['trials']}",
                        f"{r['corrected_mean']:.1f}",
                    ]
                    for r in random.get("rows", [])
                ],
                [
                    "memories",
                    "flips",
                    "accuracy mean",
                    "worst",
                    "trials changed",
                    "trials detected",
                    "corrected/inference",
                ],
            )
        )
        parts.append(_img(_flips_chart(random), "accuracy against random flips"))
    if targeted:
        need = targeted.get("flips_to_success")
        prot = targeted.get("protected") or {}
        parts.append(
            f"<p>Targeted attack {targeted.get('source')} → {targeted.get('target')}: "
            + (f"goal reached after {need} flips" if need else "goal not reached")
            + "".join(
                f"; {html.escape(p)}: "
                + (
                    f"detected at flip {w['first_detected_flip']}"
                    if w.get("first_detected_flip")
                    else "never detected"
                )
                + f", success {_pct(w.get('success_after_all'))}"
                for p, w in prot.items()
            )
            + ".</p>"
        )
        parts.append(_img(_attack_chart(targeted), "targeted attack"))
    return parts


def _waveform(trace_path: Path) -> str | None:
    if not trace_path.is_file():
        return None
    with np.load(trace_path) as f:
        names, samples = [str(n) for n in f["signals"]], f["samples"]
    if samples.size == 0:
        return None
    fig, ax = _figure(9, 0.4 + 0.45 * len(names))
    t = np.arange(len(samples) + 1)
    for row, name in enumerate(names):
        y = np.append(samples[:, row], samples[-1, row])
        base = (len(names) - 1 - row) * 1.5
        ax.step(t, base + 0.9 * y, where="post", color="#1f4e79", linewidth=1)
        ax.text(-0.01 * len(t), base + 0.3, name.replace("__", "."), ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(0, len(t))
    ax.set_xlabel("clock cycle")
    ax.set_title("First inference: stream handshakes and busy (from the cocotb run)")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return _png(fig)


def _img(data: str | None, alt: str) -> str:
    if data is None:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.9em}th{background:#f3f3f3}img{max-width:100%;display:block;
margin:.6em 0}.ok{color:#1e7d3c;font-weight:bold}.bad{color:#b3261e;font-weight:bold}
"""


def _table(rows: list[list], header: list[str] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render(artefact: Artefact, figures: dict) -> str:
    sim, acc = figures["simulation"], figures["accuracy"]
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>nnloom report: {html.escape(figures['design'])}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>nnloom report: {html.escape(figures['design'])}</h1>",
    ]
    source = figures["source"]
    parts.append(
        _table(
            [
                ["engine", figures["engine"]],
                ["model", source.get("model", "—")],
                ["model sha256", source.get("sha256", "—")],
                ["parameters", json.dumps(figures["parameters"], sort_keys=True)],
                ["MACs per inference", figures["macs"]],
                ["cycles per inference (model)", figures["latency_cycles"]],
            ]
        )
    )
    parts.append("<h2>Accuracy</h2>")
    if acc:
        parts.append(
            _table(
                [
                    ["float model", _pct(acc.get("float"))],
                    ["integer golden", _pct(acc.get("golden"))],
                    ["RTL simulation", _pct(acc.get("rtl"))],
                    ["test samples", acc.get("samples", "—")],
                ]
            )
        )
    else:
        parts.append("<p>No labelled data was given (<code>nnloom flow --data</code>).</p>")
    if sim is not None:
        ok = sim["mismatching_elements"] == 0
        parts.append(
            f"<p class='{'ok' if ok else 'bad'}'>RTL vs golden: "
            + (
                f"bit-exact on all {sim['vectors']} vectors"
                if ok
                else f"{sim['mismatching_elements']} elements differ"
            )
            + "</p>"
        )
    parts.append("<h2>Layers</h2>")
    parts.append(
        _table(
            [
                [
                    l.get("name"),
                    l.get("op"),
                    l.get("inputs", "—"),
                    l.get("outputs", "—"),
                    l.get("macs", "—"),
                    l.get("cycles", "—"),
                ]
                for l in figures["layers"]
            ],
            ["layer", "op", "inputs", "outputs", "MACs", "cycles"],
        )
    )
    parts.append(_img(_cycles_chart(figures["layers"]), "cycles per layer"))
    parts.append("<h2>Resources and timing</h2>")
    if figures["builds"]:
        parts.append(
            _table(
                [
                    [
                        b,
                        d["device"],
                        f"{d['fmax_mhz']:.2f}",
                        f"{d['clock_mhz']:.2f}",
                        "met" if d["timing_met"] else "MISSED",
                        d["bitstream"],
                    ]
                    for b, d in figures["builds"].items()
                ],
                ["board", "device", "Fmax MHz", "clock MHz", "timing", "bitstream"],
            )
        )
        parts.append(_img(_resource_chart(figures["builds"]), "resources"))
        parts.append(_img(_fmax_chart(figures["builds"]), "Fmax"))
    else:
        parts.append("<p>Not built yet (<code>nnloom build</code>).</p>")
    if figures.get("faults"):
        parts += _faults_section(figures["faults"])
    wave = _waveform(artefact.path / "sim" / "trace.npz")
    if wave:
        parts.append("<h2>Waveform</h2>" + _img(wave, "waveform of the first inference"))
    if figures["images"]:
        parts.append("<h2>Images</h2>")
        for name in figures["images"]:
            data = base64.b64encode((artefact.path / "images" / name).read_bytes()).decode()
            parts.append(
                f"<figure>{_img(data, name)}<figcaption>{html.escape(name)}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)


def write_report(
    artefact: Artefact | str | Path, *, accuracy: dict | None = None
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` (and ``accuracy.json`` when given)."""
    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    if accuracy is not None:
        atomic_write(
            artefact.path / "accuracy.json", json.dumps(accuracy, indent=2, sort_keys=True) + "\n"
        )
    figures = collect(artefact)
    html_path, json_path = artefact.path / "report.html", artefact.path / "report.json"
    atomic_write(json_path, json.dumps(figures, indent=2, sort_keys=True) + "\n")
    atomic_write(html_path, render(artefact, figures))
    return html_path, json_path
