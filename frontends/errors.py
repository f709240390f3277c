"""The errors nnloom raises for something the user gave it (a model, a file, an option, a
board): every one derives from ``NnloomError``.

The command line shows an ``NnloomError`` as one line naming the user's thing and exits with
status 1; any other exception from nnloom's code is a bug and keeps its traceback. This is the
lowest layer: every package may import it.
"""

from __future__ import annotations

__all__ = ["NnloomError", "ModelError", "UsageError"]


class NnloomError(Exception):
    """A problem the user caused, with a message naming their thing and why; shown as one
    line without a traceback."""


class ModelError(NnloomError):
    """A model, file or tensor that nnloom cannot take, with a message naming it."""


class UsageError(NnloomError):
    """A command-line option, file or value the user gave that a command cannot take."""
