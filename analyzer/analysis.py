"""Host roles, findings, host verdicts and the timeline: what the classified events mean."""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from ._arrays import run_starts
from ._lifeline import die_with_parent
from ._memory import thaw
from .attempts import Units, fold, with_outside
from .classify.causes import load_causes
from .classify.engine import Classified, by_batch, group_ids, periodicity, spread
from .classify.roles import host_roles
from .config import Profile
from .ingest.workers import let_go
from .prose import explain, host_name, platform_headline
from .schema import UNKNOWN_HOST, category_in

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "host_roles",
    "findings",
    "VERDICT_RANK",
    "analyze_events",
    "host_verdicts",
    "merge_parts",
    "pack_share",
    "platform_logins",
    "attack_summary",
    "section_of",
    "section_order",
    "timeline",
]

# what needs action first (after each cause's rank: rules/causes.yaml, as are the columns
# that gather a cause's events into findings and which causes show a transition)
VERDICT_RANK = {"attack": 0, "misconfiguration": 1, "user-error": 2, "unknown": 3, "expected": 4}
CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2}


def iso_utc(ts) -> str | None:
    """A timestamp as ISO 8601 UTC with a Z (None for a missing one)."""
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat().replace("+00:00", "Z")


def _counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(object).dropna().value_counts()
    return {str(k): int(v) for k, v in vc.items()}


class _History:
    """Successes and password changes per (host, account), looked up per finding."""

    def __init__(self, events: pd.DataFrame) -> None:
        is_ok = ((events["outcome"] == "success") & (events["action"] == "logon")).to_numpy(dtype=bool, na_value=False)
        ok = events[["host", "user", "timestamp"]][is_ok]  # the columns needed, then the rows
        # per (host, account) the rows of its successes (positions, not a frame per pair: a DC's
        # thousands of accounts made tens of thousands of frames), their times as microseconds
        self.ok = ok.groupby([ok["host"].astype(object), ok["user"].astype(object)], sort=False).indices
        self.ok_us = ok["timestamp"].to_numpy(dtype="datetime64[us]").view(np.int64)
        is_change = (events["action"] == "password-change").to_numpy(dtype=bool, na_value=False)
        ch = events[["host", "user", "timestamp", "source", "locator"]][is_change]
        self.changes = {
            host: grp.sort_values("timestamp", kind="stable")
            for host, grp in ch.groupby(ch["host"].astype(object), sort=False)
        }

    def transition(self, host: Any, users: list[str], first_failure) -> dict | None:
        if not users or first_failure is None or pd.isna(first_failure):
            return None
        last_us = None
        limit = -(-pd.Timestamp(first_failure).value // 1000)  # UTC microseconds (as ok_us), rounded up: t < limit
        for u in users:
            rows = self.ok.get((host, u))
            if rows is None:
                continue
            times = self.ok_us[rows]
            before = times[(times < limit) & (times != np.iinfo(np.int64).min)]  # (NaT is no time)
            if len(before) and (last_us is None or before.max() > last_us):
                last_us = int(before.max())
        last_ok = None if last_us is None else pd.Timestamp(last_us, unit="us", tz="UTC")
        changes = self.changes.get(host)
        if last_ok is None and changes is None:
            return None
        near: list[dict] = []
        if changes is not None:
            start = (last_ok if last_ok is not None else first_failure - pd.Timedelta(days=1)) - pd.Timedelta(hours=1)
            sel = changes[(changes["timestamp"] >= start) & (changes["timestamp"] <= first_failure)]
            near = [
                {
                    "time": iso_utc(r["timestamp"]),
                    "user": None if pd.isna(r["user"]) else str(r["user"]),
                    "where": f"{r['source']}:{r['locator']}",
                }
                for _, r in sel.iterrows()
            ]
        return {"last_success": iso_utc(last_ok), "first_failure": iso_utc(first_failure), "password_changes": near}


def _rank(f: dict[str, Any]) -> tuple:
    """What needs action first; ties broken by content, so the order never depends on how
    the events were split among processes."""
    return (
        load_causes()[f["cause"]].rank,
        VERDICT_RANK.get(f["verdict"], 9),
        CONFIDENCE_RANK.get(f["confidence"], 9),
        -f.get("attempts", f["count"]),
        -f["count"],
        f["cause"],
        f["host"] or "",
        f["first_seen"] or "",
        f["users"],
        f["src_ips"],
        f["service"],
        list(f["reasons"]),
    )


def _attempts(gid: np.ndarray, units: Units, u: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per group (``gid``; ``u``: each row's unit, :class:`analyzer.attempts.Units`) its login
    attempts, its units (attempts and connections that never authenticated), its connections,
    and which rows are the first of their unit in the group (rows in time order)."""
    width = int(u.max()) + 1 if u.size else 1
    first = ~pd.Index(gid.astype(np.int64) * width + u).duplicated()
    g1, u1 = gid[first], u[first]
    conn = units.connection[u1]
    has = conn >= 0  # a unit without a connection (a success, an observation) is one of its own
    cwidth = int(conn.max()) + 1 if has.any() else 1
    pairs = pd.unique(g1[has].astype(np.int64) * cwidth + conn[has])
    return {
        "first": np.flatnonzero(first),
        "attempts": np.bincount(g1[units.login[u1]], minlength=n),
        "units": np.bincount(g1, minlength=n),
        "connections": np.bincount(pairs // cwidth, minlength=n) + np.bincount(g1[~has], minlength=n),
    }


def _beats(gid: np.ndarray, secs: np.ndarray, n: int, burst: int = 30) -> np.ndarray:
    """Beats per group (one row per attempt or connection): attempts within ``burst`` seconds of
    the one before are one beat (a client's retry, a password tried again at once)."""
    order = np.lexsort((secs, gid))
    g, t = gid[order], secs[order]
    new = np.ones(g.size, dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (np.diff(t) >= burst)
    return np.bincount(g[new], minlength=n)


def _split(g: np.ndarray, values: list, n: int) -> list[list]:
    """Values sorted by group id → one list per group (empty lists for groups without any)."""
    out: list[list] = [[] for _ in range(n)]
    if not len(g):
        return out
    cuts = np.flatnonzero(g[1:] != g[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(g)]])
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        out[int(g[a])] = values[a:b]
    return out


def _coded(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as codes (-1 for missing) and its values as strings, without a Python
    object per row for categoricals."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(dtype=np.int64), np.array([str(v) for v in col.cat.categories], dtype=object)
    codes, uniques = pd.factorize(col)
    return codes.astype(np.int64), np.array([str(v) for v in uniques], dtype=object)


def _pairs(
    gid: np.ndarray, col: pd.Series, counts: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct (group, value) pairs of the non-null values in order, with their counts
    (unless ``counts`` is false); values as codes into the returned strings.

    One integer per row, hashed: sorting every row's pair (np.unique) took several arrays
    as long as the column; only the distinct pairs are sorted here."""
    codes, values = _coded(col)
    width = len(values) + 1
    keys = gid.astype(np.int64) * width + codes  # a missing value (-1) gives code width - 1: dropped below
    del codes
    if counts:
        inverse, uniq = pd.factorize(keys)
        del keys
        n = np.bincount(inverse, minlength=len(uniq))
        del inverse
    else:
        uniq, n = pd.unique(keys), None
    order = np.argsort(uniq, kind="stable")
    uniq = uniq[order]
    keep = uniq % width != width - 1
    uniq = uniq[keep]
    if n is not None:
        n = n[order][keep]
    return uniq // width, uniq % width, values, n


def _group_values(gid: np.ndarray, col: pd.Series, n: int, numeric: bool = False) -> list[list]:
    """Each group's distinct non-null values, sorted (as strings, or as numbers)."""
    g, c, values, _ = _pairs(gid, col, counts=False)
    if numeric:
        values = np.array([float(v) for v in values], dtype=float)
    order = np.lexsort((_rank_of(values)[c], g))
    return _split(g[order], values[c[order]].tolist(), n)


def _rank_of(values: np.ndarray) -> np.ndarray:
    """Each value's position in sorted order."""
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank


def _group_counts(gid: np.ndarray, col: pd.Series, n: int) -> list[dict[str, int]]:
    """Each group's value counts, most frequent first (ties by value)."""
    g, c, values, counts = _pairs(gid, col)
    order = np.lexsort((_rank_of(values)[c], -counts, g))
    items = list(zip(values[c[order]].tolist(), counts[order].tolist(), strict=True))
    return [dict(x) for x in _split(g[order], items, n)]


class _Taken:
    """Some rows of the events and of their classification, a column at a time: ``t[col]``
    is that column's values at the rows (in their order, a fresh index); ``t.at(col, pos)``
    only those at positions ``pos`` of the rows."""

    _CLASSIFIED = ("verdict", "confidence", "rule", "cadence")

    def __init__(self, events: pd.DataFrame, cls: Classified, rows: np.ndarray) -> None:
        self.events, self.cls, self.rows = events, cls, rows

    def _column(self, name: str) -> pd.Series:
        return getattr(self.cls, name) if name in self._CLASSIFIED else self.events[name]

    def __getitem__(self, name: str) -> pd.Series:
        return self.at(name, slice(None))

    def at(self, name: str, pos) -> pd.Series:
        return pd.Series(self._column(name).array.take(self.rows[pos]))


def _first_of_groups(gid: np.ndarray, k: int, step: int = 1 << 18) -> np.ndarray:
    """The positions of each group's first ``k`` rows, ascending. A slice of rows at a time,
    each group's rows counted so far carried from slice to slice: pandas' groupby cumcount
    over every row took 200 MB and 0.5 s for 3.6 M rows (this: 25 MB, 0.3 s)."""
    seen = np.zeros(int(gid.max()) + 1 if gid.size else 0, dtype=np.int64)
    out = [np.empty(0, dtype=np.int64)]
    for a in range(0, gid.size, step):
        g = gid[a : a + step]
        rank, groups, sizes = _ranks(g)
        rank += seen[g]  # each row's place among its group's rows so far
        seen[groups] += sizes
        out.append(a + np.flatnonzero(rank < k))
    return np.concatenate(out)


def _ranks(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value's place among the equal values before it in ``g``; and the distinct values
    with how often each comes."""
    order = np.argsort(g, kind="stable")
    g_sorted = g[order]
    starts, sizes = run_starts(g_sorted)
    rank = np.empty(g.size, dtype=np.int64)
    rank[order] = np.arange(g.size) - np.repeat(starts, sizes)
    return rank, g_sorted[starts], sizes


def _examples(gid: np.ndarray, frame: _Taken, k: int) -> dict[int, list[dict]]:
    """The first ``k`` lines or records of each group (rows in time order), as evidence: the
    events of one ``message repeated N times`` line are one example, not N of the same."""
    rows = _first_of_groups(gid, k)
    twice = _same_line(gid[rows], frame, rows)[0]
    if twice.any():  # those groups' examples again, from their rows of distinct lines
        again = np.zeros(int(gid.max()) + 1, dtype=bool)
        again[gid[rows[twice]]] = True
        rows = np.sort(np.concatenate([rows[~again[gid[rows]]], _distinct_lines(gid, frame, k, again)]))
    out: dict[int, list[dict]] = {}
    src, loc, raw = (frame.at(c, rows).tolist() for c in ("source", "locator", "raw"))
    for gi, s_, l_, r_ in zip(gid[rows].tolist(), src, loc, raw, strict=True):
        out.setdefault(gi, []).append({"where": f"{s_}:{l_}", "text": r_ if isinstance(r_, str) else None})
    return out


def _same_line(gid: np.ndarray, frame: _Taken, pos: np.ndarray, before: tuple = (-1, -1, -1)) -> tuple:
    """Per position (ascending, time order within a group) whether the one before it (the
    first: ``before``, a (group, source code, locator)) is of the same group and the same line
    or record; and the last position's (group, source code, locator)."""
    src = frame.at("source", pos).cat.codes.to_numpy()
    loc = frame.at("locator", pos).to_numpy(dtype=np.int64, na_value=-1)
    same = np.zeros(pos.size, dtype=bool)
    same[1:] = (gid[1:] == gid[:-1]) & (src[1:] == src[:-1]) & (loc[1:] == loc[:-1])
    if pos.size:
        same[0] = (gid[0], src[0], loc[0]) == before
        before = (gid[-1], src[-1], loc[-1])
    return same, before


def _distinct_lines(gid: np.ndarray, frame: _Taken, k: int, groups: np.ndarray, step: int = 1 << 18) -> np.ndarray:
    """The positions of the first ``k`` distinct lines of each group marked in ``groups``, a
    slice of their rows at a time (one brute force's millions of rows: no copy of them all),
    until each has ``k``."""
    theirs = np.flatnonzero(groups[gid])
    have = np.zeros(groups.size, dtype=np.int64)
    picked, before = [np.empty(0, dtype=np.int64)], (-1, -1, -1)
    for a in range(0, theirs.size, step):
        pos = theirs[a : a + step]
        same, before = _same_line(gid[pos], frame, pos, before)
        new = pos[~same]
        g = gid[new]
        rank, present, sizes = _ranks(g)  # each new line's place among its group's in this slice
        picked.append(new[rank + have[g] < k])
        have[present] += np.minimum(sizes, np.maximum(k - have[present], 0))  # as many as were kept
        if (have[groups] >= k).all():
            break
    return np.concatenate(picked)


_NO_TIME = np.iinfo(np.int64).min  # a group without a time (or without a failure)


def _micros(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as µs since the epoch; a missing one is _NO_TIME. For the schema's
    column (µs, aware) a view of its values, not a copy: do not write to it."""
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize("UTC")
    return ts.array.as_unit("us").asi8


def _per_group(gid: np.ndarray, values: np.ndarray, n: int, op: np.ufunc) -> np.ndarray:
    """Per group the minimum (``np.minimum``) or maximum of its values, NaT-like
    _NO_TIME ignored; a group without any is _NO_TIME."""
    known = values != _NO_TIME
    g, v = gid[known], values[known]
    fill = np.iinfo(np.int64).max if op is np.minimum else _NO_TIME + 1
    out = np.full(n, fill, dtype=np.int64)
    op.at(out, g, v)
    return np.where(out == fill, _NO_TIME, out)


def _iso_many(micros: np.ndarray) -> list[str | None]:
    """µs since the epoch → ISO 8601 UTC with a Z, as :func:`iso_utc` writes them
    (fractions only when there are any)."""
    text = np.datetime_as_string(micros.view("datetime64[us]"), unit="us")
    return [
        None if m == _NO_TIME else (t[:-7] if t.endswith(".000000") else t) + "Z"
        for m, t in zip(micros.tolist(), text.tolist(), strict=True)
    ]


def findings(
    events: pd.DataFrame,
    cls: Classified,
    profile: Profile,
    examples: int = 3,
    batches: np.ndarray | None = None,
    units: Units | None = None,
) -> list[dict[str, Any]]:
    """Classified events gathered per (host, cause, source, account), ranked by urgency.

    One groupby per cause computes the counts and times; per finding only its small
    lists (accounts, sources, reasons, examples) are built. ``batches`` (per row a batch
    number, a host's rows all in one batch): each cause's rows are gathered a batch at a
    time (findings never span hosts), so that its temporaries stay the size of a batch.
    ``units``: what each row counts as (its attempt; without: each row an attempt of its own);
    a finding counts attempts, connections and events, and its rows are gathered by their
    attempt's merged fields (a PAM line without a user goes with its attempt's user)."""
    if events.empty:
        return []
    cause_codes = cls.cause.cat.codes.to_numpy()
    if not (cause_codes >= 0).any():
        return []
    history = _History(events)
    units = units if units is not None else Units.each_row(len(events))
    out: list[dict[str, Any]] = []
    # time order within a cause (stable, events without a time last): one take of each
    # cause's rows, not a copy of all classified events and then two of each cause's
    all_micros = _micros(events["timestamp"])
    for code, cause in enumerate(cls.cause.cat.categories):
        every = np.flatnonzero(cause_codes == code)
        for _, rows in by_batch(every, batches):
            out.extend(_cause_findings(events, cls, profile, history, all_micros, cause, rows, examples, units))
    from .campaigns import merge  # (here: campaigns imports the causes, as this module does)

    out = merge(out)  # one attack finding per host and source
    out.sort(key=_rank)
    return out


def _cause_findings(
    events: pd.DataFrame,
    cls: Classified,
    profile: Profile,
    history: _History,
    all_micros: np.ndarray,
    cause: str,
    rows: np.ndarray,
    examples: int,
    units: Units,
) -> list[dict[str, Any]]:
    """The findings of one cause's ``rows``."""
    out: list[dict[str, Any]] = []
    if rows.size:
        spec = load_causes()[cause]
        keys = ["host", *spec.findings_by]
        when = all_micros[rows]
        when[when == _NO_TIME] = np.iinfo(np.int64).max
        rows = rows[np.argsort(when, kind="stable")]
        del when
        # the cause's rows of one column at a time, each let go once used: a copy of all the
        # columns for the largest cause was most of this step's memory
        frame = _Taken(events, cls, rows)
        # groups numbered in order of first appearance (a missing value is a value of its own)
        keyed = events if units.view is None else units.view
        at = rows if units.view is None else units.where[rows]
        gid = group_ids(keyed[keys].iloc[at], keys)
        micros = all_micros[rows]
        secs = micros // 1_000_000
        n = int(gid.max()) + 1
        u = units.unit[rows]
        counts = _attempts(gid, units, u, n)
        ones = counts["first"]  # one row per unit of each group: cadence, beats, reasons count units
        per, med = periodicity(gid[ones], secs[ones], profile.thresholds["periodic_max_cv"], 4)
        first_row = np.unique(gid, return_index=True)[1]  # each group's earliest event
        first = _per_group(gid, micros, n, np.minimum)
        last = _per_group(gid, micros, n, np.maximum)
        size = np.bincount(gid, minlength=n)
        rule_cad = frame["cadence"].groupby(gid).median().reindex(range(n)).to_numpy(dtype=float)
        fail_mask = frame["outcome"].isin(["failure", "blocked"]).to_numpy()
        first_fail = _per_group(gid[fail_mask], micros[fail_mask], n, np.minimum)
        # failed attempts: the units with a failed row, each once
        failed = fail_mask & units.login[u]
        fwidth = int(u.max()) + 1
        failed_units = pd.unique(gid[failed].astype(np.int64) * fwidth + u[failed])
        failures = np.bincount(failed_units // fwidth, minlength=n).tolist()
        attempts = counts["attempts"].tolist()
        observed = _beats(gid[ones], secs[ones], n).tolist()
        connections = counts["connections"].tolist()
        rank = frame["confidence"].map(CONFIDENCE_RANK).fillna(9).to_numpy()
        best = _per_group(gid, rank.astype(np.int64), n, np.minimum).tolist()
        by_rank = {v: k for k, v in CONFIDENCE_RANK.items()}
        lists = {col: _group_values(gid, frame[col], n) for col in ("user", "service", "src_ip")}
        ports = _group_values(gid, frame["dst_port"].astype("Float64"), n, numeric=True)
        view = keyed[["reason", "action"]].iloc[at[ones]]  # the attempts' merged fields, one per unit
        reasons = _group_counts(gid[ones], view["reason"].reset_index(drop=True), n)
        actions = _group_counts(gid[ones], view["action"].reset_index(drop=True), n)
        del view
        # per source its attempts (units: attempts and connections that never authenticated)
        by_source = _group_counts(gid[ones], keyed["src_ip"].iloc[at[ones]].reset_index(drop=True), n)
        shown = _examples(gid, frame, examples)
        verdicts, rules, hosts = (frame.at(c, first_row).tolist() for c in ("verdict", "rule", "host"))
        del frame, micros, secs
        # cadence: by the rule's periodicity condition, else measured here when periodic
        cadences = np.where(np.isnan(rule_cad), np.where(per, med, np.nan), rule_cad)
        spans = (last - first) / 1e6
        first_iso, last_iso = _iso_many(first), _iso_many(last)
        # a probe's finding says how far it is confirmed: by the platform's networks, when known
        # and the events carry an address to check; else by its cadence alone, and why
        probe, transitions = spec.platform_probe, spec.transition
        for gi in range(n):
            cad = float(cadences[gi])
            cadence = None if np.isnan(cad) else cad
            beats = None
            if cadence and first[gi] != _NO_TIME:
                beats = {"expected": int(round(float(spans[gi]) / cadence)) + 1, "observed": observed[gi]}
            users = lists["user"][gi]
            host = hosts[gi]
            transition = None
            if transitions and first_fail[gi] != _NO_TIME:
                ff = pd.Timestamp(int(first_fail[gi]), unit="us", tz="UTC")
                transition = history.transition(host, users, ff)
            out.append(
                {
                    "cause": cause,
                    "verdict": verdicts[gi],
                    "confidence": by_rank.get(best[gi], "low"),
                    "rule": rules[gi],
                    "host": None if pd.isna(host) else str(host),
                    "service": lists["service"][gi],
                    "src_ips": lists["src_ip"][gi],
                    "dst_ports": [int(p) for p in ports[gi]],
                    "users": users,
                    "reasons": reasons[gi],
                    "actions": actions[gi],
                    "by_source": dict(list(by_source[gi].items())[:BY_SOURCE_KEPT]),
                    "attempts": attempts[gi],
                    "events": int(size[gi]),
                    **({"connections": connections[gi]} if connections[gi] != attempts[gi] else {}),
                    "count": int(size[gi]),
                    "failures": failures[gi],
                    "first_seen": first_iso[gi],
                    "last_seen": last_iso[gi],
                    "cadence_seconds": cadence,
                    "beats": beats,
                    "transition": transition,
                    "examples": shown.get(gi, []),
                    "notes": _probe_notes(profile, lists["src_ip"][gi]) if probe else [],
                }
            )
    return out


BY_SOURCE_KEPT = 50  # a finding's sources with the most attempts, with their counts


NOTE_NO_NETWORKS = (
    "recognized by its cadence and account alone; to confirm it is the platform, add the platform's "
    "network to [platform] networks in authtriage.toml (or --platform-net) and run again"
)
NOTE_NO_SOURCE = (
    "recognized by its cadence and account alone: its events carry no source address (Windows logs none "
    "for an NTLM network logon, as over WinRM), so the platform's networks cannot confirm it"
)


def _probe_notes(profile: Profile, src_ips: list) -> list[str]:
    """What a probe finding says of its confirmation (nothing when its source confirms it)."""
    if not profile.networks:
        return [NOTE_NO_NETWORKS]
    return [] if src_ips else [NOTE_NO_SOURCE]


# fills in the text of findings' examples, given how many processes it may use
Examples = Callable[[list[dict[str, Any]], int], object]
# above this, one process classifies hosts and gathers findings in batches of about this
# many events (whole hosts): the temporaries of a rule's group conditions scale with a batch
BATCH_EVENTS = 1_000_000
PARALLEL_MIN_EVENTS = 200_000  # below this, forking workers costs more than it saves
# above this, the workers' copies of their shares would cost more memory than the time saved is worth
PARALLEL_MAX_EVENTS = 2_000_000
_SHARED: dict[str, Any] = {}  # what forked analysis workers read (inherited, not pickled)


def _by_host(ruleset) -> bool:
    """Whether every group condition keeps hosts apart (then hosts can be analyzed separately)."""
    return all(rule.group is None or rule.group.keeps_hosts_apart() for rule in ruleset.rules)


def _analyze_serial(events: pd.DataFrame, ruleset, profile: Profile) -> dict[str, Any]:
    from .classify.engine import classify

    hosts = host_roles(events)
    roles = {h["name"]: h["role"] for h in hosts}
    batches = None
    if len(events) > BATCH_EVENTS and _by_host(ruleset):
        batches = _shares(events, -(-len(events) // BATCH_EVENTS))
    # classification sees one row per attempt (and the rows outside any, as themselves); each
    # event row takes its attempt's cause
    folded = fold(events)
    frame, where = with_outside(events, folded)
    seen = np.concatenate([folded.rep, folded.outside])  # the event row behind each row of the frame
    cls = spread(
        classify(frame, ruleset, profile, roles, None if batches is None else batches[seen]), where, events.index
    )
    del seen
    units = folded.units()
    units.view, units.where = frame, where
    found = findings(events, cls, profile, batches=batches, units=units)
    del batches
    failures = events["outcome"].isin(["failure", "blocked"]).to_numpy()
    unclassified = int((cls.cause == "unclassified").to_numpy(dtype=bool, na_value=False)[failures].sum())
    failed = category_in(frame["outcome"].iloc[: len(folded.login)], ("failure", "blocked"))
    return {
        "hosts": hosts,
        "findings": found,
        "classification": cls,
        "unclassified": unclassified,
        "counted": units.first,
        # failed login attempts, and connections that never authenticated (or were blocked)
        "attempts": {"attempts": int((folded.login & failed).sum()), "connections": int((~folded.login).sum())},
    }


def _analyze_part(i: int, local: bool = False) -> dict[str, Any]:
    """One share of the hosts: in a forked worker, or (``local``) in the parent itself."""
    events, ruleset, profile, parts, examples = _SHARED["args"]
    rows = parts[i]
    out = _analyze_serial(events.iloc[rows].reset_index(drop=True), ruleset, profile)
    explain(out["findings"])  # the prose too, while the work is shared out
    if examples is not None:
        examples(out["findings"], 1)
    return pack_share(out, text=not local)


def pack_share(out: dict[str, Any], text: bool = True) -> dict[str, Any]:
    """One share's analysis made compact to send back (:func:`merge_parts` reads it): with
    ``text``, findings as JSON text (read back in half the time unpickling takes);
    classification columns as categoricals (codes and categories), counted rows as bits."""
    if text:
        out["findings"] = orjson.dumps(out["findings"])
    cls = out.pop("classification")
    out["columns"] = {  # categoricals travel back as codes and categories (compact to pickle)
        name: pd.Categorical(getattr(cls, name)) for name in ("cause", "verdict", "confidence", "rule")
    }
    out["cadence"] = cls.cadence.to_numpy(dtype="float64", na_value=np.nan)
    out["counted"] = np.packbits(out["counted"])  # one bit per row on the way back
    return out


def _shares(events: pd.DataFrame, n: int) -> np.ndarray:
    """Per row its share (0..n-1): ``n`` shares of whole hosts, balanced by events (largest
    host first, each to the share with the fewest events so far)."""
    codes = events["host"].cat.codes.to_numpy() if hasattr(events["host"], "cat") else None
    if codes is None:
        codes = pd.factorize(events["host"])[0]
    counts = np.bincount(codes + 1)  # code -1 (no host) becomes 0
    loads = [0] * n
    owner = np.zeros(counts.size, dtype=np.int16 if n < 1 << 15 else np.int64)
    for c in np.argsort(-counts, kind="stable"):
        k = int(np.argmin(loads))
        owner[c] = k
        loads[k] += int(counts[c])
    return owner[codes + 1]


def _partition(events: pd.DataFrame, n: int) -> list[np.ndarray]:
    """Row positions split into ``n`` shares of whole hosts (:func:`_shares`)."""
    share = _shares(events, n)
    return [np.flatnonzero(share == k) for k in range(n)]


def analyze_events(
    events: pd.DataFrame,
    ruleset,
    profile: Profile,
    jobs: int = 1,
    examples: Examples | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Roles, classification and findings for a set of events.

    With ``jobs`` > 1 and a large input whose rules all group by host, hosts are split
    among forked worker processes (which inherit the events instead of receiving a copy);
    the result is the same as with one process. ``examples(findings, jobs)``, when given,
    fills in the text of the findings' examples (:func:`analyzer.evidence.fill_examples`
    bound to the inputs): each share's process does it for its own findings, so that reading
    the quoted lines again is shared out too. ``engine``: a remote one (a Dask cluster) takes
    the shares as its tasks (:meth:`analyzer.engine.Engine.analyze`); a local one counts them."""
    from concurrent.futures import ProcessPoolExecutor

    if engine is not None and engine.remote:
        return engine.analyze(events, ruleset, profile, examples)
    nhosts = events["host"].nunique(dropna=False) if len(events) else 0
    n = min(jobs, nhosts)
    if n < 2 or not PARALLEL_MIN_EVENTS <= len(events) <= PARALLEL_MAX_EVENTS or not _by_host(ruleset):
        out = _analyze_serial(events, ruleset, profile)
        if examples is not None:
            examples(out["findings"], jobs)
        return out
    parts = [p for p in _partition(events, n) if p.size]
    if engine is not None:
        engine.count(len(parts) - 1)  # the first share is this process's own
    _SHARED["args"] = (events, ruleset, profile, parts, examples)
    # the first share is analyzed here, while forked workers take the others: the parent
    # does not sit idle, and its share needs no trip back through a pipe
    ctx = multiprocessing.get_context("fork")
    gc.freeze()  # what exists now is never collected: neither process copies its pages for that
    pool = ProcessPoolExecutor(
        max_workers=len(parts) - 1, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)
    )
    try:
        others = [pool.submit(_analyze_part, i) for i in range(1, len(parts))]
        results = [_analyze_part(0, local=True), *(f.result() for f in others)]
    finally:
        _SHARED.clear()
        # the results are in: the workers free their copies and exit while this goes on
        let_go(pool)
        thaw()
    return merge_parts(events, parts, results)


# what the engine's analysis tasks share with the local path (analyzer.engine)
analyze_serial, keeps_hosts_apart, host_shares, finding_rank = _analyze_serial, _by_host, _partition, _rank


def merge_parts(events: pd.DataFrame, parts: list[np.ndarray], results: list[dict[str, Any]]) -> dict[str, Any]:
    """One analysis of ``events`` from those of its shares (``parts``: each share's rows;
    ``results``: :func:`_analyze_part`'s, in the same order)."""
    size = len(events)
    cadence = np.full(size, np.nan)
    counted = np.zeros(size, dtype=bool)
    hosts: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for rows, res in zip(parts, results, strict=True):
        cadence[rows] = res["cadence"]
        counted[rows] = np.unpackbits(res["counted"], count=rows.size).astype(bool)
        hosts.extend(res["hosts"])
        found.extend(orjson.loads(res["findings"]) if isinstance(res["findings"], bytes) else res["findings"])
    hosts.sort(key=lambda h: h["name"])
    found.sort(key=_rank)
    idx = events.index
    columns = {}
    for name in ("cause", "verdict", "confidence", "rule"):
        cats = [res["columns"][name] for res in results]
        union = pd.Index(np.concatenate([np.asarray(c.categories, dtype=object) for c in cats])).unique()
        codes = np.full(size, -1, dtype=np.int32)
        for rows, cat in zip(parts, cats, strict=True):
            # a share with no failures has no categories: its codes are all -1, the last entry
            mapping = np.append(union.get_indexer(cat.categories), -1).astype(np.int32)
            codes[rows] = mapping[cat.codes]
        columns[name] = pd.Series(pd.Categorical.from_codes(codes, union), index=idx)
    cls = Classified(**columns, cadence=pd.Series(cadence, index=idx))
    unclassified = sum(r["unclassified"] for r in results)
    attempts = {k: sum(r["attempts"][k] for r in results) for k in ("attempts", "connections")}
    return {
        "hosts": hosts,
        "findings": found,
        "classification": cls,
        "unclassified": unclassified,
        "counted": counted,
        "attempts": attempts,
    }


def host_verdicts(
    hosts: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    events: pd.DataFrame | None = None,
    causes: pd.Series | None = None,
) -> None:
    """Give each host its platform login (:func:`platform_logins`), its findings in the order
    a host's section shows them, its attack summary, its verdict and its headline: the
    platform's login first, then what else needs action and the attacks as context (an
    attack that got in: the host's verdict). ``findings`` ranked and explained; ``events``
    and their ``causes``, when given, date the current run of the platform's failures."""
    platform_logins(hosts, findings, events, causes)
    by_host = _by_host_index(findings)
    for h in hosts:
        mine = by_host.get(h["name"], [])
        pf = h["platform"]["finding"]
        h["findings"] = section_order(findings, mine, pf)
        h["attacks"] = attack_summary([findings[i] for i in mine])
        others = [findings[i] for i in mine if findings[i]["cause"] != "probe-ok" and i != pf]
        top = others[0] if others else None
        status = h["platform"]["status"]
        got_in = any(load_causes()[f["cause"]].rank < 1 and f["verdict"] == "attack" for f in others)
        if status in ("failing", "blocked") and not got_in:
            h["verdict"] = findings[pf]["verdict"]
        else:
            h["verdict"] = top["verdict"] if top else "expected"
        h["headline"] = platform_headline(h["platform"], top, h["attacks"])


# a host's findings in its section: the platform's, what needs action, attacks, the rest, expected
SECTIONS = ("platform", "action", "attack", "other", "expected")
NEEDS_ACTION = ("misconfiguration", "unknown")  # verdicts that ask for someone to act
TOP_SOURCES = 5  # in a host's attack summary


def section_of(f: dict[str, Any], platform: bool = False) -> int:
    """A finding's section in its host's part of a report (:data:`SECTIONS`): an attack that
    got in (a cause ranked before the rest) needs action."""
    if platform:
        return 0
    if f["verdict"] in NEEDS_ACTION or (f["verdict"] == "attack" and load_causes()[f["cause"]].rank < 1):
        return 1
    if f["verdict"] == "attack":
        return 2
    return 4 if f["verdict"] == "expected" else 3


def section_order(findings: list[dict[str, Any]], mine: list[int], platform: int | None) -> list[int]:
    """A host's findings (``mine``: indices, in rank order) in its section's order, the
    platform's finding (``platform``) first; the rank order within each section."""
    keyed = sorted((section_of(findings[i], i == platform), k, i) for k, i in enumerate(mine))
    return [i for _, _, i in keyed]


def _by_host_index(findings: list[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}  # in rank order, as the findings are
    for i, f in enumerate(findings):
        out.setdefault(host_name(f["host"]), []).append(i)
    return out


def _attempts_of(f: dict[str, Any]) -> int:
    return int(f.get("attempts", f["count"]))


def attack_summary(findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One host's attacks in one block: sources, attempts, accounts tried, whether one got in
    (a success after an attack), the top sources by attempts (each finding's ``by_source``),
    and apart the scanning (connections that tried no login: its
    sources and connections); None without attacks or scanning."""
    hostile = [f for f in findings if f["verdict"] == "attack"]
    if not hostile:
        return None
    # connections that never tried a login (scanning) are counted apart, not as attacking sources
    attacks = [f for f in hostile if _attempts_of(f)]
    scans = [f for f in hostile if not _attempts_of(f)]
    scanners = {ip for f in scans for ip in f["src_ips"]}
    scanning = {"sources": len(scanners), "connections": sum(int(f.get("connections", 0)) for f in scans)}
    per_source: dict[str, float] = {}
    users: set[str] = set()
    for f in attacks:
        users.update(f["users"])
        counted = f.get("by_source")  # a document from before it: the attempts shared evenly
        for ip in f["src_ips"]:
            share = counted.get(ip, 0) if counted is not None else _attempts_of(f) / len(f["src_ips"])
            per_source[ip] = per_source.get(ip, 0.0) + share
    top = sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SOURCES]
    return {
        "findings": len(hostile),
        "sources": len(per_source),
        "attempts": sum(_attempts_of(f) for f in attacks),
        "accounts": len(users),
        "accounts_tried": sorted(users)[:10],
        "succeeded": any(load_causes()[f["cause"]].rank < 1 for f in attacks),
        "top_sources": [{"src_ip": ip, "attempts": round(n)} for ip, n in top],
        "scanning": scanning if scans else None,
    }


ACROSS_TOP = 500  # sources attacking several hosts, in the document (the count says how many in all)
ACROSS_NAMES = 10  # host names given per source


def _own(ip: str) -> bool:
    """An address that names the host itself, or its link: the same text on every host, not one source."""
    import ipaddress

    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return a.is_loopback or a.is_link_local or a.is_unspecified


def sources_across_hosts(findings: list[dict[str, Any]], only: set[str] | None = None) -> dict[str, Any]:
    """The sources seen attacking (or scanning) more than one host: how many, and the first
    ACROSS_TOP by hosts, then attempts, then address; each with its hosts' count, the first of
    their names, its attempts (those the findings count per source: a lower bound where a
    finding has more sources than it lists) and whether it tried a login anywhere (not only
    connections). Loopback and link-local addresses are each host's own, never one source.
    ``only``: just these sources (a host's report: those that attacked it)."""
    hosts_of: dict[str, set[str]] = {}
    tried: dict[str, bool] = {}
    attempts: dict[str, int] = {}
    for f in findings:
        if f["verdict"] != "attack":
            continue
        counted = f.get("by_source") or {}
        for ip in f["src_ips"]:
            if (only is not None and ip not in only) or _own(ip):
                continue
            hosts_of.setdefault(ip, set()).add(host_name(f["host"]))
            tried[ip] = tried.get(ip, False) or bool(_attempts_of(f))
            attempts[ip] = attempts.get(ip, 0) + int(counted.get(ip, 0))
    many = sorted(
        ((ip, hs) for ip, hs in hosts_of.items() if len(hs) > 1), key=lambda x: (-len(x[1]), -attempts[x[0]], x[0])
    )
    top = [
        {"src_ip": ip, "hosts": len(hs), "host_names": sorted(hs)[:ACROSS_NAMES], "attempts": attempts[ip],
         "tried_logins": tried[ip]}
        for ip, hs in many[:ACROSS_TOP]
    ]  # fmt: skip
    return {"sources": len(many), "top": top}


NOT_SEEN_STEP = (
    "No login by the platform is in these logs: a firewall may drop it before anything is logged, "
    "the logs may be of another host, or from outside the time of the failures; check the host and the time window."
)


def platform_logins(
    hosts: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    events: pd.DataFrame | None = None,
    causes: pd.Series | None = None,
) -> None:
    """Each host's ``platform``: the status of the platform's login (failing, blocked, ok, or
    not-seen) from the findings of causes with a ``platform`` status (rules/causes.yaml), the
    latest of them deciding; its cause, confidence, finding (an index into ``findings``),
    since when it fails, its last success, beats, attempts, the next step and a ticket
    paragraph (each cause's template's ``next_step`` and ``ticket`` blocks)."""
    from .prose import platform_words

    table = load_causes()
    by_host = _by_host_index(findings)
    failures = _platform_failures(events, causes)
    for h in hosts:
        mine = [i for i in by_host.get(h["name"], []) if table[findings[i]["cause"]].platform]
        if not mine:
            h["platform"] = {
                "status": "not-seen", "cause": None, "confidence": None, "since": None, "last_success": None,
                "beats": None, "attempts": 0, "finding": None, "next_step": NOT_SEEN_STEP,
            }  # fmt: skip
            h["platform"]["ticket"] = platform_words(None, h["name"], h["platform"])["ticket"]
            continue
        # the latest says how it stands now; at the same time, a failure before a success
        # (times as instants: as text "…07.5Z" sorts before "…07Z")
        pick = max(
            mine, key=lambda i: (_instant(findings[i]["last_seen"]), table[findings[i]["cause"]].platform != "ok")
        )
        f = findings[pick]
        status = table[f["cause"]].platform
        oks = [findings[i]["last_seen"] for i in mine if table[findings[i]["cause"]].platform == "ok"]
        oks.append((f.get("transition") or {}).get("last_success"))
        last_ok = max((t for t in oks if t), key=_instant, default=None)
        since = None
        if status != "ok":
            since = _run_start(failures, h["name"], last_ok) or f.get("first_seen")
            if last_ok and since and _instant(since) < _instant(last_ok):  # no events: the first failure after it
                since = None
        beats = f.get("beats")
        p = {
            "status": status,
            "cause": f["cause"],
            "confidence": f["confidence"],
            "since": since,
            "last_success": last_ok if status != "ok" else (f["last_seen"] or last_ok),
            "beats": {"seen": beats["observed"], "expected": beats["expected"]} if beats else None,
            "attempts": _attempts_of(f),
            "finding": pick,
        }
        p |= platform_words(f, h["name"], p)
        h["platform"] = p


def _instant(iso: str | None) -> pd.Timestamp:
    """An ISO 8601 time as an instant (none: the earliest), to compare times with and without fractions."""
    return pd.Timestamp(iso) if iso else pd.Timestamp.min.tz_localize("UTC")


def _platform_failures(events: pd.DataFrame | None, causes: pd.Series | None) -> dict[str, pd.Series]:
    """Per host the times of its platform logins' failures (causes with a failing or blocked
    platform status), sorted; empty without events."""
    if events is None or causes is None or not len(events):
        return {}
    failing = [c.id for c in load_causes() if c.platform in ("failing", "blocked")]
    mask = causes.isin(failing).to_numpy(dtype=bool, na_value=False)
    mask = mask & events["outcome"].isin(["failure", "blocked"]).to_numpy(dtype=bool, na_value=False)
    if not mask.any():
        return {}
    sel = events.loc[mask, ["host", "timestamp"]]
    host = sel["host"]
    if not isinstance(host.dtype, pd.CategoricalDtype):
        host = host.astype("category")
    if UNKNOWN_HOST not in host.cat.categories:  # no host: the name people see (findings keep null)
        host = host.cat.add_categories([UNKNOWN_HOST])
    names = host.fillna(UNKNOWN_HOST)
    return {
        str(h): grp.dropna().sort_values() for h, grp in sel["timestamp"].groupby(names, sort=False, observed=True)
    }


def _run_start(failures: dict[str, pd.Series], host: str, after: str | None) -> str | None:
    """The host's first platform failure after ``after`` (its last success); None without one."""
    ts = failures.get(host)
    if ts is None:
        return None
    if after:
        ts = ts[ts > pd.Timestamp(after)]
    return iso_utc(ts.iloc[0]) if len(ts) else None


_BUCKETS = [60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400]
MAX_BUCKETS = 520  # ten years of weeks; a timeline over a longer span takes longer buckets
# (host, cause, bucket) cells counted at once, every combination, up to the larger of these
TIMELINE_GRID, TIMELINE_GRID_PER_EVENT = 1 << 20, 4


def _bucketing(first: int, last: int, buckets: int) -> tuple[int, int]:
    """The timeline's bucket (seconds, a multiple of a minute) and its first bucket's start
    (a multiple of a minute) for times from ``first`` to ``last`` (seconds)."""
    span = max(last - first, 1)
    size = next((b for b in _BUCKETS if span / b <= buckets), _BUCKETS[-1])
    align = size
    if span / size > MAX_BUCKETS:  # years of weeks (forged times: year 1 and year 9999): whole weeks each
        size, align = -(-span // (MAX_BUCKETS * _BUCKETS[-1])) * _BUCKETS[-1], 86400  # from the first day
    return size, first // align * align


def timeline_cells(events: pd.DataFrame, causes: pd.Series, counted: np.ndarray | None = None) -> dict[str, Any]:
    """What :func:`timeline` counts, per (host, cause, minute): a share of the hosts' part
    of the timeline, for :func:`timeline_of_cells` to add up with the others'. Every bucket
    is whole minutes from a whole minute, so counts per minute make the same buckets."""
    micros = events["timestamp"].to_numpy(dtype="datetime64[us]").view(np.int64)
    keep = causes.notna().to_numpy() & (micros != np.iinfo(np.int64).min)
    if counted is not None:
        keep &= counted
    if not keep.any():
        return {"first": None, "last": None, "hosts": [], "causes": [], "cells": np.zeros((4, 0), dtype=np.int64)}
    t = micros[keep] // 1_000_000
    first, last = int(t.min()), int(t.max())
    minute = t // 60
    del t
    host_col = events["host"]
    hosts = host_col.cat.codes.to_numpy()[keep].astype(np.int64) + 1  # 0: no host
    host_names = [None, *host_col.cat.categories]
    ncause = len(causes.cat.categories)
    low = int(minute.min())
    key = (hosts * ncause + causes.cat.codes.to_numpy()[keep]) * (int(minute.max()) - low + 1)
    key += minute - low
    keys, counts = np.unique(key, return_counts=True)
    pair, offset = np.divmod(keys, int(minute.max()) - low + 1)
    cells = np.stack([pair // ncause, pair % ncause, offset + low, counts])
    names = [None if h is None else str(h) for h in host_names]
    return {"first": first, "last": last, "hosts": names, "causes": [str(c) for c in causes.cat.categories],
            "cells": cells}  # fmt: skip


def timeline_of_cells(parts: list[dict[str, Any]], buckets: int = 48) -> dict[str, Any]:
    """:func:`timeline` from the :func:`timeline_cells` of shares of the hosts."""
    parts = [p for p in parts if p["first"] is not None]
    if not parts:
        return {"bucket_seconds": None, "start": None, "hosts": {}}
    size, start = _bucketing(min(p["first"] for p in parts), max(p["last"] for p in parts), buckets)
    n = (max(p["last"] for p in parts) - start) // size + 1
    out: dict[str, dict[str, np.ndarray]] = {}
    for p in parts:
        h, c, minute, count = p["cells"]
        idx = (minute * 60 - start) // size
        for (hi, ci), rows in pd.Series(np.arange(h.size)).groupby([h, c]).indices.items() if h.size else ():
            host = p["hosts"][hi]
            row = out.setdefault(UNKNOWN_HOST if host is None else host, {}).setdefault(
                p["causes"][ci], np.zeros(n, dtype=np.int64)
            )
            np.add.at(row, idx[rows], count[rows])
    return {
        "bucket_seconds": size,
        "start": pd.Timestamp(start, unit="s", tz="UTC").isoformat().replace("+00:00", "Z"),
        "hosts": {host: {cause: out[host][cause].tolist() for cause in sorted(out[host])} for host in sorted(out)},
    }


def timeline(
    events: pd.DataFrame, causes: pd.Series, buckets: int = 48, counted: np.ndarray | None = None
) -> dict[str, Any]:
    """Attempts per time bucket, per host and cause (classified events only). ``counted``: per
    event whether it stands for its attempt (or connection), as :func:`analyze_events` gives
    it; without it, every event counts."""
    micros = events["timestamp"].to_numpy(dtype="datetime64[us]").view(np.int64)
    keep = causes.notna().to_numpy() & (micros != np.iinfo(np.int64).min)
    if counted is not None:
        keep &= counted
    if not keep.any():
        return {"bucket_seconds": None, "start": None, "hosts": {}}
    t = micros[keep] // 1_000_000
    size, start = _bucketing(int(t.min()), int(t.max()), buckets)
    idx = (t - start) // size
    del t
    n = int(idx.max()) + 1
    # (host, cause, bucket) counted on codes, one bincount over every combination (hosts and
    # causes are few); names only for the pairs that occur
    host_col = events["host"]
    if isinstance(host_col.dtype, pd.CategoricalDtype):  # no host: a host of its own, the last
        host_names = np.append(np.asarray(host_col.cat.categories, dtype=object), np.nan)
        hosts = np.where((codes := host_col.cat.codes.to_numpy()) < 0, len(host_names) - 1, codes)
    else:
        hosts, host_names = pd.factorize(host_col, use_na_sentinel=False)
    ncause = len(causes.cat.categories)
    pair = hosts[keep].astype(np.int64) * ncause + causes.cat.codes.to_numpy()[keep]
    if len(host_names) * ncause * n <= max(TIMELINE_GRID, TIMELINE_GRID_PER_EVENT * pair.size):  # all at once
        pair *= n
        pair += idx
        counts = np.bincount(pair, minlength=len(host_names) * ncause * n).reshape(-1, n)
        keys = np.flatnonzero(counts.sum(axis=1))
        counts = counts[keys]
    else:  # many hosts: only the pairs that occur
        inverse, keys = pd.factorize(pair)
        counts = np.bincount(inverse * n + idx, minlength=len(keys) * n).reshape(-1, n)
    del pair, idx
    named: dict[tuple[str, str], list[int]] = {}  # a host named like the one of no host shares its rows
    for row, key in enumerate(keys.tolist()):
        h = host_names[key // ncause]
        pair = (UNKNOWN_HOST if pd.isna(h) else str(h), str(causes.cat.categories[key % ncause]))
        named.setdefault(pair, []).append(row)
    out: dict[str, dict[str, list[int]]] = {}
    for host, cause in sorted(named):
        out.setdefault(host, {})[cause] = counts[named[(host, cause)]].sum(axis=0).tolist()
    return {
        "bucket_seconds": size,
        "start": pd.Timestamp(start, unit="s", tz="UTC").isoformat().replace("+00:00", "Z"),
        "hosts": out,
    }
