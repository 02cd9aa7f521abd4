"""What the Linux message catalog holds: families of programs, the patterns of their
messages (regex, fixed values, role) and the patterns' fast regexes.

:mod:`.catalog` loads these from the data file and checks them; :mod:`.linux` matches
messages with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AUTH_FAMILIES", "Catalog", "FILLABLE", "Family", "Fast", "Pattern", "SETTABLE"]

# Columns a pattern may fill from a named group (a trailing digit allows alternatives:
# `user2` also fills `user`).
FILLABLE = (
    "user",
    "domain",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "auth_method",
    "status",
)
SETTABLE = ("action", "outcome", "service", "reason", "user", "auth_method", "dst_port")
# the families whose lines no pattern matches count as unparsed (the tool could not read a
# line it should have); lines of the other families are irrelevant then
AUTH_FAMILIES = ("sshd", "pam", "sudo", "su", "login", "accounts")


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    programs: tuple[str, ...]  # "*" means any program
    line_filter: str


@dataclass(frozen=True, slots=True)
class Fast:
    """A stricter regex for a pattern's common shape, tried before the pattern's own: where
    it matches, it captures what the pattern's regex would (``fixed``: groups it does not
    capture but whose value its shape fixes). Lazy ``.*?`` groups and more than four groups
    keep RE2 on its backtracking engine (~600 ns a row); a one-pass regex with at most four
    groups takes ~170."""

    regex: str
    groups: tuple[str, ...]
    fixed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pattern:
    id: str
    family: str
    first: tuple[str, ...]
    regex: str
    set: dict[str, str] = field(default_factory=dict)
    map: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    role: str = "attempt"
    groups: tuple[str, ...] = ()
    line: int = 0
    fast: tuple[Fast, ...] = ()

    def column_groups(self) -> dict[str, list[str]]:
        """Column -> the groups that fill it, in order of preference."""
        out: dict[str, list[str]] = {}
        for g in self.groups:
            base = g.rstrip("0123456789")
            if base in FILLABLE:
                out.setdefault(base, []).append(g)
        return out


@dataclass(frozen=True, slots=True)
class Catalog:
    families: dict[str, Family]
    patterns: tuple[Pattern, ...]
    path: str
    skip_lines: tuple[str, ...] = ()

    def skip_filter(self) -> str | None:
        """One RE2 alternation of the known-noise lines, or None."""
        return "|".join(f"(?:{s})" for s in self.skip_lines) or None

    def line_filter(self) -> str:
        """One RE2 alternation that finds every line any family may care about."""
        return "|".join(f"(?:{f.line_filter})" for f in self.families.values())

    def auth_filter(self) -> str:
        """One RE2 alternation of the AUTH_FAMILIES' line filters: a line it finds that no
        pattern matched is unparsed, not irrelevant."""
        return "|".join(f"(?:{self.families[f].line_filter})" for f in AUTH_FAMILIES if f in self.families)
