"""Campaigns: one attack finding per host and source.

The attack causes listed under ``campaigns:`` in ``rules/causes.yaml`` gather their events by
source (``findings_by``), so one source guessing names, then passwords, then getting in gives a
user-enumeration, a brute-force and a success-after-attack finding. :func:`merge` makes them one:
on each host, attack findings that share a source (directly, or through a distributed attack
that names several) are one finding with their accounts, sources, the ``kinds`` of attempt
(enumeration, guessing, spraying, brute force) and whether anything ``succeeded`` (with
which accounts: ``succeeded_users``). The merged finding takes the cause of its most
serious member (the order of ``campaigns:``); counts are summed, lists unioned, reasons and
actions added up, the most serious member's examples first.

It works on findings, not events: whether a finding counts events or attempts, the sums hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from .classify.causes import Causes, load_causes

__all__ = ["merge", "relabel", "SUMMED", "UNIONED", "TALLIED"]

# per finding: numbers added up, lists unioned (sorted), counts per value added up
SUMMED = ("count", "failures", "attempts", "events", "connections")
UNIONED = ("service", "src_ips", "dst_ports", "users", "notes")
TALLIED = ("reasons", "actions", "by_source")
BY_SOURCE_KEPT = 50  # as analysis keeps them: the sources with the most attempts
_CONFIDENCE = ("high", "medium", "low")


def _sorted(values: Iterable[Any]) -> list[Any]:
    """Distinct values in order (numbers before text, as findings list them)."""
    return sorted(set(values), key=lambda v: (0, float(v), "") if isinstance(v, int | float) else (1, 0.0, str(v)))


def _instant(iso: str) -> datetime:
    """An ISO 8601 time with a Z, fractions or not (as text they do not sort: "07.3Z" < "07Z")."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


class _Sets:
    """Union-find over finding indices."""

    def __init__(self, n: int) -> None:
        self.up = list(range(n))

    def find(self, i: int) -> int:
        while self.up[i] != i:
            self.up[i] = self.up[self.up[i]]
            i = self.up[i]
        return i

    def join(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.up[max(a, b)] = min(a, b)


def _count(f: dict[str, Any], key: str) -> int:
    """One of a finding's counts; ``connections`` is given only where it differs from ``attempts``."""
    if key == "connections" and key not in f:
        return int(f.get("attempts") or 0)
    return int(f.get(key) or 0)


def _kinds(f: dict[str, Any], causes: Causes, kind_of: dict[str, str | None]) -> list[str]:
    """The kinds of attempt one finding adds: its cause's and its reasons' (only its
    reasons' when every reason has one)."""
    reasons = [r for r, n in (f.get("reasons") or {}).items() if n]
    by_reason = [causes.reason_kinds[r] for r in reasons if r in causes.reason_kinds]
    if reasons and len(by_reason) == len(reasons):
        return by_reason
    return ([k] if (k := kind_of.get(f["cause"])) else []) + by_reason


def _combine(group: list[dict[str, Any]], causes: Causes, order: dict[str, int]) -> dict[str, Any]:
    """One finding of a campaign's members (at least one)."""
    kind_of = {c.cause: c.kind for c in causes.campaigns}
    got_in = {c.cause for c in causes.campaigns if c.succeeded}
    members = sorted(group, key=lambda f: (order[f["cause"]], -f["count"]))
    head = members[0]
    out = dict(head)
    all_kinds = [k for f in members for k in _kinds(f, causes, kind_of)]
    out["kinds"] = [k for k in causes.kinds if k in all_kinds]
    out["succeeded"] = any(f["cause"] in got_in or f.get("succeeded") for f in members)
    entered = [u for f in members if f["cause"] in got_in for u in f.get("users") or []]
    out["succeeded_users"] = _sorted([*entered, *(u for f in members for u in f.get("succeeded_users") or [])])
    if len(members) == 1:
        return out
    for key in SUMMED:
        if any(key in f for f in members):
            out[key] = sum(int(_count(f, key)) for f in members)
    if "connections" in out and out["connections"] == out.get("attempts"):
        del out["connections"]  # given only where it differs from the attempts
    for key in UNIONED:
        if any(key in f for f in members):
            out[key] = _sorted(v for f in members for v in f.get(key) or [])
    for key in TALLIED:
        tally: dict[str, int] = {}
        for f in members:
            for value, n in (f.get(key) or {}).items():
                tally[value] = tally.get(value, 0) + int(n)
        out[key] = dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))
    if "by_source" in out:
        out["by_source"] = dict(list(out["by_source"].items())[:BY_SOURCE_KEPT])
    firsts = [f["first_seen"] for f in members if f.get("first_seen")]
    lasts = [f["last_seen"] for f in members if f.get("last_seen")]
    out["first_seen"] = min(firsts, key=_instant) if firsts else None
    out["last_seen"] = max(lasts, key=_instant) if lasts else None
    out["confidence"] = min((f["confidence"] for f in members), key=_CONFIDENCE.index)
    keep = max(len(f.get("examples") or []) for f in members)
    shown: list[dict[str, Any]] = []
    for f in members:  # the most serious member's examples first, then one of each other's
        for ex in f.get("examples") or []:
            if ex not in shown:
                shown.append(ex)
                if f is not head:
                    break
    out["examples"] = shown[: max(keep, min(len(shown), len(members)))]
    out["cadence_seconds"], out["beats"], out["transition"] = None, None, None
    return out


def merge(findings: list[dict[str, Any]], causes: Causes | None = None) -> list[dict[str, Any]]:
    """``findings`` with each host's campaign findings that share a source merged into one
    (the other findings as they are, in their order; the merged ones where their first member was)."""
    causes = load_causes() if causes is None else causes
    order = {c.cause: i for i, c in enumerate(causes.campaigns)}
    members = [i for i, f in enumerate(findings) if f["cause"] in order]
    if not members:
        return findings
    sets = _Sets(len(findings))
    got_in = {c.cause for c in causes.campaigns if c.succeeded}
    by_source: dict[tuple[Any, str], list[int]] = {}
    for i in members:
        f = findings[i]
        for ip in f.get("src_ips") or []:
            by_source.setdefault((f["host"], ip), []).append(i)
    # first the attacks that did not get in, by shared sources; then each success gathers the
    # groups made only of its own sources: a distributed attack's many sources never make one
    # source's login the success of every other attacker
    for sharing in by_source.values():
        plain = [i for i in sharing if findings[i]["cause"] not in got_in]
        for i in plain[1:]:
            sets.join(plain[0], i)
    group_of = {i: sets.find(i) for i in members}  # the groups before any success joins one
    sources: dict[int, set[str]] = {}
    for i in members:
        if findings[i]["cause"] not in got_in:
            sources.setdefault(group_of[i], set()).update(findings[i].get("src_ips") or [])
    for sharing in by_source.values():
        for i in sharing:
            if findings[i]["cause"] not in got_in:
                continue
            mine = set(findings[i].get("src_ips") or [])
            for j in sharing:
                if j != i and (findings[j]["cause"] in got_in or sources[group_of[j]] <= mine):
                    sets.join(i, j)
    groups: dict[int, list[dict[str, Any]]] = {}
    for i in members:
        groups.setdefault(sets.find(i), []).append(findings[i])
    out: list[dict[str, Any]] = []
    for i, f in enumerate(findings):
        if f["cause"] not in order:
            out.append(f)
        elif sets.find(i) == i:
            out.append(_combine(groups[i], causes, order))
    return out


def relabel(events: pd.DataFrame, causes: pd.Series, findings: list[dict[str, Any]]) -> pd.Series:
    """``causes`` (per event) with each event of a campaign cause given the cause of the
    campaign finding of its host and source (its brute-force events under the distributed
    attack that gathered them): so the timeline's rows are the findings' causes. Computed on
    the distinct (host, source) pairs, not per event."""
    camp = {c.cause for c in load_causes().campaigns}
    owner = {(f["host"], ip): f["cause"] for f in findings if f["cause"] in camp for ip in f.get("src_ips") or []}
    cats = causes.cat.categories
    rows = np.flatnonzero(causes.isin(camp).to_numpy())
    if not owner or not rows.size or not all(c in cats for c in set(owner.values())):
        return causes
    host, ip = events["host"].iloc[rows], events["src_ip"].iloc[rows]
    hc = host.cat.codes.to_numpy().astype(np.int64) + 1  # 0: no host
    ic = ip.cat.codes.to_numpy().astype(np.int64) + 1
    width = len(ip.cat.categories) + 1
    pairs, inverse = np.unique(hc * width + ic, return_inverse=True)
    hosts, ips = [None, *map(str, host.cat.categories)], [None, *map(str, ip.cat.categories)]
    code_of = {c: i for i, c in enumerate(cats)}
    label = np.array([code_of.get(owner.get((hosts[p // width], ips[p % width])), -1) for p in pairs.tolist()])
    new = label[inverse.ravel()]
    codes = causes.cat.codes.to_numpy().copy()
    keep = new >= 0
    codes[rows[keep]] = new[keep]
    return pd.Series(pd.Categorical.from_codes(codes, cats), index=causes.index)
