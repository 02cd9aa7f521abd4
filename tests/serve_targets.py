"""Worker targets for the server tests (importable by the worker processes), and a server that
runs them (``python tests/serve_targets.py DATA_DIR PORT TARGET``)."""

from __future__ import annotations

import json
import mmap
import os
import re
import subprocess
import sys
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


def start_a_child_and_block(upload_dir: str, out_dir: str, *args) -> None:
    """An analysis that started a process of its own (as a pool would), then blocks."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    (Path(out_dir) / "grandchild").write_text(str(sleeper.pid))
    block_until_released(upload_dir, out_dir, *args)


def hold_the_gil(upload_dir: str, out_dir: str, *_args) -> None:
    """An analysis stuck in one C call that never lets go of the GIL (a regular expression that
    backtracks for ever): no Python thread of the process runs again."""
    (Path(out_dir) / "started").write_text("yes")
    re.match(r"(a+)+$", "a" * 64 + "b")


def by_name(upload_dir: str, out_dir: str, *args) -> None:
    """The stand-in named by the uploaded file: ``hold_the_gil.log`` runs :func:`hold_the_gil`."""
    name = os.listdir(upload_dir)[0].removesuffix(".log")
    globals()[name](upload_dir, out_dir, *args)


def allocate(upload_dir: str, out_dir: str, *_args) -> None:
    """An analysis that maps 512 MiB (without touching it) and reports as the real one does: every
    exception becomes an error in its result."""
    try:
        with mmap.mmap(-1, 512 << 20):
            outcome = {"ok": True, "findings": 0, "headline": "allocated"}
        for fmt, text in (("json", '{"inputs": []}'), ("html", "<p>allocated</p>"), ("md", "allocated")):
            (Path(out_dir) / f"report.{fmt}").write_text(text)
    except Exception as exc:  # noqa: BLE001 - as worker.child_main
        outcome = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
    (Path(out_dir) / "result.json").write_text(json.dumps(outcome))


def main() -> None:
    """Serve with one of these targets: the real server's process tree, a stand-in analysis."""
    import serve_targets  # by its name, which the worker processes can import (not __main__)
    import uvicorn

    from analyzer.serve import Settings, create_app

    data_dir, port, target = sys.argv[1], int(sys.argv[2]), getattr(serve_targets, sys.argv[3])
    settings = Settings(data_dir=Path(data_dir), port=port, workers=2, target=target)
    print(f"pid {os.getpid()}", flush=True)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
