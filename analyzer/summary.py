"""The report's document: per input what was read, event counts by key columns, the
hosts with their roles and verdicts, the findings ranked and explained, the timeline.

It is complete when it leaves here: :mod:`analyzer.report` only renders it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .analysis import Examples, analyze_events, host_verdicts, iso_utc, sources_across_hosts, timeline
from .campaigns import relabel
from .classify import RuleSet, load_rules
from .config import Profile
from .ingest import IngestOptions, IngestResult
from .prose import explain

__all__ = ["summarize", "REPORT_VERSION", "SUMMARY_VERSION"]

REPORT_VERSION = 2  # of the JSON report (reports/report.schema.json); 2: attempts, hosts' platform login
SUMMARY_VERSION = 1
COUNT_BY = ("host", "service", "outcome", "reason", "user", "src_ip")
TOP = 50


def value_counts(
    events: pd.DataFrame, column: str, rows: np.ndarray | None = None, whole: bool = True
) -> dict[tuple[bool, str], int]:
    """A column's values and their counts (``rows``: a mask of the rows to count), keyed by
    (missing, text): what :func:`top_counts` ranks, and what shares of hosts add up. With
    ``whole`` (these are all the events): only those :func:`top_counts` can pick."""
    col = events[column] if rows is None else events[column][rows]
    vc = col.value_counts(dropna=False)  # by count, descending
    vc = vc[vc > 0]
    if whole and len(vc) > TOP:  # the first TOP and everything tied with the last of them
        vc = vc[vc >= vc.iloc[TOP - 1]]
    return {(bool(pd.isna(k)), "(none)" if pd.isna(k) else str(k)): int(v) for k, v in vc.items()}


def add_counts(into: dict[tuple[bool, str], int], more: dict[tuple[bool, str], int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def top_counts(counts: dict[tuple[bool, str], int]) -> list[dict[str, Any]]:
    """The TOP values by count, ties by value."""
    items = sorted((-n, label) for (_, label), n in counts.items())
    return [{"value": k, "count": -n} for n, k in items[:TOP]]


def summarize(
    result: IngestResult,
    options: IngestOptions,
    profile: Profile | None = None,
    ruleset: RuleSet | None = None,
    analysis: dict[str, Any] | None = None,
    examples: Examples | None = None,
) -> dict[str, Any]:
    """The report's document of an ingest run (``analysis``: :func:`analyze_events` of the
    same events, when already done; ``examples``: passed to it otherwise). Its findings are
    explained and its hosts given their verdicts and headlines here, in place."""
    ev = result.events
    profile = profile or Profile()
    ruleset = ruleset or load_rules()
    if analysis is None:
        analysis = analyze_events(ev, ruleset, profile, jobs=options.jobs, examples=examples)
    explain(analysis["findings"])  # (those a worker process explained already keep their words)
    host_verdicts(analysis["hosts"], analysis["findings"], ev, analysis["classification"].cause)
    failures = (ev["outcome"] == "failure").to_numpy(dtype=bool, na_value=False)  # a mask: no copy of the rows
    return document(
        result,
        options,
        profile,
        analysis,
        events=int(len(ev)),
        failures=int(failures.sum()),
        first_seen=ev["timestamp"].min() if len(ev) else None,
        last_seen=ev["timestamp"].max() if len(ev) else None,
        events_by={col: top_counts(value_counts(ev, col)) for col in COUNT_BY},
        failures_by={col: top_counts(value_counts(ev, col, failures)) for col in COUNT_BY},
        timeline=timeline(
            ev, relabel(ev, analysis["classification"].cause, analysis["findings"]), counted=analysis.get("counted")
        ),
    )


def document(
    result: IngestResult,
    options: IngestOptions,
    profile: Profile,
    analysis: dict[str, Any],
    *,
    events: int,
    failures: int,
    first_seen: Any,
    last_seen: Any,
    events_by: dict[str, list[dict[str, Any]]],
    failures_by: dict[str, list[dict[str, Any]]],
    timeline: dict[str, Any],
) -> dict[str, Any]:
    """The report's document from what was read (``result``), the analysis (its hosts,
    findings, attempts and unclassified count) and the figures over every event."""
    assumptions: dict[str, list[str]] = {}
    for rep in result.inputs:
        for key, text in rep.assumptions.items():
            assumptions.setdefault(key, [])
            if text not in assumptions[key]:
                assumptions[key].append(text)
    return {
        "report_version": REPORT_VERSION,
        "version": SUMMARY_VERSION,
        "generator": f"authtriage {__version__}",
        "window": {
            "since": options.since.isoformat() if options.since is not None else None,
            "until": options.until.isoformat() if options.until is not None else None,
            "left_out": result.outside,  # events read but outside the window
            "read_first": iso_utc(result.read_span[0]) if result.read_span[0] is not None else None,
            "read_last": iso_utc(result.read_span[1]) if result.read_span[1] is not None else None,
        },
        "assumptions": assumptions,
        "inputs": [r.as_dict() for r in result.inputs],
        "totals": {
            "inputs": len(result.inputs),
            "lines": sum(r.lines for r in result.inputs),
            "records": sum(r.records for r in result.inputs),
            "events": events,
            "failures": failures,
            **analysis.get("attempts", {}),  # failed login attempts and connections, each once
            "unparsed": sum(r.unparsed for r in result.inputs),
            "errors": sum(1 for r in result.inputs if r.error),
            "findings": len(analysis["findings"]),
        },
        "first_seen": iso_utc(first_seen) if events else None,
        "last_seen": iso_utc(last_seen) if events else None,
        "events_by": events_by,
        "failures_by": failures_by,
        "platform": {
            "networks": list(profile.networks),
            "accounts": list(profile.accounts),
            "ports": list(profile.ports),
            "config": profile.path,
        },
        "timeline": timeline,
        "hosts": analysis["hosts"],
        "sources_across_hosts": sources_across_hosts(analysis["findings"]),
        "findings": analysis["findings"],
        "unclassified": analysis["unclassified"],
    }
