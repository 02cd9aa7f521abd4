"""The ``analyze`` summary: per input what was read, and event counts by key columns.

Findings come with classification; until then the summary is what a support engineer
needs to see that the tool read what it was given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .analysis import Examples, analyze_events, iso_utc
from .classify import RuleSet, load_rules
from .config import Profile
from .ingest import IngestOptions, IngestResult
from .report import timeline

__all__ = ["summarize", "SUMMARY_VERSION"]

SUMMARY_VERSION = 1
COUNT_BY = ("host", "service", "outcome", "reason", "user", "src_ip")
TOP = 50


def _counts(events: pd.DataFrame, column: str, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
    col = events[column] if rows is None else events[column][rows]
    vc = col.value_counts(dropna=False)  # by count, descending
    vc = vc[vc > 0]
    if len(vc) > TOP:  # the first TOP and everything tied with the last of them
        vc = vc[vc >= vc.iloc[TOP - 1]]
    items = sorted((-int(v), "(none)" if pd.isna(k) else str(k)) for k, v in vc.items())  # ties by value
    return [{"value": k, "count": -n} for n, k in items[:TOP]]


def summarize(
    result: IngestResult,
    options: IngestOptions,
    profile: Profile | None = None,
    ruleset: RuleSet | None = None,
    analysis: dict[str, Any] | None = None,
    examples: Examples | None = None,
) -> dict[str, Any]:
    """A JSON-ready summary of an ingest run, with hosts, roles and findings
    (``analysis``: :func:`analyze_events` of the same events, when already done;
    ``examples``: passed to it otherwise)."""
    ev = result.events
    profile = profile or Profile()
    ruleset = ruleset or load_rules()
    if analysis is None:
        analysis = analyze_events(ev, ruleset, profile, jobs=options.jobs, examples=examples)
    failures = (ev["outcome"] == "failure").to_numpy(dtype=bool, na_value=False)  # a mask: no copy of the rows
    assumptions: dict[str, list[str]] = {}
    for rep in result.inputs:
        for key, text in rep.assumptions.items():
            assumptions.setdefault(key, [])
            if text not in assumptions[key]:
                assumptions[key].append(text)
    return {
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
            "events": int(len(ev)),
            "failures": int(failures.sum()),
            "unparsed": sum(r.unparsed for r in result.inputs),
            "errors": sum(1 for r in result.inputs if r.error),
            "findings": len(analysis["findings"]),
        },
        "first_seen": iso_utc(ev["timestamp"].min()) if len(ev) else None,
        "last_seen": iso_utc(ev["timestamp"].max()) if len(ev) else None,
        "events_by": {col: _counts(ev, col) for col in COUNT_BY},
        "failures_by": {col: _counts(ev, col, failures) for col in COUNT_BY},
        "platform": {
            "networks": list(profile.networks),
            "accounts": list(profile.accounts),
            "ports": list(profile.ports),
            "config": profile.path,
        },
        "timeline": timeline(ev, analysis["classification"].cause),
        "hosts": analysis["hosts"],
        "findings": analysis["findings"],
        "unclassified": analysis["unclassified"],
    }
