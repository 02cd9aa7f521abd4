"""The scheduled runs' memory: an SQLite database beside the reports.

Everything a run changes (file positions, stored events, the run's row, trends) is
written in one transaction that commits only after the reports are on disk, so a run
that dies at any point leaves the database as it found it. A lock file beside the
database keeps two runs from proceeding at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import AuthtriageError
from ..schema import COLUMNS, concat_events, conform, empty_events
from .trends import ANY, Key

__all__ = ["Busy", "State", "FileState", "locked"]

SCHEMA_VERSION = 1
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,            -- ok | failed
    error TEXT,
    lines INTEGER NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,         -- events parsed from new input
    window_events INTEGER NOT NULL DEFAULT 0,  -- events the findings were computed over
    findings INTEGER NOT NULL DEFAULT 0,
    high_water TEXT,                           -- newest event time known after the run
    trends TEXT,                               -- JSON: new / continuing / stopped
    reports TEXT                               -- JSON: paths written
);
CREATE TABLE IF NOT EXISTS files (
    job TEXT NOT NULL,
    key TEXT NOT NULL,               -- text: content fingerprint; evtx and whole files: the path
    kind TEXT NOT NULL,              -- text | evtx | whole
    path TEXT NOT NULL,
    dev INTEGER, ino INTEGER, size INTEGER, mtime REAL,
    fp_len INTEGER, fp TEXT,         -- sha256 of the first fp_len bytes of the (decompressed) content
    offset INTEGER NOT NULL DEFAULT 0,
    lines INTEGER NOT NULL DEFAULT 0,   -- lines (or journal entries) before offset
    last_record INTEGER,
    PRIMARY KEY (job, key)
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    origin TEXT NOT NULL,
    min_ts INTEGER, max_ts INTEGER,  -- ns since the epoch, UTC
    rows INTEGER NOT NULL,
    data BLOB NOT NULL               -- the events as Parquet (dictionary-encoded, zstd)
);
CREATE INDEX IF NOT EXISTS batches_job_time ON batches (job, max_ts);
-- what an earlier version remembered per host and cause: read once, in place of "seen"
CREATE TABLE IF NOT EXISTS streaks (
    job TEXT NOT NULL, host TEXT NOT NULL, cause TEXT NOT NULL,
    since TEXT NOT NULL, last_seen TEXT NOT NULL, active INTEGER NOT NULL,
    cadence REAL, title TEXT,
    PRIMARY KEY (job, host, cause)
);
-- the last run's findings, for the next run's "what changed"
CREATE TABLE IF NOT EXISTS seen (
    job TEXT NOT NULL, host TEXT NOT NULL, cause TEXT NOT NULL,
    subject TEXT NOT NULL,           -- JSON: [[column, value], ...], the values its cause gathers findings by
    item TEXT NOT NULL,              -- JSON: title, verdict, since, last_seen, cadence, an attack's sources
    PRIMARY KEY (job, host, cause, subject)
);
"""


class Busy(AuthtriageError):
    """Another run holds the lock."""


_HELD: set[int] = set()  # lock files this process holds open


def _close_held() -> None:
    """In a forked child: close the lock files, so that the lock goes with the process that
    took it (a worker left running after its parent died kept the lock and every later run
    was refused)."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held)


@contextmanager
def locked(db: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` exclusively, or raise :class:`Busy` at once."""
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
            raise Busy(f"another scheduled run (pid {holder}) is using {db}; not starting a second one") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD.add(fd)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # closing releases the lock


@dataclass
class FileState:
    key: str
    kind: str
    path: str
    dev: int | None = None
    ino: int | None = None
    size: int | None = None
    mtime: float | None = None
    fp_len: int | None = None
    fp: str | None = None
    offset: int = 0
    lines: int = 0
    last_record: int | None = None


def _ns(ts: Any) -> int | None:
    return None if ts is None or pd.isna(ts) else int(pd.Timestamp(ts).value)


class State:
    """One connection, one transaction per run (:meth:`begin` … :meth:`commit`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_DDL)
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise AuthtriageError(f"{path}: state schema {row[0]} is not {SCHEMA_VERSION}; move it aside to start over")

    def close(self) -> None:
        self.db.close()

    # transactions -------------------------------------------------------------------
    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # files ----------------------------------------------------------------------------
    def files(self, job: str) -> list[FileState]:
        cols = "key, kind, path, dev, ino, size, mtime, fp_len, fp, offset, lines, last_record"
        rows = self.db.execute(f"SELECT {cols} FROM files WHERE job=?", (job,)).fetchall()
        return [FileState(*r) for r in rows]

    def replace_files(self, job: str, files: list[FileState]) -> None:
        """The positions after this run: files not seen any more are forgotten."""
        self.db.execute("DELETE FROM files WHERE job=?", (job,))
        self.db.executemany(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (job, f.key, f.kind, f.path, f.dev, f.ino, f.size, f.mtime, f.fp_len, f.fp, f.offset, f.lines,
                 f.last_record)
                for f in files
            ],
        )

    # events ---------------------------------------------------------------------------
    def add_events(self, job: str, run_id: int, origin: str, events: pd.DataFrame) -> None:
        if events.empty:
            return
        table = pa.Table.from_pandas(events, preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        ts = events["timestamp"]
        self.db.execute(
            "INSERT INTO batches (job, run_id, origin, min_ts, max_ts, rows, data) VALUES (?,?,?,?,?,?,?)",
            (job, run_id, origin, _ns(ts.min()), _ns(ts.max()), len(events), buf.getvalue()),
        )

    def drop_origin(self, job: str, origin: str) -> None:
        self.db.execute("DELETE FROM batches WHERE job=? AND origin=?", (job, origin))

    def newest(self, job: str) -> pd.Timestamp | None:
        row = self.db.execute("SELECT max(max_ts) FROM batches WHERE job=?", (job,)).fetchone()
        return None if row[0] is None else pd.Timestamp(row[0], unit="ns", tz="UTC")

    def events_since(self, job: str, start: pd.Timestamp, run_id: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """Stored events at or after ``start`` (and those without a time), and a mask of
        those that run ``run_id`` added."""
        cut = int(start.value)
        rows = self.db.execute(
            "SELECT run_id, data FROM batches WHERE job=? AND (max_ts IS NULL OR max_ts >= ?) ORDER BY id", (job, cut)
        ).fetchall()
        frames, fresh = [], []
        for run, blob in rows:
            frame = pq.read_table(io.BytesIO(blob)).to_pandas()
            frame = conform(frame[[c for c in COLUMNS if c in frame.columns]])
            frame = frame[~(frame["timestamp"] < start).fillna(False)]
            frames.append(frame)
            fresh.append(np.full(len(frame), run == run_id))
        if not frames:
            return empty_events(), np.zeros(0, dtype=bool)
        return concat_events(frames), np.concatenate(fresh)

    def prune(self, job: str, before: pd.Timestamp) -> int:
        cur = self.db.execute("DELETE FROM batches WHERE job=? AND max_ts < ?", (job, int(before.value)))
        return cur.rowcount

    # runs -----------------------------------------------------------------------------
    def new_run(self, job: str, started: str) -> int:
        cur = self.db.execute("INSERT INTO runs (job, started, status) VALUES (?, ?, 'running')", (job, started))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, **values: Any) -> None:
        for key in ("trends", "reports"):
            if key in values:
                values[key] = json.dumps(values[key], ensure_ascii=False)
        cols = ", ".join(f"{k}=?" for k in values)
        self.db.execute(f"UPDATE runs SET {cols} WHERE id=?", (*values.values(), run_id))

    def record_failure(self, job: str, started: str, finished: str, error: str) -> None:
        """A failed run's row, in a transaction of its own (nothing else changes)."""
        self.db.execute(
            "INSERT INTO runs (job, started, finished, status, error) VALUES (?,?,?,'failed',?)",
            (job, started, finished, error[:2000]),
        )

    def last_ok(self, job: str) -> dict[str, Any] | None:
        rows = self.runs(job, status="ok", limit=1)
        return rows[0] if rows else None

    def runs(self, job: str | None = None, status: str | None = None, limit: int | None = None) -> list[dict]:
        sql = "SELECT * FROM runs WHERE status != 'running'"
        args: list[Any] = []
        if job:
            sql += " AND job=?"
            args.append(job)
        if status:
            sql += " AND status=?"
            args.append(status)
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        cur = self.db.execute(sql, args)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            item = dict(zip(names, row, strict=True))
            for key in ("trends", "reports"):
                item[key] = json.loads(item[key]) if item[key] else None
            out.append(item)
        return out

    # trends ---------------------------------------------------------------------------
    def seen(self, job: str) -> dict[Key, dict[str, Any]]:
        """The last run's findings (:func:`analyzer.schedule.trends.trends`' ``seen``); after an
        upgrade, what the earlier version kept per host and cause, as subject :data:`ANY`."""
        rows = self.db.execute("SELECT host, cause, subject, item FROM seen WHERE job=?", (job,)).fetchall()
        if rows:
            return {(h, c, tuple(tuple(p) for p in json.loads(s))): json.loads(i) for h, c, s, i in rows}
        cur = self.db.execute(
            "SELECT host, cause, since, last_seen, cadence, title FROM streaks WHERE job=? AND active", (job,)
        )
        return {
            (h, c, ANY): {"title": t, "verdict": None, "since": s, "last_seen": ls, "cadence": cad, "src_ips": []}
            for h, c, s, ls, cad, t in cur.fetchall()
        }

    def replace_seen(self, job: str, seen: dict[Key, dict[str, Any]]) -> None:
        """Remember this run's findings in place of the last run's."""
        self.db.execute("DELETE FROM seen WHERE job=?", (job,))
        self.db.execute("DELETE FROM streaks WHERE job=?", (job,))
        self.db.executemany(
            "INSERT INTO seen VALUES (?,?,?,?,?)",
            [
                (job, host, cause, json.dumps(subject, ensure_ascii=False), json.dumps(item, ensure_ascii=False))
                for (host, cause, subject), item in seen.items()
            ],
        )
