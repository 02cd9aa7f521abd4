"""Rules: Sigma-style detections over the normalized columns, plus group conditions.

A rule file (YAML, one rule per file) looks like::

    id: root-refused-by-policy
    title: sshd refuses root by policy
    cause: probe-root-refused   # one of rules/causes.yaml; the verdict is the cause's
    confidence: high
    priority: 30
    detection:
      refused:
        service: ssh
        reason: root-login-refused
      condition: refused
    group:                      # optional (Sigma correlations and more)
      group-by: [host, src_ip, user]
      timespan: 1d
      count: {gte: 3}

Everything is checked when loaded (:mod:`.load`); problems are reported as
``file:line: message``, at the line of the key or value at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..schema import COLUMNS
from .condition import Node

if TYPE_CHECKING:
    from .examples import Example

__all__ = [
    "VERDICTS",
    "ROLES",
    "CONFIDENCES",
    "Item",
    "Selection",
    "Rule",
    "Timespan",
    "GROUP_KEYS",
    "Bounds",
    "ValueCount",
    "Periodicity",
    "Sequence",
    "Group",
]

VERDICTS = ("expected", "misconfiguration", "attack", "user-error", "unknown")
CONFIDENCES = ("high", "medium", "low")
ROLES = ("domain-controller", "windows", "linux", "unknown")  # a host's role (host_role conditions)
# group condition keys and what each takes
GROUP_KEYS = {
    "group-by": "list of columns",
    "timespan": "a duration such as 15m, 6h, 7d",
    "count": "{gte|gt|lte|lt: N}",
    "value_count": "{field: column, gte|gt|lte|lt: N}",
    "periodicity": "{max_cv: x, min_beats: N}",
    "host_role": "list of roles",
    "followed_by": "{match: {field: value, …}, within: duration, count: {gte: N}}",
    "preceded_by": "{match: {field: value, …}, within: duration, count: {gte: N}}",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPAN = re.compile(r"^(\d+)([smhdw])$")


@dataclass(frozen=True, slots=True)
class Timespan:
    """``15m`` → 900 seconds."""

    text: str
    seconds: int = field(init=False)

    def __post_init__(self) -> None:
        m = _SPAN.match(str(self.text).strip())
        if not m:
            raise ValueError(f"timespan {self.text!r} is not a number and a unit (s, m, h, d, w)")
        object.__setattr__(self, "seconds", int(m.group(1)) * _UNITS[m.group(2)])


@dataclass(frozen=True, slots=True)
class Item:
    """One ``field|modifier|modifier: value(s)`` line of a selection."""

    field: str
    modifiers: tuple[str, ...]
    values: tuple[Any, ...]

    @property
    def column_dtype(self) -> str:
        return COLUMNS[self.field]


@dataclass(frozen=True, slots=True)
class Selection:
    """A named selection: a mapping (all items must hold) or a list of mappings (any)."""

    name: str
    alternatives: tuple[tuple[Item, ...], ...]


@dataclass(frozen=True, slots=True)
class Bounds:
    """``{gte|gt|lte|lt: N}``: comparisons of a count that must all hold (None: not set)."""

    gte: int | None = None
    gt: int | None = None
    lte: int | None = None
    lt: int | None = None

    @property
    def lower(self) -> bool:
        """Whether it sets a lower bound (such a count is taken in a window: "N within a timespan")."""
        return self.gte is not None or self.gt is not None

    def admits_some(self) -> bool:
        """Whether some count (a whole number ≥ 0) meets every bound."""
        low = max(0, self.gte if self.gte is not None else 0, self.gt + 1 if self.gt is not None else 0)
        highs = [h for h in (self.lte, None if self.lt is None else self.lt - 1) if h is not None]
        return not highs or low <= min(highs)


@dataclass(frozen=True, slots=True)
class ValueCount:
    """Distinct values of ``field`` per group (``group_by``; None: the rule's grouping),
    counted among the candidate events, or with ``among`` among the events it selects."""

    field: str
    bounds: Bounds
    group_by: tuple[str, ...] | None = None
    among: Selection | None = None


@dataclass(frozen=True, slots=True)
class Periodicity:
    """A steady cadence; None: the profile's threshold."""

    max_cv: float | None = None
    min_beats: int | None = None
    min_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class Sequence:
    """``followed_by`` / ``preceded_by``: events of the group that ``match`` within ``within``
    after (or before) a candidate, as many as ``count`` says."""

    match: Selection
    within: Timespan
    count: Bounds = Bounds(gte=1)


@dataclass(frozen=True, slots=True)
class Group:
    """A rule's group conditions (all must hold; see :mod:`analyzer.classify.engine`)."""

    by: tuple[str, ...] = ()
    timespan: Timespan | None = None
    count: Bounds | None = None
    value_count: ValueCount | None = None
    periodicity: Periodicity | None = None
    host_role: tuple[str, ...] | None = None
    followed_by: Sequence | None = None
    preceded_by: Sequence | None = None

    @property
    def aggregates(self) -> bool:
        """Whether a condition looks at several events (not only each event and its host)."""
        parts = (self.count, self.value_count, self.periodicity, self.followed_by, self.preceded_by)
        return any(p is not None for p in parts)

    def keeps_hosts_apart(self) -> bool:
        """Whether every condition over several events sees one host's events only (then
        hosts can be classified separately)."""
        if not self.aggregates:
            return True
        if "host" not in self.by:
            return False
        vc = self.value_count
        return vc is None or "host" in (self.by if vc.group_by is None else vc.group_by)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    cause: str
    verdict: str
    confidence: str
    priority: int
    selections: dict[str, Selection]
    condition: Node
    condition_text: str
    group: Group | None = None
    description: str = ""
    when: dict[str, str] | None = None  # profile conditions: {platform_networks: configured|unset}
    examples: tuple[Example, ...] = field(default=(), compare=False)  # read by rules check, not by analyze
    path: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"
