"""Worker targets for the server tests (importable by the worker processes)."""

from __future__ import annotations

import time
from pathlib import Path


def block_until_released(upload_dir: str, out_dir: str, *_args) -> None:
    """Stand in for an analysis that takes as long as the test wants: wait for
    ``<data dir>/release`` (at most a minute), then write a failed result."""
    data_dir = Path(upload_dir).parents[2]
    (Path(out_dir) / "started").write_text("yes")
    deadline = time.monotonic() + 60
    while not (data_dir / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    (Path(out_dir) / "result.json").write_text('{"ok": false, "error": "released"}')
