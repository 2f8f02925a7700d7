"""Errors that are the user's to fix (a path, a dataset, an argument), not bugs in vidzoo; and
warnings about what the user asked for (printed, the command goes on)."""
from __future__ import annotations

import sys


def warn(msg: str) -> None:
    """Print ``vidzoo: warning: msg`` on stderr (the command goes on: its output is still right, but
    not what the user may think, e.g. clips that repeat frames)."""
    print(f"vidzoo: warning: {msg}", file=sys.stderr, flush=True)


class UserError(Exception):
    """A problem with what the user asked for; the CLI prints it as one line and exits with 2.

    Raise it with a message that says what was expected and what was found, e.g.
    ``UserError("--data 'clips/' does not exist")``. Anything else that escapes is a bug and is
    shown with its traceback.
    """


class NonFiniteLogitsError(UserError):
    """The model gave a NaN or infinite logit: nothing it predicts from here on can be reported.

    Stops the whole command (it is not an unreadable input to skip); the message names the model
    and the input.
    """


def note(msg: str) -> None:
    """Say ``msg`` as one line on stderr, prefixed ``vidzoo:`` as the command's errors are (a
    choice the command made for the user, not an error)."""
    import sys
    print(f"vidzoo: {msg}", file=sys.stderr, flush=True)
