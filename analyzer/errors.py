"""Exceptions, one per stage, each able to say where the problem is.

AuthtriageError            base; ``source`` names the file (and place) when known
├── InputError             a path, archive member or stream that cannot be read
│   └── LimitExceeded      an untrusted input broke a size or ratio limit
├── RuleError              a rule file is invalid (file:line)
└── UsageError             options that do not make sense together
"""

from __future__ import annotations

__all__ = ["AuthtriageError", "InputError", "LimitExceeded", "RuleError", "UsageError"]


class AuthtriageError(Exception):
    """Base of every error authtriage raises on purpose."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class InputError(AuthtriageError):
    """An input (file, member, stream) could not be read."""


class LimitExceeded(InputError):
    """An input exceeded a safety limit (total size, compression ratio, nesting)."""


class RuleError(AuthtriageError):
    """A rule file is invalid."""


class UsageError(AuthtriageError):
    """The caller asked for something inconsistent."""
