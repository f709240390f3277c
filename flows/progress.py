"""Progress of long steps on the terminal: a bar where a count is known (vectors simulated,
benchmarks run), a spinner otherwise (synthesis, place and route). Nothing is shown when the
console is not a terminal, so logs, pipes and tests see only the results.

``with progress(console, "simulating") as update: update(done, total, "text")`` — every
argument of ``update`` is optional and ``update`` may be called from another thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["progress", "Update"]

Update = Callable[..., None]


def _nothing(*args, **kwargs) -> None:
    return None


class _Count(ProgressColumn):
    """``done/total`` once the total is known; nothing before."""

    def render(self, task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


@contextmanager
def progress(console: Console, description: str, *, total: int | None = None) -> Iterator[Update]:
    """A transient progress line on ``console`` while the block runs; yields ``update(done=None,
    total=None, description=None)``. A bar once ``total`` is known, a spinner before."""
    if not console.is_terminal:
        yield _nothing
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(
            done: int | None = None, total: int | None = None, description: str | None = None
        ) -> None:
            changes = {
                k: v
                for k, v in (("completed", done), ("total", total), ("description", description))
                if v is not None
            }
            bar.update(task, **changes)

        yield update
