"""What changed since the previous scheduled run, finding by finding.

A finding is known from run to run by its identity: host, cause, and the values its cause
gathers findings by (``findings_by``, in ``rules/causes.yaml``): an attack is its source's (a
campaign, :mod:`analyzer.campaigns`, whose events of any campaign cause count as its own), the
platform's probe one source's and account's. Each finding of this run is

- **new**: no finding of the previous run had its identity;
- **continuing**: the previous run had it, and events read in this run belong to it;
- **quiet**: the previous run had it, but nothing read in this run belongs to it (it is
  still in the report: its events are inside the window);

and each finding of the previous run that this run has not is **stopped**. So a finding in
the report is never "stopped". Every item is titled and dated from its own finding (its
first time from the earliest run that had it); "failing since" is said of the platform's
failing login only; a new attack names its sources, a continuing one the sources new to it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..classify import load_causes
from ..prose import every, plural, some
from ..schema import UNKNOWN_HOST

__all__ = ["KINDS", "ANY", "Key", "finding_key", "fresh_counts", "trends"]

KINDS = ("new", "continuing", "quiet", "stopped")
# the finding's field that holds the value of each event column findings are gathered by
# (a column not listed here does not tell findings of one cause apart from run to run)
_FIELDS = {"src_ip": "src_ips", "user": "users", "service": "service", "reason": "reasons"}
# a finding's identity: host, cause, and (column, value) per column its cause gathers by
Key = tuple[str, str, tuple[tuple[str, str | None], ...]]
# the subject of what an earlier version remembered per host and cause only: any finding
# of that host and cause matches it
ANY: tuple[tuple[str, str | None], ...] = (("*", "*"),)
CAMPAIGN = "(campaign)"  # fresh_counts' key of an attack source's events, whatever their campaign cause
NEW_SOURCES_LISTED = 50  # in a trend's JSON item; the count says how many there are
_SHOWN = 3  # sources named in a trend's sentence


def _columns(cause: str) -> tuple[str, ...]:
    spec = load_causes().by_id.get(cause)
    return tuple(c for c in spec.findings_by if c in _FIELDS) if spec else ()


def finding_key(f: dict[str, Any]) -> Key:
    """A finding's identity (:data:`Key`)."""
    subject = []
    for col in _columns(f["cause"]):
        values = f.get(_FIELDS[col]) or []  # one value (a list, or the reasons' counts), or none
        subject.append((col, str(next(iter(values))) if values else None))
    return (f["host"] or UNKNOWN_HOST, f["cause"], tuple(subject))


def fresh_counts(events: pd.DataFrame, causes: pd.Series, fresh: np.ndarray) -> Counter[Key]:
    """Per finding identity, how many of the events marked ``fresh`` (read in this run) it
    gathers; ``causes``: each event's cause (None: unclassified)."""
    out: Counter[Key] = Counter()
    rows = np.flatnonzero(fresh & causes.notna().to_numpy())
    if not rows.size:
        return out
    cause = causes.iloc[rows].astype(object).to_numpy()
    for c in pd.unique(cause):
        mine = rows[cause == c]
        cols = _columns(c)
        frame = pd.DataFrame({k: events[k].iloc[mine].astype(object).to_numpy() for k in ("host", *cols)})
        for values, n in frame.groupby(list(frame.columns), dropna=False, sort=False).size().items():
            values = values if isinstance(values, tuple) else (values,)
            host, *rest = (None if pd.isna(v) else str(v) for v in values)
            out[(host or UNKNOWN_HOST, str(c), tuple(zip(cols, rest, strict=True)))] += int(n)
    # an attack finding gathers its source's events of every campaign cause (analyzer.campaigns):
    # counted per host and source too, under CAMPAIGN
    campaign = {c.cause for c in load_causes().campaigns}
    mine = rows[np.isin(cause, list(campaign))]
    if mine.size:
        frame = pd.DataFrame({k: events[k].iloc[mine].astype(object).to_numpy() for k in ("host", "src_ip")})
        for (host, ip), n in frame.dropna(subset=["src_ip"]).groupby(["host", "src_ip"], dropna=False).size().items():
            out[(UNKNOWN_HOST if pd.isna(host) else str(host), CAMPAIGN, (("src_ip", str(ip)),))] += int(n)
    return out


def _fresh(f: dict[str, Any], key: Key, fresh: Counter[Key]) -> int:
    """How many events read in this run a finding gathers: those of its identity, or for an
    attack finding (a campaign) those of its sources under any campaign cause."""
    n = fresh.get(key, 0)
    if f["cause"] in {c.cause for c in load_causes().campaigns}:
        n = max(n, sum(fresh.get((key[0], CAMPAIGN, (("src_ip", ip),)), 0) for ip in f["src_ips"]))
    return n


def _when(ts: str | None) -> str:
    return "?" if not ts else pd.Timestamp(ts).strftime("%b %-d %H:%M UTC")


def _span(a: str | None, b: str | None) -> str:
    if not a or not b:
        return "?"
    delta = pd.Timestamp(b) - pd.Timestamp(a)
    if delta.days >= 1:
        return plural(delta.days, "day")
    hours = int(delta.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours} h"
    return f"{max(int(delta.total_seconds() // 60), 0)} min"


def _going(cause: str, verdict: str) -> str:
    """How a finding goes on, in a word: only the platform's login "fails"."""
    spec = load_causes().by_id.get(cause)
    if spec is not None and spec.platform_probe:
        return "succeeding" if verdict == "expected" else "failing"
    return "attacking" if verdict == "attack" else "seen"


def _sources(sources: list[str], title: str) -> str:
    """" from 203.0.113.9" / " from 14 sources: a, b, c and 11 more" ("" when the title
    names the one source already, or there is none)."""
    if not sources or (len(sources) == 1 and sources[0] in title):
        return ""
    if len(sources) == 1:
        return f" from {sources[0]}"
    return f" from {len(sources):,} sources: {some(sources, _SHOWN)}"


def _memory(f: dict[str, Any], since: str | None) -> dict[str, Any]:
    """What the next run needs of a finding: its title and times, and an attack's sources."""
    return {
        "title": f.get("title") or f["cause"],
        "verdict": f["verdict"],
        "since": since,
        "last_seen": f["last_seen"],
        "cadence": f.get("cadence_seconds"),
        "src_ips": list(f["src_ips"]) if f["verdict"] == "attack" else [],
    }


def _same_campaign(
    f: dict[str, Any], previous: dict[Key, dict[str, Any]], campaign: set[str], matched: set[Key]
) -> Key | None:
    """The previous run's campaign on the same host that shares a source with ``f`` (its cause
    may have changed: a brute force that got in is a success after an attack now), not
    matched yet; the one sharing the most sources."""
    mine = set(f["src_ips"])
    best, most = None, 0
    for key, old in previous.items():
        if key[0] != (f["host"] or UNKNOWN_HOST) or key[1] not in campaign or key in matched:
            continue
        shared = len(mine & set(old.get("src_ips") or []))
        if shared > most or (shared == most and shared and repr(key) < repr(best)):
            best, most = key, shared
    return best


def _earliest(a: str | None, b: str | None) -> str | None:
    return min((t for t in (a, b) if t), key=pd.Timestamp, default=None)


def trends(
    findings: list[dict[str, Any]],
    previous: dict[Key, dict[str, Any]],
    fresh: Counter[Key],
    had_previous: bool,
) -> dict[str, Any]:
    """This run's findings against the previous run's (``previous``: per identity what
    :func:`_memory` kept; ``fresh``: :func:`fresh_counts`). Returns ``trends`` (per kind of
    :data:`KINDS` its items, in the report's order) and ``seen``, what the next run compares
    with: this run's findings."""
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    seen: dict[Key, dict[str, Any]] = {}
    matched: set[Key] = set()
    campaign = {c.cause for c in load_causes().campaigns}
    for f in findings:
        key = finding_key(f)
        host, cause, subject = key
        old_key = key if key in previous else (host, cause, ANY) if (host, cause, ANY) in previous else None
        if old_key is None and cause in campaign:  # a campaign whose cause or first source changed
            old_key = _same_campaign(f, previous, campaign, matched)
        old = previous[old_key] if had_previous and old_key else None
        if old_key:
            matched.add(old_key)
        title, n = f.get("title") or cause, _fresh(f, key, fresh)
        attack = f["verdict"] == "attack"
        since = _earliest(old["since"], f["first_seen"]) if old else f["first_seen"]
        if old is None:
            kind, new_sources = "new", list(f["src_ips"]) if attack else []
        else:
            kind = "continuing" if n else "quiet"
            known = set(old.get("src_ips") or [])
            same = old_key == key or old_key[1] in campaign  # (not a match by cause alone)
            new_sources = [s for s in f["src_ips"] if s not in known] if attack and same else []
        cadence = f.get("cadence_seconds")
        going = " ".join(w for w in (_going(cause, f["verdict"]), every(cadence)) if w)
        where = f"{title} on {host}"
        if kind == "new":
            text = (
                f"{where}{_sources(f['src_ips'], title) if attack else ''}: first at {_when(f['first_seen'])}"
                f"{', ' + every(cadence) if cadence else ''}; {plural(f.get('attempts', f['count']), 'attempt')}"
            )
        elif kind == "continuing":
            text = f"{where}: {going} since {_when(since)} ({_span(since, f['last_seen'])}); "
            text += f"{plural(n, 'new event')} in this run"
            if new_sources:
                text += f"; new sources: {some(new_sources, _SHOWN)}"
        else:
            text = f"{where}: nothing new in this run; last at {_when(f['last_seen'])}"
        out[kind].append(
            {
                "host": host,
                "cause": cause,
                "subject": {col: value for col, value in subject},
                "title": title,
                "verdict": f["verdict"],
                "count": f["count"],
                "new_events": n,
                "first_seen": f["first_seen"],
                "since": since,
                "last_seen": f["last_seen"],
                "cadence_seconds": cadence,
                "new_sources": new_sources[:NEW_SOURCES_LISTED],
                "new_source_count": len(new_sources),
                "text": text,
            }
        )
        seen[key] = _memory(f, since)
    for key, old in sorted(previous.items(), key=lambda kv: repr(kv[0])):
        if key in matched or not had_previous:
            continue
        host, cause, subject = key
        title = old.get("title") or cause
        out["stopped"].append(
            {
                "host": host,
                "cause": cause,
                "subject": {} if subject == ANY else {col: value for col, value in subject},
                "title": title,
                "verdict": old.get("verdict"),
                "since": old["since"],
                "last_seen": old["last_seen"],
                "cadence_seconds": old.get("cadence"),
                "text": (
                    f"{title} on {host}: no longer in this report; last at {_when(old['last_seen'])}, "
                    f"{_span(old['since'], old['last_seen'])} after it began at {_when(old['since'])}"
                ),
            }
        )
    return {"trends": out, "seen": seen}
