"""Readers for Windows inputs: EVTX, Event Viewer / wevtutil XML, Get-WinEvent JSON,
and the Windows Firewall's pfirewall.log."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
import xml.etree.ElementTree as ET
from collections import deque
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from ..errors import InputError
from ..schema import COLUMNS, MAXIMA, concat_events, conform, empty_events
from .evtx import (
    ChunkRange,
    Record,
    chunk_ranges,
    chunk_spans,
    note_id_range,
    read_python,
    read_rust_tables,
    record_from_xml,
)
from .sources import loads_text
from .syslog import MAX_LINE_BYTES, line_list
from .windows import events_from_tables, load_semantics, records_to_events

if TYPE_CHECKING:
    from . import IngestOptions, InputReport
    from .sources import Source

__all__ = ["evtx_texts", "read_evtx", "read_windows_xml", "read_windows_json", "read_pfirewall"]

_CHUNK_NUMBER = re.compile(r"(chunk number )(\d+)")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.S)
_DATE_MS = re.compile(r"/Date\((-?\d+)\)/")


def _warn_into(rep: InputReport, limit: int = 50):
    def warn(msg: str) -> None:
        if len(rep.warnings) < limit:
            rep.warnings.append(msg)
        elif len(rep.warnings) == limit:
            rep.warnings.append("… more warnings not shown")

    return warn


BATCH = 50_000  # records normalized at a time (bounds the memory of a large log)
# with more than one job, an EVTX file on disk of at least two parts is parsed in parts of
# about this many 64 KiB chunks (24 MiB, ~60,000 records) by worker processes: a part's
# fixed costs (parser, one frame per event id, results sent back) made 128 cost 15 % more
# than 256 and 256 4 % more than 384 (interleaved runs, 500k records)
PART_CHUNKS = 384


def _finish_records(
    records, rep: InputReport, src: Source, opts: IngestOptions, log: str, counts: dict
) -> pd.DataFrame:  # noqa: E501
    """Normalize records batch by batch and account for every one of them in ``rep``."""
    records = iter(records)
    frames, used = [], 0
    while batch := list(itertools.islice(records, BATCH)):
        events, n = records_to_events(batch, src.name, log, keep_raw=opts.keep_raw)
        frames.append(events)
        used += n
    events = concat_events(frames, consume=True)
    return _account_records(_by_record(events) if log == "evtx" else events, used, rep, counts)


def read_evtx(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    counts = {"records": 0}
    sem = load_semantics()
    rep.assumptions["evtx_backend"] = opts.evtx_backend
    if opts.evtx_backend == "python":
        records = read_python(src.read(), sem.wanted, _warn_into(rep), counts, opts.evtx_after)
        return _finish_records(records, rep, src, opts, "evtx", counts)
    if opts.evtx_backend != "rust":
        raise ValueError(f"unknown EVTX backend {opts.evtx_backend!r}: rust or python")
    # the Rust parser's JSON is parsed column-wise by pyarrow, batch by batch; a file on
    # disk is opened by the parser itself, anything else (an archive member) is read first
    where = src.on_disk() or io.BytesIO(src.read())
    # with lazy_raw the evidence text is rendered again for the records a report quotes
    # (evtx_texts), not kept for every event
    keep = opts.keep_raw and not opts.lazy_raw
    parts = chunk_ranges(where, PART_CHUNKS, opts.jobs) if isinstance(where, str) and opts.jobs > 1 else None
    if parts:
        frames, used = _read_parts(where, parts, src.name, opts, rep, counts, keep)
    else:
        frames, used = [], 0
        from . import in_worker

        threaded = not in_worker()
        rust = read_rust_tables(
            where, sem, _warn_into(rep), counts, BATCH, opts.evtx_after, opts.jobs, json_threads=threaded
        )
        for batch in rust:
            events, n = events_from_tables(sem, batch, src.name, "evtx", keep, set(), ordered=False)
            frames.append(events)
            used += n
    return _account_records(_by_record(concat_events(frames, consume=True)), used, rep, counts)


def _read_parts(
    path: str, parts: list[tuple[int, int]], name: str, opts: IngestOptions, rep: InputReport, counts: dict, keep: bool
) -> tuple[list[pd.DataFrame], int]:
    """A large EVTX file's chunk ranges, each parsed and normalized in a worker process;
    the results come back in file order, at most two per worker in flight."""
    from . import _pool

    pool = _pool(opts.jobs)
    warn = _warn_into(rep)
    frames: list[pd.DataFrame] = []
    used = 0
    pending: deque = deque()

    def take() -> None:
        nonlocal used
        events, n, part_counts, warnings = pending.popleft().result()
        frames.append(events)
        used += n
        counts["records"] += part_counts["records"]
        counts["failed"] = counts.get("failed", 0) + part_counts.get("failed", 0)
        note_id_range(counts, part_counts.get("min_id"), part_counts.get("max_id"))
        for msg in warnings:
            warn(msg)

    for lo, hi in parts:
        pending.append(pool.submit(_read_part, path, lo, hi, name, keep, opts.evtx_after))
        if len(pending) >= 2 * opts.jobs:
            take()
    while pending:
        take()
    return frames, used


def _read_part(
    path: str, lo: int, hi: int, name: str, keep_raw: bool, after: int
) -> tuple[pd.DataFrame, int, dict, list[str]]:
    """Chunks ``lo``…``hi-1`` of an EVTX file → (events, records used, counts, warnings),
    in a worker process."""
    sem = load_semantics()
    counts: dict = {"records": 0}
    warnings: list[str] = []
    frames, used = [], 0

    def warn(msg: str) -> None:  # the parser counts chunks from the start of its range
        warnings.append(f"chunks {lo}-{hi - 1}: " + _CHUNK_NUMBER.sub(lambda m: f"{m[1]}{int(m[2]) + lo}", msg))

    with ChunkRange(path, lo, hi) as part:
        for batch in read_rust_tables(part, sem, warn, counts, BATCH, after, 1, json_threads=False):
            events, n = events_from_tables(sem, batch, name, "evtx", keep_raw, set(), ordered=False)
            frames.append(events)
            used += n
    # ordered here, in the worker: parts in file order then need no sorting in the parent
    # no release() here: the worker goes on to the next part of the file at once, and
    # handing its free pages back only had it fault them in again (the pool's workers
    # exit when the read is done)
    return _by_record(concat_events(frames, consume=True)), used, counts, warnings


def evtx_texts(where: str | BinaryIO, name: str, ids: list[int]) -> dict[int, str]:
    """The evidence text of the records ``ids`` of the EVTX file ``name`` (a path, or its
    bytes), as a read with raw text would give it: only the records themselves are
    decoded, from the chunks whose headers say they hold them."""
    sem = load_semantics()
    wanted = set(ids)
    spans = chunk_spans(where)
    first = np.array([s[1] for s in spans], dtype=np.int64)
    last = np.array([s[2] for s in spans], dtype=np.int64)
    index = np.array([s[0] for s in spans], dtype=np.int64)
    chunks = sorted({int(c) for rid in wanted for c in index[(first <= rid) & (rid <= last)]})
    out: dict[int, str] = {}

    def scan(fileobj, only: set[int] | None) -> None:
        for batch in read_rust_tables(fileobj, sem, lambda _: None, {"records": 0}, BATCH, 0, 1, only):
            events, _ = events_from_tables(sem, batch, name, "evtx", True, set(), ordered=False)
            hit = events["locator"].isin(wanted).to_numpy(dtype=bool, na_value=False)
            for loc, raw in zip(events["locator"][hit].tolist(), events["raw"][hit].tolist(), strict=True):
                out.setdefault(int(loc), raw)

    if chunks:
        with ChunkRange(where, chunks=chunks) as part:
            scan(part, wanted)
    if wanted - out.keys():
        # headers that do not say (a dirty file), or records whose System EventRecordID (the
        # locator) is not the number in their header (records cut out of a larger log): the
        # whole file, each record known by its locator
        if not isinstance(where, str):
            where.seek(0)
        scan(where, None)
    return {rid: out[rid] for rid in ids if rid in out}


def _by_record(events: pd.DataFrame) -> pd.DataFrame:
    """A file's events in record order, however its records were batched or shared out."""
    if len(events) < 2:
        return events
    locator = events["locator"].to_numpy(dtype="float64", na_value=np.inf)
    if (np.diff(locator) >= 0).all():
        return events
    order = np.argsort(locator, kind="stable")
    return events.take(order).reset_index(drop=True)


def _account_records(events: pd.DataFrame, used: int, rep: InputReport, counts: dict) -> pd.DataFrame:
    failed = counts.get("failed", 0)  # records the parser could not decode
    if counts.get("max_id") is not None:
        rep.first_record, rep.last_record = counts["min_id"], counts["max_id"]
    rep.records += counts["records"]
    rep.used += used
    rep.unparsed += failed
    rep.irrelevant += counts["records"] - used - failed
    rep.events += len(events)
    return events


def _decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")  # (an export cut at an odd byte)
    return data.decode("utf-8-sig", "replace")


def read_windows_xml(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """Event Viewer "Save as XML" (<Events> root) or `wevtutil qe /f:xml` (bare <Event>s)."""
    text = _XML_DECL.sub("", _decode_text(src.read()))
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        try:
            root = ET.fromstring(f"<Events>{text}</Events>")
        except ET.ParseError as exc:
            raise InputError(f"not well-formed XML: {exc}") from exc
    events = [root] if root.tag.endswith("Event") and not root.tag.endswith("Events") else list(root)
    sem = load_semantics()
    counts = {"records": len(events)}
    records: list[Record] = []
    for el in events:
        try:
            rec = record_from_xml(el)
        except (ET.ParseError, ValueError) as exc:
            rep.unparsed += 1
            rep.sample_unparsed([f"{type(exc).__name__}: {exc}"])
            continue
        if sem.wanted(rec.channel, rec.event_id):
            records.append(rec)
    return _finish_records(records, rep, src, opts, "windows-xml", counts)


def _ps_time(value: object) -> str | None:
    if isinstance(value, str):
        m = _DATE_MS.search(value)
        if m:
            t = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(m.group(1)))
            return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value
    if isinstance(value, dict):  # ConvertTo-Json -Depth gives {"value": "/Date(..)/", "DateTime": ...}
        return _ps_time(value.get("value") or value.get("DateTime"))
    return None


def read_windows_json(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """`Get-WinEvent | ConvertTo-Json`: values by position in Properties, names from the table."""
    try:
        doc = loads_text(_decode_text(src.read()))
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}") from exc
    items = doc if isinstance(doc, list) else [doc]
    sem = load_semantics()
    counts = {"records": len(items)}
    records: list[Record] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        eid = item.get("Id")
        channel = item.get("LogName")
        if not sem.wanted(channel, eid):
            continue
        values = [(p.get("Value") if isinstance(p, dict) else p) for p in item.get("Properties") or []]
        names = sem.properties.get(int(eid), [])
        data = {n: (None if v is None else str(v)) for n, v in zip(names, values, strict=False)}
        records.append(
            Record(
                record_id=item.get("RecordId"),
                time=_ps_time(item.get("TimeCreated")),
                event_id=int(eid),
                channel=channel,
                provider=item.get("ProviderName"),
                computer=item.get("MachineName"),
                data=data,
            )
        )
    return _finish_records(records, rep, src, opts, "windows-json", counts)


def read_pfirewall(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """Windows Firewall log: columns from its `#Fields:` header, local time (`--tz`).

    Inbound TCP drops become firewall-drop events; allowed traffic is irrelevant here."""
    lines = src.read().decode("utf-8", "replace").splitlines()
    fields: list[str] | None = None
    rows: list[dict] = []
    too_long: list[int] = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            rep.irrelevant += 1
            continue
        if len(line) > MAX_LINE_BYTES:  # (characters: at least as many bytes) no firewall writes one
            too_long.append(no)
            rep.unparsed += 1
            continue
        if line.startswith("#"):
            rep.irrelevant += 1
            if line.startswith("#Fields:"):
                fields = line.split(":", 1)[1].split()
            continue
        parts = line.split()
        if fields is None or len(parts) < len(fields):
            rep.unparsed += 1
            rep.sample_unparsed([line])
            continue
        rec = dict(zip(fields, parts, strict=False))
        action = rec.get("action", "").upper()
        path = rec.get("path", "-").upper()
        if action != "DROP" or rec.get("protocol", "").upper() != "TCP" or path == "SEND":
            rep.irrelevant += 1
            continue
        rows.append(
            {
                "when": f"{rec.get('date')} {rec.get('time')}",
                "locator": no,
                "src_ip": rec.get("src-ip"),
                "dst_ip": rec.get("dst-ip"),
                "src_port": rec.get("src-port"),
                "dst_port": rec.get("dst-port"),
                "pid": rec.get("pid"),
                "raw": line if opts.keep_raw else None,
            }
        )
        rep.used += 1
    rep.lines = len(lines)
    if too_long:
        rep.warnings.append(f"line(s) longer than {MAX_LINE_BYTES // 1024} KiB not read: {line_list(too_long)}")
    if not rows:
        return empty_events()
    frame = pd.DataFrame(rows)
    naive = pd.to_datetime(frame.pop("when"), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    zone = opts.zone()
    local = pd.DatetimeIndex(naive).tz_localize(
        zone if opts.tz else "UTC", ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    frame["timestamp"] = local.tz_convert("UTC").as_unit("us")
    rep.assumptions["timezone"] = f"{opts.tz or 'UTC'} for pfirewall.log local times" + (
        "" if opts.tz else " (assumed; use --tz)"
    )
    for col in ("src_ip", "dst_ip"):
        frame[col] = frame[col].replace("-", None)
    for col in ("src_port", "dst_port", "pid"):
        nums = pd.to_numeric(frame[col].replace("-", None), errors="coerce", dtype_backend="numpy_nullable")
        frame[col] = nums.where((nums >= 0) & (nums <= MAXIMA[col])).astype("Float64").astype(COLUMNS[col])
    frame["action"] = "firewall-drop"
    frame["outcome"] = "blocked"
    frame["service"] = "network"
    frame["reason"] = "firewall"
    frame["auth_method"] = "TCP"
    frame["source"] = src.name
    frame["log"] = "pfirewall"
    if not opts.keep_raw:
        frame = frame.drop(columns=["raw"])
    for col in frame.columns:
        if frame[col].dtype == object and col != "raw":
            frame[col] = frame[col].astype("category")
    ev = conform(frame)
    rep.events += len(ev)
    return ev
