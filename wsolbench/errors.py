"""User-facing errors: the CLI prints their message as one line, never a traceback."""


class WsolbenchError(Exception):
    """Bad input or configuration; the message names the file or option and the problem."""
