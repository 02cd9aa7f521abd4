"""The analysis of events spilled to disk by host: a map over shares of whole hosts, then a
reduction into the report's document.

When a read spilled its events (:class:`analyzer.ingest.store.EventStore`), no process holds
every event again. The hosts are dealt into shares of at most SHARE_EVENTS events (a host
larger than that is a share of its own), and each share is one task (:func:`analyze_share`,
the same function on either engine): it reads its hosts' events back, cuts them to the
window, classifies them and finds, explains and dates their findings, and counts what the
report counts over every event (per column, per minute of the timeline). The reduction
(:func:`summarize_shares`) adds those up: the same document as one frame of every event
gives (a test compares them), at the memory of the largest share.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson
import pandas as pd

from .analysis import (
    analyze_serial,
    finding_rank,
    host_verdicts,
    keeps_hosts_apart,
    timeline_cells,
    timeline_of_cells,
)
from .campaigns import relabel
from .config import Profile
from .engine import EngineError
from .ingest import IngestOptions, IngestResult
from .ingest.runner import in_window
from .ingest.sources import Limits
from .ingest.store import EventStore, Share
from .prose import explain
from .schema import UNKNOWN_HOST
from .summary import COUNT_BY, add_counts, document, top_counts, value_counts

__all__ = ["SHARE_EVENTS", "analyze_share", "summarize_shares"]

SHARE_EVENTS = 250_000  # hosts are dealt into shares of up to this many events (one task each)
# and of up to this many hosts: what a host costs beyond its events (its findings' prose, the
# lines they quote read again: an EVTX file's ~40 ms) is shared out among the workers too
SHARE_HOSTS = 200

# what a share's task needs to quote its findings' lines: the inputs, their formats, the limits,
# and the client's working directory when the task runs elsewhere (a cluster's worker)
Quoting = tuple[list[str], dict[str, str | None], Limits, str | None]


def analyze_share(
    share: Share | pd.DataFrame, ruleset, profile: Profile, options: IngestOptions, quoting: Quoting | None = None
) -> dict[str, Any]:
    """One share of the hosts, analyzed (``share``: read back from the store here, or its
    events already read): its hosts with their verdicts, its findings explained (their lines
    quoted when ``quoting`` is given), and its part of the counts over every event."""
    from .evidence import fill_examples

    events = share.load() if isinstance(share, Share) else share
    read = len(events)
    events = in_window(events, options)
    out = analyze_serial(events, ruleset, profile)
    findings = out["findings"]
    explain(findings)
    if quoting is not None:
        paths, formats, limits, base = quoting
        fill_examples(findings, paths, formats, limits, 1, base)
    cls = out.pop("classification")
    host_verdicts(out["hosts"], findings, events, cls.cause)
    failures = (events["outcome"] == "failure").to_numpy(dtype=bool, na_value=False)
    ts = events["timestamp"]
    return {
        "hosts": out["hosts"],
        "findings": orjson.dumps(findings),
        "unclassified": out["unclassified"],
        "attempts": out["attempts"],
        "read": read,
        "events": len(events),
        "failures": int(failures.sum()),
        "first": ts.min() if len(events) else None,
        "last": ts.max() if len(events) else None,
        "events_by": {col: value_counts(events, col, whole=False) for col in COUNT_BY},
        "failures_by": {col: value_counts(events, col, failures, whole=False) for col in COUNT_BY},
        "timeline": timeline_cells(events, relabel(events, cls.cause, findings), out["counted"]),
    }


def deal(store: EventStore, workers: int, by_host: bool = True) -> list[Share]:
    """The store's hosts dealt into shares, largest first, each to the share with the fewest
    events so far that can take it without going over SHARE_EVENTS or SHARE_HOSTS (else a new share): at
    least two per worker when there are hosts enough, none over SHARE_EVENTS unless one host
    is. Events without a host and those of a host named like them ("(unknown host)") share
    a share, as they share a name in the report. Without ``by_host`` (a rule groups across
    hosts): one share of every host."""
    hosts = store.hosts(store.moves)
    sizes = {h: sum(store.counts[k] for k in keys) for h, keys in hosts.items()}
    if not by_host:
        return [store.share([k for keys in hosts.values() for k in keys], store.moves)] if hosts else []
    units: dict[str | None, list[str | None]] = {}  # what goes together: a host, or the two unknowns
    for h in sizes:
        units.setdefault(None if h == UNKNOWN_HOST else h, []).append(h)
    size = {u: sum(sizes[h] for h in members) for u, members in units.items()}
    n = max(1, min(len(units), 2 * workers if workers > 1 else 1))
    loads = [0] * n
    dealt: list[list[str | None]] = [[] for _ in range(n)]
    for u in sorted(size, key=lambda u: (-size[u], u or "")):
        fits = [
            k
            for k in range(len(loads))
            if not loads[k] or (loads[k] + size[u] <= SHARE_EVENTS and len(dealt[k]) < SHARE_HOSTS)
        ]
        if fits:
            k = min(fits, key=lambda k: loads[k])
        else:
            k = len(loads)
            loads.append(0)
            dealt.append([])
        dealt[k].extend(units[u])
        loads[k] += size[u]
    return [store.share([k for h in mine for k in hosts[h]], store.moves) for mine in dealt if mine]


def run_shares(
    store: EventStore,
    ruleset,
    profile: Profile,
    options: IngestOptions,
    engine,
    quoting: Quoting | None,
) -> list[dict[str, Any]]:
    """Every share analyzed, as the engine's tasks (in this process with one local job),
    in order; at most twice the workers' shares out at once. On a cluster, a share's
    findings have their lines quoted here as it comes back, while the workers go on."""
    from .evidence import fill_examples

    shares = deal(store, engine.workers, keeps_hosts_apart(ruleset))
    quote_here = None
    # remote workers that see the store's files read their shares there; to others each
    # share is sent, read here (the workers need not see the store)
    send = engine.remote and not (store.dir is not None and engine.sees(str(store.dir)))
    if engine.remote and quoting is not None:
        # the workers see the plain files read (they read them) at their absolute paths: they
        # quote those; what is left (archive members, streams), here as each share comes back
        quote_here, quoting = quoting, (*quoting[:3], os.getcwd())
    results: list[dict[str, Any] | None] = [None] * len(shares)
    into: dict[str, dict[str, dict]] = {}  # the first share's counts, each later share's added as it comes

    def keep(j: int, res: dict[str, Any]) -> None:
        if quote_here is not None:  # here, while the workers analyze the next shares
            found = orjson.loads(res["findings"])
            if fill_examples(found, *quote_here[:3], 1):
                res["findings"] = orjson.dumps(found)
        for kind in ("events_by", "failures_by"):
            if kind not in into:
                into[kind] = res[kind]
                continue
            for col in COUNT_BY:
                add_counts(into[kind][col], res[kind][col])
            res[kind] = {col: {} for col in COUNT_BY}  # (not held twice: one count per distinct value)
        results[j] = res

    if not engine.remote and engine.workers <= 1:
        for i, share in enumerate(shares):
            keep(i, analyze_share(share, ruleset, profile, options, quoting))
            engine.count()
        return results  # type: ignore[return-value]
    pending: deque = deque()

    def settle(limit: int) -> None:
        while len(pending) > limit:
            j, fut = pending.popleft()
            try:
                keep(j, fut.result())
            except BrokenProcessPool:  # a local worker died (killed, out of memory): once more, alone
                keep(j, _again(engine, shares[j], ruleset, profile, options, quoting))
            except OSError:
                if not engine.remote or send:
                    raise
                # a Dask worker that does not see the store (one that joined since it was asked): sent it
                keep(j, engine.submit(analyze_share, shares[j].load(), ruleset, profile, options, quoting).result())
            except Exception as exc:
                if type(exc).__name__ != "KilledWorker":  # (Dask's, after its retries)
                    raise
                raise EngineError(
                    f"the analysis of a share of {shares[j].events:,} events killed every worker that took it "
                    "(out of memory? see the workers' logs)"
                ) from None

    for i, share in enumerate(shares):
        arg = share.load() if send else share
        pending.append((i, engine.submit(analyze_share, arg, ruleset, profile, options, quoting)))
        del arg
        settle(2 * engine.workers - 1)
    settle(0)
    return results  # type: ignore[return-value]


def _again(engine, share: Share, ruleset, profile: Profile, options: IngestOptions, quoting) -> dict[str, Any]:
    """A share whose worker died, analyzed once more by a new worker; dying again, the run fails
    in one line (its hosts cannot be left out of the report)."""
    try:
        return engine.submit(analyze_share, share, ruleset, profile, options, quoting).result()
    except BrokenProcessPool:
        raise EngineError(
            f"the analysis of a share of {share.events:,} events failed twice: its worker process died "
            "(out of memory? see the system log)"
        ) from None


def summarize_shares(
    result: IngestResult, options: IngestOptions, profile: Profile, parts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report's document from the shares' analyses (:func:`analyze_share`)."""
    findings: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    owner: list[tuple[int, int]] = []  # per finding: its share and its place there
    for s, part in enumerate(parts):
        found = orjson.loads(part["findings"])
        owner.extend((s, i) for i in range(len(found)))
        findings.extend(found)
    order = sorted(range(len(findings)), key=lambda i: finding_rank(findings[i]))
    findings = [findings[i] for i in order]
    at = {owner[i]: k for k, i in enumerate(order)}
    for s, part in enumerate(parts):
        for h in part["hosts"]:  # their findings named by place in the share: now in the report
            h["findings"] = [at[(s, i)] for i in h["findings"]]
            if h["platform"]["finding"] is not None:
                h["platform"]["finding"] = at[(s, h["platform"]["finding"])]
            hosts.append(h)
    hosts.sort(key=lambda h: h["name"])
    counts: dict[str, dict[str, dict]] = {"events_by": {}, "failures_by": {}}
    for part in parts:
        for kind, by in counts.items():
            for col in COUNT_BY:
                add_counts(by.setdefault(col, {}), part[kind][col])
    result.outside = sum(p["read"] - p["events"] for p in parts)
    firsts = [p["first"] for p in parts if p["first"] is not None and not pd.isna(p["first"])]
    lasts = [p["last"] for p in parts if p["last"] is not None and not pd.isna(p["last"])]
    analysis = {
        "hosts": hosts,
        "findings": findings,
        "unclassified": sum(p["unclassified"] for p in parts),
        "attempts": {k: sum(p["attempts"][k] for p in parts) for k in ("attempts", "connections")},
    }
    events = sum(p["events"] for p in parts)
    return document(
        result,
        options,
        profile,
        analysis,
        events=events,
        failures=sum(p["failures"] for p in parts),
        first_seen=min(firsts) if firsts else pd.NaT,
        last_seen=max(lasts) if lasts else pd.NaT,
        events_by={col: top_counts(counts["events_by"][col]) for col in COUNT_BY},
        failures_by={col: top_counts(counts["failures_by"][col]) for col in COUNT_BY},
        timeline=timeline_of_cells([p["timeline"] for p in parts]),
    )

