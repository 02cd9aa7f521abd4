"""An event record as the Windows readers share it (EVTX, XML and JSON exports), and the
bounds of the ids a record carries: what the parsers and the event semantics both take."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ID_DIGITS", "ID_LIMIT", "Record", "plausible_id"]


@dataclass(slots=True)
class Record:
    """One event record: System fields and the EventData (or UserData) fields by name."""

    record_id: int | None
    time: str | None  # ISO 8601 UTC, microseconds, "Z"
    event_id: int | None
    channel: str | None
    provider: str | None
    computer: str | None
    data: dict[str, str | None] = field(default_factory=dict)


ID_LIMIT = 10**18  # record and event ids below this, well inside int64
ID_DIGITS = rf"^[0-9]{{1,{len(str(ID_LIMIT)) - 1}}}$"  # the same bound, for an id as text


def plausible_id(value: int | None) -> int | None:
    """A record or event id as int64 holds it, or None (a damaged or hostile file's
    2**64 - 1 must not stop the read)."""
    return value if value is not None and 0 <= value < ID_LIMIT else None
