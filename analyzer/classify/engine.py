"""Cause assignment: rules in priority order, detections and group conditions.

Each event takes the cause of the first rule (lowest priority number) whose detection
selects it and whose group conditions hold for its group. Everything is computed over
arrays: group ids from ``groupby().ngroup()``, windows as time buckets, ordering with
``searchsorted`` over (group, time) keys.

Group conditions (all optional, all must hold):
  group-by     columns that form a group (nulls are a value: a missing address too)
  timespan     the window for count / value_count / followed_by / preceded_by
  count        {gte|gt|lte|lt: N} events of the group (in a window, for gte/gt)
  value_count  {field: col, gte|…: N, group-by: [...]}: distinct values (own grouping allowed)
  periodicity  {max_cv, min_beats, min_interval}: attempts at a steady cadence, missed
               beats tolerated; sets the finding's cadence
  host_role    [domain-controller, windows, linux]
  followed_by  {match: {col: value…}, within}: a later event of the group matches
  preceded_by  {match: {col: value…}, count: {gte: N}, within}: earlier events match
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import Profile
from ..schema import category_in
from .load import RuleSet
from .match import evaluate_rule, evaluate_selection
from .model import Bounds, Group, Rule

__all__ = ["classify", "Classified", "periodicity", "spread"]

_OPS = {"gte": np.greater_equal, "gt": np.greater, "lte": np.less_equal, "lt": np.less}
_BIG = np.int64(1) << np.int64(40)


@dataclass
class Classified:
    """Per event (aligned with the events' index): the cause and how it was decided."""

    cause: pd.Series
    verdict: pd.Series
    confidence: pd.Series
    rule: pd.Series
    cadence: pd.Series  # seconds, where a periodicity condition measured one (sparse: NaN elsewhere)


class _Seconds:
    """The events' times in seconds since the epoch (0 where missing), for the rows asked
    (``secs[rows]``): computed from a view of the time column, not kept for every event."""

    def __init__(self, events: pd.DataFrame) -> None:
        ts = events["timestamp"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype):
            ts = ts.dt.tz_localize("UTC")
        self.micros = ts.array.as_unit("us").asi8  # a view (a zone-aware column holds UTC instants), NaT the smallest

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        micros = self.micros[rows]
        out = micros // 1_000_000
        out[micros == np.iinfo(np.int64).min] = 0
        return out


def _group_key(frame: pd.DataFrame, by: list[str]) -> np.ndarray | None:
    """Per row one integer that is the same exactly for rows of the same group: the
    categoricals' codes in mixed radix (a missing value is a value of its own). None when
    a column is not categorical or the codes do not fit in one integer."""
    cols = [frame[c] for c in by]
    if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in cols):
        return None
    key, radix = np.zeros(len(frame), dtype=np.int64), 1
    for c in cols:
        size = len(c.cat.categories) + 1  # +1: code -1 (missing) becomes 0
        if radix * size >= 1 << 62:
            return None
        part = c.cat.codes.to_numpy(dtype=np.int64)  # in place from here: one temporary
        part += 1
        part *= radix
        key += part
        del part
        radix *= size
    return key


def group_ids(frame: pd.DataFrame, by: list[str]) -> np.ndarray:
    """Per row, its group's number (in order of first appearance; missing is a value)."""
    if not by:
        return np.zeros(len(frame), dtype=np.int64)
    key = _group_key(frame, by)  # categoricals (the usual keys): a hash of integers
    if key is not None:
        return pd.factorize(key)[0].astype(np.int64, copy=False)
    return frame.groupby(by, observed=True, dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)


def _same_groups(
    events: pd.DataFrame, by: list[str], rows: np.ndarray, other: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The ``other`` rows in a group of ``by`` that one of ``rows`` is in (counts over the
    other rows only matter for those groups), with the group keys (:func:`_group_key`) of
    ``rows`` and of the other rows kept; all of ``other`` and no keys when the columns are
    not codes."""
    if not by or not other.size:
        return other, None, None
    mine = _group_key(events[by].iloc[rows], by)
    theirs = _group_key(events[by].iloc[other], by) if mine is not None else None
    if theirs is None:
        return other, None, None
    keep = pd.Index(pd.unique(mine)).get_indexer(theirs) >= 0
    return other[keep], mine, theirs[keep]


def _distinct_keys(col: pd.Series) -> np.ndarray:
    """A column's values for counting distinct ones: a categorical's codes (NaN where
    missing), no Python object per row; other columns as objects."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy(dtype=np.float64)
        codes[codes < 0] = np.nan
        return codes
    return col.astype(object).to_numpy()


def _distinct_per_group(gid: np.ndarray, values: np.ndarray, ngroups: int) -> np.ndarray:
    """Per group, how many distinct non-missing ``values`` its rows have. Codes (floats from
    :func:`_distinct_keys`, NaN missing) become one integer per (group, value) pair, counted
    once each by a hash: pandas' groupby().nunique() took several times the memory."""
    if values.dtype.kind != "f":
        return pd.Series(values).groupby(gid).nunique().reindex(range(ngroups)).fillna(0).to_numpy()
    have = ~np.isnan(values)
    codes = values[have].astype(np.int64)
    radix = int(codes.max()) + 1 if codes.size else 1
    pairs = gid[have].astype(np.int64)
    pairs *= radix
    pairs += codes
    del codes
    pairs = pd.unique(pairs)
    return np.bincount(pairs // radix, minlength=ngroups)


def _compare(bounds: Bounds, values: np.ndarray) -> np.ndarray:
    ok = np.ones(len(values), dtype=bool)
    for op, fn in _OPS.items():
        limit = getattr(bounds, op)
        if limit is not None:
            ok &= fn(values, limit)
    return ok


def _window_max(gid: np.ndarray, t: np.ndarray, span: int | None, per_row: np.ndarray | None = None) -> np.ndarray:
    """Per group: the largest number of rows (or distinct ``per_row`` values) in any
    window of ``span`` seconds, on two grids offset by half a window.

    Each row's (group, window) cell, and with ``per_row`` its (cell, value) triple, is one
    integer; hashing those (pd.factorize/pd.unique) counts them without pandas' groupby
    over a frame of the columns, which took several times the memory."""
    ngroups = int(gid.max()) + 1 if gid.size else 0
    best = np.zeros(ngroups, dtype=np.int64)
    if not gid.size:
        return best
    offsets = (0, span // 2) if span else (0,)
    if per_row is not None:
        if per_row.dtype.kind != "f":  # not category codes: pandas counts the objects
            return _window_max_by_groupby(gid, t, span, per_row)
        have = ~np.isnan(per_row)
        codes = per_row[have].astype(np.int64)
        vradix = int(codes.max()) + 1 if codes.size else 1
    for off in offsets:
        bucket = (t + off) // span if span else np.zeros_like(t)
        low = int(bucket.min())
        nb = int(bucket.max()) - low + 1
        if ngroups * nb * (vradix if per_row is not None else 1) >= 1 << 62:
            return _window_max_by_groupby(gid, t, span, per_row)  # too wide for one integer
        cell = gid.astype(np.int64)
        cell *= nb
        bucket -= low
        cell += bucket
        del bucket
        if per_row is not None:
            triple = cell[have]
            triple *= vradix
            triple += codes
            cell = pd.unique(triple) // vradix  # one row per distinct value of a cell
            del triple
        inverse, cells = pd.factorize(cell)
        del cell
        np.maximum.at(best, cells // nb, np.bincount(inverse, minlength=len(cells)))
    return best


def _window_max_by_groupby(
    gid: np.ndarray, t: np.ndarray, span: int | None, per_row: np.ndarray | None = None
) -> np.ndarray:
    """:func:`_window_max` by pandas' groupby (for values that are not codes, or keys too
    wide for one integer)."""
    ngroups = int(gid.max()) + 1 if gid.size else 0
    best = np.zeros(ngroups, dtype=np.int64)
    offsets = (0, span // 2) if span else (0,)
    for off in offsets:
        bucket = (t + off) // span if span else np.zeros_like(t)
        frame = pd.DataFrame({"g": gid, "b": bucket})
        if per_row is None:
            sizes = frame.groupby(["g", "b"], sort=False).size()
        else:
            frame["v"] = per_row
            sizes = frame.groupby(["g", "b"], sort=False)["v"].nunique(dropna=True)
        per_group = sizes.groupby(level=0).max()
        best[per_group.index.to_numpy()] = np.maximum(best[per_group.index.to_numpy()], per_group.to_numpy())
    return best


def periodicity(
    gid: np.ndarray, t: np.ndarray, max_cv: float, min_beats: int, min_interval: float = 60.0, burst: float = 30.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: is it periodic, and its cadence (median interval, seconds).

    Events closer than ``burst`` seconds are one attempt (retries, the 4625 and 4776 of
    one logon). Intervals are divided by the median; a group is periodic when at least
    80 % of them are within ``max_cv`` of a whole number of beats (missed beats are fine),
    it has at least ``min_beats`` attempts, and the cadence is at least ``min_interval``."""
    ngroups = int(gid.max()) + 1 if gid.size else 0
    order = np.lexsort((t, gid))
    g = gid[order]
    s = t[order].astype("float64")
    del order
    d = np.diff(s, prepend=s[:1])
    del s
    counted = np.concatenate([[False], g[1:] == g[:-1]]) & (d >= burst)  # within a burst: the same attempt
    g, d = g[counted], d[counted]  # the intervals that count, still ordered by group
    del counted
    n = np.bincount(g, minlength=ngroups)
    counts = n + 1  # attempts
    # each group's median interval: its intervals sorted, the middle one (or the mean of two)
    d = d[np.lexsort((d, g))]
    start = np.concatenate([[0], np.cumsum(n)[:-1]]) if ngroups else n
    has = n > 0
    lo = np.where(has, start + (n - 1) // 2, 0)
    hi = np.where(has, start + n // 2, 0)
    med = np.where(has, (d[lo] + d[hi]) / 2 if d.size else 0.0, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = d / med[g]
        beats = np.maximum(np.rint(r), 1)
        close = np.abs(r - beats) <= max_cv
        share = np.bincount(g, weights=close, minlength=ngroups) / n  # NaN without intervals
    periodic = (counts >= min_beats) & (share >= 0.8) & (med >= min_interval)
    return periodic, med


def _ordered(
    events: pd.DataFrame,
    secs: _Seconds,
    rows: np.ndarray,
    by: list[str],
    other: np.ndarray,
    span: int,
    after: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate row: how many ``other`` rows of the same group fall in the
    window after (or before) it (``secs``: every event's time). Returns (count per
    candidate row, group id per row)."""
    other = _same_groups(events, by, rows, other)[0]
    both = np.concatenate([rows, other])
    gid = group_ids(events[by].iloc[both], by)  # only the columns needed, not whole rows
    t = secs[both]
    del both
    g_rows, g_other = gid[: rows.size], gid[rows.size :]
    t_rows, t_other = t[: rows.size], t[rows.size :]
    keys = np.sort(g_other * _BIG + t_other)
    base = g_rows * _BIG + t_rows
    # times are whole seconds: events of the same second count on both sides (their order
    # within it is unknown; a Kerberos spray and its success take milliseconds), never the row itself
    if after:  # [t, t + span]
        count = np.searchsorted(keys, base + span, "right") - np.searchsorted(keys, base, "left")
    else:  # [t - span, t]
        count = np.searchsorted(keys, base, "right") - np.searchsorted(keys, base - span, "left")
    count -= np.isin(rows, other)
    return count, g_rows


def _group_ok(
    events: pd.DataFrame,
    secs: _Seconds,
    rows: np.ndarray,
    g: Group,
    profile: Profile,
    roles: pd.Series,
    variables: dict,
    scope: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate rows satisfy the group conditions ``g``; their cadence (or NaN).
    ``secs``: the events' times in seconds (:class:`_Seconds`); ``scope``: the rows whose
    groups the candidates' can be (a mask; None: all)."""
    cadence = np.full(rows.size, np.nan)
    ok = np.ones(rows.size, dtype=bool)
    if g.host_role is not None:
        ok &= category_in(roles, g.host_role)[rows]
    # the conditions all have to hold, each over all the candidate rows: once no row is left,
    # the costlier ones are not computed (a DC probe's rule on a Linux host's failures stops
    # at its host role; an attack's failures as a platform account's stop at periodicity,
    # before the distinct values among every other failure)
    if not ok.any():
        return ok, cadence
    by = list(g.by)
    vc = g.value_count
    needed = dict.fromkeys(by if vc is None else [*by, *(vc.group_by or ()), vc.field])
    sub = events[list(needed)].iloc[rows]  # only the columns the conditions read
    span = g.timespan.seconds if g.timespan is not None else None
    t = secs[rows]
    gid = group_ids(sub, by)
    if g.count is not None:
        if g.count.lower:
            per_group = _window_max(gid, t, span)
        else:
            per_group = np.bincount(gid, minlength=int(gid.max()) + 1 if gid.size else 0)
        ok &= _compare(g.count, per_group)[gid]
        if not ok.any():
            return ok, cadence
    if g.periodicity is not None:
        per = g.periodicity
        periodic, med = periodicity(
            gid,
            t,
            float(profile.thresholds["periodic_max_cv"] if per.max_cv is None else per.max_cv),
            int(profile.thresholds["periodic_min_beats"] if per.min_beats is None else per.min_beats),
            float(per.min_interval),
        )
        ok &= periodic[gid]
        cadence = np.where(periodic[gid], med[gid], np.nan)
        if not ok.any():
            return ok, cadence
    if vc is not None:
        vby = list(by if vc.group_by is None else vc.group_by)
        if vc.among is not None:  # distinct values among other events of the same group
            among = np.flatnonzero(_scoped(evaluate_selection(events, vc.among, variables), scope))
            among, mine, theirs = _same_groups(events, vby, rows, among)
            if theirs is not None:
                # groups numbered over the other events alone; each candidate row looks its
                # group's count up
                codes, uniq = pd.factorize(theirs)
                del theirs
                distinct = _distinct_per_group(codes, _distinct_keys(events[vc.field].iloc[among]), len(uniq))
                del codes
                at = pd.Index(uniq).get_indexer(mine)  # -1: no other event in the row's group
                ok &= _compare(vc.bounds, np.where(at >= 0, distinct[np.maximum(at, 0)] if distinct.size else 0, 0))
                del at, mine, among
            else:
                both = np.concatenate([rows, among])
                gids = group_ids(events[vby].iloc[both], vby)
                values = _distinct_keys(events[vc.field].iloc[among])
                size = int(gids.max()) + 1 if gids.size else 0
                distinct = _distinct_per_group(gids[rows.size :], values, size)
                ok &= _compare(vc.bounds, distinct)[gids[: rows.size]]
                del gids, values, among, both
        else:  # distinct values among the candidate rows themselves
            vgid = group_ids(sub, vby) if vby != by else gid
            values = _distinct_keys(sub[vc.field])
            if vc.bounds.lower:
                per_group = _window_max(vgid, t, span, values)
            else:
                per_group = _distinct_per_group(vgid, values, int(vgid.max()) + 1)
            ok &= _compare(vc.bounds, per_group)[vgid]
        if not ok.any():
            return ok, cadence
    for seq, after in ((g.followed_by, True), (g.preceded_by, False)):
        if seq is None or not ok.any():
            continue
        other = np.flatnonzero(_scoped(evaluate_selection(events, seq.match, variables), scope))
        if other.size == 0:  # no event matches: every candidate's count is 0 (`count: {lte: 0}` holds)
            ok &= _compare(seq.count, np.zeros(rows.size, dtype=np.int64))
            continue
        count, _ = _ordered(events, secs, rows, by, other, seq.within.seconds, after)
        ok &= _compare(seq.count, count)
    return ok, cadence


def _scoped(mask: np.ndarray, scope: np.ndarray | None) -> np.ndarray:
    return mask if scope is None else mask & scope


def _profile_allows(rule: Rule, profile: Profile, events: pd.DataFrame) -> bool | np.ndarray:
    """Whether the profile lets ``rule`` apply: to every event (True), to none (False), or to
    some (a mask). A rule for when the platform's networks are unset applies, when they are
    set, to the events without a source address: those the networks cannot tell (Windows logs
    none for an NTLM network logon over WinRM), left to the rule's cadence as without networks."""
    want = (rule.when or {}).get("platform_networks")
    if want == "configured":
        return bool(profile.networks)
    if want == "unset" and profile.networks:
        return events["src_ip"].isna().to_numpy()
    return True


def _roles_of(hosts: pd.Series, roles: dict[str, str]) -> pd.Series:
    """Each event's host role ("unknown" without one), looked up once per host name."""
    if not isinstance(hosts.dtype, pd.CategoricalDtype):
        return hosts.astype(object).map(roles).fillna("unknown")
    per_host = [roles.get(h, "unknown") for h in hosts.cat.categories]
    names, inverse = np.unique(np.array([*per_host, "unknown"], dtype=object), return_inverse=True)
    codes = inverse[hosts.cat.codes.to_numpy()]  # code -1 (no host) takes the last: "unknown"
    return pd.Series(pd.Categorical.from_codes(codes, categories=names), index=hosts.index)


def _sparse_cadence(n: int, cadenced: list[tuple[np.ndarray, np.ndarray]], index: pd.Index) -> pd.Series:
    """Per event the cadence its rule measured, NaN for the rest: a sparse column (most
    events have none), which holds only the measured ones."""
    dense = np.full(n, np.nan)
    for rows, values in cadenced:
        dense[rows] = values
    return pd.Series(pd.arrays.SparseArray(dense, fill_value=np.nan), index=index)


def by_batch(rows: np.ndarray, batches: np.ndarray | None) -> Iterator[tuple[int | None, np.ndarray]]:
    """``rows`` batch by batch (``batches``: per event its batch; see :func:`classify`): the
    batch's number and its rows, for each batch with some; (None, rows) without batches."""
    if batches is None:
        yield None, rows
        return
    mine = batches[rows]
    for b in range(int(batches.max()) + 1):
        part = rows[mine == b]
        if part.size:
            yield b, part


def classify(
    events: pd.DataFrame,
    ruleset: RuleSet,
    profile: Profile,
    roles: dict[str, str],
    batches: np.ndarray | None = None,
) -> Classified:
    """Assign every event the first rule (by priority) that selects it.

    ``batches``: per row a batch number, the rows of a host all in one batch. Each rule's
    group conditions are then computed a batch at a time: the same result when every group
    condition keeps hosts apart (the caller's to check), with temporaries as large as one
    batch's candidate rows instead of all of them."""
    n = len(events)
    variables = profile.variables()
    role_col = _roles_of(events["host"], roles)
    secs = _Seconds(events)  # the group conditions take their rows' times from it
    which = np.full(n, -1, dtype=np.int16 if len(ruleset.rules) < 1 << 15 else np.int32)
    cadenced: list[tuple[np.ndarray, np.ndarray]] = []  # rows with a cadence, and theirs
    rules = list(ruleset.rules)
    for i, rule in enumerate(rules):
        allowed = _profile_allows(rule, profile, events)
        if allowed is False:
            continue
        det = evaluate_rule(events, rule, variables) & (which < 0) & allowed
        rows = np.flatnonzero(det)
        if rows.size == 0:
            continue
        if not rule.group:
            which[rows] = i
            continue
        for b, part in by_batch(rows, batches):
            scope = None if b is None else batches == b
            ok, cad = _group_ok(events, secs, part, rule.group, profile, role_col, variables, scope)
            part, cad = part[ok], cad[ok]
            if (timed := ~np.isnan(cad)).any():
                cadenced.append((part[timed], cad[timed]))
            which[part] = i

    chosen = np.zeros(len(rules) + 1, dtype=bool)
    chosen[which] = True  # which rules some event has; -1 (none) marks the extra last entry
    chosen = chosen[:-1]

    def column(values: list[str]) -> pd.Series:
        """Per event the chosen rule's value, built from codes (no object per event)."""
        cats, inverse = np.unique(np.array(values, dtype=object), return_inverse=True)
        used = np.zeros(len(cats), dtype=bool)
        used[inverse[chosen]] = True
        remap = np.cumsum(used) - 1  # only the values some event has, as before
        lookup = np.append(remap[inverse], -1)  # an event without a rule (-1) takes the last: none
        return pd.Series(pd.Categorical.from_codes(lookup[which], categories=cats[used]), index=events.index)

    return Classified(
        cause=column([r.cause for r in rules]),
        verdict=column([r.verdict for r in rules]),
        confidence=column([r.confidence for r in rules]),
        rule=column([r.id for r in rules]),
        cadence=_sparse_cadence(n, cadenced, events.index),
    )


def spread(cls: Classified, where: np.ndarray, index: pd.Index) -> Classified:
    """A classification of attempts (and of rows outside any, as themselves) given back to the
    events: per event row (``where``: its row in what was classified) that row's cause,
    verdict, confidence, rule and cadence."""

    def take(col: pd.Series) -> pd.Series:
        cat = col.array
        return pd.Series(pd.Categorical.from_codes(cat.codes[where], categories=cat.categories), index=index)

    dense = cls.cadence.to_numpy(dtype="float64", na_value=np.nan)[where]
    return Classified(
        cause=take(cls.cause),
        verdict=take(cls.verdict),
        confidence=take(cls.confidence),
        rule=take(cls.rule),
        cadence=pd.Series(pd.arrays.SparseArray(dense, fill_value=np.nan), index=index),
    )
