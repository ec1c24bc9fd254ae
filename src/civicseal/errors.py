"""The root of every civicseal exception.

Each package derives its own small family from :class:`CivicsealError` so the CLI can turn any of them
into one line and an exit code. Messages name files, lines, fields and rules, never a personal value.
"""


class CivicsealError(Exception):
    """Something civicseal refused; the message is safe to print."""

    exit_code = 1
