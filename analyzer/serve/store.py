"""The index of analyses: one SQLite table in the data directory; reports are files."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["Store", "new_id", "valid_id", "now_iso"]

_ID = re.compile(r"^[A-Za-z0-9_-]{16}$")
_DDL = """
CREATE TABLE IF NOT EXISTS analyses (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    status TEXT NOT NULL,        -- queued | running | done | failed
    error TEXT,
    files TEXT NOT NULL,         -- JSON: [{"name": …, "bytes": …}]
    bytes INTEGER NOT NULL,
    platform_net TEXT NOT NULL,  -- JSON list
    tz TEXT,
    started TEXT,
    finished TEXT,
    findings INTEGER,
    headline TEXT
);
CREATE INDEX IF NOT EXISTS analyses_created ON analyses (created);
"""
FIELDS = ("id", "created", "status", "error", "files", "bytes", "platform_net", "tz", "started", "finished",
          "findings", "headline")  # fmt: skip


def new_id() -> str:
    return secrets.token_urlsafe(12)  # 16 URL-safe characters


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Store:
    """Thread-safe access to the index (the event loop and the worker threads share it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_DDL)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, row: tuple | None) -> dict[str, Any] | None:
        if row is None:
            return None
        item = dict(zip(FIELDS, row, strict=True))
        item["files"] = json.loads(item["files"])
        item["platform_net"] = json.loads(item["platform_net"])
        return item

    def add(self, id: str, files: list[dict], size: int, platform_net: list[str], tz: str | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO analyses (id, created, status, files, bytes, platform_net, tz) VALUES (?,?,?,?,?,?,?)",
                (id, now_iso(), "queued", json.dumps(files), size, json.dumps(platform_net), tz),
            )

    def get(self, id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(FIELDS)} FROM analyses WHERE id=?", (id,)).fetchone()
        return self._row(row)

    def update(self, id: str, **values: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE analyses SET {cols} WHERE id=?", (*values.values(), id))

    def delete(self, id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM analyses WHERE id=?", (id,)).rowcount > 0

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(FIELDS)} FROM analyses ORDER BY created DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def interrupted(self) -> list[str]:
        """Mark what was queued or running when the server stopped as failed; return their ids."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM analyses WHERE status IN ('queued','running')")]
            self._db.execute(
                "UPDATE analyses SET status='failed', finished=?, error=? WHERE status IN ('queued','running')",
                (now_iso(), "interrupted: the server stopped before this analysis finished; upload the files again"),
            )
        return ids
