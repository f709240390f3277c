"""The consoles every command prints to, and ``run_command``: a user's mistake as one line.

An ``NnloomError`` (``frontends.errors``) raised by a command body is printed as
``error: <message>`` on stderr and the command exits with status 1; any other exception is a
bug in nnloom and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from frontends.errors import NnloomError

__all__ = ["console", "err_console", "run_command", "print_wide"]

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


def print_wide(*objects: object, **kwargs: object) -> None:
    """Print on ``console``; not on a terminal (a pipe, a file) nothing is wrapped or cut: a
    table keeps one line a row and every cell whole, whatever its width."""
    if console.is_terminal:
        console.print(*objects, **kwargs)
    else:  # a console as wide as the longest row (Console.print caps width at its own)
        Console(file=sys.stdout, width=100_000).print(*objects, soft_wrap=True, **kwargs)
