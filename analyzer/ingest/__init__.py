"""Inputs → normalized events, with an account of every line read.

:func:`read_events` is the one front door: it walks the paths (:mod:`.sources`), detects
each stream's format by content (:mod:`.sniff`), runs that format's reader, and returns
the events (the :mod:`analyzer.schema` frame) with one :class:`InputReport` per input.
A reader that fails on one input reports it there; the other inputs carry on.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._memory import release
from ..errors import InputError
from ..schema import COLUMNS, MAXIMA, concat_events, empty_events
from . import syslog, textlog, winreaders, workers
from .catalog import load_catalog
from .journalfile import journal_records
from .linux import match_messages, normalize_program
from .messages import account, categorical, finish, strings
from .sniff import sniff
from .sources import HEAD_BYTES, Prefixed, Skipped, Source, iter_sources, loads_text, utf16_as_utf8
from .textlog import file_size, read_syslog
from .types import MAX_SAMPLES, IngestOptions, IngestResult, InputReport, Reader

__all__ = ["IngestOptions", "InputReport", "IngestResult", "read_events", "read_source", "READERS"]

# files and archive members up to this size go to a worker whole; larger text logs are split
# into blocks for the workers instead
WHOLE_BYTES = 32 * 1024 * 1024
SMALL_ROWS = 50_000  # inputs with fewer events than this are joined SMALL_FRAMES at a time while reading
SMALL_FRAMES = 256


def read_events(
    paths: list[str],
    options: IngestOptions | None = None,
    progress: Callable[[InputReport], None] | None = None,
) -> IngestResult:
    """Read every input under ``paths``; never stops at a bad one.

    With ``jobs`` > 1, plain files on disk of up to WHOLE_BYTES are read in worker
    processes, several at a time; larger files are split into blocks for the workers
    instead (see :func:`read_syslog`). Results come back in input order either way.
    """
    opts = options or IngestOptions()
    opts.zone()  # fail early on a bad zone
    slots: deque[tuple[InputReport, pd.DataFrame] | Future] = deque()  # inputs not taken yet, in order
    in_flight: deque[Future] = deque()
    calls: dict[Future, tuple] = {}  # what each worker was asked: to ask again if it died
    sent_bytes = 0
    reports: list[InputReport] = []
    frames: list[pd.DataFrame] = []  # taken, in input order: small ones joined SMALL_FRAMES at a time
    small: list[pd.DataFrame] = []

    def settle(limit: int) -> None:
        while len(in_flight) > limit:
            in_flight.popleft().exception()  # waits; a failure is the input's (see _settled)

    def take(everything: bool) -> None:
        """The inputs read (all of them: ``everything``) from the front, in input order. A
        frame costs ~80 KB however few its rows: many small inputs (an archive of thousands
        of members) are joined as they come instead of all held to the end."""
        while slots and (everything or not isinstance(slots[0], Future) or slots[0].done()):
            slot = slots.popleft()
            rep, frame = _settled(slot, calls.pop(slot), opts.jobs) if isinstance(slot, Future) else slot
            if isinstance(slot, Future) and progress:
                progress(rep)
            reports.append(rep)
            if len(frame) >= SMALL_ROWS:
                frames.extend([concat_events(small, consume=True)] if small else [])
                frames.append(frame)
            elif len(frame):
                small.append(frame)
                if len(small) == SMALL_FRAMES:
                    frames.append(concat_events(small, consume=True))
        if everything and small:
            frames.append(concat_events(small, consume=True))

    for item in iter_sources(paths, opts.limits):
        take(False)
        if isinstance(item, Skipped):
            slots.append((InputReport.skipped_input(item), empty_events()))
        elif (
            opts.jobs > 1
            and item.path is not None
            and ((size := file_size(item.path)) <= WHOLE_BYTES or _unsplit(item.path))
        ):
            sent_bytes += size
            if sent_bytes > opts.limits.max_total_bytes:
                rep = InputReport(
                    name=item.name, error=f"total uncompressed input exceeds {opts.limits.max_total_bytes} bytes"
                )
                slots.append((rep, empty_events()))
            else:
                call = (_read_file, item.path, item.name, item.mtime, opts)
                fut = workers.pool(opts.jobs).submit(*call)
                calls[fut] = call
                slots.append(fut)
                in_flight.append(fut)
                settle(2 * opts.jobs)
                continue
        elif opts.jobs > 1 and item.path is None:
            # an archive member or stream: small ones go to a worker as bytes
            rep = InputReport(name=item.name)
            data, fault = _prefetch(item, WHOLE_BYTES + 1)
            if fault is None and len(data) <= WHOLE_BYTES:
                call = (_read_bytes, item.name, data, item.mtime, opts)
                fut = workers.pool(opts.jobs).submit(*call)
                calls[fut] = call
                slots.append(fut)
                in_flight.append(fut)
                settle(2 * opts.jobs)
                continue
            if fault is None:
                # the rest of the stream after what was read ahead, without a copy of it: the
                # read-ahead (WHOLE_BYTES) goes once it has been read again
                ahead = Prefixed(memoryview(data)[HEAD_BYTES:], item.stream)
                rest = Source(name=item.name, stream=ahead, mtime=item.mtime)
                rest.head = data[:HEAD_BYTES]
                del data
                slots.append((rep, read_source(rest, opts, rep)))
            else:  # what was read before the fault, then the fault: read as --jobs 1 reads it
                replay = Source(name=item.name, stream=Prefixed(memoryview(data)[HEAD_BYTES:], _Failing(fault)))
                replay.head, replay.mtime = data[:HEAD_BYTES], item.mtime
                del data
                slots.append((rep, read_source(replay, opts, rep)))
        else:
            rep = InputReport(name=item.name)
            slots.append((rep, read_source(item, opts, rep)))
        if progress:
            progress(slots[-1][0])
    take(True)
    workers.close_pools()  # idle workers hold memory; the next read forks new ones (cheap)
    in_flight.clear()  # the frames live on only in `frames`, which the concatenation empties
    events = concat_events(frames, consume=True)
    _hosts_beside(events, reports)
    read = len(events)
    span = _span(events) if opts.since is not None or opts.until is not None else (None, None)
    events = _window(events, opts)
    release()
    return IngestResult(events=events, inputs=reports, outside=read - len(events), read_span=span)


def _settled(fut: Future, call: tuple, jobs: int) -> tuple[InputReport, pd.DataFrame]:
    """A worker's result. When a worker died, every read in flight in its pool fails:
    each is asked once more, alone, of a new pool; failing again, it is that input's
    error (the others are read)."""
    fault: BaseException
    try:
        return fut.result()
    except BrokenProcessPool:
        try:
            return workers.pool(jobs).submit(*call).result()
        except Exception as exc:  # noqa: BLE001
            fault = exc
    except Exception as exc:  # noqa: BLE001
        fault = exc
    name = call[2] if call[0] is _read_file else call[1]  # (function, path, name, …) or (function, name, …)
    return InputReport(name=name, error=_unforeseen(fault)), empty_events()


# formats that are never split into parts: a worker reads such a file whole whatever its size,
# instead of this process alone while the workers wait (four 50 MB journal files: 7.3–8.1 → 4.3–4.5 s)
UNSPLIT_FORMATS = frozenset(
    {"journal-file", "journal-export", "journal-json", "windows-xml", "windows-json", "pfirewall"}
)


def _unsplit(path: str) -> bool:
    """Whether a large plain file is of a format read whole (by its first bytes)."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(HEAD_BYTES))[0] in UNSPLIT_FORMATS
    except OSError:
        return False  # the reading says why


def _read_file(path: str, name: str, mtime: float | None, opts: IngestOptions) -> tuple[InputReport, pd.DataFrame]:
    """One plain file, in a worker process (which does not start workers of its own)."""
    single = dataclasses.replace(opts, jobs=1)
    rep = InputReport(name=name)
    try:
        with open(path, "rb") as fh:
            src = Source(name=name, stream=fh, mtime=mtime, path=path)
            src.head = fh.read(HEAD_BYTES)
            events = read_source(src, single, rep)
    except OSError as exc:
        rep.error = f"cannot open: {exc.strerror or exc}"
        return rep, empty_events()
    release()  # an idle worker should not hold the transients of its last file
    return rep, events


def _read_bytes(name: str, data: bytes, mtime: float | None, opts: IngestOptions) -> tuple[InputReport, pd.DataFrame]:
    """One archive member (or stream) read into memory, in a worker process."""
    rep = InputReport(name=name)
    events = read_source(Source.from_bytes(name, data, mtime), dataclasses.replace(opts, jobs=1), rep)
    release()  # as in _read_file
    return rep, events


class _Failing(io.RawIOBase):
    """A stream that fails as the one it stands for did, at its first read."""

    def __init__(self, fault: InputError) -> None:
        self.fault = fault

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        raise self.fault


def _prefetch(src: Source, n: int) -> tuple[bytes, InputError | None]:
    """Up to ``n`` bytes from the start of ``src``, and the fault that stopped it early, if any."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < n:
            chunk = src.read(min(textlog.READ_BYTES, n - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except InputError as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


HOSTLESS_FORMATS = ("pfirewall",)  # logs that name no host: given the one host of the logs beside them


def _folders(name: str) -> Iterator[str]:
    """The folders an input lies in, nearest first: ``t.zip!DC01/fw/pfirewall.log`` →
    ``t.zip!DC01/fw``, ``t.zip!DC01``, ``t.zip``, then the archive's own folders."""
    while (cut := max(name.rfind("/"), name.rfind("!"))) > 0:
        name = name[:cut]
        yield name


def _hosts_beside(events: pd.DataFrame, reports: list[InputReport]) -> None:
    """A Windows Firewall log names no host: its events take the host of the logs beside it
    (the nearest folder up whose other logs name any host), when those name exactly one;
    else they stay without one. The input's assumptions say so."""
    hostless = [r for r in reports if r.format in HOSTLESS_FORMATS and r.events]
    if not hostless or events.empty:
        return
    source, host = events["source"], events["host"]
    s_codes, h_codes = source.cat.codes.to_numpy(), host.cat.codes.to_numpy()
    named = h_codes >= 0
    pairs = np.unique(s_codes[named].astype(np.int64) * (len(host.cat.categories) + 1) + h_codes[named])
    by_source: dict[str, set[int]] = {}
    for s, h in zip(*np.divmod(pairs, len(host.cat.categories) + 1), strict=True):
        by_source.setdefault(str(source.cat.categories[s]), set()).add(int(h))
    codes = None
    for rep in hostless:
        for folder in _folders(rep.name):
            inside = (folder + "/", folder + "!")
            near = set().union(*(hs for name, hs in by_source.items() if name != rep.name and name.startswith(inside)))
            if near:
                break
        else:
            continue
        if len(near) != 1:
            continue
        (h,) = near
        where = source.cat.categories.get_loc(rep.name)
        rows = (s_codes == where) & ~named
        if rows.any():
            codes = h_codes.copy() if codes is None else codes
            codes[rows] = h
            rep.assumptions["host"] = (
                f"{host.cat.categories[h]} for {rep.name.rsplit('/', 1)[-1].rsplit('!', 1)[-1]}, which names none: "
                f"the one host of the other logs in {folder}"
            )
    if codes is not None:
        events["host"] = pd.Categorical.from_codes(codes, dtype=host.dtype)


def _span(events: pd.DataFrame) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last event time (None for none)."""
    ts = events["timestamp"]
    first, last = ts.min(), ts.max()
    return (None if pd.isna(first) else first, None if pd.isna(last) else last)


def _window(events: pd.DataFrame, opts: IngestOptions) -> pd.DataFrame:
    if opts.since is None and opts.until is None:
        return events
    keep = pd.Series(True, index=events.index)
    if opts.since is not None:
        keep &= events["timestamp"] >= opts.since
    if opts.until is not None:
        keep &= events["timestamp"] < opts.until
    return events.loc[keep.fillna(False)].reset_index(drop=True)


def read_source(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """Sniff and read one stream; errors land in ``rep``, never escape."""
    fmt, why = sniff(src.head)
    if fmt is None and (text := utf16_as_utf8(src)) is not None:  # (Windows readers decode UTF-16 themselves)
        src, (fmt, why) = text, sniff(text.head)
        rep.assumptions["encoding"] = "UTF-16 (it starts with a byte order mark), read as text"
        # its lines are quoted as read: the evidence step re-reads lines by their bytes
        opts = dataclasses.replace(opts, lazy_raw=False)
    rep.format = fmt
    reader = READERS.get(fmt) if fmt else None
    if reader is None:
        rep.skipped = True
        if fmt is None:
            rep.skip_reason = why
        else:
            rep.skip_reason = f"{fmt} input recognized, but this version has no reader for it yet"
        return empty_events()
    try:
        return reader(src, opts, rep)
    except InputError as exc:
        rep.error = exc.message
        return empty_events()
    except Exception as exc:  # noqa: BLE001  (a fault no reader foresaw: this input only)
        rep.error = _unforeseen(exc)
        return empty_events()


def _unforeseen(exc: BaseException) -> str:
    if isinstance(exc, BrokenProcessPool):
        return "a worker process reading it stopped (out of memory?); the other inputs were read"
    return f"could not be read ({type(exc).__name__}: {str(exc)[:300]}); this is an authtriage bug, please report it"


# ---------------------------------------------------------------------------------
# systemd journal exports


JOURNAL_BATCH = 20_000  # journal records turned into rows at a time (the 50 MB file of 192k records: 359 → 293 MB)


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


READERS: dict[str, Reader] = {
    "syslog": read_syslog,
    "journal-json": read_journal_json,
    "journal-export": read_journal_export,
    "journal-file": read_journal_file,
    "evtx": winreaders.read_evtx,
    "windows-xml": winreaders.read_windows_xml,
    "windows-json": winreaders.read_windows_json,
    "pfirewall": winreaders.read_pfirewall,
}
