"""Inputs → normalized events, with an account of every line read.

:func:`read_events` is the one front door: it walks the paths (:mod:`.sources`), detects
each stream's format by content (:mod:`.sniff`), runs that format's reader, and returns
the events (the :mod:`analyzer.schema` frame) with one :class:`InputReport` per input.
A reader that fails on one input reports it there; the other inputs carry on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import io
import itertools
import multiprocessing
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._memory import keep_heap, release, thaw
from .._pools import let_go, usable_cpus
from ..errors import InputError, UsageError
from ..schema import COLUMNS, MAXIMA, concat_events, conform, empty_events
from . import holes, syslog, winreaders
from .catalog import load_catalog
from .journalfile import journal_records
from .linux import finish_events, match_messages, normalize_ip, normalize_program
from .sniff import sniff
from .sources import (
    HEAD_BYTES,
    EventBudget,
    Limits,
    Prefixed,
    Skipped,
    Source,
    iter_sources,
    loads_text,
    utf16_as_utf8,
)

__all__ = ["IngestOptions", "InputReport", "IngestResult", "read_events", "read_source", "READERS"]

BLOCK_BYTES = 8 * 1024 * 1024  # a text log is read in blocks this size (each costs ~12× in transient arrays)
# files and archive members up to this size go to a worker whole; larger text logs are split
# into blocks for the workers instead
WHOLE_BYTES = 32 * 1024 * 1024
MAX_SAMPLES = 20
SMALL_ROWS = 50_000  # inputs with fewer events than this are joined SMALL_FRAMES at a time while reading
SMALL_FRAMES = 256
_AUTH_FAMILIES = ("sshd", "pam", "sudo", "su", "login", "accounts")


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

    @property
    def readable(self) -> bool:
        """Whether some input was read: whole, or in part before a fault (what came before it counts)."""
        return any(not r.skipped and (r.error is None or r.lines or r.records) for r in self.inputs)

    @property
    def skipped(self) -> list[InputReport]:
        return [r for r in self.inputs if r.skipped]


Reader = Callable[[Source, IngestOptions, InputReport], pd.DataFrame]


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
    budget = EventBudget(opts.limits)  # events over all inputs

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
            frame = budget.admit(rep, frame)
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
        if budget.full:  # no input after the one that reached the events limit is read
            slots.append((InputReport.skipped_input(budget.refusal(item.name)), empty_events()))
            break
        if isinstance(item, Skipped):
            slots.append((InputReport.skipped_input(item), empty_events()))
        elif (
            opts.jobs > 1
            and item.path is not None
            and ((size := _size(item.path)) <= WHOLE_BYTES or _unsplit(item.path))
        ):
            sent_bytes += size
            if sent_bytes > opts.limits.max_total_bytes:
                rep = InputReport(
                    name=item.name, error=f"total uncompressed input exceeds {opts.limits.max_total_bytes} bytes"
                )
                slots.append((rep, empty_events()))
            else:
                call = (_read_file, item.path, item.name, item.mtime, opts)
                fut = _pool(opts.jobs).submit(*call)
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
                fut = _pool(opts.jobs).submit(*call)
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
    _close_pools()  # idle workers hold memory; the next read forks new ones (cheap)
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
            return _pool(jobs).submit(*call).result()
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


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


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
            chunk = src.read(min(READ_BYTES, n - got))
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
# Text (syslog-framed) logs


READ_BYTES = 1 << 16  # read in pieces this size: a fault loses at most one piece


def _blocks(src: Source, fault: list[InputError] | None = None, max_line: int | None = None) -> Iterator[bytes]:
    """Blocks of about BLOCK_BYTES that end at a line boundary. On a read fault, the
    complete lines read before it still come out; the fault goes into ``fault`` (or is
    raised when no list is given). A line that runs on past a block by more than
    ``max_line`` (default: syslog's MAX_LINE_BYTES) bytes comes out cut to ``max_line`` + 1
    bytes: never held whole."""
    max_line = syslog.MAX_LINE_BYTES if max_line is None else max_line
    carry = b""
    parts: list[bytes] = []
    size = 0
    dropping = False  # inside the part of an over-long line that is not kept
    try:
        for piece in src.chunks(READ_BYTES):
            if dropping:
                nl = piece.find(b"\n")
                if nl < 0:
                    continue
                piece, dropping = piece[nl:], False  # its newline ends the line cut short
            parts.append(piece)
            size += len(piece)
            if size < BLOCK_BYTES:
                continue
            data = carry + b"".join(parts)
            parts, size = [], 0
            cut = data.rfind(b"\n")
            carry = data[cut + 1 :]
            if cut >= 0:
                yield data[: cut + 1]
            if len(carry) > max_line:  # held whole, a forged line could be gigabytes
                # over the limit (the reader's own check then finds it, and says so), to the end
                # of a UTF-8 character (else its bytes cut apart would be "invalid UTF-8")
                carry, dropping = carry[: syslog.char_end(carry, max_line + 1)], True
    except InputError as exc:
        data = carry + b"".join(parts)
        cut = data.rfind(b"\n")
        if cut >= 0:
            yield data[: cut + 1]
        if fault is None:
            raise
        fault.append(exc)
        return
    data = carry + b"".join(parts)
    if data:
        yield data


def _auth_unparsed_filter() -> str:
    cat = load_catalog()
    return "|".join(f"(?:{cat.families[f].line_filter})" for f in _AUTH_FAMILIES if f in cat.families)


@dataclass
class _Block:
    """What one block of lines gave: counts, samples, and its events (times unresolved)."""

    lines: int = 0
    used: int = 0
    irrelevant: int = 0
    unparsed: int = 0
    samples: list[str] = field(default_factory=list)
    bad_utf8: bool = False
    cut: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # lines cut (0-based, in the block)
    holes: np.ndarray = field(default_factory=lambda: holes.NONE)  # lines with NUL bytes (a crash hole), cut
    piece: pd.DataFrame | None = None
    year: syslog.YearState = field(default_factory=syslog.YearState)


def _syslog_block(block: bytes, keep_raw: bool, lean: bool = False) -> _Block:
    """Frame and match one block of complete lines. A pure function of its inputs, so it
    runs the same in a worker process; line numbers and year indexes are block-local.
    ``lean``: a worker gives its kept free heap back before and after (see LEAN_SHARE)."""
    if lean:
        release(keep=False)
    cat = load_catalog()
    out = _Block()
    block, out.holes = holes.cut(block)
    block, ok = syslog.ensure_utf8(block)
    lines, starts, ends = syslog.split_lines(block)
    if ends.size and int((ends - starts).max()) > syslog.MAX_LINE_BYTES:  # rare: forged or broken lines
        block, out.cut = syslog.cut_long_lines(block)
        lines, starts, ends = syslog.split_lines(block)
    out.bad_utf8 = not ok
    n = len(lines)
    fr = syslog.frame_lines(block, lines, starts, ends, cat.line_filter(), cat.skip_filter())
    counts = InputReport(name="")
    if fr.unframed.size:
        counts.unparsed += int(fr.unframed.size)
        first = fr.unframed[:MAX_SAMPLES]
        counts.sample_unparsed(syslog.slice_buffer(block, starts[first], ends[first]).to_pylist())
    msg, weight = syslog.expand_repeats(fr.msg)
    prog = normalize_program(fr.prog)
    matched = match_messages(prog, msg, cat)
    used_rows = _account(counts, matched, fr.raw, _auth_unparsed_filter(), n_framed=len(fr.msg))
    out.lines = n
    out.used, out.unparsed, out.samples = counts.used, counts.unparsed, counts.unparsed_samples
    out.irrelevant = counts.irrelevant + n - len(fr.msg) - int(fr.unframed.size)
    if used_rows.size:
        out.piece = _syslog_piece(fr, matched, prog, weight, 0, out.year, keep_raw)
    del fr, matched, msg, prog, lines, block
    release(keep=not lean)  # the block's transient arrays; else they stay interleaved with the events kept
    return out


def _stitch(results: list[_Block], rep: InputReport) -> list[pd.DataFrame]:
    """Blocks back in order: line numbers and RFC 3164 year indexes continue across them."""
    pieces = []
    base = year_offset = prev_month = 0
    cut: list[np.ndarray] = []
    holed: list[np.ndarray] = []
    for res in results:
        cut.append(res.cut + base + 1)
        holed.extend([res.holes + [[base + 1, 0, 0, 0]]] if len(res.holes) else [])
        rep.lines += res.lines
        rep.used += res.used
        rep.irrelevant += res.irrelevant
        rep.unparsed += res.unparsed
        rep.sample_unparsed(res.samples)
        if res.bad_utf8 and "invalid UTF-8 bytes were replaced with U+FFFD" not in rep.warnings:
            rep.warnings.append("invalid UTF-8 bytes were replaced with U+FFFD")
        y = res.year
        if y.first_month and prev_month and prev_month - y.first_month >= 2:
            year_offset += 1  # December at the end of one block, January at the start of the next
        if res.piece is not None:
            piece = res.piece
            loc = piece["locator"].to_numpy()
            if base + res.lines > np.iinfo(loc.dtype).max:  # past 2**31 lines: int64 from here on
                loc = loc.astype(np.int64)
            piece["locator"] = loc + base
            if year_offset:
                t = piece["_t"].to_numpy(copy=True)
                shift = (piece["_tkind"].to_numpy() == _T_3164) & (t != _NAT)
                years = _part(t[shift], 0)  # held at one past the most, as _pack3164 holds them
                t[shift] += (np.minimum(years + year_offset, MAX_YEAR_STEPS + 1) - years) * _PACK[0]
                piece["_t"] = t
            pieces.append(piece)
        year_offset += y.rollovers
        prev_month = y.last_month or prev_month
        base += res.lines
    if (lines := np.concatenate(cut) if cut else np.empty(0, np.int64)).size:
        most = syslog.MAX_LINE_BYTES
        size = f"{most // 1024} KiB" if most % 1024 == 0 else f"{most:,} bytes"
        where = syslog.line_list(lines.tolist())
        rep.warnings.append(f"line(s) longer than {size} cut to their first {size}: {where}")
    if holed:
        rep.warnings.append(holes.warning(np.concatenate(holed)))
    return pieces


def read_syslog(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    results: list[_Block] = []
    fault: list[InputError] = []
    keep = dataclasses.replace(opts, keep_raw=opts.keep_raw and not opts.lazy_raw)
    ranges = _ranges(src, opts)
    for res in _run_ranges(*ranges, keep, fault) if ranges else _run_blocks(_blocks(src, fault), keep):
        results.append(res)
        if len(results) % 8 == 0:
            release()  # what passed through here (blocks read and sent, results received) is free again
    if fault:  # keep what was read before the fault; say where it happened
        done = sum(r.lines for r in results)
        rep.error = f"{fault[0].message} (after line {done}; the lines before it were read)"
    pieces = _stitch(results, rep)
    results.clear()
    if not pieces:
        return empty_events()
    ev = concat_events(pieces, consume=True)  # the blocks' frames go column by column
    release()
    ev["timestamp"] = _resolve_syslog_times(ev, src, opts, rep)
    release()
    box = [ev]  # handed over: each column of the frame goes once _finish has copied it
    del ev
    return _finish(box, src, "syslog", rep)


def _ranges(src: Source, opts: IngestOptions) -> tuple[str, list[tuple[int, int | None]]] | None:
    """A large plain file read by several workers: its path and byte ranges of about
    BLOCK_BYTES, which the workers read themselves (this process then neither reads the
    file nor sends it through a pipe). None for anything else, read as a stream."""
    if opts.jobs <= 1 or src.path is None or (size := _size(src.path)) <= BLOCK_BYTES:
        return None
    path = src.on_disk(within_budget=True)
    if path is None:
        return None
    starts = list(range(0, size, BLOCK_BYTES))
    return path, list(zip(starts, [*starts[1:], None], strict=True))  # the last one: to the end


LEAN_SHARE = 0.2  # the share of a large file's last ranges whose workers keep no free heap
LEAN_STREAM_BYTES = 512 << 20  # a stream's (a compressed log's, an archive member's) blocks past this: lean


def _syslog_range(path: str, start: int, end: int | None, keep_raw: bool, lean: bool = False) -> _Block:
    """The lines that begin in bytes ``start``…``end`` of a file (to its end when ``end``
    is None), as :func:`_syslog_block` frames and matches a block (``lean`` likewise); in a
    worker."""
    try:
        with open(path, "rb") as fh:
            begin = _line_start(fh, start, end) if start else 0
            if begin is None:
                data = b""  # one line spans the whole range
            elif end is None:
                fh.seek(begin)
                data = fh.read()
            else:
                fh.seek(begin)
                data = fh.read(end - begin)
                if data and not data.endswith(b"\n"):  # the last line that begins here, whole
                    # (or enough of it to be cut, to the end of a character)
                    tail = fh.readline(syslog.MAX_LINE_BYTES + 1)
                    if not tail.endswith(b"\n"):
                        tail += fh.read(3)
                        tail = tail[: syslog.char_end(tail, syslog.MAX_LINE_BYTES + 1)]
                    data += tail
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", source=path) from exc
    return _syslog_block(data, keep_raw, lean) if data else _Block()


def _line_start(fh, start: int, end: int | None) -> int | None:
    """Where the first line that begins in bytes ``start``…``end`` of ``fh`` begins (None:
    no line does; the file's end, when its last byte is the newline found). The search for
    the newline before it stops at the range's end, so a line longer than many ranges is not
    read again for each of them."""
    fh.seek(start - 1)
    pos = start - 1
    while end is None or pos < end - 1:
        chunk = fh.read(READ_BYTES)
        if not chunk:
            return None
        i = chunk.find(b"\n")
        if i >= 0:
            begin = pos + i + 1
            return begin if end is None or begin < end else None
        pos += len(chunk)
    return None


def _run_ranges(
    path: str, ranges: list[tuple[int, int | None]], opts: IngestOptions, fault: list[InputError]
) -> Iterator[_Block]:
    """A file's ranges in order, read and processed by the workers. A range that cannot be
    read ends the file there (into ``fault``): the lines before it are kept.

    The workers keep free heap from range to range (faulting pages in again costs more
    time), except over the file's last LEAN_SHARE of ranges: by then this process holds
    most of the file's events, and the workers' kept memory on top of that would be the
    read's peak."""
    lean_from = len(ranges) - int(len(ranges) * LEAN_SHARE)
    calls = ((path, a, b, opts.keep_raw, i >= lean_from) for i, (a, b) in enumerate(ranges))
    try:
        yield from _in_workers(_syslog_range, calls, opts.jobs)
    except InputError as exc:
        fault.append(exc)


def _in_workers(fn: Callable, calls: Iterable[tuple], jobs: int) -> Iterator:
    """``fn(*call)`` for each call, in the read's worker processes, the results in order; at
    most two calls per worker in flight (bounded memory). Workers keep their heaps from call
    to call (see _worker_start); when the calls are done or abandoned, they exit before this
    process joins what they gave (its largest moment)."""
    pool = _pool(jobs)
    pending: deque = deque()
    try:
        for call in calls:
            pending.append(pool.submit(fn, *call))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        _close_pools()


def _run_blocks(blocks: Iterator[bytes], opts: IngestOptions) -> Iterator[_Block]:
    """Process blocks in order, in worker processes when there is more than one block and
    more than one job; at most two blocks per worker are in flight (bounded memory)."""
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    if second is None or opts.jobs <= 1:
        yield _syslog_block(first, opts.keep_raw)
        if second is not None:
            yield _syslog_block(second, opts.keep_raw)
            for block in blocks:
                yield _syslog_block(block, opts.keep_raw)
        return
    # the stream's length is not known: its blocks past LEAN_STREAM_BYTES are read lean
    lean_from = LEAN_STREAM_BYTES // BLOCK_BYTES
    calls = (
        (block, opts.keep_raw, i >= lean_from) for i, block in enumerate(itertools.chain([first, second], blocks))
    )
    yield from _in_workers(_syslog_block, calls, opts.jobs)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _close_pools() -> None:
    """Let the workers of this read exit (in the background: their results are in)."""
    while _POOLS:
        let_go(_POOLS.popitem()[1])
        thaw()


def _pool(jobs: int) -> ProcessPoolExecutor:
    """One pool per size for the rest of a read (workers fork with the catalog loaded)."""
    pool = _POOLS.get(jobs)
    if pool is not None and getattr(pool, "_broken", False):  # a worker died: start afresh
        let_go(_POOLS.pop(jobs))
        pool = None
    if pool is None:
        load_catalog()
        _auth_unparsed_filter()
        # what exists now is shared with the workers, which fork from here: kept out of
        # the collector's scans, its pages are not copied by them (a worker's collector
        # would otherwise touch every object it inherited); thawed when the pool closes
        gc.freeze()
        pool = _POOLS[jobs] = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start
        )
    return pool


_IN_WORKER = False


def _worker_start() -> None:
    global _IN_WORKER
    _IN_WORKER = True
    keep_heap()


def in_worker() -> bool:
    """Whether this is one of the read's worker processes (which then use no thread pools
    of their own: the workers are the parallelism)."""
    return _IN_WORKER


def _account(
    rep: InputReport, matched: pd.DataFrame, texts_of: Callable[[np.ndarray], pa.Array], auth_filter: str, n_framed: int
) -> np.ndarray:
    """Count framed lines as used / irrelevant / unparsed; return the used row indices."""
    is_match = np.zeros(n_framed, dtype=bool)
    used = np.empty(0, dtype=np.int64)
    if len(matched):
        rows = matched["row"].to_numpy(dtype=np.int64)
        is_match[rows] = True
        ignore = (matched["role"] == "ignore").to_numpy(dtype=bool)
        rep.irrelevant += int(ignore.sum())
        used = rows[~ignore]
        rep.used += int(used.size)
    rest = np.flatnonzero(~is_match)
    if rest.size:
        texts = texts_of(rest)
        auth = np.asarray(pc.match_substring_regex(texts, auth_filter).to_numpy(zero_copy_only=False), dtype=bool)
        bad = np.flatnonzero(auth)
        rep.unparsed += int(bad.size)
        rep.irrelevant += int(rest.size - bad.size)
        if bad.size:
            rep.sample_unparsed(texts.take(pa.array(bad[:MAX_SAMPLES])).to_pylist())
    return used


def _syslog_piece(
    fr: syslog.Framed,
    matched: pd.DataFrame,
    prog: pa.Array,
    weight: np.ndarray,
    base: int,
    state: syslog.YearState,
    keep_raw: bool,
) -> pd.DataFrame:
    keep = (matched["role"] != "ignore").to_numpy(dtype=bool)
    m = matched if keep.all() else matched.loc[keep].reset_index(drop=True)
    rows = m["row"].to_numpy(dtype=np.int64)
    take = pa.array(rows)
    piece = m.drop(columns=["row", "pattern"])
    # while the blocks wait, line numbers within the block (int32) and weights in the
    # narrowest type that holds them (nearly always 1); joined, they widen as needed
    loc = fr.rows[rows] + base + 1
    piece["locator"] = loc.astype(np.int32) if loc.max(initial=0) <= np.iinfo(np.int32).max else loc
    piece["host"] = _categorical(fr.host.take(take))
    piece["process"] = _categorical(prog.take(take))
    # numbers in the schema's widths (pid < 2**32, port < 2**16); weight <= MAX_REPEAT
    piece["pid"] = pd.array(syslog.digits_to_int(fr.pid.take(take), MAXIMA["pid"]).to_pandas(), dtype=COLUMNS["pid"])
    if keep_raw:
        piece["raw"] = _strings(fr.raw(rows))
    w = weight[rows]
    piece["weight"] = w.astype(np.uint8 if w.max(initial=1) <= np.iinfo(np.uint8).max else np.int32)
    for col in ("src_port", "dst_port"):
        if col in piece.columns:
            piece[col] = piece[col].astype(COLUMNS[col])
    fmt = fr.fmt[rows]
    ts = fr.ts.take(take)
    # One int64 per row until the whole source is read: µs since the epoch (UTC or local
    # wall time, per `_tkind`), or for RFC 3164 the packed year index/month/day/time.
    k = rows.size
    t = np.full(k, _NAT, dtype=np.int64)
    kind = np.full(k, _T_UTC, dtype=np.int8)
    code = syslog.FORMATS.index
    is3164 = fmt == code("rfc3164")
    iso = (fmt == code("rfc3339")) | (fmt == code("rfc5424"))
    epoch = fmt == code("epoch")
    if is3164.any():
        got = syslog.rfc3164_parts(ts.filter(pa.array(is3164)), state)
        t[is3164] = _pack3164(got)
        kind[is3164] = _T_3164
    if iso.any():
        micros, has_zone = syslog.iso_micros(ts.filter(pa.array(iso)))
        t[iso] = micros
        kind[iso] = np.where(has_zone, _T_UTC, _T_LOCAL)
    if epoch.any():
        secs = pc.cast(ts.filter(pa.array(epoch)), pa.float64()).to_numpy(zero_copy_only=False)
        t[epoch] = np.where(np.isnan(secs), _NAT, np.nan_to_num(secs) * 1e6).astype(np.int64)
    piece["_t"] = t
    piece["_tkind"] = kind
    return piece


def _categorical(arr: pa.Array) -> pd.Categorical:
    """Strings → a pandas Categorical (empty strings become null)."""
    enc = pc.dictionary_encode(syslog.null_empty(arr))
    codes = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int32)
    return pd.Categorical.from_codes(codes, categories=enc.dictionary.to_pylist())


def _strings(arr: pa.Array) -> pd.Series:
    return pd.Series(arr.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow")), dtype="string[pyarrow]")


_NAT = np.iinfo(np.int64).min  # numpy's NaT as int64
_T_UTC, _T_LOCAL, _T_3164 = 0, 1, 2
# year index, month, day, hour, minute, second, microsecond: decimal digits of one int64
_PACK = (10**16, 10**14, 10**12, 10**10, 10**8, 10**6, 1)
_PACKED = ("yidx", "month", "day", "hour", "minute", "second", "micro")
# December→January turns one file may take: lines past this many have no time (a log of Dec and
# Jan lines in turn, forged or shuffled, would count a year a line, past any date there is);
# a year index is held at one past it, so packing never overflows
MAX_YEAR_STEPS = 100


def _pack3164(parts: dict[str, np.ndarray]) -> np.ndarray:
    packed = np.zeros(len(parts["yidx"]), dtype=np.int64)
    bad = np.zeros(packed.size, dtype=bool)
    for col, scale in zip(_PACKED, _PACK, strict=True):
        values = parts[col]
        if values.dtype.kind == "f":
            bad |= np.isnan(values)
            values = np.nan_to_num(values).astype(np.int64)
        if col == "yidx":
            values = np.minimum(values, MAX_YEAR_STEPS + 1)
        packed += values * scale
    return np.where(bad, _NAT, packed)


def _part(packed: np.ndarray, i: int) -> np.ndarray:
    """One field of packed RFC 3164 times (0 year index, 1 month, … 5 second, 6 microsecond)."""
    out = packed // _PACK[i]
    if i:
        out %= _PACK[i - 1] // _PACK[i]
    return out


def _resolve3164(packed: np.ndarray, base_year: int) -> np.ndarray:
    """Packed RFC 3164 times → naive datetime64[us] once the first line's year is known;
    NaT for an unreadable time or a date that does not exist (Feb 30). A time past
    23:59:59 (a leap second) rolls on into the next minute."""
    ok = packed != _NAT
    packed = np.where(ok, packed, 0)
    ok &= _part(packed, 0) <= MAX_YEAR_STEPS
    month, day = _part(packed, 1), _part(packed, 2)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    first = ((base_year - 1970 + _part(packed, 0)) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]")
    date = first.astype("datetime64[D]") + (np.clip(day, 1, 31) - 1)
    ok &= date.astype("datetime64[M]") == first  # day 31 of a 30-day month is not a date
    secs = _part(packed, 3) * 3600 + _part(packed, 4) * 60 + _part(packed, 5)
    out = date.astype("datetime64[us]") + secs * 1_000_000 + _part(packed, 6)
    out[~ok] = np.datetime64("NaT")
    return out


_CHUNK = 1 << 18  # rows per slice of a step over a whole source (a dozen temporaries that long)


def _dated_neighbour(lines: pd.Series, t: np.ndarray, kind: np.ndarray) -> tuple[int, bool] | None:
    """The line with a full date (RFC 3339, RFC 5424, epoch) nearest the last RFC 3164 line
    of a source: the first one after it, else the last one before it (``lines``: each
    row's line number). Returns (row, after) or None when the source has no such line.
    Slice by slice: no copy of the source's line numbers."""
    slices = range(0, t.size, _CHUNK)

    def line_numbers(a: int) -> np.ndarray:
        return lines.iloc[a : a + _CHUNK].to_numpy(dtype=np.int64, na_value=0)

    last = None  # the largest line number of an RFC 3164 line with a time
    for a in slices:
        known = t[a : a + _CHUNK] != _NAT
        mine = line_numbers(a)[known & (kind[a : a + _CHUNK] == _T_3164)]
        if mine.size and (last is None or mine.max() > last):
            last = int(mine.max())
    if last is None:
        return None
    after = before = None  # (line, row): the first dated line after it; the last one not after it
    for a in slices:
        dated = np.flatnonzero((kind[a : a + _CHUNK] != _T_3164) & (t[a : a + _CHUNK] != _NAT))
        if not dated.size:
            continue
        numbers = line_numbers(a)[dated]
        later = numbers > last
        if later.any():
            i = int(np.argmin(np.where(later, numbers, np.iinfo(np.int64).max)))
            if after is None or numbers[i] < after[0]:  # the first row of the smallest line
                after = (int(numbers[i]), a + int(dated[i]))
        i = int(np.argmax(numbers))
        if before is None or numbers[i] > before[0]:  # the first row of the largest line
            before = (int(numbers[i]), a + int(dated[i]))
    if after is not None:
        return after[1], True
    return (before[1], False) if before is not None else None


def _last_3164(t: np.ndarray, kind: np.ndarray) -> int | None:
    """The packed time of the last RFC 3164 line with a readable time, found slice by
    slice from the end (no copy of the source's times)."""
    for end in range(t.size, 0, -_CHUNK):
        start = max(0, end - _CHUNK)
        hit = np.flatnonzero((kind[start:end] == _T_3164) & (t[start:end] != _NAT))
        if hit.size:
            return int(t[start + hit[-1]])
    return None


def _base_year(
    ev: pd.DataFrame, t: np.ndarray, kind: np.ndarray, src: Source, opts: IngestOptions, rep: InputReport
) -> int:
    """The year of the first RFC 3164 line (times carry a year index from it), and the
    assumption it rests on in ``rep``."""
    if opts.year is not None:
        rep.assumptions["year"] = f"{opts.year} for the first line (--year), +1 at each December→January step"
        return opts.year
    last = _last_3164(t, kind)
    if last is not None and (found := _dated_neighbour(ev["locator"], t, kind)):
        # the file has lines with a full date too (rsyslog switched formats, an upgrade to
        # Debian 12; programs logging through different templates): the one nearest the last
        # RFC 3164 line gives the year
        row, after = found
        date = t[row : row + 1].view("datetime64[us]").astype("datetime64[D]").astype(dt.date)[0]
        packed = np.array([last], dtype=np.int64)
        month, day = int(_part(packed, 1)[0]), int(_part(packed, 2)[0])
        if after:  # the last RFC 3164 line is on or before that date
            year = date.year - ((month, day) > (date.month, date.day + 1))
        else:  # on or after it
            year = date.year + ((month, day) < (date.month, date.day - 1))
        rep.assumptions["year"] = f"from a line with a full date nearby: the last line without one is in {year}"
        return year - int(_part(packed, 0)[0])
    zone = opts.zone()
    anchor = dt.datetime.fromtimestamp(src.mtime, zone) if src.mtime else dt.datetime.now(zone)
    what = "the file's modification time" if src.mtime else "today's date (no file time known)"
    year_last = anchor.year
    base = year_last
    if last is not None:
        packed = np.array([last], dtype=np.int64)
        if (int(_part(packed, 1)[0]), int(_part(packed, 2)[0])) > (anchor.month, anchor.day + 1):
            year_last -= 1
        base = year_last - int(_part(packed, 0)[0])
    rep.assumptions["year"] = f"from {what}: the last line is in {year_last}"
    return base


def _resolve_syslog_times(ev: pd.DataFrame, src: Source, opts: IngestOptions, rep: InputReport) -> pd.Series:
    """Each row's time in UTC from ``_t``/``_tkind``: RFC 3164 dates get their year, wall
    times the zone. Computed slice by slice into one new array: the temporaries of a step
    stay the size of a slice, not a dozen arrays as long as a large source."""
    zone = opts.zone()
    t = ev["_t"].to_numpy(dtype=np.int64)
    kind = ev["_tkind"].to_numpy(dtype=np.int8)
    base = None
    if any((kind[i : i + _CHUNK] == _T_3164).any() for i in range(0, kind.size, _CHUNK)):
        base = _base_year(ev, t, kind, src, opts, rep)
    out = np.empty(t.size, dtype=np.int64)
    bad = zoned = 0
    far: int | None = None  # the first row past MAX_YEAR_STEPS year turns
    n_far = 0
    for a in range(0, t.size, _CHUNK):
        ts, k = t[a : a + _CHUNK], kind[a : a + _CHUNK]
        utc = np.where(k == _T_UTC, ts, _NAT).view("datetime64[us]")
        naive = np.where(k == _T_LOCAL, ts, _NAT).view("datetime64[us]")
        is3164 = k == _T_3164
        if base is not None and is3164.any():
            past = np.flatnonzero(is3164 & (ts != _NAT) & (_part(ts, 0) > MAX_YEAR_STEPS))
            if past.size:
                far = a + int(past[0]) if far is None else far
                n_far += past.size
            resolved = _resolve3164(ts[is3164], base)
            bad += int(np.isnat(resolved).sum()) - past.size
            naive[is3164] = resolved
            del resolved
        need_zone = ~np.isnat(naive)
        if need_zone.any():
            zoned += 1
            if opts.tz:
                local = pd.DatetimeIndex(naive[need_zone]).tz_localize(
                    zone, ambiguous=np.zeros(int(need_zone.sum()), dtype=bool), nonexistent="shift_forward"
                )
                utc[need_zone] = local.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()
            else:  # UTC assumed: the wall time is the time
                utc[need_zone] = naive[need_zone]
        out[a : a + _CHUNK] = utc.view(np.int64)
    if far is not None:
        rep.warnings.append(
            f"more than {MAX_YEAR_STEPS} December→January turns (lines out of order, or forged): {n_far} lines "
            f"from line {int(ev['locator'].iloc[far])} on that have no year of their own have no time"
        )
    if bad:
        rep.warnings.append(f"{bad} lines with an unreadable RFC 3164 date (non-English month?) have no time")
    if zoned:
        rep.assumptions["timezone"] = f"{opts.tz or 'UTC'} for timestamps without a zone" + (
            "" if opts.tz else " (assumed; use --tz)"
        )
    # the new array itself, seen as UTC instants (no copy)
    return pd.Series(pd.Series(out.view("datetime64[us]"), copy=False).array.view(_UTC_US), index=ev.index, copy=False)


_UTC_US = pd.DatetimeTZDtype(unit="us", tz="UTC")


REPEAT_BUDGET = 2_000_000  # events one input's ``message repeated`` lines may add in all


def _lines(locators: pd.Series, rows: np.ndarray, most: int = 5) -> str:
    """The line numbers of ``rows``, for a warning (:func:`syslog.line_list`)."""
    return syslog.line_list(locators.iloc[rows[:most]].tolist(), rows.size, most)


def _bound_repeats(ev: pd.DataFrame, rep: InputReport) -> None:
    """``message repeated N times`` lines: say which were cut to MAX_REPEAT, and count
    those past the input's REPEAT_BUDGET once (forged lines must not exhaust memory)."""
    w = ev["weight"].to_numpy()  # the column itself (uint8 or int32), read only
    if w.max(initial=1) <= 1:
        return
    cut = np.flatnonzero(w >= syslog.MAX_REPEAT)
    if cut.size:
        most = f"{syslog.MAX_REPEAT:,}"
        where = _lines(ev["locator"], cut)
        rep.warnings.append(f"'message repeated N times' counted as at most {most} on line(s) {where}")
    # the events the repeats add, summed up to each row, pass the budget from some row on:
    # found slice by slice (no running sum as long as the source)
    added, start = 0, None
    for a in range(0, w.size, _CHUNK):
        running = np.cumsum(w[a : a + _CHUNK], dtype=np.int64)
        running -= np.arange(1, running.size + 1)  # each row adds w - 1
        running += added
        past = np.flatnonzero(running > REPEAT_BUDGET)
        if past.size:
            start = a + int(past[0])
            break
        added = int(running[-1])
    if start is not None:
        over = start + np.flatnonzero(w[start:] > 1)
        w = w.astype(np.int64)
        w[over] = 1
        ev["weight"] = w
        rep.warnings.append(
            f"'message repeated N times' lines add more than {REPEAT_BUDGET:,} events: counted once from "
            f"line(s) {_lines(ev['locator'], over)}"
        )


def _finish(box: list[pd.DataFrame], src: Source, log: str, rep: InputReport) -> pd.DataFrame:
    """Source-wide steps, then the schema. ``box`` holds the frame, which is taken out of
    it: with no reference left in the caller, its columns are freed as they are replaced."""
    ev = box.pop()
    if "weight" in ev.columns:
        _bound_repeats(ev, rep)
    box.append(ev)
    del ev
    ev = finish_events(box)  # folded PAM lines stay counted as used: they enriched an event
    release()
    for col in ("src_ip", "dst_ip"):
        ev[col] = normalize_ip(ev[col])
    n = len(ev)
    ev["source"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[src.name])
    ev["log"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[log])
    ev = ev.drop(columns=[c for c in ev.columns if c.startswith("_") or c in ("role", "family", "weight")])
    ev = conform(ev)
    rep.events += len(ev)
    return ev


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
    return _finish(box, src, log, rep)


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
    _account(rep, matched, lambda rows: raw_c.take(pa.array(rows)), _auth_unparsed_filter(), n_framed=int(cand.size))
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
    ev["host"] = _categorical(pa.array([host[i] or "" for i in orig], pa.string()))
    ev["process"] = _categorical(prog_a.take(pa.array(rows)))
    pids = pa.array([pid[i] if pid[i] and pid[i].isascii() and pid[i].isdigit() else None for i in orig], pa.string())
    ev["pid"] = pd.array(syslog.digits_to_int(pids, MAXIMA["pid"]).to_pandas(), dtype=COLUMNS["pid"])
    if opts.keep_raw:
        ev["raw"] = _strings(raw_c.take(pa.array(rows)))
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
    for block in _blocks(src, max_line=JSON_LINE_BYTES):
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
