"""Reading only what is new since the last run.

Text logs are followed by content, not by name: a file is known by a fingerprint of
its first bytes (SHA-256 of up to 1 KiB, decompressed for ``.gz``) together with its
device/inode, and remembered with the offset up to which it was read. When logrotate
renames ``auth.log`` to ``auth.log.1`` and later compresses it to ``auth.log.2.gz``,
the fingerprint still matches and reading resumes at the same offset, so nothing is
read twice or skipped. A line still being written (no newline yet) is left for the
next run. A file whose inode matches but whose start changed, or that became shorter
than the offset (copytruncate), is read from its start.

EVTX files are followed by path and the last EventRecordID read; lower record ids
than that (the log was cleared or replaced) mean reading from the start. Archives and
Windows exports are read whole whenever their size or time changes, replacing what
was stored from them.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import io
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ..errors import InputError
from ..ingest import IngestOptions, InputReport, Window, read_events
from ..ingest.sniff import sniff
from ..ingest.sources import HEAD_BYTES, Prefixed, Source
from ..schema import empty_events
from .state import FileState

__all__ = ["FP_BYTES", "Read", "expand", "read_new"]

FP_BYTES = 1024
# sshd's LoginGraceTime (default 120 s) bounds a connection's authentication: two lines
# of one connection are never further apart, so a pause this long is a safe place to cut
QUIET_SECONDS = 120
LIVE_SECONDS = 600  # a file modified this recently may still be written to
# the most two zones' clocks differ (UTC-12 to UTC+14): a log's times read in the wrong zone
# are off by no more than this
ZONES_SECONDS = 26 * 3600
_TEXT = {"syslog", "journal-json", "journal-export", "pfirewall"}
_GZIP = b"\x1f\x8b"


@dataclass
class Read:
    """What one run read: per input its report, the new events per origin, the new positions."""

    reports: list[InputReport] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)  # per report: the file it is about
    events: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # (origin, events)
    replaced: list[str] = field(default_factory=list)  # origins whose stored events are superseded
    files: list[FileState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    claimed: dict[str, FileState] = field(default_factory=dict)  # path → the remembered file it continues


def expand(patterns: tuple[str, ...] | list[str]) -> tuple[list[str], list[InputReport]]:
    """Files named by paths, globs and directories (recursively), sorted, each once."""
    files: list[str] = []
    problems: list[InputReport] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(real):
            seen.add(real)
            files.append(os.path.abspath(path))

    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                problems.append(InputReport(name=pattern, skipped=True, skip_reason="no file matches this pattern"))
        elif os.path.exists(pattern):
            matches = [pattern]
        else:
            problems.append(InputReport(name=pattern, error="not found"))
            continue
        for m in matches:
            if os.path.isdir(m):
                for root, dirs, names in os.walk(m):
                    dirs.sort()
                    for n in sorted(names):
                        add(os.path.join(root, n))
            else:
                add(m)
    return files, problems


def _fingerprint(head: bytes) -> tuple[int, str]:
    part = head[:FP_BYTES]
    return len(part), hashlib.sha256(part).hexdigest()


def _matches(head: bytes, known: FileState) -> bool:
    return (
        bool(known.fp_len)
        and known.fp_len <= len(head)
        and hashlib.sha256(head[: known.fp_len]).hexdigest() == known.fp
    )


class _Faults(io.RawIOBase):
    """Read errors of a compressed stream as :class:`InputError` (the readers report those)."""

    def __init__(self, inner, name: str) -> None:
        self.inner = inner
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.inner.seek(pos, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def readinto(self, b) -> int:  # type: ignore[override]
        try:
            data = self.inner.read(len(b))
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"corrupt compressed data: {exc}", source=self.name) from exc
        b[: len(data)] = data
        return len(data)


def _last_boundary(fh, start: int, end: int, sep: bytes) -> int:
    """Offset just after the last ``sep`` in [start, end), or ``start`` when there is none."""
    pos = end
    step = 1 << 16
    while pos > start:
        lo = max(start, pos - step)
        fh.seek(lo)
        block = fh.read(pos - lo + len(sep) - 1 if pos < end else pos - lo)
        i = block.rfind(sep)
        if i >= 0:
            return lo + i + len(sep)
        pos = lo
    return start


def _skip(stream, n: int) -> int:
    """Discard n bytes of a stream; return how many there were."""
    done = 0
    while done < n:
        data = stream.read(min(1 << 20, n - done))
        if not data:
            break
        done += len(data)
    return done


def _claim(head: bytes, st: os.stat_result, known: list[FileState]) -> FileState | None:
    """The remembered file this content continues: same start, preferring the same inode."""
    hits = [k for k in known if k.kind == "text" and _matches(head, k)]
    if not hits:
        return None
    hits.sort(key=lambda k: (k.dev, k.ino) != (st.st_dev, st.st_ino))
    known.remove(hits[0])
    return hits[0]


def _quiet_cut(events: pd.DataFrame) -> int | None:
    """The line after which the events pause for QUIET_SECONDS or more, last such pause;
    None when there is none (then the whole file is read)."""
    order = events[events["timestamp"].notna() & events["locator"].notna()].sort_values("locator", kind="stable")
    if len(order) < 2:
        return None
    loc = order["locator"].to_numpy(dtype="int64", na_value=0)
    ts = order["timestamp"].dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype("int64")
    gaps = (ts[1:] - ts[:-1]) >= QUIET_SECONDS
    if not gaps.any():
        return None
    i = int(gaps.nonzero()[0][-1])
    return int(loc[i])


def _long_finished(events: pd.DataFrame, mtime: float) -> bool:
    """Whether the newest event read is older than the file's last change by more than a
    connection lasts (QUIET_SECONDS), even with its times read in the wrong zone: the file was
    copied or touched, not written line by line, so no connection in it is still going on."""
    newest = events["timestamp"].max()
    if pd.isna(newest):
        return False
    changed = pd.Timestamp(mtime, unit="s", tz="UTC")
    return bool(newest < changed - pd.Timedelta(seconds=QUIET_SECONDS + ZONES_SECONDS))


def _line_end(fh, start: int, end: int, lines: int) -> int:
    """Offset just after the ``lines``-th newline from ``start``."""
    fh.seek(start)
    pos, seen = start, 0
    while pos < end:
        block = fh.read(min(1 << 20, end - pos))
        if not block:
            break
        n = block.count(b"\n")
        if seen + n >= lines:
            idx = -1
            for _ in range(lines - seen):
                idx = block.index(b"\n", idx + 1)
            return pos + idx + 1
        seen += n
        pos += len(block)
    return end


def _header_lines(head: bytes) -> bytes:
    """pfirewall.log's leading ``#`` lines (its #Fields: header), to put before resumed lines."""
    out = []
    for line in head.splitlines(keepends=True):
        if not line.startswith(b"#"):
            break
        out.append(line)
    return b"".join(out)


def read_new(
    patterns: tuple[str, ...] | list[str],
    known: list[FileState],
    opts: IngestOptions,
    progress: Callable[[InputReport], None] | None = None,
    now: float | None = None,
) -> Read:
    """Read what is new in the files under ``patterns`` given what ``known`` remembers."""
    now = time.time() if now is None else now
    files, problems = expand(patterns)
    out = Read()
    for rep in problems:
        out.reports.append(rep)
        out.paths.append(None)
    pool = list(known)
    by_path = {k.path: k for k in pool if k.kind != "text"}
    for path in files:
        rep = InputReport(name=path)
        try:
            st = os.stat(path)
            with open(path, "rb") as fh:
                magic = fh.read(HEAD_BYTES)
                fh.seek(0)
                if magic.startswith(b"ElfFile\x00"):
                    _read_evtx(path, st, by_path.get(path), opts, rep, out)
                elif magic.startswith(_GZIP):
                    with gzip.GzipFile(fileobj=fh) as raw_gz:
                        gz = io.BufferedReader(_Faults(raw_gz, path), 1 << 20)
                        head = gz.read(HEAD_BYTES)
                        fmt, _ = sniff(head)
                        if fmt in _TEXT:
                            _read_text(path, gz, head, True, fmt, st, pool, opts, rep, out)
                        else:
                            _read_whole(path, st, by_path.get(path), opts, rep, out)
                else:
                    fmt, _ = sniff(magic)
                    if fmt in _TEXT:
                        fh.seek(len(magic))
                        live = now - st.st_mtime < LIVE_SECONDS
                        _read_text(path, fh, magic, False, fmt, st, pool, opts, rep, out, live)
                    else:
                        _read_whole(path, st, by_path.get(path), opts, rep, out)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            rep.error = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
            # keep what was remembered about it, so that nothing is skipped or repeated next time
            out.files.extend(k for k in pool if k.path == path and k.kind != "text")
            if path in out.claimed:
                out.files.append(out.claimed[path])
        except InputError as exc:
            rep.error = exc.message
        out.reports.append(rep)
        out.paths.append(path)
        if progress:
            progress(rep)
    return out


def _read_text(path, stream, head, compressed, fmt, st, pool, opts, rep, out: Read, live: bool = False) -> None:
    """A text log, from the remembered offset to its last complete line (or journal entry)."""
    rep.format = fmt
    prev = _claim(head, st, pool)
    if prev is not None:
        out.claimed[path] = prev
    fp_len, fp = _fingerprint(head)
    if prev is not None and compressed and (prev.ino, prev.size, prev.mtime) == (st.st_ino, st.st_size, st.st_mtime):
        out.files.append(dataclasses.replace(prev, path=path))  # a rotated .gz, unchanged since it was read
        return
    start = prev.offset if prev is not None else 0
    lines_before = prev.lines if prev is not None else 0
    sep = b"\n\n" if fmt == "journal-export" else b"\n"
    if not compressed:
        end = st.st_size
        if start > end:
            out.notes.append(f"{path} is shorter than when it was last read (truncated); read from its start")
            start, lines_before = 0, 0
        end = _last_boundary(stream, start, end, sep) if end > start else start
        start = min(start, end)
        stream.seek(start)
        inner, limit, prefix = stream, end - start, b""
    else:
        prefix = head[start:] if start < len(head) else b""
        skipped = len(head) + _skip(stream, start - len(head)) if start > len(head) else start
        if skipped < start:
            out.notes.append(f"{path} is shorter than when it was last read; read from its start")
            stream.seek(0)
            prefix, start, lines_before = b"", 0, 0
        inner, limit = stream, None
    header = _header_lines(head) if fmt == "pfirewall" and start > 0 else b""

    def read(limit: int | None) -> tuple[pd.DataFrame, int]:
        """The window up to ``limit`` read as the one-shot read reads an input (its limits,
        its faults kept to this file); its report becomes ``rep``."""
        window = Prefixed(header + prefix, inner, limit)
        src = Source(name=path, stream=io.BufferedReader(window, 1 << 20), mtime=st.st_mtime)
        src.head = src.stream.read(HEAD_BYTES)
        events, into = empty_events(), InputReport(name=path, format=fmt)
        if len(src.head) > len(header):  # something new beyond the header put in front
            got = read_events([Window(src, fmt)], opts)
            events, into = got.events, got.inputs[0]
        src.stream.read()  # the reader may stop early on a fault: the window's count says where
        rep.__dict__.update(into.__dict__)
        return events, len(prefix) + window.count

    events, consumed = read(limit)
    live = live and len(events) > 1 and rep.error is None and not _long_finished(events, st.st_mtime)
    if not compressed and fmt == "syslog" and live:
        cut = _quiet_cut(events)
        if cut is not None and cut < rep.lines:
            # the lines after the last quiet moment may belong to a connection still going on:
            # leave them for the next run, which sees the connection whole
            stream.seek(start)
            shorter = _line_end(stream, start, end, cut)
            stream.seek(start)
            held = rep.lines - cut
            events, consumed = read(shorter - start)
            rep.assumptions["held back"] = (
                f"{held} line(s) after the last quiet moment (the file is still being written); read next run"
            )
    # lines of the pfirewall header put in front are not new lines
    hdr_lines = header.count(b"\n")
    rep.lines = max(0, rep.lines - hdr_lines)
    rep.irrelevant = max(0, rep.irrelevant - hdr_lines)
    if len(events) and "locator" in events:
        events["locator"] = events["locator"] + (lines_before - hdr_lines)
    new_offset = start + consumed
    units = rep.lines if fmt != "journal-export" else rep.records or len(events)
    after = FileState(
        key=f"{fp}:{fp_len}",
        kind="text",
        path=path,
        dev=st.st_dev,
        ino=st.st_ino,
        size=st.st_size,
        mtime=st.st_mtime,
        fp_len=fp_len,
        fp=fp,
        offset=new_offset,
        lines=lines_before + units,
    )
    if prev is not None and start > 0:
        rep.assumptions["resumed"] = f"read from byte {start} (line {lines_before + 1}), where the last run stopped"
    if rep.error:
        # most likely logrotate was still compressing it: keep the remembered position and
        # store nothing from it, so that the next run reads the same part again, whole
        out.files.append(prev if prev is not None else dataclasses.replace(after, offset=0, lines=0))
        rep.warnings.append("nothing from this file was kept in this run; the next run reads it again")
        return
    out.files.append(after)
    out.events.append((f"text:{path}", events))


def _read_evtx(path, st, prev: FileState | None, opts, rep, out: Read) -> None:
    """An EVTX file, from the record after the last one read (the reader skips the rest)."""
    after = prev.last_record if prev is not None and prev.last_record is not None else 0
    got = read_events([path], dataclasses.replace(opts, evtx_after=after))
    rep.__dict__.update(got.inputs[0].__dict__)
    events = got.events
    newest = rep.last_record
    if after and newest is not None and newest < after:
        note = (
            f"{path}: its newest record ({newest}) is older than the last one read ({after}): "
            "the log was cleared or replaced, so it was read from the start"
        )
        out.notes.append(note)
        rep.warnings.append(note)
        again = read_events([path], opts)
        fresh, events = again.inputs[0], again.events
        fresh.warnings.insert(0, note)
        rep.__dict__.update(fresh.__dict__)
        newest = rep.last_record
    cleared = events[events["event_id"] == 1102] if len(events) else events
    for ts in cleared["timestamp"] if len(cleared) else []:
        out.notes.append(f"{path}: the log was cleared at {pd.Timestamp(ts).isoformat()} (event 1102)")
    last = newest if newest is not None and newest < after else max(after, newest or 0)
    out.files.append(
        FileState(
            key=path, kind="evtx", path=path, dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime=st.st_mtime,
            last_record=last if rep.error is None else (prev.last_record if prev else None),
        )
    )
    out.events.append((f"evtx:{path}", events))


def _read_whole(path, st, prev: FileState | None, opts, rep, out: Read) -> None:
    """Archives and exports: read again whenever they change; their old events are replaced."""
    if prev is not None and (prev.ino, prev.size, prev.mtime) == (st.st_ino, st.st_size, st.st_mtime):
        rep.format = "unchanged"
        out.files.append(prev)
        return
    origin = f"whole:{path}"
    got = read_events([path], opts)
    inner_reports = got.inputs
    if len(inner_reports) == 1:
        rep.__dict__.update(inner_reports[0].__dict__)
        rep.name = path
    else:
        rep.format = "archive"
        for sub in inner_reports:
            rep.merge(sub)
            rep.warnings.extend(f"{sub.name}: {w}" for w in sub.warnings)
            if sub.error:
                rep.warnings.append(f"{sub.name}: {sub.error}")
            for k, v in sub.assumptions.items():
                rep.assumptions.setdefault(k, v)
    out.replaced.append(origin)
    out.events.append((origin, got.events))
    out.files.append(
        FileState(key=path, kind="whole", path=path, dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime=st.st_mtime)
    )
    if prev is not None:
        rep.assumptions["reread"] = "changed since the last run: read again whole, replacing what it gave before"
