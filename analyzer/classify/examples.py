"""A rule's own examples: events it must classify (``expect: match``) or must not
(``expect: no-match``), kept in the rule file beside the rule they prove::

    examples:
      - name: five failures in two minutes
        expect: match
        common: {host: web01, user: admin, src_ip: 203.0.113.5, outcome: failure, action: logon}
        events:
          - {repeat: 5, every: 30s}
      - name: a success is no failure
        expect: no-match
        events:
          - {host: web01, user: admin, outcome: success, action: logon}

An example's events are rows of the normalized columns (:data:`analyzer.schema.COLUMNS`,
all but ``timestamp``), each with ``common`` under it. A row's time is ``at`` after the
example's start (default 0s), or a list of such times (one event each); ``repeat: N`` and
``every: D`` make N events D apart from ``at``. In a row of several events, ``{n}`` in a
value is the event's number (1, 2, …): ``user: "user{n}"``. ``profile: {networks, accounts,
ports}`` sets the platform profile (default: the built-in one, no networks).

An example runs through the classification engine itself, the rule alone in its rule set,
host roles taken from its events as ``analyze`` takes them: it matches when the rule takes
at least one of its events. ``load_rules`` checks examples are well formed; running them is
for ``authtriage rules check`` and the tests.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from .._yaml import clean, line_of
from ..config import Profile
from ..schema import COLUMNS, ENUMS, conform
from .model import Timespan

__all__ = ["Example", "parse_examples", "example_events", "START"]

START = pd.Timestamp("2025-01-06 00:00:00", tz="UTC")  # a Monday; every example's time 0
EXPECT = {"match": True, "no-match": False}
_EXAMPLE_KEYS = {"name", "expect", "common", "events", "profile"}
_ROW_KEYS = {"at", "repeat", "every"}
_PROFILE_KEYS = {"networks", "accounts", "ports"}
_INTEGER = {name for name, dtype in COLUMNS.items() if dtype.startswith(("Int", "UInt"))}
_ENUM_VALUES = {col: tuple(e.value for e in enum) for col, enum in ENUMS.items()}
_SPAN = re.compile(r"^\d+[smhdw]$")

Err = Callable[[int, str], None]


@dataclass(frozen=True, slots=True)
class Example:
    name: str
    expect: bool  # True: the rule takes at least one of the events; False: none of them
    events: tuple[Mapping[str, Any], ...]  # column → value; "timestamp": seconds after START
    profile: Profile = field(default_factory=Profile)
    line: int = 0


def _seconds(value: Any) -> int | None:
    """``90s``, ``15m``, ``2h`` → seconds (0 is ``0s``); None when it is not a duration."""
    if isinstance(value, str) and _SPAN.match(value.strip()):
        return Timespan(value.strip()).seconds
    return None


def _value_problem(col: str, value: Any) -> str | None:
    """Why ``value`` cannot be the column's (None: it can)."""
    if value is None:
        return None
    if col in _INTEGER:
        return None if isinstance(value, int) and not isinstance(value, bool) else "takes a whole number"
    if not isinstance(value, str):
        return "takes text (quote it)"
    if col in _ENUM_VALUES and "{n}" not in value and value not in _ENUM_VALUES[col]:
        return f"is one of {', '.join(_ENUM_VALUES[col])}"
    return None


def _rows(spec: dict, common: dict, line: int, where: str, err: Err) -> list[dict[str, Any]]:
    """One ``events:`` entry → its events (``timestamp``: seconds after START)."""
    row = {**common, **clean(spec)}
    ok = True
    for key in sorted(set(row) - set(COLUMNS) - _ROW_KEYS):
        err(line, f"{where}: unknown column {key!r} (columns: {', '.join(c for c in COLUMNS if c != 'timestamp')})")
        ok = False
    if "timestamp" in row:
        err(line, f"{where}: an event's time is 'at' (after the example's start), not timestamp")
        ok = False
    for col in sorted(set(row) & set(COLUMNS) - {"timestamp"}):
        if (problem := _value_problem(col, row[col])) is not None:
            err(line, f"{where}: {col} {problem}, not {row[col]!r}")
            ok = False
    at = row.pop("at", "0s")
    repeat = row.pop("repeat", None)
    every = row.pop("every", None)
    if isinstance(at, list):
        times = [_seconds(a) for a in at]
        if not at or None in times or repeat is not None or every is not None:
            err(line, f"{where}: 'at' is a duration (0s, 90s, 15m, 2h) or a list of them, without repeat/every")
            return []
    else:
        start = _seconds(at)
        if start is None:
            err(line, f"{where}: 'at' is a duration after the example's start (0s, 90s, 15m, 2h), not {at!r}")
            return []
        n = 1 if repeat is None else repeat
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10_000:
            err(line, f"{where}: repeat is a number of events (1 to 10000), not {repeat!r}")
            return []
        step = _seconds(every) if every is not None else 0
        if step is None or (n > 1 and every is None):
            err(line, f"{where}: repeat takes every, a duration between the events (30s, 15m)")
            return []
        times = [start + i * step for i in range(n)]
    if not ok:
        return []
    numbered = [k for k, v in row.items() if isinstance(v, str) and "{n}" in v]
    out = []
    for i, t in enumerate(times, 1):
        event = {"timestamp": t, **row}
        for col in numbered:
            event[col] = row[col].replace("{n}", str(i))
            if col in _ENUM_VALUES and (problem := _value_problem(col, event[col])) is not None:
                err(line, f"{where}: {col} {problem}, not {event[col]!r}")
                return []
        out.append(event)
    return out


def _profile(spec: Any, line: int, where: str, err: Err) -> Profile:
    if not isinstance(spec, dict) or set(spec) - _PROFILE_KEYS - {"__line__"}:
        err(line, f"{where}: profile takes {', '.join(sorted(_PROFILE_KEYS))}")
        return Profile()
    spec = clean(spec)
    lists = {k: v for k, v in spec.items() if isinstance(v, list)}
    if len(lists) != len(spec):
        err(line, f"{where}: the profile's {', '.join(sorted(set(spec) - set(lists)))} take lists")
        return Profile()
    try:
        networks = tuple(str(ipaddress.ip_network(str(n), strict=False)) for n in spec.get("networks", []))
    except ValueError as exc:
        err(line, f"{where}: profile networks: {exc}")
        return Profile()
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in spec.get("ports", [])):
        err(line, f"{where}: profile ports are port numbers")
        return Profile()
    default = Profile()
    return Profile(
        networks=networks,
        accounts=tuple(str(a) for a in spec.get("accounts", default.accounts)),
        ports=tuple(spec.get("ports", default.ports)),
    )


def parse_examples(value: Any, top: int, err: Err) -> tuple[Example, ...]:
    """A rule file's ``examples:`` list, every problem said at its line."""
    if not isinstance(value, list):
        err(top, "examples is a list of {name, expect, events}")
        return ()
    out: list[Example] = []
    names: dict[str, int] = {}
    for entry in value:
        if not isinstance(entry, dict):
            err(top, f"an example is a mapping of name, expect and events, not {entry!r}")
            continue
        line = line_of(entry, top)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            err(line, "an example needs a name")
            name = f"at line {line}"
        elif name in names:
            err(line, f"example {name!r} again (first at line {names[name]})")
        names.setdefault(name, line)
        where = f"example {name!r}"
        for key in sorted(set(entry) - _EXAMPLE_KEYS - {"__line__"}):
            err(line, f"{where}: unknown key {key!r} (known: {', '.join(sorted(_EXAMPLE_KEYS))})")
        expect = entry.get("expect")
        if expect not in EXPECT:
            err(line, f"{where}: expect is match or no-match, not {expect!r}")
        common = entry.get("common", {})
        if not isinstance(common, dict):
            err(line, f"{where}: common is a mapping of column: value, shared by its events")
            common = {}
        events = entry.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
            err(line, f"{where}: events is a list of events (mappings of column: value)")
            events = []
        rows = [row for spec in events for row in _rows(spec, clean(common), line_of(spec, line), where, err)]
        profile = _profile(entry["profile"], line, where, err) if "profile" in entry else Profile()
        if expect in EXPECT and rows:
            frozen = tuple(MappingProxyType(r) for r in rows)
            out.append(Example(name=name, expect=EXPECT[expect], events=frozen, profile=profile, line=line))
    return tuple(out)


def example_events(example: Example) -> pd.DataFrame:
    """The example's events as the normalized frame ``analyze`` classifies."""
    frame = pd.DataFrame([dict(r) for r in example.events])
    frame["timestamp"] = (START + pd.to_timedelta(frame["timestamp"], unit="s")).dt.as_unit("us")
    for col in frame.columns:
        if COLUMNS[col] == "category":
            frame[col] = frame[col].astype("category")
    return conform(frame)  # numbers into their integer columns
