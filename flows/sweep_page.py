"""``sweep.html``: one self-contained page of a sweep: per board, latency against LUT4 and
against DSP blocks with the Pareto front drawn (matplotlib SVG inline), then every point's
row. The same rows give the same bytes (no dates or random ids in the SVG)."""

from __future__ import annotations

import html
import io

__all__ = ["render"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
font-size:.85em;text-align:right}th{background:#f3f3f3}td.l{text-align:left}
tr.front td{background:#eef7ee}.plots{display:flex;flex-wrap:wrap;gap:1em}
.plots svg{max-width:560px;height:auto}
"""

_LABELS = {"lut4": "LUT4", "dsp": "DSP blocks"}


def _latency(row):
    if row["latency_us"] is not None:
        return row["latency_us"]
    return row["cycles"] / row["clock_mhz"] if row["cycles"] is not None else None


def _svg(board: str, rows: list[dict], front_ids: set[str], resource: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est = all(r[resource] is None for r in rows)
    key = f"{resource}_est" if est else resource
    pts = [
        (r[key], _latency(r), r["id"])
        for r in rows
        if r["status"] in ("ok", "timing") and r[key] is not None and _latency(r)
    ]
    with plt.rc_context({"svg.hashsalt": "nnloom-sweep", "svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(5.4, 3.6))
        if pts:
            ax.scatter(
                [p[0] for p in pts], [p[1] for p in pts], s=18, color="#9aa5b1", label="point"
            )
            front = sorted((p for p in pts if p[2] in front_ids), key=lambda p: p[0])
            ax.plot(
                [p[0] for p in front],
                [p[1] for p in front],
                "o-",
                color="#1e7d3c",
                label="Pareto set",
            )
            for x, y, ident in front:
                ax.annotate(
                    ident[:6], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
            ax.legend(fontsize=8)
        ax.set_xlabel(_LABELS[resource] + (" (estimated: no synthesis)" if est else ""))
        ax.set_ylabel(
            "latency µs"
            + (" at the clock asked" if any(r["latency_us"] is None for r in rows) else " at Fmax")
        )
        ax.set_title(f"{board}: latency vs {_LABELS[resource]}", fontsize=10)
        ax.grid(alpha=0.3)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v:g}" for k, v in value.items())
    return str(value)


def render(rows: list[dict], fronts: dict[str, list[str]], meta: dict, key: str = "") -> str:
    """The page; ``key`` (a content hash) goes in its head so an unchanged page is kept."""
    on_front = set(fronts.get("lut4", [])) | set(fronts.get("dsp", []))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        + (f"<meta name='nnloom-sweep-key' content='{key}'>" if key else "")
        + "<title>nnloom sweep: "
        f"{html.escape(str(meta.get('model_name', '')))}</title><style>{_CSS}</style>"
        f"</head><body><h1>nnloom sweep: {html.escape(str(meta.get('model_name', '')))}"
        f"</h1><p>{len(rows)} points; model sha256 "
        f"{html.escape(str(meta.get('model_sha256', ''))[:16])}…; tools: "
        + html.escape(", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items() if v))
        + "</p>"
    ]
    for board in dict.fromkeys(r["board"] for r in rows):
        mine = [r for r in rows if r["board"] == board]
        parts.append(f"<h2>{html.escape(board)}</h2><div class='plots'>")
        for resource in ("lut4", "dsp"):
            parts.append(_svg(board, mine, set(fronts.get(resource, [])), resource))
        parts.append("</div>")
    columns = (
        "id",
        "board",
        "dsp_lanes",
        "lut_lanes",
        "lut_mode",
        "split",
        "clock_mhz",
        "seeds",
        "cycles",
        "fmax_mhz",
        "fmax_seeds",
        "latency_us",
        "lut4",
        "cells",
        "ff",
        "dsp",
        "ram",
        "accuracy",
        "sim",
        "status",
        "reason",
    )
    parts.append(
        "<h2>Every point</h2><p>Shaded rows are on a Pareto front (latency vs LUT4 "
        "or vs DSP).</p><table><tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    )
    for r in rows:
        cls = " class='front'" if r["id"] in on_front else ""
        parts.append(
            f"<tr{cls}>"
            + "".join(
                f"<td{' class=l' if c in ('id', 'board', 'reason', 'status') else ''}>"
                f"{html.escape(_cell(r.get(c)))}</td>"
                for c in columns
            )
            + "</tr>"
        )
    parts.append("</table></body></html>\n")
    return "".join(parts)
