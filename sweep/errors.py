"""The one exception type that means "the user's input is wrong", and the boundary that makes it.

`python -m sweep.run` (and every other entry point) catches `UserError`, prints its message as a
single line on stderr and exits with code 2 -- before any compute starts and without writing.
`trainers/` know nothing of this: they raise `ValueError` for arguments they cannot use; the
sweep layer wraps its calls into them on user input with `user_errors()`.
"""
from __future__ import annotations

import contextlib


class UserError(Exception):
    """Bad input: config, data, paths, checkpoints. The message says what and what to do."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


@contextlib.contextmanager
def user_errors():
    """Inside: a ValueError (a trainer refusing the user's input) becomes a UserError."""
    try:
        yield
    except ValueError as e:
        raise UserError(str(e)) from None


def require(ok: bool, message: str) -> None:
    """UserError(message) unless ok."""
    if not ok:
        raise UserError(message)

