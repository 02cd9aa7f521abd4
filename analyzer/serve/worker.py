"""What runs in a worker process: read an upload, classify, write the reports.

The parent gives each analysis a process of its own, so a time limit can stop it and a
crash (or the kernel's OOM killer) takes only that analysis with it. The processes fork
from a server that imported this module, so they start with pandas, the rules and the
catalogs already loaded.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .._files import atomic_write
from ..classify import load_rules
from ..config import Profile
from ..errors import AuthtriageError
from ..ingest import IngestOptions
from ..ingest.catalog import load_catalog
from ..ingest.sources import Limits
from ..pipeline import NothingReadable, TriageOptions, triage

__all__ = ["analyze_upload", "child_main", "REPORT_FORMATS"]

REPORT_FORMATS = ("json", "html", "md")


def analyze_upload(
    upload_dir: str,
    out_dir: str,
    platform_net: list[str],
    tz: str | None,
    limits: dict[str, Any],
    cluster: str | None = None,
) -> dict[str, Any]:
    """Analyze every file in ``upload_dir``; reports go to ``out_dir``. Returns a small summary,
    or raises :class:`ValueError` with the reason when nothing could be read. ``cluster``: the
    Dask scheduler that runs the reads and the analysis (connected to for this upload; one that
    cannot be reached raises :class:`~analyzer.engine.EngineError`); None: this process."""
    out = Path(out_dir)
    profile = Profile().with_overrides(platform_net or None)
    opts = IngestOptions(tz=tz or None, jobs=1, limits=Limits(**limits), lazy_raw=True)
    names = sorted(os.listdir(upload_dir))
    last = [0.0]
    done = [0]

    def progress(rep) -> None:
        done[0] += 1
        now = time.monotonic()
        if now - last[0] > 0.5:
            last[0] = now
            atomic_write(out / "progress.json", json.dumps({"inputs_read": done[0], "current": rep.name}))

    try:  # inputs named as uploaded, not by their path on the server
        report = triage(
            names,
            profile=profile,
            rules=load_rules(),
            options=TriageOptions(opts, base=upload_dir, progress=progress, cluster=cluster),
        )
    except NothingReadable as exc:
        problems = [f"{r.name}: {r.error or r.skip_reason}" for r in exc.inputs if r.error or r.skipped]
        raise ValueError("nothing readable in the upload — " + "; ".join(problems or ["no files"])) from None
    for fmt in REPORT_FORMATS:
        atomic_write(out / f"report.{fmt}", report.render(fmt))
    hosts = report.data["hosts"]
    headline = "; ".join(f"{h['name']}: {h['headline']}" for h in hosts[:3]) or "no logins found"
    return {"findings": len(report.data["findings"]), "headline": headline[:500]}


def warm() -> None:
    """Load what every analysis needs (rules, message catalog, EVTX semantics), once, in the
    fork server, so that each analysis process starts with it in memory."""
    from ..ingest.windows import load_semantics

    load_rules()
    load_catalog()
    load_semantics()


warm()


def child_main(
    upload_dir: str, out_dir: str, platform_net: list[str], tz: str | None, limits: dict, cluster: str | None = None
) -> None:
    """Process entry point: the outcome goes to ``result.json`` (never an exception)."""
    out = Path(out_dir)
    try:
        summary = analyze_upload(upload_dir, out_dir, platform_net, tz, limits, cluster)
        outcome = {"ok": True, **summary}
    except (ValueError, OSError, AuthtriageError) as exc:
        outcome = {"ok": False, "error": str(exc)[:2000]}
    except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
        outcome = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"[:2000]}
    atomic_write(out / "result.json", json.dumps(outcome))
