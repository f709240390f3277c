"""The one error type nnloom raises for a problem with the user's model or input."""

from __future__ import annotations

__all__ = ["ModelError"]


class ModelError(Exception):
    """A model, file or tensor that nnloom cannot take, with a message naming it.

    The message is meant to be shown to the user as one line, without a traceback.
    """
