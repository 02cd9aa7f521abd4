"""The EVTX reader, and what every reader of Windows event records shares: records
normalized a batch at a time (:func:`.windows.records_to_events`) and each one accounted
for (:func:`finish_records`). The exports (Event Viewer XML, Get-WinEvent JSON) are read
by :mod:`.winexports`, the Windows Firewall's log by :mod:`.firewall`.

A large EVTX file on disk is parsed in parts (ranges of its 64 KiB chunks) by the read's
worker processes; the evidence text of a few records is rendered again on demand
(:func:`evtx_texts`) when a read kept none.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from collections import deque
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import concat_events
from . import workers
from .evtx import (
    Bucket,
    ChunkRange,
    bucket_tables,
    by_entry,
    chunk_ranges,
    chunk_spans,
    field_names_by_id,
    joined_table,
    note_id_range,
    read_python,
    read_rust_tables,
)
from .sources import Source
from .types import IngestOptions, InputReport
from .windows import events_from_tables, load_semantics, records_to_events, texts_from_tables

__all__ = ["BATCH", "evtx_texts", "evtx_texts_of_files", "finish_records", "read_evtx"]

_CHUNK_NUMBER = re.compile(r"(chunk number )(\d+)")


def warn_into(rep: InputReport, limit: int = 50):
    """A parser's warnings into ``rep``, at most ``limit`` of them."""

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


def finish_records(
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
        records = read_python(src.read(), sem.wanted, warn_into(rep), counts, opts.evtx_after)
        return finish_records(records, rep, src, opts, "evtx", counts)
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
        threaded = not workers.in_worker()
        rust = read_rust_tables(
            where, sem, warn_into(rep), counts, BATCH, opts.evtx_after, opts.jobs, json_threads=threaded
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
    pool = workers.pool(opts.jobs)
    warn = warn_into(rep)
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


def _wanted_chunks(where: str | BinaryIO, wanted: set[int]) -> list[int]:
    """The chunks of an EVTX file whose headers say they hold records of ``wanted``."""
    spans = chunk_spans(where)
    first = np.array([s[1] for s in spans], dtype=np.int64)
    last = np.array([s[2] for s in spans], dtype=np.int64)
    index = np.array([s[0] for s in spans], dtype=np.int64)
    return sorted({int(c) for rid in wanted for c in index[(first <= rid) & (rid <= last)]})


def evtx_texts(where: str | BinaryIO, name: str, ids: list[int]) -> dict[int, str]:
    """The evidence text of the records ``ids`` of the EVTX file ``name`` (a path, or its
    bytes), as a read with raw text would give it: only the records themselves are
    decoded, from the chunks whose headers say they hold them."""
    sem = load_semantics()
    wanted = set(ids)
    chunks = _wanted_chunks(where, wanted)
    out: dict[int, str] = {}

    def scan(fileobj, only: set[int] | None) -> None:
        for batch in read_rust_tables(fileobj, sem, lambda _: None, {"records": 0}, BATCH, 0, 1, only):
            for loc, raw in texts_from_tables(batch, wanted).items():
                out.setdefault(loc, raw)

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


def _quiet(_message: str) -> None:
    """Warnings of a read again for its records' texts: said when it was read."""


_SHIFT = 40  # a record's file number goes above its record id while several files' are rendered together
_MAX_ID = (1 << _SHIFT) - 1


def evtx_texts_of_files(files: list[tuple[str, list[int]]]) -> list[dict[int, str] | None]:
    """:func:`evtx_texts` of several EVTX files on disk (path, record ids) at once: the
    records are found file by file (in the chunks whose headers hold them, else in the
    whole file, as there), then each event id's records of all the files are read as one
    JSON table and rendered together (a file's fixed costs, paid once). A file that does not
    fit (more records than one batch, repeated record ids) is read alone; None for one that
    cannot be read."""
    sem = load_semantics()
    out: list[dict[int, str] | None] = [None] * len(files)
    alone: set[int] = set()
    for whole in (False, True):  # the second time, the files whose records the headers did not place
        todo = [
            i
            for i, (_, ids) in enumerate(files)
            if i not in alone and (not whole or ((got := out[i]) is not None and len(got) < len(set(ids))))
        ]
        found: dict[int, list[Bucket]] = {}
        for i in todo:
            path, ids = files[i]
            try:
                mine = _buckets_of(sem, path, None if whole else set(ids))
            except Exception:  # noqa: BLE001  (this file's fault: the others' texts stand)
                out[i] = None
                continue
            out[i] = out[i] or {}
            eids = [eid for eid, _, _ in mine or ()]
            rids = [r for _, _, got in mine or () for r in got]
            if mine is None or len(set(eids)) != len(eids) or len(set(rids)) != len(rids):
                alone.add(i)
            else:
                found[i] = mine
        for i, texts in _render_together(sem, found, {i: files[i][1] for i in found}).items():
            if texts is None:
                alone.add(i)
            else:
                for rid, text in texts.items():
                    out[i].setdefault(rid, text)  # type: ignore[union-attr]
    for i in sorted(alone):
        path, ids = files[i]
        try:
            out[i] = evtx_texts(path, path, ids)
        except Exception:  # noqa: BLE001  (as above)
            out[i] = None
    pairs = zip(out, files, strict=True)
    return [None if got is None else {r: got[r] for r in ids if r in got} for got, (_, ids) in pairs]


def _buckets_of(sem, path: str, only: set[int] | None) -> list[Bucket] | None:
    """An EVTX file's records by event id, unparsed: those of ``only`` from the chunks whose
    headers hold them, or (None) every record of the file; None past one batch of them (the
    file is read alone, a batch at a time)."""
    found: list[Bucket] = []
    chunks = _wanted_chunks(path, only) if only is not None else None
    if chunks == []:
        return found
    with ChunkRange(path, chunks=chunks) if chunks else contextlib.nullcontext(path) as part:
        # a batch's records go to `found` (what is yielded is empty); a second batch: too many
        for n, _ in enumerate(read_rust_tables(part, sem, _quiet, {"records": 0}, BATCH, 0, 1, only, collect=found)):
            if n:
                return None
    return found


def _render_together(
    sem, found: dict[int, list[Bucket]], wanted: dict[int, list[int]]
) -> dict[int, dict[int, str] | None]:
    """Per file (numbered), the texts of its ``wanted`` records (System EventRecordIDs)
    among its buckets, each event id's buckets of every file read as one table (or, when
    the JSON reader refuses them together, file by file); None for the files whose record
    ids do not fit a file number above them."""
    names = field_names_by_id(sem)
    out: dict[int, dict[int, str] | None] = {i: {} for i in found}
    joined: dict[int, list[tuple[int, Bucket]]] = {}
    for i, buckets in found.items():
        for bucket in buckets:
            joined.setdefault(bucket[0], []).append((i, bucket))
    for eid, parts in joined.items():
        table = joined_table([b for _, b in parts], names[eid], False)
        if table is None:  # refused together: each file's alone (as evtx_texts reads it)
            for i, bucket in parts:
                tables = bucket_tables(sem, bucket, names[eid], False, {}, _quiet)
                for rid, text in texts_from_tables(tables, set(wanted[i])).items():
                    if (texts := out[i]) is not None:
                        texts.setdefault(rid, text)
            continue
        sizes = [len(ids) for _, (_, _, ids) in parts]
        rid = table.column("record_id")
        keep = np.ones(table.num_rows, dtype=bool)
        start = 0
        for (i, _), n in zip(parts, sizes, strict=True):  # a file's records are consecutive rows
            mine = rid.slice(start, n)
            if mine.null_count or not 0 <= pc.min(mine).as_py() <= pc.max(mine).as_py() <= _MAX_ID:
                out[i] = None
                keep[start : start + n] = False
            start += n
        file_no = np.repeat(np.array([i for i, _ in parts], dtype=np.int64), sizes)
        keyed = pc.add(pc.cast(pc.fill_null(rid, 0), pa.int64()), pa.array(file_no << _SHIFT))
        table = table.set_column(table.schema.get_field_index("record_id"), "record_id", keyed)
        if not keep.all():
            table = table.filter(pa.array(keep))
        want = {(i << _SHIFT) | r for i, _ in parts for r in wanted[i]}
        for key, text in texts_from_tables(by_entry(sem, table, eid), want).items():
            if (texts := out[key >> _SHIFT]) is not None:
                texts.setdefault(key & _MAX_ID, text)
    return out


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
