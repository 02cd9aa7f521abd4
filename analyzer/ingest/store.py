"""Where the events read wait for the analysis: in memory while they are few, else on disk,
partitioned by host (:class:`EventStore`).

The read hands the store each input's events as they come (in input order). While the
frames held stay under ``spill_bytes`` and ``spill_events`` they are kept as they are, and
:meth:`EventStore.frames` gives them back for one frame of every event (a ticket's logs:
nothing changes). Past either, the store spills: every frame held, and each one after, is
written to an Arrow IPC file of the work directory (``authtriage-spill-<pid>-…`` in the
system's temporary directory by default, locked while its run lives; those of runs that were
killed are removed by the next one), its rows ordered by partition (a host; a host-less log's rows by their source, so
that they can join the host they are given later) with the dictionaries of its categorical
columns. The store then keeps only what the rest of the run needs about every event: per
partition its files' row ranges and its number of events, the (source, host) pairs of the
events that name a host, the sources of those that name none, and the first and last time
read. A share of hosts (:class:`Share`) is read back, in its rows' input order, by whichever
process analyzes it: memory is then bounded by the largest share, not the input.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import InputError
from ..schema import concat_events

__all__ = ["EventStore", "Share", "SPILL_BYTES", "SPILL_EVENTS", "SEQ", "give_hosts"]

# frames held in memory up to this many bytes and events; past either, every event is spilled
# (the analysis of one frame costs ~400 bytes an event at its peak: 1,000,000 events, ~400 MB)
SPILL_BYTES = 128 << 20
SPILL_EVENTS = 1_000_000
WRITE_ROWS = 1 << 19  # rows written to a spill file at a time
SEQ = "_seq"  # the column of a spilled event's place in input order (dropped when read back)

Key = tuple[str, str | None]  # ("h", host) or ("s", source) for the rows of a source that names no host


def _frame_bytes(frame: pd.DataFrame) -> int:
    return int(frame.memory_usage(index=False, deep=False).sum())


@dataclass
class Share:
    """Whole hosts' events in the store's files, as one task reads them: per file the row
    ranges to take, and per host-less source taken the host it is given (``moves``)."""

    files: list[tuple[str, list[tuple[int, int]]]]
    moves: dict[str, str] = field(default_factory=dict)
    events: int = 0

    def load(self) -> pd.DataFrame:
        """The share's events, in input order, host-less sources given their hosts."""
        frames = []
        for path, ranges in self.files:
            with pa.memory_map(path) as source:
                table = ipc.open_file(source).read_all()
            parts = [table.slice(start, length) for start, length in ranges]
            part = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            frames.append(part.to_pandas(split_blocks=True, self_destruct=True))
            del table, parts, part
        events = concat_events(frames, consume=True)
        if len(events):
            order = np.argsort(events[SEQ].to_numpy(), kind="stable")
            if (order != np.arange(len(order))).any():
                events = events.take(order).reset_index(drop=True)
        events = events.drop(columns=[SEQ])
        if self.moves:
            give_hosts(events, self.moves)
        return events


def give_hosts(events: pd.DataFrame, moves: dict[str, str]) -> None:
    """Host-less rows of the sources in ``moves`` take the host it names for them."""
    source, host = events["source"], events["host"]
    new = [h for h in dict.fromkeys(moves.values()) if h not in host.cat.categories]
    if new:
        host = host.cat.add_categories(new)
    lut = np.array([host.cat.categories.get_loc(moves[s]) if s in moves else -1 for s in source.cat.categories])
    s_codes, h_codes = source.cat.codes.to_numpy(), host.cat.codes.to_numpy()
    given = np.where(s_codes >= 0, lut[s_codes] if lut.size else -1, -1)
    take = (h_codes < 0) & (given >= 0)
    if take.any():
        events["host"] = pd.Categorical.from_codes(np.where(take, given, h_codes), dtype=host.dtype)


class EventStore:
    """The events of one read, in input order: in memory, or spilled by host to ``workdir``
    (a new temporary directory by default, removed by :meth:`close`)."""

    def __init__(
        self,
        spill_bytes: int = SPILL_BYTES,
        workdir: str | os.PathLike[str] | None = None,
        spill_events: int = SPILL_EVENTS,
    ) -> None:
        self.spill_bytes = spill_bytes
        self.spill_events = spill_events
        self._workdir = workdir
        self.dir: Path | None = None
        self._held: list[pd.DataFrame] = []
        self._held_bytes = 0
        self.rows = 0  # every event added
        self.counts: dict[Key, int] = {}  # per partition, its events (once spilled)
        self.ranges: dict[Key, list[tuple[int, int, int]]] = {}  # per partition: (file, start, length)
        self.files: list[str] = []
        self.pairs: dict[str, set[str]] = {}  # source → the hosts its events name
        self.hostless: set[str] = set()  # sources with events that name no host
        self.first: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None
        self.moves: dict[str, str] = {}  # host-less sources' hosts, once the read has decided them
        self._lock: int | None = None  # the spill directory's lock, held while this run lives

    @property
    def spilled(self) -> bool:
        return self.dir is not None

    def add(self, frame: pd.DataFrame) -> None:
        """One more frame of events, after those added before it. Raises
        :class:`~analyzer.errors.InputError` when the work directory cannot take them."""
        try:
            self._add(frame)
        except OSError as exc:
            where = self.dir or self._workdir or tempfile.gettempdir()
            raise InputError(
                f"cannot spill the events read to {where}: {exc.strerror or exc} "
                "(give the work directory room, or another one: TMPDIR)"
            ) from None

    def _add(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        if not self.spilled:
            self._held.append(frame)
            self._held_bytes += _frame_bytes(frame)
            self.rows += len(frame)
            if self._held_bytes > self.spill_bytes or self.rows > self.spill_events:
                self._spill_held()
            return
        self._write(frame, self.rows)
        self.rows += len(frame)

    def frames(self) -> list[pd.DataFrame]:
        """The frames held (all the events, when nothing was spilled), handed over."""
        held, self._held, self._held_bytes = self._held, [], 0
        return held

    def _spill_held(self) -> None:
        base = Path(self._workdir) if self._workdir is not None else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        _sweep(base if base is not None else Path(tempfile.gettempdir()))
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
        self._lock = _hold(self.dir)
        start = 0
        held = self.frames()
        while held:
            frame = held.pop(0)
            self._write(frame, start)
            start += len(frame)
            del frame

    def _write(self, frame: pd.DataFrame, start: int) -> None:
        """``frame`` (its first row the ``start``-th event) to a new file, ordered by partition."""
        assert self.dir is not None
        host, source = frame["host"], frame["source"]
        h_codes, s_codes = host.cat.codes.to_numpy(), source.cat.codes.to_numpy()
        named = h_codes >= 0
        nh = len(host.cat.categories)
        if named.any():
            width = nh + 1
            for p in np.unique(s_codes[named].astype(np.int64) * width + h_codes[named]).tolist():
                s, h = divmod(p, width)
                self.pairs.setdefault(_name(source, s), set()).add(str(host.cat.categories[h]))
        # the partition of each row: its host, else (after every host) its source
        part = np.where(named, h_codes.astype(np.int64), nh + s_codes.astype(np.int64) + 1)
        order = np.argsort(part, kind="stable")
        part = part[order]
        cuts = np.flatnonzero(np.diff(part)) + 1
        firsts = np.concatenate([[0], cuts])
        lengths = np.diff(np.concatenate([firsts, [len(part)]]))
        keys: list[Key] = []
        for code in part[firsts].tolist():
            if code < nh:
                keys.append(("h", str(host.cat.categories[code])))
            else:
                name = _name(source, code - nh - 1)
                self.hostless.add(name) if name is not None else None
                keys.append(("s", name))
        ts = frame["timestamp"]
        first, last = ts.min(), ts.max()
        if not pd.isna(first):
            self.first = first if self.first is None or first < self.first else self.first
            self.last = last if self.last is None or last > self.last else self.last
        path = str(self.dir / f"part-{len(self.files):05d}.arrow")
        writer = None
        with pa.OSFile(path, "wb") as sink:
            # a chunk at a time: what this costs beside the frame is one chunk's copy, not two of
            # the frame (each chunk keeps every category: one dictionary for the whole file)
            for at in range(0, len(order), WRITE_ROWS):
                rows = order[at : at + WRITE_ROWS]
                chunk = frame.take(rows)
                chunk.insert(0, SEQ, np.int64(start) + rows.astype(np.int64))
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                del chunk
                if writer is None:
                    writer = ipc.new_file(sink, table.schema)
                writer.write_table(table)
                del table
            if writer is not None:
                writer.close()
        fileno = len(self.files)
        self.files.append(path)
        for key, first_row, length in zip(keys, firsts.tolist(), lengths.tolist(), strict=True):
            self.ranges.setdefault(key, []).append((fileno, first_row, length))
            self.counts[key] = self.counts.get(key, 0) + length

    def hosts(self, moves: dict[str, str]) -> dict[str | None, list[Key]]:
        """Per host (None: no host) the partitions its events are in, host-less sources moved."""
        out: dict[str | None, list[Key]] = {}
        for key in self.counts:
            kind, name = key
            host = name if kind == "h" else moves.get(name) if name is not None else None
            out.setdefault(host, []).append(key)
        return out

    def share(self, keys: Iterable[Key], moves: dict[str, str]) -> Share:
        """The :class:`Share` of the partitions ``keys`` (``moves``: host-less sources' hosts)."""
        by_file: dict[int, list[tuple[int, int]]] = {}
        events = 0
        mine: dict[str, str] = {}
        for key in keys:
            events += self.counts[key]
            if key[0] == "s" and key[1] in moves:
                mine[key[1]] = moves[key[1]]
            for fileno, start, length in self.ranges[key]:
                by_file.setdefault(fileno, []).append((start, length))
        files = [(self.files[f], sorted(r)) for f, r in sorted(by_file.items())]
        return Share(files=files, moves=mine, events=events)

    def close(self) -> None:
        """Remove the spilled files."""
        self._held.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


PREFIX = "authtriage-spill-"  # then the process's id, for people


LOCK = ".lock"  # in a spill directory: locked (flock) by the run that writes there, as long as it lives


def _hold(folder: Path) -> int | None:
    """Lock ``folder``'s lock file for as long as this process lives (released by the kernel
    when it dies, however it dies); None where locks are not to be had."""
    try:
        import fcntl
    except ImportError:  # (not on Windows: stale directories are then left for the user)
        return None
    fd = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _sweep(base: Path) -> None:
    """Remove the spill directories of runs that are gone: their lock can be taken (a live run
    holds its own, whatever its process id means here: another container's, another machine's)."""
    try:
        import fcntl
    except ImportError:
        return
    try:
        found = [p for p in base.glob(f"{PREFIX}*-*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    for path in found:
        try:
            fd = os.open(path / LOCK, os.O_RDWR)
        except FileNotFoundError:  # made before its lock, or by an older authtriage: by age
            try:
                if time.time() - path.stat().st_mtime > STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass
            continue
        except OSError:  # another user's: not ours to remove
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live run's
            os.close(fd)
            continue
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


STALE_SECONDS = 24 * 3600  # a spill directory without a lock file, untouched this long, is a dead run's


def _name(col: pd.Series, code: int) -> str | None:
    return None if code < 0 else str(col.cat.categories[code])
