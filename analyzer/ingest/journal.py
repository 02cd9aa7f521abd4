"""systemd journal readers: JSON lines (``journalctl -o json``), the export format
(``journalctl -o export``) and journal files as journald writes them (parsed by
:mod:`.journalfile`).

Each gives records (dicts of journal fields) that go, a batch at a time, through the
same message catalog as text logs; only the rows that matter are kept, then the
source-wide steps run (:func:`.messages.finish`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import COLUMNS, MAXIMA, concat_events, empty_events
from . import syslog, textlog
from .catalog import load_catalog
from .journalfile import journal_records
from .linux import match_messages, normalize_program
from .messages import account, categorical, finish, strings
from .sources import Source, loads_text
from .types import MAX_SAMPLES, IngestOptions, InputReport

__all__ = ["read_journal_export", "read_journal_file", "read_journal_json"]

JOURNAL_BATCH = 20_000  # journal records turned into rows at a time (bounds the memory of a large file)


def _batches(items: Iterable[dict]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    size = JOURNAL_BATCH
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _journal_events(
    records: Iterable[dict], rep: InputReport, src: Source, opts: IngestOptions, log: str = "journal"
) -> pd.DataFrame:
    """Records (dicts of journal fields) → events, through the same message catalog: a batch
    of records at a time (only the rows that matter are kept), then the source-wide steps."""
    frames, missing, base = [], [0], 0
    for batch in _batches(records):
        ev = _journal_rows(batch, base, rep, opts, missing)
        base += len(batch)
        if ev is not None:
            frames.append(ev)
    if missing[0]:
        rep.warnings.append(f"{missing[0]} journal records without __REALTIME_TIMESTAMP have no time")
    if not frames:
        return empty_events()
    box = [concat_events(frames, consume=True)]
    return finish(box, src, log, rep)


def _journal_rows(
    records: list[dict], base: int, rep: InputReport, opts: IngestOptions, missing: list[int]
) -> pd.DataFrame | None:
    """One batch of records (``base``: how many came before) → its matched rows."""
    cat = load_catalog()
    n = len(records)
    rep.lines += n
    if not n:
        return None

    def text(v: object) -> str | None:
        if v is None:
            return None
        if isinstance(v, list):  # non-UTF-8 (byte values) or a repeated field
            if all(isinstance(x, int) for x in v):
                return bytes(x & 0xFF for x in v).decode("utf-8", "replace")
            return text(v[0]) if v else None
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return str(v)

    prog = [text(r.get("SYSLOG_IDENTIFIER") or r.get("_COMM")) or "" for r in records]
    pid = [text(r.get("SYSLOG_PID") or r.get("_PID")) for r in records]
    host = [text(r.get("_HOSTNAME")) for r in records]
    msg = [text(r.get("MESSAGE")) or "" for r in records]
    ts = [text(r.get("__REALTIME_TIMESTAMP")) for r in records]
    raw = [f"{h or '-'} {p}{'[' + i + ']' if i else ''}: {m}" for h, p, i, m in zip(host, prog, pid, msg, strict=True)]
    raw_a = pa.array(raw, pa.string())
    keep = np.asarray(pc.match_substring_regex(raw_a, cat.line_filter()).to_numpy(zero_copy_only=False), dtype=bool)
    if cat.skip_filter():
        skip = pc.match_substring_regex(raw_a, cat.skip_filter()).to_numpy(zero_copy_only=False)
        keep &= ~np.asarray(skip, dtype=bool)
    cand = np.flatnonzero(keep)
    rep.irrelevant += n - int(cand.size)
    take = pa.array(cand)
    prog_a = normalize_program(pa.array(prog, pa.string()).take(take))
    msg_a, weight = syslog.expand_repeats(pa.array(msg, pa.string()).take(take))
    raw_c = raw_a.take(take)
    matched = match_messages(prog_a, msg_a, cat)
    account(rep, matched, lambda rows: raw_c.take(pa.array(rows)), cat.auth_filter(), n_framed=int(cand.size))
    keep_m = (matched["role"] != "ignore").to_numpy(dtype=bool) if len(matched) else np.zeros(0, bool)
    m = matched.loc[keep_m].reset_index(drop=True) if len(matched) else matched
    if not len(m):
        return None
    rows = m["row"].to_numpy(dtype=np.int64)
    orig = cand[rows]
    ev = m.drop(columns=["row", "pattern"])
    micros = pd.to_numeric(pd.Series([ts[i] for i in orig]), errors="coerce")
    ev["timestamp"] = pd.to_datetime(micros, unit="us", utc=True)
    ev["locator"] = base + orig + 1
    ev["host"] = categorical(pa.array([host[i] or "" for i in orig], pa.string()))
    ev["process"] = categorical(prog_a.take(pa.array(rows)))
    pids = pa.array([pid[i] if pid[i] and pid[i].isascii() and pid[i].isdigit() else None for i in orig], pa.string())
    ev["pid"] = pd.array(syslog.digits_to_int(pids, MAXIMA["pid"]).to_pandas(), dtype=COLUMNS["pid"])
    if opts.keep_raw:
        ev["raw"] = strings(raw_c.take(pa.array(rows)))
    ev["weight"] = weight[rows]
    missing[0] += int(ev["timestamp"].isna().sum())
    return ev


def read_journal_json(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    bad = 0  # lines that are not JSON objects: unparsed (each stands as an empty record)

    def records() -> Iterator[dict]:
        nonlocal bad
        for lineno, line in enumerate(_iter_lines(src), start=1):
            if not line.strip():
                yield {}  # a blank line: irrelevant
                continue
            try:
                if len(line) > JSON_LINE_BYTES:
                    raise ValueError(f"longer than {JSON_LINE_BYTES:,} bytes: not read")
                obj = loads_text(line)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                bad += 1
                rep.unparsed += 1
                rep.sample_unparsed([f"line {lineno}: {line[:200].decode('utf-8', 'replace')} ({exc})"])
                obj = {}
            yield obj

    ev = _journal_events(records(), rep, src, opts)
    rep.irrelevant -= bad  # their empty records were counted as irrelevant too
    return ev


JSON_LINE_BYTES = 1 << 20  # a journal record's line (its fields are 4 KiB at most unless --all)


def _iter_lines(src: Source) -> Iterator[bytes]:
    """The lines of a JSON-lines journal; one over JSON_LINE_BYTES may come cut (never held whole)."""
    for block in textlog.blocks(src, max_line=JSON_LINE_BYTES):
        yield from block.splitlines()


def read_journal_export(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """``journalctl -o export``: KEY=value lines, binary fields as KEY\\n<u64 size><data>\\n."""
    return _journal_events(_export_records(src.read(), rep), rep, src, opts)


def _export_records(data: bytes, rep: InputReport) -> Iterator[dict]:
    """The records of an export stream, one at a time."""
    cur: dict = {}
    pos, n = 0, len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            nl = n
        line = data[pos:nl]
        if not line:
            if cur:
                yield cur
                cur = {}
            pos = nl + 1
            continue
        eq = line.find(b"=")
        if eq >= 0:
            key = line[:eq].decode("ascii", "replace")
            cur[key] = line[eq + 1 :].decode("utf-8", "replace")
            pos = nl + 1
            continue
        # binary-safe field: name, newline, little-endian u64 length, data, newline
        key = line.decode("ascii", "replace")
        start = nl + 1
        if start + 8 > n:
            rep.warnings.append(f"truncated binary field {key!r} at byte {pos}")
            break
        (size,) = struct.unpack_from("<Q", data, start)
        value = data[start + 8 : start + 8 + size]
        if len(value) < size:
            rep.warnings.append(f"truncated binary field {key!r} at byte {pos}")
            break
        cur[key] = value.decode("utf-8", "replace")
        pos = start + 8 + size + 1
    if cur:
        yield cur


def read_journal_file(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """A journal file as journald writes it (``/var/log/journal/*/*.journal``)."""
    warned: list[str] = []
    ev = _journal_events(journal_records(src.read(), warned.append), rep, src, opts)
    rep.warnings.extend(warned[:MAX_SAMPLES])
    if len(warned) > MAX_SAMPLES:
        rep.warnings.append(f"… and {len(warned) - MAX_SAMPLES:,} more such warnings")
    return ev
