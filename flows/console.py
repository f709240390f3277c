"""The consoles every command prints to, and ``run_command``: a user's mistake as one line.

An ``NnloomError`` (``frontends.errors``) raised by a command body is printed as
``error: <message>`` on stderr and the command exits with status 1; any other exception is a
bug in nnloom and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from frontends.errors import NnloomError

__all__ = ["console", "err_console", "run_command"]

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def run_command(body: Callable[[], T]) -> T:
    """Run a command body; an ``NnloomError`` becomes one line on stderr and exit status 1."""
    try:
        return body()
    except NnloomError as exc:
        err_console.print(
            f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
