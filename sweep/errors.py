"""The one exception type that means "the user's input is wrong".

`python -m sweep.run` (and every other entry point) catches `UserError`, prints its message as a
single line on stderr and exits with code 2 -- before any compute starts and without writing.
"""


class UserError(Exception):
    """Bad input: config, data, paths, checkpoints. The message says what and what to do."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line
