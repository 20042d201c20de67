"""The one exception type that reaches the user as a sentence, never as a traceback."""

from __future__ import annotations


class LorabakeError(Exception):
    """A problem the user can fix. `str()` is one line naming what and where; `hint` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
