"""Several small EVTX files read together (:func:`read_evtx_batch`): each file is parsed
by the Rust parser on its own, then the record tables of all of them are mapped to events
at once, one table per entry for the whole batch instead of one per entry and file (a
file's fixed costs were some hundred Arrow and pandas calls). Each file's report and
events are those :func:`.winreaders.read_evtx` gives for it alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import workers
from .evtx import Bucket, bucket_tables, by_entry, field_names_by_id, joined_table, read_rust_tables
from .sources import Source
from .types import IngestOptions, InputReport
from .windows import events_from_tables, load_semantics
from .winreaders import BATCH, warn_into

__all__ = ["read_evtx_batch"]

_SHIFT = 40  # a record's table number goes above its record id in the locator while they are mapped together
_MAX_ID = (1 << _SHIFT) - 1


def _buckets(
    path: str, sem, opts: IngestOptions, rep: InputReport, counts: dict, sshd: set[int]
) -> list[Bucket] | None:
    """One file's records by event id, as read_evtx would parse them in one batch; None
    when it does not fit a joined read (a fault, more than one batch, Windows OpenSSH
    records): it is read alone."""
    found: list[Bucket] = []
    try:
        for _ in read_rust_tables(path, sem, warn_into(rep), counts, BATCH, opts.evtx_after, 1, collect=found):
            pass
    except Exception:  # noqa: BLE001  (read alone, it says what went wrong)
        return None
    eids = [eid for eid, _, _ in found]
    if len(set(eids)) != len(eids) or sshd.intersection(eids):
        return None
    return found


def _tables(buckets: list[list[Bucket] | None], sem, reps: list[InputReport], counts: list[dict]) -> list[list | None]:
    """Each file's record tables (entry, table) as read_evtx parses them, from its buckets:
    each event id's records of every file parsed at once (one JSON read instead of one a
    file), then cut back into files (their rows are consecutive), each file's in the order
    of its own parse. A file whose records do not fit one read of them all is parsed alone;
    None for a file not to be read here (no buckets, or record ids that are null or too
    large to carry a table number)."""
    names = field_names_by_id(sem)
    threads = not workers.in_worker()  # as read_evtx
    joined: dict[int, list[tuple[int, Bucket]]] = {}
    for i, mine in enumerate(buckets):
        for b in mine or ():
            joined.setdefault(b[0], []).append((i, b))
    per_file: dict[tuple[int, int], list] = {}  # (file, event id) → its (entry, table) pairs
    for eid, parts in joined.items():
        table = joined_table([b for _, b in parts], names[eid], threads) if len(parts) > 1 else None
        if table is None:  # one file's, or a read of them all refused: each its own (as read alone)
            for i, b in parts:
                per_file[i, eid] = bucket_tables(sem, b, names[eid], threads, counts[i], warn_into(reps[i]))
            continue
        start = 0
        for i, (_, _, ids) in parts:
            per_file[i, eid] = by_entry(sem, table.slice(start, len(ids)), eid)
            start += len(ids)
    out: list[list | None] = []
    for i, mine in enumerate(buckets):
        tables = None if mine is None else [pair for eid, _, _ in mine for pair in per_file[i, eid]]
        for _, table in tables or ():
            if not table.num_rows:
                continue
            ids = table.column("record_id")
            if (
                not pa.types.is_integer(ids.type)
                or ids.null_count
                or not 0 <= pc.min(ids).as_py() <= pc.max(ids).as_py() <= _MAX_ID
            ):
                tables = None
                break
        out.append(None if tables is None else [(e, t) for e, t in tables if t.num_rows])
    return out


def _used(codes: np.ndarray, categories: pd.Index) -> pd.Index:
    """The categories ``codes`` hold, in the order they first appear (as :func:`..schema.used_categories`)."""
    seen = pd.unique(codes[codes >= 0])
    return categories.take(seen) if seen.size else pd.Index([], dtype=object)


def read_evtx_batch(
    items: list[tuple[Source, InputReport]], opts: IngestOptions
) -> tuple[pd.DataFrame, list[tuple[int, int, dict[str, pd.Index]]], list[bool]] | None:
    """Small EVTX files on disk (``src.path``) read together, with the Rust parser and
    without raw text (``lazy_raw``). Returns the events of the files read (file after file,
    each in record order), each one's rows and categories ((start, stop, categories per
    column), for :func:`..schema.concat_segments`), and which files were read (the others,
    whose reports are untouched, are to be read alone); None when none can be."""
    if opts.evtx_backend != "rust" or (opts.keep_raw and not opts.lazy_raw):
        return None
    sem = load_semantics()
    names = [src.name for src, _ in items]
    if len(set(names)) != len(names):
        return None
    done = [False] * len(items)
    scratch = [InputReport(name=src.name) for src, _ in items]  # (a file's own report only if it is read here)
    counts: list[dict] = [{"records": 0} for _ in items]
    sshd = {eid for (_, eid), entries in sem.entries.items() if any(e.spec.get("sshd") for e in entries)}
    buckets = [
        _buckets(src.path, sem, opts, rep, found, sshd) if src.path else None
        for (src, _), rep, found in zip(items, scratch, counts, strict=True)
    ]
    groups: list[tuple[int, object, pa.Table]] = []  # (file, entry, table), file after file
    for i, tables in enumerate(_tables(buckets, sem, scratch, counts)):
        if tables is None:
            continue
        done[i] = True
        groups.extend((i, entry, table) for entry, table in tables)
    if not any(done):
        return None
    # each table's records carry its number above their record ids; the tables of one entry
    # are mapped as one (in file order), and the numbers then give each row's file and the
    # order read_evtx has them in before it sorts by record (the categories' order)
    by_entry: dict[int, tuple[object, list[pa.Table]]] = {}
    for g, (_, entry, table) in enumerate(groups):
        ids = pc.add(pc.cast(table.column("record_id"), pa.int64()), pa.scalar(g << _SHIFT, pa.int64()))
        shifted = table.set_column(table.schema.get_field_index("record_id"), "record_id", ids)
        by_entry.setdefault(id(entry), (entry, []))[1].append(shifted)
    joined = [(entry, pa.concat_tables(tables, promote_options="permissive")) for entry, tables in by_entry.values()]
    events, _ = events_from_tables(sem, joined, names[0], "evtx", False, set(), ordered=False)
    loc = events["locator"].to_numpy(dtype=np.int64)
    table_no = loc >> _SHIFT
    file_of = np.array([f for f, _, _ in groups], dtype=np.int64)[table_no]
    read_order = np.argsort(table_no, kind="stable")  # per file, read_evtx's order before sorting
    events = events.take(read_order).reset_index(drop=True)
    file_of = file_of[read_order]
    ids = loc[read_order] & _MAX_ID
    events["locator"] = pd.array(ids, dtype=events["locator"].dtype)
    k = len(items)
    events["source"] = pd.Categorical.from_codes(file_of, categories=pd.Index(names, dtype=object), validate=False)
    bounds = np.searchsorted(file_of, np.arange(k + 1))
    cats: list[dict[str, pd.Index]] = [{} for _ in range(k)]
    for name, col in events.items():
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes, categories = col.cat.codes.to_numpy(), col.cat.categories
            for i in range(k):
                cats[i][name] = _used(codes[bounds[i] : bounds[i + 1]], categories)
    order = np.lexsort((ids, file_of))  # each file's events by record id (stable: ties as read)
    events = events.take(order).reset_index(drop=True)
    spans = []
    for i, ((_, rep), own) in enumerate(zip(items, scratch, strict=True)):
        a, b = int(bounds[i]), int(bounds[i + 1])
        spans.append((a, b, cats[i]))
        if not done[i]:
            continue
        rep.assumptions["evtx_backend"] = opts.evtx_backend
        rep.warnings.extend(own.warnings)
        found = counts[i]
        failed = found.get("failed", 0)
        if found.get("max_id") is not None:
            rep.first_record, rep.last_record = found["min_id"], found["max_id"]
        rep.records += found["records"]
        rep.used += b - a
        rep.unparsed += failed
        rep.irrelevant += found["records"] - (b - a) - failed
        rep.events += b - a
    return events, spans, done
