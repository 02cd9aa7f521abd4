"""What a read is asked and what it gives back: the options of a read
(:class:`IngestOptions`), the account of one input (:class:`InputReport`), the result of
a read (:class:`IngestResult`), and the signature every format's reader has (:data:`Reader`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from ..errors import UsageError
from .sources import Limits, Skipped, Source
from .workers import usable_cpus

__all__ = ["IngestOptions", "InputReport", "IngestResult", "Reader", "MAX_SAMPLES"]

MAX_SAMPLES = 20  # unparsed lines (and warnings of a kind) one input's report keeps


@dataclass(frozen=True, slots=True)
class IngestOptions:
    tz: str | None = None  # IANA zone for zone-less timestamps; None means UTC
    year: int | None = None  # year of the first RFC 3164 line of each input
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    limits: Limits = field(default_factory=Limits)
    keep_raw: bool = True  # keep each event's original line (`raw`); summaries can do without
    lazy_raw: bool = False  # syslog-framed lines without `raw`: analyzer.evidence fetches those quoted
    jobs: int = field(default_factory=usable_cpus)  # worker processes for large inputs
    evtx_backend: str = "rust"  # or "python" (python-evtx)
    evtx_after: int = 0  # skip EVTX records with an EventRecordID up to this (incremental runs)

    def zone(self) -> dt.tzinfo:
        """The zone of times that carry none (and a check of the options a user gives)."""
        if self.year is not None and not 1970 <= self.year <= 9999:
            raise UsageError(f"--year {self.year}: give a year from 1970 to 9999")
        if not self.tz:
            return dt.UTC
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise UsageError(f"unknown time zone {self.tz!r} (use an IANA name such as Europe/Berlin)") from exc


@dataclass
class InputReport:
    """What was read from one input and what became of it."""

    name: str
    format: str | None = None
    lines: int = 0  # text lines read
    records: int = 0  # records read (EVTX, Windows exports)
    events: int = 0
    used: int = 0  # lines that became or enriched an event
    irrelevant: int = 0
    unparsed: int = 0
    unparsed_samples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # the input could not be read (bad archive, limit, I/O)
    skipped: bool = False
    skip_reason: str | None = None  # read, but not a format authtriage reads
    assumptions: dict[str, str] = field(default_factory=dict)
    first_record: int | None = None  # lowest and highest EventRecordID in the file (EVTX)
    last_record: int | None = None

    @classmethod
    def skipped_input(cls, item: Skipped) -> InputReport:
        """The report of an input that was not read: an error, or a deliberate skip."""
        if item.error:
            return cls(name=item.name, skipped=True, error=item.reason)
        return cls(name=item.name, skipped=True, skip_reason=item.reason)

    def sample_unparsed(self, texts: list[str]) -> None:
        room = MAX_SAMPLES - len(self.unparsed_samples)
        if room > 0:
            self.unparsed_samples.extend(t[:500] for t in texts[:room])

    def merge(self, part: InputReport) -> None:
        """Add the counts and unparsed samples of ``part`` (a block of this input, or a
        member of the archive this report stands for) to these."""
        self.lines += part.lines
        self.records += part.records
        self.events += part.events
        self.used += part.used
        self.irrelevant += part.irrelevant
        self.unparsed += part.unparsed
        self.sample_unparsed(part.unparsed_samples)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestResult:
    events: pd.DataFrame
    inputs: list[InputReport]
    # with --since/--until: the events read but outside the window, and the times of all
    # events read (first, last), so a report over an empty window can say what it missed
    outside: int = 0
    read_span: tuple[pd.Timestamp | None, pd.Timestamp | None] = (None, None)
    # the events spilled to disk by host (then ``events`` is empty): an ingest.store.EventStore
    stored: Any = None

    @property
    def readable(self) -> bool:
        """Whether some input was read: whole, or in part before a fault (what came before it counts)."""
        return any(not r.skipped and (r.error is None or r.lines or r.records) for r in self.inputs)

    @property
    def skipped(self) -> list[InputReport]:
        return [r for r in self.inputs if r.skipped]


Reader = Callable[[Source, IngestOptions, InputReport], pd.DataFrame]
