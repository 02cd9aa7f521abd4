"""Linux messages (sshd, PAM, sudo, su, login, account tools, netfilter, systemd) → rows.

Matching is vectorized: each message's first word is dictionary-encoded once, and each
catalog pattern runs its RE2 regex (pyarrow) only over the not-yet-matched rows of its
family whose first word it accepts (its fast regexes first, if it has any). No Python loop
runs per line.

:func:`match_messages` turns (program, message) arrays into matched rows;
:func:`finish_events` applies what needs the whole source: ``message repeated`` weights,
PAM lines folded into the sshd attempt of the same pid, and addresses carried across
the lines of one sshd connection.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._arrays import run_starts
from ..schema import MAXIMA, category_in
from .patterns import FILLABLE, SETTABLE, Catalog, Fast, Pattern
from .syslog import null_empty as _null_empty

__all__ = ["match_messages", "finish_events", "normalize_program"]

_FIRST_WORD = r"^(?:(?:error|fatal): )?(?P<k>[^ ]*)"
_PREFIXES = pa.array(["error:", "fatal:"])  # the words _FIRST_WORD looks past
# systemd sometimes relays sshd's text behind the kernel's own stamp
_KERNEL_STAMP = r"^kernel: ?\[ *[0-9.]+\]:? "
_SSHD_FAMILY = "sshd"
_GENERIC_REASONS = ("bad-password", "unknown-user")
_NUMERIC = ("src_port", "dst_port")  # the only numbers the catalog captures: ports
_ALWAYS = tuple(dict.fromkeys(SETTABLE + FILLABLE))  # every column a pattern can fill


def normalize_program(prog: pa.Array) -> pa.Array:
    """``[sshd]`` → ``sshd``; ``sshd(pam_unix)`` stays (it names the PAM module)."""
    if not pc.any(pc.starts_with(prog, "[")).as_py():
        return prog
    return pc.replace_substring_regex(prog, r"^\[(.*)\]$", r"\1")


def _family_masks(cat: Catalog, prog: pa.Array) -> dict[str, np.ndarray]:
    enc = pc.dictionary_encode(prog)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    codes = np.asarray(enc.indices.fill_null(-1), dtype=np.int64)
    values = enc.dictionary.to_pylist()
    masks = {}
    for name, fam in cat.families.items():
        if "*" in fam.programs:
            masks[name] = np.ones(len(prog), dtype=bool)
            continue
        allowed = set(fam.programs)
        dmask = np.array([v in allowed for v in values] + [False], dtype=bool)
        masks[name] = dmask[codes]
    return masks


def _per_pattern(values: list[str], pid: np.ndarray) -> pd.Categorical:
    """Each row's pattern's value (``pid``: the pattern's index), as a categorical whose
    categories are the values that occur, sorted; from codes, no object per row."""
    names, of_pattern = np.unique(np.array(values, dtype=object), return_inverse=True)
    present = np.zeros(len(names), dtype=bool)
    present[np.unique(of_pattern[pid])] = True
    recode = np.cumsum(present) - 1
    return pd.Categorical.from_codes(recode[of_pattern][pid], categories=list(names[present]))


def _first_words(msg: pa.Array) -> pa.Array:
    """Each message's first word after an ``error: ``/``fatal: `` prefix (``_FIRST_WORD``).

    Split off at the first space, and the regex run only on the rows whose first word is
    such a prefix: its optional prefix keeps RE2 off its one-pass engine, and over every
    row it took twice as long."""
    if isinstance(msg, pa.ChunkedArray):
        msg = msg.combine_chunks()
    first = pc.fill_null(pc.list_element(pc.split_pattern(msg, " ", max_splits=1), 0), "")
    prefixed = pc.is_in(first, value_set=_PREFIXES)
    if pc.any(prefixed).as_py():
        again = pc.extract_regex(msg.filter(prefixed), _FIRST_WORD).field("k")
        first = pc.replace_with_mask(first, prefixed, again)
    return first


def _word_matcher(words: tuple[str, ...], vocab: list[str | None]) -> np.ndarray:
    """Which first words (plus a trailing False for null) a pattern accepts; ``*`` is a wildcard."""
    exact = {w for w in words if "*" not in w}
    globs = [re.compile(fnmatch.translate(w)) for w in words if "*" in w]
    return np.array(
        [v is not None and (v in exact or any(g.match(v) for g in globs)) for v in vocab] + [False],
        dtype=bool,
    )


class _Coded:
    """A full-length column of category codes, filled pattern by pattern (-1 is null)."""

    def __init__(self, n: int) -> None:
        self.codes = np.full(n, -1, dtype=np.int32)
        self.vocab: dict[str, int] = {}

    def _code(self, value: str | None) -> int:
        if value is None or value == "":
            return -1
        code = self.vocab.get(value)
        if code is None:
            code = self.vocab[value] = len(self.vocab)
        return code

    def put_const(self, rows: np.ndarray, value: str) -> None:
        self.codes[rows] = self._code(value)

    def put(self, rows: np.ndarray, values: pa.Array, lookup: dict | None = None, default: str | None = None) -> None:
        """Store ``values`` (aligned with ``rows``); with ``lookup``, store their mapped value
        (``default`` for others). Nulls and empty strings leave the row as it was."""
        enc = pc.dictionary_encode(values)
        uniq = enc.dictionary.to_pylist()
        if lookup is None:
            mapping = [self._code(u) for u in uniq]
        else:
            mapping = [self._code(lookup.get(u, default) if u else None) for u in uniq]
        mapping_a = np.array([*mapping, -1], dtype=np.int32)
        idx = np.asarray(enc.indices.fill_null(len(uniq)).to_numpy(zero_copy_only=False), dtype=np.int64)
        new = mapping_a[idx]
        keep = new >= 0
        self.codes[rows[keep]] = new[keep]

    def categorical(self, rows: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(self.codes[rows], categories=list(self.vocab))


class _Numbers:
    """A full-length numeric column (NaN is null), filled pattern by pattern."""

    def __init__(self, n: int) -> None:
        self.values = np.full(n, np.nan)

    def put_const(self, rows: np.ndarray, value: str) -> None:
        self.values[rows] = float(value)

    def put(self, rows: np.ndarray, values: pa.Array, lookup: dict | None = None, default: str | None = None) -> None:
        nums = pc.cast(_null_empty(values), pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        keep = (nums >= 0) & (nums <= MAXIMA["src_port"])  # NaN and what no port can be stay null
        self.values[rows[keep]] = nums[keep]

    def categorical(self, rows: np.ndarray) -> pd.Series:
        return pd.array(self.values[rows], dtype="Float64").astype("Int64")


def _captures(pat: Pattern, rows: np.ndarray, sub: pa.Array) -> Iterator[tuple[np.ndarray, dict[str, pa.Array]]]:
    """The rows (of ``rows``; ``sub``: their messages) that ``pat`` matches, with their
    groups: first those each of its fast regexes takes, then its own regex's on the rest
    (a regex without groups: the rows it matches, no groups)."""
    if not pat.groups:
        ok = np.asarray(pc.match_substring_regex(sub, pat.regex).to_numpy(zero_copy_only=False), dtype=bool)
        if ok.any():
            yield rows[ok], {}
        return
    tries = (*pat.fast, Fast(pat.regex, pat.groups))
    for i, fv in enumerate(tries):
        found = pc.extract_regex(sub, fv.regex)
        ok = np.asarray(found.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if not ok.any():
            continue
        okmask = pa.array(ok)
        fields = {g: found.field(g).filter(okmask) for g in fv.groups}
        n = int(np.count_nonzero(ok))
        fields.update((g, pa.repeat(pa.scalar(v, pa.string()), n)) for g, v in fv.fixed.items())
        yield rows[ok], fields
        if n == ok.size or i == len(tries) - 1:
            return
        rows, sub = rows[~ok], sub.filter(pa.array(~ok))


def match_messages(prog: pa.Array, msg: pa.Array, catalog: Catalog) -> pd.DataFrame:
    """Match each message against the catalog.

    Returns one row per matched message: ``row`` (its position in the inputs),
    ``pattern``, ``role``, ``family`` and the event columns the patterns fill, as
    categoricals. Rows no pattern matched are absent; the caller counts them.
    """
    n = len(msg)
    if n == 0:
        return pd.DataFrame({"row": pd.Series([], dtype="int64")})
    fam_masks = _family_masks(catalog, prog)
    stamped = pc.starts_with(msg, "kernel:")
    if pc.any(stamped).as_py():
        msg = pc.if_else(stamped, pc.replace_substring_regex(msg, _KERNEL_STAMP, ""), msg)
    first = _first_words(msg)
    kenc = pc.dictionary_encode(first)
    kcodes = np.asarray(kenc.indices.fill_null(-1), dtype=np.int64)
    vocab = kenc.dictionary.to_pylist()
    # rows grouped by first word, once: a pattern then looks only at its words' rows
    order = np.argsort(kcodes, kind="stable")
    bounds = np.searchsorted(kcodes[order], np.arange(-1, len(vocab) + 1))
    which = np.full(n, -1, dtype=np.int32)  # index of the pattern that matched
    cols: dict[str, _Coded | _Numbers] = {c: _Numbers(n) if c in _NUMERIC else _Coded(n) for c in _ALWAYS}
    for pi, pat in enumerate(catalog.patterns):
        if pat.first == ("*",):
            rows = np.flatnonzero(fam_masks[pat.family] & (which < 0))
        else:
            words = np.flatnonzero(_word_matcher(pat.first, vocab)[:-1])
            if words.size == 0:
                continue
            rows = np.concatenate([order[bounds[w + 1] : bounds[w + 2]] for w in words])
            if words.size > 1:
                rows.sort()
            rows = rows[fam_masks[pat.family][rows] & (which[rows] < 0)]
        if rows.size == 0:
            continue
        for hit, fields in _captures(pat, rows, msg.take(pa.array(rows))):
            which[hit] = pi
            if pat.role == "ignore":
                continue
            for col, value in pat.set.items():
                cols[col].put_const(hit, value)
            for col, groups in pat.column_groups().items():
                for g in reversed(groups):  # the first group that captured wins
                    if g in fields:  # a group a fast regex leaves out is empty: it fills nothing
                        cols[col].put(hit, fields[g])
            for col, specs in pat.map.items():
                for spec in reversed(specs):  # the first spec that yields a value wins
                    if spec["group"] in fields:
                        cols[col].put(hit, fields[spec["group"]], spec.get("values") or {}, spec.get("default"))
    rows = np.flatnonzero(which >= 0)
    pid = which[rows]
    out = {
        "row": rows.astype(np.int64),
        "pattern": pd.Categorical.from_codes(pid, categories=[p.id for p in catalog.patterns]),
        "role": _per_pattern([p.role for p in catalog.patterns], pid),
        "family": _per_pattern([p.family for p in catalog.patterns], pid),
    }
    for col, coded in cols.items():
        out[col] = coded.categorical(rows)
    return pd.DataFrame(out, copy=False)


_IPV4_MAPPED = r"^::ffff:(\d+\.\d+\.\d+\.\d+)$"


def normalize_ip(values: pd.Series) -> pd.Series:
    """``::ffff:1.2.3.4`` → ``1.2.3.4``; drop an IPv6 zone (``%eth0``) and brackets.

    Works on the categories of a categorical, so each distinct address is handled once.
    """
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("category")
    cats = pa.array(values.cat.categories.astype(str).tolist(), pa.string())
    if len(cats) == 0:
        return values
    cats = pc.replace_substring_regex(cats, r"^\[(.*)\]$", r"\1")
    cats = pc.replace_substring_regex(cats, r"%[^%]*$", "")
    cats = pc.replace_substring_regex(cats, _IPV4_MAPPED, r"\1")
    uniq, inverse = np.unique(np.array(cats.to_pylist(), dtype=object), return_inverse=True)
    codes = values.cat.codes.to_numpy()
    new = np.where(codes >= 0, inverse[np.maximum(codes, 0)], -1)
    return pd.Series(pd.Categorical.from_codes(new, categories=list(uniq)), index=values.index)


def finish_events(ev: pd.DataFrame | list[pd.DataFrame]) -> pd.DataFrame:
    """Source-wide steps over one source's matched rows (in line order). Given a list
    holding the frame, takes it out (the caller then holds no reference, and the old
    columns are freed one by one as the rows that stay are copied).

    - ``weight`` (from ``message repeated N times``) repeats a row N times;
    - ``enrich`` rows (PAM lines, sshd summaries) pair with the sshd failure of the same
      (host, pid): the k-th enrich row of a connection is folded into its k-th failed
      attempt and not counted; unpaired ones stand as attempts of their own;
    - an sshd row without an address takes the address known for its (host, pid)
      connection from the nearest line within ten minutes.
    """
    if isinstance(ev, list):
        ev = ev.pop()
    if ev.empty:
        return ev
    ev = ev.reset_index(drop=True)
    has_pid = ev["pid"].notna().to_numpy()
    key = _connection_numbers(ev)  # the groups of both steps below
    _fill_addresses(ev, key, has_pid)  # first: the folding looks at them
    gone = _fold(ev, key, has_pid)
    del key
    # One copy of the rows that stay, each as many times as its weight (folded rows: 0),
    # without the helper columns nothing reads after this.
    # int32: a weight is at most syslog.MAX_REPEAT, and a source has fewer than 2**31 rows
    n = len(ev)
    times = ev["weight"].to_numpy(dtype=np.int32, copy=True) if "weight" in ev.columns else np.ones(n, np.int32)
    times[gone] = 0
    ev = ev.drop(columns=[c for c in ev.columns if c.startswith("_") or c in ("role", "family", "weight")])
    if (times == 1).all():
        return ev
    rows = np.repeat(np.arange(n, dtype=np.int32), times)
    del times
    # column by column, each old column let go once copied: one column exists twice at most
    # (every column is an extension array, a block of its own; popping from a plain dict
    # costs nothing, where DataFrame.pop rebuilds the frame's block list each time)
    old = dict(ev.items())
    del ev
    index = pd.RangeIndex(len(rows))
    out = {c: pd.Series(old.pop(c).array.take(rows), index=index) for c in list(old)}
    return pd.DataFrame(out, copy=False)


_STEP_ROWS = 1 << 18  # rows per slice of an elementwise step over a source's rows


def _connection_numbers(ev: pd.DataFrame) -> np.ndarray:
    """Per row a number for its (host, pid) connection, rows without a pid one per host:
    0..n-1 as int32 (half the bytes of every array derived from it; a source has fewer
    than 2**31 rows). (host, pid) as one integer, built in place, hashed once: slice by
    slice lookups among the sorted distinct pairs took less memory but, with many
    distinct pids, five times as long."""
    key = ev["pid"].to_numpy(np.int64, na_value=-1, copy=True)
    host = ev["host"].cat.codes.to_numpy()
    for a in range(0, key.size, _STEP_ROWS):
        key[a : a + _STEP_ROWS] += (host[a : a + _STEP_ROWS].astype(np.int64) + 1) << 40
    numbers = pd.factorize(key)[0]
    if "source" in ev.columns:  # several small sources read as one block: (source, host, pid)
        numbers = numbers.astype(np.int64) + (ev["source"].cat.codes.to_numpy().astype(np.int64) << 32)
        numbers = pd.factorize(numbers)[0]
    return numbers.astype(np.int32)


def _positions(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` as int32 (a source has fewer than 2**31 rows), a slice at a time:
    no int64 array of every position on the way."""
    step = _STEP_ROWS
    return np.concatenate(
        [np.flatnonzero(mask[a : a + step]).astype(np.int32) + np.int32(a) for a in range(0, mask.size, step)]
        or [np.empty(0, dtype=np.int32)]
    )


def _members(key: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Which rows belong to a group (``key``: group numbers 0..n-1) that one of ``rows`` is in."""
    chosen = np.zeros(int(key.max()) + 1 if key.size else 0, dtype=bool)
    chosen[key[rows]] = True
    return chosen[key]


_CARRY_US = 10 * 60 * 10**6  # an address is carried to lines of its connection this close (µs)


def _fill_addresses(ev: pd.DataFrame, key: np.ndarray, has_pid: np.ndarray) -> None:
    """An sshd row without an address takes the one known for its (host, pid) connection
    (``key``: its number) from the nearest line within ten minutes (in place). A large
    source's connections are looked at some at a time."""
    sshd = has_pid & (ev["family"] == _SSHD_FAMILY).to_numpy(dtype=bool, na_value=False)
    lacking = sshd & ev["src_ip"].isna().to_numpy()
    if not lacking.any():
        return
    # only the connections with a row lacking its address (a small share, usually);
    # positions as int32 (a source has fewer than 2**31 rows): half the bytes of int64
    rows = _positions(sshd & _members(key, _positions(lacking)))
    del sshd, lacking
    src = ev["src_ip"].astype("category")
    codes = src.cat.codes.to_numpy()
    times = ev["timestamp"].array.asi8
    found = [_carried(part, key[part], codes, times) for part in _by_connections(rows, key[rows])]
    del rows
    at = np.concatenate([f[0] for f in found])
    if at.size:
        codes = codes.copy()
        codes[at] = np.concatenate([f[1] for f in found])
        ev["src_ip"] = pd.Categorical.from_codes(codes, dtype=src.dtype)


def _carried(rows: np.ndarray, key: np.ndarray, codes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_fill_addresses` over the ``rows`` of whole connections (``key``: their
    numbers): the rows that take an address, and its code."""
    order = np.argsort(key, kind="stable")  # each connection's rows together, in line order
    rows = rows[order]
    k = key[order]
    del order
    n = rows.size
    ip = codes[rows]
    t = times[rows]
    nat = np.iinfo(np.int64).min
    pos = np.arange(n, dtype=np.int32)
    begin, end = _runs(k)
    del k

    def before(mask: np.ndarray) -> np.ndarray:  # the nearest such row at or before, in the connection; -1
        idx = np.maximum.accumulate(np.where(mask, pos, -1))
        return np.where(idx >= begin, idx, -1)

    def after(mask: np.ndarray) -> np.ndarray:  # … at or after; -1
        idx = np.minimum.accumulate(np.where(mask, pos, n)[::-1])[::-1]
        return np.where(idx < end, idx, -1)

    # the address from the nearest line that has one, if the nearest line that has one
    # and a time is within ten minutes (the two can differ when a line's time is unreadable)
    known, timed = ip >= 0, (ip >= 0) & (t != nat)
    fill = np.full(n, -1, dtype=ip.dtype)
    for near_ip, near_t in ((after(known), after(timed)), (before(known), before(timed))):
        ok = (near_t >= 0) & (t != nat)
        ok[ok] = np.abs(t[ok] - t[near_t[ok]]) <= _CARRY_US
        fill = np.where(ok, ip[np.maximum(near_ip, 0)], fill)  # the earlier line's wins: it comes last
    take = ~known & (fill >= 0)
    return rows[take], fill[take]


_SLICE_ROWS = 1 << 19  # rows (of whole connections) folded or given addresses at a time: temporaries of a slice


def _fold(ev: pd.DataFrame, key: np.ndarray, has_pid: np.ndarray) -> np.ndarray:
    """Fold enrich rows into the failures of the same connection (``key``: its number): a
    PAM auth failure pairs with one sshd failure (the k-th with the k-th); other enrich
    lines (account expired, policy, limits) belong to the connection as a whole. A
    specific reason from PAM (expired, policy) replaces sshd's generic one (in place).
    Returns the positions of the folded rows. Connections are independent: a large
    source's are folded some at a time."""
    enrich = (ev["role"] == "enrich").to_numpy(dtype=bool, na_value=False) & has_pid
    if not enrich.any():
        return np.empty(0, dtype=np.int64)
    # only the connections that have enrich rows take part
    part = _positions(_members(key, _positions(enrich)))
    gone: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    reasons: list[np.ndarray] = []
    for rows in _by_connections(part, key[part]):
        folded, target, reason = _fold_rows(ev, key[rows], enrich[rows], rows)
        gone.append(folded)
        if target.size:
            targets.append(target)
            reasons.append(reason)
    if targets:
        ev.loc[np.concatenate(targets), "reason"] = np.concatenate(reasons)
    return np.concatenate(gone)


def _by_connections(rows: np.ndarray, key: np.ndarray) -> Iterator[np.ndarray]:
    """``rows`` (``key``: their connection numbers) in slices of about _SLICE_ROWS rows,
    each slice whole connections, rows in order."""
    if rows.size <= _SLICE_ROWS:
        yield rows
        return
    sizes = np.bincount(key)  # rows per connection number
    ends = np.cumsum(sizes)
    # each connection's slice: how many multiples of _SLICE_ROWS rows came before it
    slice_of = ((ends - sizes) // _SLICE_ROWS).astype(np.int32)
    del sizes, ends
    mine = slice_of[key]
    del key  # (the caller's copy of the rows' numbers goes with it)
    for i in range(int(slice_of.max()) + 1):
        if (found := rows[mine == i]).size:  # a connection longer than a slice skips numbers
            yield found


def _fold_rows(
    ev: pd.DataFrame, k: np.ndarray, en: np.ndarray, part: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_fold` over the rows ``part`` of whole connections (``k``: their connection
    numbers; ``en``: which are enrich rows). Returns the folded rows, and the rows whose
    reason PAM's replaces with the replacing reasons."""
    # the five columns first, then the rows: taking rows first copied every column of them
    sub = ev[["family", "action", "outcome", "role", "reason"]].iloc[part].reset_index(drop=True)
    k = k - k.min()  # numbered from 0 in this slice
    groups = int(k.max()) + 1
    attempt = (
        (sub["family"] == _SSHD_FAMILY)
        & (sub["action"] == "logon")
        & (sub["outcome"] == "failure")
        & (sub["role"] == "attempt")
    ).to_numpy(dtype=bool, na_value=False)
    n_attempts = np.bincount(k[attempt], minlength=groups).astype(np.int32)[k]
    generic = en & category_in(sub["reason"], _GENERIC_REASONS)
    rank = _running_count(k, generic) - 1  # the k-th generic row of its connection (meaningful for those)
    folded = (generic & (rank < n_attempts)) | (en & ~generic & (n_attempts > 0))
    specific = folded & ~generic & (sub["action"] == "logon").to_numpy(dtype=bool, na_value=False)
    if specific.any():
        best = sub["reason"][specific].groupby(k[specific]).first()  # per connection number
        target = attempt & np.isin(k, best.index.to_numpy())
        return part[folded], part[target], best.loc[k[target]].to_numpy()
    return part[folded], part[:0], np.empty(0, dtype=object)


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``keys``: per position, where its run of equal keys begins and where the
    run ends (one past its last position)."""
    first, sizes = run_starts(keys)
    return np.repeat(first, sizes), np.repeat(np.r_[first[1:], np.int32(keys.size)], sizes)


def _running_count(groups: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Per flagged row, how many flagged rows of its group come up to and including it
    (rows in order); 0 for the rows without the flag."""
    rows = _positions(flags)
    g = groups[rows]
    order = np.argsort(g, kind="stable")
    first, sizes = run_starts(g[order])
    del g
    nth = np.arange(1, rows.size + 1, dtype=np.int32)
    nth -= np.repeat(first, sizes)  # the position where its group's run begins
    del first, sizes
    out = np.zeros(groups.size, dtype=np.int32)
    out[rows[order]] = nth
    return out
