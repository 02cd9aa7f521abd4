"""Attempts: the records of one login attempt folded into one row.

A log record is not a login attempt. sshd writes several lines per connection (pre-auth,
PAM, ``Failed …``, ``Connection closed … [preauth]``); a domain controller writes 4776 and
4625 for one NTLM logon; a firewall logs a SYN and each retransmission. :func:`fold` groups
the rows of one attempt (which rows, how they join, is data: ``analyzer/data/attempts.yaml``)
and gives per event row its attempt number (-1 outside any), and one row per attempt in the
event schema, its fields merged from its rows. A connection that never authenticated
(``Did not receive identification string``, a pre-auth disconnect alone, a blocked SYN) is an
attempt row too, marked as a connection and not a login attempt.

Everything is computed over arrays: one sort per kind of log, runs of equal keys, no Python
loop per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._yaml import clean, line_of, load_yaml
from .schema import category_in, concat_events, conform

__all__ = ["Folded", "fold", "Units"]

_NO_TIME = np.iinfo(np.int64).min
ROLES = ("none", "attempt", "name", "join", "close", "paired", "connection", "close-named")
_R = {name: i for i, name in enumerate(ROLES)}
_ROLE_RANK = np.array([9, 0, 1, 2, 3, 0, 1, 3])  # which row stands for an attempt: by role first
_OUTSIDE_ACTIONS_CONNECTION = ("connection", "firewall-drop")  # a lone failed row of these: a connection


def _table_path() -> Path:
    return Path(str(resources.files("analyzer") / "data" / "attempts.yaml"))


@dataclass(frozen=True)
class _Kind:
    name: str
    when: dict[str, tuple[str, ...]]
    connection: tuple[str, ...]
    gap: int
    roles: tuple[dict[str, Any], ...]
    session: bool = True  # one transport session: its rows lend each other fields and sticky reasons


@dataclass(frozen=True)
class _Table:
    kinds: tuple[_Kind, ...]
    reasons: tuple[str, ...]
    sticky: frozenset[str]
    representative: tuple[str, ...]


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


@cache
def load_table(path: Path | None = None) -> _Table:
    """The folding table (``analyzer/data/attempts.yaml``); a role, action or column it
    does not know is an error naming the file and line."""
    path = path or _table_path()
    raw = load_yaml(path)
    for name, spec in raw["kinds"].items():
        if name == "__line__":
            continue
        for r in spec["roles"]:
            where = f"{path}:{line_of(r)}: kind {name}"
            if r.get("role") not in _R or r["role"] == "none":
                raise ValueError(f"{where}: unknown role {r.get('role')!r} (one of {', '.join(ROLES[1:])})")
            unknown = set(r) - {"action", "outcome", "auth_method", "user", "role", "__line__"}
            if unknown:
                raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    doc = clean(raw)
    return _Table(
        kinds=tuple(
            _Kind(
                name=name,
                when={k: _tuple(v) for k, v in spec["when"].items()},
                connection=tuple(spec["connection"]),
                gap=int(spec["gap"]),
                roles=tuple(spec["roles"]),
                session=bool(spec.get("session", True)),
            )
            for name, spec in doc["kinds"].items()
        ),
        reasons=tuple(r["reason"] for r in doc["reasons"]),
        sticky=frozenset(r["reason"] for r in doc["reasons"] if r.get("sticky")),
        representative=tuple(doc["representative"]),
    )


@dataclass
class Folded:
    """The events folded into attempts.

    ``attempt``: per event row its attempt's number (a row of ``frame``), -1 outside any.
    ``frame``: one row per attempt, the event schema's columns, fields merged from its rows,
    its time its first failure's. ``login``: per attempt, whether it is a login attempt (else a
    connection only). ``connection``: per attempt its connection's number (attempts of one sshd
    connection share it). ``rep``: per attempt the event row that stands for it."""

    attempt: np.ndarray
    frame: pd.DataFrame
    login: np.ndarray
    connection: np.ndarray
    rep: np.ndarray

    @property
    def outside(self) -> np.ndarray:
        """The event rows outside any attempt."""
        return np.flatnonzero(self.attempt < 0)

    def units(self) -> Units:
        """Per event row what it counts as (:class:`Units`)."""
        return Units.of(self)


@dataclass
class Units:
    """Per event row the unit it counts in: its attempt, or itself when outside any (a success,
    an observation). ``unit``: per row a unit number; ``login``/``connection``: per unit whether it
    is a login attempt, and its connection's number (-1: none); ``first``: per row whether it is
    the row that stands for its unit (one per unit). ``view`` and ``where``, when set: the
    frame that was classified (:func:`with_outside`) and per event row its row there."""

    unit: np.ndarray
    login: np.ndarray
    connection: np.ndarray
    first: np.ndarray
    view: pd.DataFrame | None = None
    where: np.ndarray | None = None

    @classmethod
    def of(cls, folded: Folded) -> Units:
        att = folded.attempt
        n_att = len(folded.login)
        outside = att < 0
        unit = att.astype(np.int64, copy=True)
        unit[outside] = n_att + np.arange(int(outside.sum()))
        login = np.concatenate([folded.login, np.ones(int(outside.sum()), dtype=bool)])
        connection = np.concatenate([folded.connection, np.full(int(outside.sum()), -1, dtype=np.int64)])
        first = outside.copy()
        first[folded.rep] = True
        return cls(unit=unit, login=login, connection=connection, first=first)

    @classmethod
    def each_row(cls, n: int) -> Units:
        """Every row a unit of its own (events not folded)."""
        return cls(
            unit=np.arange(n, dtype=np.int64),
            login=np.ones(n, dtype=bool),
            connection=np.full(n, -1, dtype=np.int64),
            first=np.ones(n, dtype=bool),
        )


def _mask(events: pd.DataFrame, column: str, values: tuple[str, ...] | None) -> np.ndarray:
    if values is None:
        return np.ones(len(events), dtype=bool)
    return category_in(events[column], values)


def _roles(events: pd.DataFrame, kind: _Kind, rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` its role code under ``kind`` (0: none), the first entry that fits."""
    needed = [c for c in ("action", "outcome", "auth_method", "user") if any(c in spec for spec in kind.roles)]
    sub = events[needed].iloc[rows]  # only the columns the roles read
    out = np.zeros(rows.size, dtype=np.int8)
    for spec in kind.roles:
        ok = out == 0
        for col in ("action", "outcome"):
            if col in spec:
                ok &= _mask(sub, col, _tuple(spec[col]))
        for col in ("auth_method", "user"):
            if col in spec:
                present = sub[col].notna().to_numpy()
                ok &= present if spec[col] == "present" else ~present
        out[ok] = _R[spec["role"]]
    return out


def _codes(col: pd.Series, fold_case: bool = False) -> np.ndarray:
    """A column as integer codes, a missing value -1 (names without case when ``fold_case``)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy(dtype=np.int64)
        if fold_case and len(col.cat.categories):
            lowered = pd.Index([str(c).lower() for c in col.cat.categories])
            remap = pd.factorize(lowered)[0].astype(np.int64)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        return codes
    if pd.api.types.is_numeric_dtype(col.dtype):
        return pd.factorize(col.to_numpy(dtype=np.float64, na_value=np.nan))[0].astype(np.int64)
    return pd.factorize(col.astype(object))[0].astype(np.int64)


def _key(events: pd.DataFrame, rows: np.ndarray, columns: tuple[str, ...], kind: str) -> np.ndarray:
    """One integer per row of ``rows``: equal for rows of the same connection key. A firewall
    row without a source port is a key of its own (its retransmissions cannot be told)."""
    key, radix = np.zeros(rows.size, dtype=np.int64), 1
    lone = np.zeros(rows.size, dtype=bool)
    for c in columns:
        codes = _codes(events[c].iloc[rows], fold_case=(c == "user"))
        if kind == "firewall" and c == "src_port":
            lone |= codes < 0
        size = int(codes.max()) + 2 if codes.size else 1  # +1: a missing value (-1) is 0
        if radix * size >= 1 << 62:  # too wide for one integer: renumber what there is so far
            key = pd.factorize(key)[0].astype(np.int64)
            radix = int(key.max()) + 1 if key.size else 1
        key += (codes + 1) * radix
        radix *= size
    if lone.any():
        key[lone] = radix + np.arange(int(lone.sum()))
    return key


def _micros(events: pd.DataFrame) -> np.ndarray:
    ts = events["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize("UTC")
    return ts.array.as_unit("us").asi8


def _runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Per element of sorted keys the start position of its run of equal keys."""
    if not sorted_keys.size:
        return np.empty(0, dtype=np.int64)
    new = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    return np.maximum.accumulate(np.where(new, np.arange(sorted_keys.size), 0))


def _fold_kind(
    events: pd.DataFrame, kind: _Kind, rows: np.ndarray, role: np.ndarray, micros: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One kind's rows (with their roles) → per row its attempt (local numbers from 0), its
    connection (local), and per attempt its connection and whether it is a login attempt."""
    key = _key(events, rows, kind.connection, kind.name)
    t = micros[rows]
    order = np.lexsort((rows, t, key))
    k, tt, rr = key[order], t[order], role[order]
    gap = np.int64(kind.gap) * 1_000_000
    new = np.ones(k.size, dtype=bool)
    if k.size > 1:
        dt = np.diff(tt)
        gone = (tt[1:] == _NO_TIME) | (tt[:-1] == _NO_TIME)
        new[1:] = (k[1:] != k[:-1]) | ((dt > gap) & ~gone)
        # a close ends the connection: a later row of the key that is not a close or a join
        # (a summary logged after the disconnect) opens a new one
        ends = (_R["close"], _R["close-named"], _R["join"])
        closed = np.isin(rr[:-1], ends[:2]) & ~np.isin(rr[1:], ends)
        new[1:] |= closed
    conn = np.cumsum(new) - 1
    nconn = int(conn[-1]) + 1 if conn.size else 0
    is_att = (rr == _R["attempt"]).astype(np.int64)
    is_paired = rr == _R["paired"]
    if is_paired.any():
        # a paired row's attempt: its rank among the rows of its action in the connection
        act = _codes(events["action"].iloc[rows[order]])
        sub = np.lexsort((np.arange(k.size), act, conn))
        ck = conn[sub] * (int(act.max()) + 2) + act[sub] + 1
        rank_sorted = np.arange(k.size) - _runs(ck)
        rank = np.empty(k.size, dtype=np.int64)
        rank[sub] = rank_sorted
        per_action = np.bincount(ck[is_paired[sub]], minlength=int(ck.max()) + 1 if ck.size else 0)
        # attempts per connection: the largest count of one action's paired rows
        n_pair = np.zeros(nconn, dtype=np.int64)
        keys_with = np.flatnonzero(per_action)
        np.maximum.at(n_pair, keys_with // (int(act.max()) + 2), per_action[keys_with])
    else:
        rank = np.zeros(k.size, dtype=np.int64)
        n_pair = np.zeros(nconn, dtype=np.int64)
    n_auth = np.bincount(conn, weights=is_att, minlength=nconn).astype(np.int64)
    has_name = np.bincount(conn, weights=np.isin(rr, (_R["name"], _R["close-named"])), minlength=nconn) > 0
    has_join = np.bincount(conn, weights=(rr == _R["join"]), minlength=nconn) > 0
    # a login attempt when a name was sent or an authentication failed (a limit or lockout
    # says some did); closes only, or a blocked connection: a connection, not a login attempt
    login = (n_auth > 0) | has_name | (n_pair > 0) | has_join
    n_att = np.maximum(np.maximum(n_auth, n_pair), 1)
    # the k-th `attempt` row of a connection opens its k-th attempt; rows before the first
    # belong to the first, rows after the last to the last
    cs = np.cumsum(is_att)
    starts = np.r_[0, np.flatnonzero(new[1:]) + 1] if k.size else np.empty(0, dtype=np.int64)
    base = (cs[starts] - is_att[starts])[conn]
    local = np.maximum(cs - base - 1, 0)
    local = np.where(is_paired, np.minimum(rank, n_att[conn] - 1), local)
    local = np.where(rr == _R["join"], np.where(n_pair[conn] > 0, n_att[conn] - 1, local), local)
    offsets = np.r_[0, np.cumsum(n_att)[:-1]] if nconn else np.empty(0, dtype=np.int64)
    att_sorted = offsets[conn] + local
    att = np.empty(k.size, dtype=np.int64)
    att[order] = att_sorted
    conn_of_row = np.empty(k.size, dtype=np.int64)
    conn_of_row[order] = conn
    att_conn = np.repeat(np.arange(nconn), n_att)
    att_login = np.repeat(login, n_att)
    return att, conn_of_row, att_conn, att_login


def _first_valid(group: np.ndarray, codes: np.ndarray, ngroups: int) -> np.ndarray:
    """Per group the first (in the given order) non-negative code, -1 when none: each group's
    smallest position (``np.minimum.at``: a fancy assignment with repeated indices leaves
    which value wins unspecified)."""
    ok = np.flatnonzero(codes >= 0)
    first = np.full(ngroups, ok.size, dtype=np.int64)
    np.minimum.at(first, group[ok], np.arange(ok.size))
    out = np.full(ngroups, -1, dtype=np.int64)
    have = first < ok.size
    out[have] = codes[ok[first[have]]]
    return out


def _rank_of_values(col: pd.Series, table: tuple[str, ...]) -> np.ndarray:
    """Per row the position of its value in ``table`` (not listed or missing: after all)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        pos = {v: i for i, v in enumerate(table)}
        lookup = np.array([pos.get(str(c), len(table)) for c in col.cat.categories] + [len(table) + 1], dtype=np.int64)
        return lookup[col.cat.codes.to_numpy()]
    return col.astype(object).map({v: i for i, v in enumerate(table)}).fillna(len(table)).to_numpy(dtype=np.int64)


def fold(events: pd.DataFrame, table: _Table | None = None) -> Folded:
    """Fold the records of each attempt (see the module's docstring)."""
    table = table or load_table()
    n = len(events)
    attempt = np.full(n, -1, dtype=np.int64)
    role_all = np.zeros(n, dtype=np.int8)
    conn_all = np.full(n, -1, dtype=np.int64)
    att_conn_parts: list[np.ndarray] = []
    att_login_parts: list[np.ndarray] = []
    session_parts: list[np.ndarray] = []  # per connection: whether it is one transport session
    n_att = n_conn = 0
    micros = _micros(events) if n else np.empty(0, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    for kind in table.kinds:
        mine = ~taken
        for col, values in kind.when.items():
            mine &= _mask(events, col, values)
        if kind.name == "sshd":
            mine &= events["pid"].notna().to_numpy()
        rows = np.flatnonzero(mine)
        if not rows.size:
            continue
        role = _roles(events, kind, rows)
        rows, role = rows[role > 0], role[role > 0]
        if not rows.size:
            continue
        att, conn, att_conn, att_login = _fold_kind(events, kind, rows, role, micros)
        attempt[rows] = att + n_att
        conn_all[rows] = conn + n_conn
        role_all[rows] = role
        att_conn_parts.append(att_conn + n_conn)
        att_login_parts.append(att_login)
        n_att += att_login.size
        kind_conns = int(att_conn.max()) + 1 if att_conn.size else 0
        session_parts.append(np.full(kind_conns, kind.session))
        n_conn += kind_conns
        taken[rows] = True
    # failed or blocked rows no kind took: an attempt each
    lone = np.flatnonzero(~taken & category_in(events["outcome"], ("failure", "blocked")))
    if lone.size:
        attempt[lone] = n_att + np.arange(lone.size)
        conn_all[lone] = n_conn + np.arange(lone.size)
        role_all[lone] = _R["attempt"]
        att_conn_parts.append(n_conn + np.arange(lone.size))
        att_login_parts.append(~category_in(events["action"].iloc[lone], _OUTSIDE_ACTIONS_CONNECTION))
        n_att += lone.size
        session_parts.append(np.ones(lone.size, dtype=bool))
        n_conn += lone.size
    login = np.concatenate(att_login_parts) if att_login_parts else np.empty(0, dtype=bool)
    connection = np.concatenate(att_conn_parts) if att_conn_parts else np.empty(0, dtype=np.int64)
    session = np.concatenate(session_parts) if session_parts else np.empty(0, dtype=bool)
    frame, rep = _merge(events, table, attempt, conn_all, role_all, micros, n_att, n_conn, session)
    return Folded(attempt=attempt, frame=frame, login=login, connection=connection, rep=rep)


def _merge(
    events: pd.DataFrame,
    table: _Table,
    attempt: np.ndarray,
    conn: np.ndarray,
    role: np.ndarray,
    micros: np.ndarray,
    n_att: int,
    n_conn: int,
    session: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per attempt: its representative row's columns, the merged ones replaced (from
    the attempt's rows, and from its connection's where that is one transport session:
    ``session``, per connection)."""
    rows = np.flatnonzero(attempt >= 0)
    if not rows.size:
        return conform(events.iloc[:0].reset_index(drop=True)), np.empty(0, dtype=np.int64)
    att = attempt[rows]
    t = micros[rows]
    t_key = np.where(t == _NO_TIME, np.iinfo(np.int64).max, t)
    act_rank = _rank_of_values(events["action"].iloc[rows], table.representative)
    # in time order (rows ascending: a stable sort keeps line order among equal times)
    by_time = np.argsort(t_key, kind="stable")
    r_t, a_t, c_t = rows[by_time], att[by_time], conn[rows[by_time]]
    # the row that stands for an attempt: the least (role, action, time) as one number per row
    time_rank = np.empty(rows.size, dtype=np.int64)
    time_rank[by_time] = np.arange(rows.size)
    score = (_ROLE_RANK[role[rows]] * (len(table.representative) + 2) + act_rank) * rows.size + time_rank
    best_score = np.full(n_att, np.iinfo(np.int64).max)
    np.minimum.at(best_score, att, score)
    rep = r_t[best_score % rows.size]  # one per attempt, in attempt order
    frame = events.iloc[rep].reset_index(drop=True)
    # per attempt: whether its connection's other rows may lend it fields and sticky reasons
    shared = np.ones(n_att, dtype=bool) if session is None or not session.size else session[conn[rep]]
    cols: dict[str, Any] = {}
    for name in ("user", "src_ip", "domain", "dst_ip"):
        col = events[name]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            continue
        codes = col.cat.codes.to_numpy(dtype=np.int64)
        mine = codes[rep]
        need = mine < 0
        if need.any():
            by_att = _first_valid(a_t, codes[r_t], n_att)
            by_conn = _first_valid(c_t, codes[r_t], n_conn)
            att_conn = conn[rep]
            fill = np.where(by_att >= 0, by_att, np.where(shared, by_conn[att_conn], -1))
            mine = np.where(need, fill, mine)
            cols[name] = pd.Categorical.from_codes(mine, categories=col.cat.categories)
    for name in ("src_port", "dst_port"):
        col = events[name]
        vals = col.to_numpy(dtype=np.int64, na_value=-1)
        mine = vals[rep]
        if (mine < 0).any():
            by_att = _first_valid(a_t, vals[r_t], n_att)
            by_conn = _first_valid(c_t, vals[r_t], n_conn)
            fill = np.where(by_att >= 0, by_att, np.where(shared, by_conn[conn[rep]], -1))
            mine = np.where(mine < 0, fill, mine)
            cols[name] = pd.array(np.where(mine < 0, 0, mine), dtype=col.dtype)
            cols[name][mine < 0] = pd.NA
    # reason: the best by precedence among the attempt's rows, and the sticky ones of its connection
    reason_col = events["reason"]
    rank = _rank_of_values(reason_col.iloc[rows], table.reasons)
    best = np.full(n_att, np.iinfo(np.int64).max)
    np.minimum.at(best, att, rank)
    sticky = np.array([r in table.sticky for r in table.reasons] + [False, False])
    s_rank = np.where(sticky[rank], rank, np.iinfo(np.int64).max)
    best_conn = np.full(n_conn, np.iinfo(np.int64).max)
    np.minimum.at(best_conn, conn[rows], s_rank)
    best = np.where(shared, np.minimum(best, best_conn[conn[rep]]), best)
    if isinstance(reason_col.dtype, pd.CategoricalDtype):
        rep_codes = reason_col.cat.codes.to_numpy(dtype=np.int64)[rep]
        cats = list(reason_col.cat.categories)
        listed = [r for r in table.reasons if r not in cats]
        cats_all = pd.Index([*cats, *listed])
        table_codes = np.array(cats_all.get_indexer(list(table.reasons)), dtype=np.int64)
        chosen = np.where(best < len(table.reasons), table_codes[np.minimum(best, len(table.reasons) - 1)], rep_codes)
        cols["reason"] = pd.Categorical.from_codes(chosen, categories=cats_all)
    # the attempt's time: its first failure's (else its first row's)
    failing = category_in(events["outcome"].iloc[rows], ("failure", "blocked"))
    first_fail = np.full(n_att, np.iinfo(np.int64).max)
    np.minimum.at(first_fail, att[failing & (t != _NO_TIME)], t[failing & (t != _NO_TIME)])
    first_any = np.full(n_att, np.iinfo(np.int64).max)
    np.minimum.at(first_any, att[t != _NO_TIME], t[t != _NO_TIME])
    when = np.where(first_fail != np.iinfo(np.int64).max, first_fail, first_any)
    when = np.where(when == np.iinfo(np.int64).max, _NO_TIME, when)
    cols["timestamp"] = pd.array(when.view("datetime64[us]"), dtype="datetime64[us]").tz_localize("UTC")
    for name, values in cols.items():
        frame[name] = values
    return conform(frame), rep


def with_outside(events: pd.DataFrame, folded: Folded) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame classification sees: the attempts, then the rows outside any attempt as
    themselves; and per event row its row there."""
    outside = folded.outside
    frame = concat_events([folded.frame, events.iloc[outside].reset_index(drop=True)])
    where = folded.attempt.copy()
    where[outside] = len(folded.frame) + np.arange(outside.size)
    return frame, where
