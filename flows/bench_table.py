"""The markdown table of ``nnloom bench`` rows: one flat dict per configuration measured,
columns in first-seen order after ``engine``, ``config``, ``family``. Below both the bench
runner (``flows.bench``) and the engines' benchmarks that print tables of their own."""

from __future__ import annotations

__all__ = ["markdown_table"]

_FIRST = ("engine", "config", "family")


def markdown_table(rows: list[dict]) -> str:
    """``rows`` as a GitHub markdown table (floats to 4 significant digits)."""
    columns = list(_FIRST)
    for row in rows:
        columns += [k for k in row if k not in columns]

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
