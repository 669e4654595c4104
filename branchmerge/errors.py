"""One exception type for mistakes the user can fix.

The CLI turns a ``UserError`` into a one-paragraph message and exit code 2, never a traceback:
the message must say what was wrong, where (file, row, tensor), and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input, configuration or environment; ``exit_code`` is what the CLI returns."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(value: str, valid: Iterable[str]) -> str:
    """'; did you mean X?' when ``value`` is close to one of ``valid``, else ''."""
    close = difflib.get_close_matches(value, sorted(valid), n=2)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def choice_error(kind: str, value: str, valid: list[str] | tuple[str, ...]) -> UserError:
    """The standard 'unknown X' error that lists the valid choices."""
    return UserError(f"unknown {kind} {value!r}{did_you_mean(str(value), valid)}; valid choices: "
                     f"{', '.join(sorted(valid))}")
