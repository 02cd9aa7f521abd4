"""One scheduled run: read what is new, compute findings over the window, write the
reports, then commit the new state; trends (:mod:`.trends`) compare this run's findings
with the last run's."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import atomic_write
from ..analysis import iso_utc
from ..classify import load_rules
from ..engine import Engine, EngineError, open_engine
from ..errors import AuthtriageError
from ..ingest import IngestOptions, InputReport
from ..ingest.workers import usable_cpus
from ..pipeline import Report, triage_events
from .inputs import read_new
from .jobs import Job, Schedule
from .state import State, locked
from .trends import KINDS, fresh_counts, trends

__all__ = ["KINDS", "RunOutcome", "run_jobs", "run_job", "trends", "retain"]

_STAMP = re.compile(r"^(\d{8}T\d{6}Z(?:-\d+)?)\.(json|html|md|text)$")


@dataclass
class RunOutcome:
    job: str
    ok: bool
    run_id: int | None = None
    reports: list[str] = field(default_factory=list)
    error: str | None = None
    trends: dict[str, list[dict]] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def run_jobs(
    schedule: Schedule,
    only: str | None = None,
    progress: Callable[[InputReport], None] | None = None,
    jobs: int | None = None,
    cluster: str | None = None,
) -> list[RunOutcome]:
    """Run every job (or the one named) once, under the state database's lock. ``cluster``: a
    Dask scheduler (``tcp://HOST:8786``), connected to once, whose workers analyze the jobs'
    hosts; one that cannot be reached, or is lost during a job, raises
    :class:`~analyzer.engine.EngineError` (that job's failure recorded, the rest not run)."""
    selected = [schedule.job(only)] if only else list(schedule.jobs)
    outcomes = []
    with locked(schedule.state):
        state = State(schedule.state)
        try:
            with open_engine(cluster, 1) if cluster else contextlib.nullcontext() as engine:
                for job in selected:
                    outcomes.append(run_job(job, state, progress=progress, jobs=jobs, engine=engine))
        finally:
            state.close()
    return outcomes


def run_job(
    job: Job,
    state: State,
    progress: Callable[[InputReport], None] | None = None,
    jobs: int | None = None,
    now: dt.datetime | None = None,
    engine: Engine | None = None,
) -> RunOutcome:
    """Run one job; on any failure the state is rolled back and the failure recorded (a lost
    cluster's :class:`~analyzer.engine.EngineError` is raised then too: the next job would
    fail the same way). ``engine``: what analyzes the hosts (default: local processes)."""
    started = now or _now()
    try:
        return _run(job, state, started, progress, jobs, engine)
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
        state.rollback()
        message = str(exc) if isinstance(exc, AuthtriageError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AuthtriageError):
            message += "\n" + traceback.format_exc(limit=5)
        state.record_failure(job.name, _iso(started), _iso(_now()), message)
        if isinstance(exc, EngineError):
            raise
        return RunOutcome(job=job.name, ok=False, error=message.splitlines()[0])


def _run(job: Job, state: State, started: dt.datetime, progress, jobs, engine: Engine | None) -> RunOutcome:
    ruleset = load_rules(list(job.rules))
    opts = IngestOptions(tz=job.profile.timezone, jobs=max(1, jobs or usable_cpus()))
    opts.zone()
    state.begin()
    previous = state.last_ok(job.name)
    run_id = state.new_run(job.name, _iso(started))
    got = read_new(job.inputs, state.files(job.name), opts, progress)
    for origin in got.replaced:
        state.drop_origin(job.name, origin)
    new_events = 0
    for origin, events in got.events:
        state.add_events(job.name, run_id, origin, events)
        new_events += len(events)
    newest = state.newest(job.name)
    until = newest if newest is not None else pd.Timestamp(started)
    since = until - pd.Timedelta(days=job.window_days)
    window, fresh = state.events_since(job.name, since, run_id)
    twice = _same_records(window)
    if twice.any():  # an archived copy of a Windows log beside the live one: count each record once
        window, fresh = window[~twice].reset_index(drop=True), fresh[~twice]
        got.notes.append(
            f"{int(twice.sum())} Windows event(s) appeared in more than one file (an archived copy of a log?) "
            "and were counted once"
        )
    # the window's events, stored by this run and earlier ones: the report states its start
    opts_window = IngestOptions(tz=opts.tz, since=since, until=None, jobs=opts.jobs)
    if engine is not None:
        engine.tasks = 0  # the report counts this job's tasks, not those of the run's earlier jobs
    report = triage_events(
        window, inputs=got.reports, profile=job.profile, rules=ruleset, options=opts_window, engine=engine
    )
    doc = report.data
    for item, path in zip(doc["inputs"], got.paths, strict=True):
        item["path"] = path
    counts = fresh_counts(window, report.classification.cause, fresh)
    found = trends(doc["findings"], state.seen(job.name), counts, previous is not None)
    doc["schedule"] = {
        "job": job.name,
        "run": run_id,
        "started": _iso(started),
        "previous_run": (
            {"run": previous["id"], "started": previous["started"], "high_water": previous["high_water"]}
            if previous
            else None
        ),
        "window": {"since": iso_utc(since), "until": iso_utc(until), "days": job.window_days},
        "new_events": new_events,
        "window_events": int(len(window)),
        "notes": got.notes
        + (
            ["no new events were read in this run: the findings below come from events read by earlier runs"]
            if new_events == 0 and previous
            else []
        ),
        "trends": found["trends"],
    }
    written = write_reports(job, report, started)
    # the reports are on disk: now the state may move on
    state.replace_files(job.name, got.files)
    state.replace_seen(job.name, found["seen"])
    state.prune(job.name, since)
    state.finish_run(
        run_id,
        finished=_iso(_now()),
        status="ok",
        lines=doc["totals"]["lines"],
        records=doc["totals"]["records"],
        events=new_events,
        window_events=int(len(window)),
        findings=len(doc["findings"]),
        high_water=iso_utc(newest) if newest is not None else (previous or {}).get("high_water"),
        trends=found["trends"],
        reports=[str(p) for p in written],
    )
    state.commit()
    retain(job)
    return RunOutcome(job=job.name, ok=True, run_id=run_id, reports=[str(p) for p in written], trends=found["trends"])


def _same_records(events: pd.DataFrame) -> np.ndarray:
    """EVTX events seen before in the window: same computer, channel, event id, record id and time."""
    evtx = (events["log"] == "evtx").fillna(False).to_numpy() & events["locator"].notna().to_numpy()
    if not evtx.any():
        return np.zeros(len(events), dtype=bool)
    keys = ["host", "channel", "event_id", "locator", "timestamp", "action", "outcome"]
    dup = events.loc[evtx, keys].astype(object).duplicated(keep="first").to_numpy()
    out = np.zeros(len(events), dtype=bool)
    out[np.flatnonzero(evtx)[dup]] = True
    return out


# ---------------------------------------------------------------------------------
# files


def write_reports(job: Job, report: Report, started: dt.datetime) -> list[Path]:
    """``<output>/<job>/<UTC stamp>.<fmt>`` per format, and ``latest.<fmt>`` replaced atomically."""
    folder = job.directory
    folder.mkdir(parents=True, exist_ok=True)
    base = started.strftime("%Y%m%dT%H%M%SZ")
    # two runs in one second: number them after the newest report of that second
    taken = [m.group(1) for p in folder.iterdir() if (m := _STAMP.match(p.name)) and m.group(1).startswith(base)]
    n = max((int(t[17:] or 1) for t in taken), default=0)
    stamp = base if n == 0 else f"{base}-{n + 1}"
    written = []
    for fmt in job.formats:
        text = report.render(fmt)
        path = folder / f"{stamp}.{fmt}"
        atomic_write(path, text)
        atomic_write(folder / f"latest.{fmt}", text)
        written.append(path)
    return written


def retain(job: Job) -> list[Path]:
    """Keep the newest ``keep`` reports per format; return what was removed."""
    removed = []
    by_fmt: dict[str, list[tuple[str, Path]]] = {}
    for p in job.directory.iterdir():
        m = _STAMP.match(p.name)
        if m:
            by_fmt.setdefault(m.group(2), []).append((m.group(1), p))
    for items in by_fmt.values():
        items.sort(key=lambda it: (it[0][:16], int(it[0][17:] or 1)))
        for _, p in items[: max(0, len(items) - job.keep)]:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
