"""What the text-log and journal readers share once their lines are framed and matched:
each line counted as used, irrelevant or unparsed (:func:`account`), the columns built
from Arrow arrays (:func:`categorical`, :func:`strings`), and the steps over a whole
source (:func:`finish`): ``message repeated`` lines bounded, PAM lines folded into their
attempts, addresses normalized, the schema."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._memory import release
from ..schema import conform, used_categories
from . import syslog
from .linux import finish_events, normalize_ip
from .sources import Source
from .types import MAX_SAMPLES, InputReport

__all__ = [
    "REPEAT_BUDGET", "account", "account_files", "categorical", "finish", "finish_batch", "strings", "tidy_categories"
]


def account(
    rep: InputReport, matched: pd.DataFrame, texts_of: Callable[[np.ndarray], pa.Array], auth_filter: str, n_framed: int
) -> np.ndarray:
    """Count framed lines as used / irrelevant / unparsed; return the used row indices."""
    is_match = np.zeros(n_framed, dtype=bool)
    used = np.empty(0, dtype=np.int64)
    if len(matched):
        rows = matched["row"].to_numpy(dtype=np.int64)
        is_match[rows] = True
        ignore = (matched["role"] == "ignore").to_numpy(dtype=bool)
        rep.irrelevant += int(ignore.sum())
        used = rows[~ignore]
        rep.used += int(used.size)
    rest = np.flatnonzero(~is_match)
    if rest.size:
        texts = texts_of(rest)
        auth = np.asarray(pc.match_substring_regex(texts, auth_filter).to_numpy(zero_copy_only=False), dtype=bool)
        bad = np.flatnonzero(auth)
        rep.unparsed += int(bad.size)
        rep.irrelevant += int(rest.size - bad.size)
        if bad.size:
            rep.sample_unparsed(texts.take(pa.array(bad[:MAX_SAMPLES])).to_pylist())
    return used


def account_files(
    reps: list[InputReport],
    file_of: np.ndarray,
    matched: pd.DataFrame,
    texts_of: Callable[[np.ndarray], pa.Array],
    auth_filter: str,
) -> np.ndarray:
    """:func:`account` for the framed lines of several files read as one block
    (``file_of``: each framed line's file, an index into ``reps``), each file counted
    and sampled as if read alone; returns the used row indices."""
    k = len(reps)
    is_match = np.zeros(file_of.size, dtype=bool)
    used = np.empty(0, dtype=np.int64)
    if len(matched):
        rows = matched["row"].to_numpy(dtype=np.int64)
        is_match[rows] = True
        ignore = (matched["role"] == "ignore").to_numpy(dtype=bool)
        used = rows[~ignore]
        for rep, n_ignored, n_used in zip(
            reps,
            np.bincount(file_of[rows[ignore]], minlength=k),
            np.bincount(file_of[used], minlength=k),
            strict=True,
        ):
            rep.irrelevant += int(n_ignored)
            rep.used += int(n_used)
    rest = np.flatnonzero(~is_match)
    if rest.size:
        texts = texts_of(rest)
        auth = np.asarray(pc.match_substring_regex(texts, auth_filter).to_numpy(zero_copy_only=False), dtype=bool)
        mine = file_of[rest]
        n_rest = np.bincount(mine, minlength=k)
        n_bad = np.bincount(mine[auth], minlength=k)
        for i, rep in enumerate(reps):
            rep.unparsed += int(n_bad[i])
            rep.irrelevant += int(n_rest[i] - n_bad[i])
        for i in np.flatnonzero(n_bad):
            bad = np.flatnonzero(auth & (mine == i))
            reps[i].sample_unparsed(texts.take(pa.array(bad[:MAX_SAMPLES])).to_pylist())
    return used


def tidy_categories(ev: pd.DataFrame) -> pd.DataFrame:
    """Each categorical column with only the categories its rows hold, in the order they
    first appear (in place; returns ``ev``). A source's events come out the same whether
    it was read alone or with others (:func:`finish_batch`), and joined sources' categories
    in the order their rows come."""
    for name, col in ev.items():
        if not isinstance(col.dtype, pd.CategoricalDtype):
            continue
        cats = col.cat.categories
        used, seen = used_categories(col)
        if len(used) == len(cats) and used.dtype == cats.dtype and (seen == np.arange(seen.size)).all():
            continue
        codes = col.cat.codes.to_numpy()
        remap = np.full(len(cats) + 1, -1, dtype=codes.dtype)  # code -1 (null) takes the last
        remap[seen] = np.arange(seen.size, dtype=codes.dtype)
        ev[name] = pd.Categorical.from_codes(remap[codes], categories=used, validate=False)
    return ev


def categorical(arr: pa.Array) -> pd.Categorical:
    """Strings → a pandas Categorical (empty strings become null)."""
    enc = pc.dictionary_encode(syslog.null_empty(arr))
    codes = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int32)
    return pd.Categorical.from_codes(codes, categories=enc.dictionary.to_pylist())


def strings(arr: pa.Array) -> pd.Series:
    return pd.Series(arr.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow")), dtype="string[pyarrow]")


REPEAT_BUDGET = 2_000_000  # events one input's ``message repeated`` lines may add in all


def _lines(locators: pd.Series, rows: np.ndarray, most: int = 5) -> str:
    """The line numbers of ``rows``, for a warning (:func:`syslog.line_list`)."""
    return syslog.line_list(locators.iloc[rows[:most]].tolist(), rows.size, most)


def _bound_repeats(ev: pd.DataFrame, rep: InputReport) -> None:
    """``message repeated N times`` lines: say which were cut to MAX_REPEAT, and count
    those past the input's REPEAT_BUDGET once (forged lines must not exhaust memory)."""
    w = ev["weight"].to_numpy()  # the column itself (uint8 or int32), read only
    if w.max(initial=1) <= 1:
        return
    cut = np.flatnonzero(w >= syslog.MAX_REPEAT)
    if cut.size:
        most = f"{syslog.MAX_REPEAT:,}"
        where = _lines(ev["locator"], cut)
        rep.warnings.append(f"'message repeated N times' counted as at most {most} on line(s) {where}")
    # the events the repeats add, summed up to each row, pass the budget from some row on:
    # found slice by slice (no running sum as long as the source)
    added, start = 0, None
    for a in range(0, w.size, syslog.SLICE_ROWS):
        running = np.cumsum(w[a : a + syslog.SLICE_ROWS], dtype=np.int64)
        running -= np.arange(1, running.size + 1)  # each row adds w - 1
        running += added
        past = np.flatnonzero(running > REPEAT_BUDGET)
        if past.size:
            start = a + int(past[0])
            break
        added = int(running[-1])
    if start is not None:
        over = start + np.flatnonzero(w[start:] > 1)
        w = w.astype(np.int64)
        w[over] = 1
        ev["weight"] = w
        rep.warnings.append(
            f"'message repeated N times' lines add more than {REPEAT_BUDGET:,} events: counted once from "
            f"line(s) {_lines(ev['locator'], over)}"
        )


def finish(box: list[pd.DataFrame], src: Source, log: str, rep: InputReport) -> pd.DataFrame:
    """Source-wide steps, then the schema. ``box`` holds the frame, which is taken out of
    it: with no reference left in the caller, its columns are freed as they are replaced."""
    ev = box.pop()
    if "weight" in ev.columns:
        _bound_repeats(ev, rep)
    box.append(ev)
    del ev
    ev = finish_events(box)  # folded PAM lines stay counted as used: they enriched an event
    release()
    for col in ("src_ip", "dst_ip"):
        ev[col] = normalize_ip(ev[col])
    n = len(ev)
    ev["source"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[src.name])
    ev["log"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[log])
    ev = ev.drop(columns=[c for c in ev.columns if c.startswith("_") or c in ("role", "family", "weight")])
    ev = tidy_categories(conform(ev))
    rep.events += len(ev)
    return ev


def finish_batch(box: list[pd.DataFrame], log: str, reps: list[InputReport]) -> tuple[pd.DataFrame, list[int]]:
    """:func:`finish` for the events of several sources read as one block
    (:func:`.textlog.read_syslog_batch`): ``source`` already names each row's source (the
    codes index ``reps``, rows in source order); each source's steps are its own (repeat
    budgets and warnings, PAM folding within its connections). Returns the events of all,
    source after source, and how many are each one's: each source's rows are what
    :func:`finish` gives for it alone, but for the categories (all sources' here; see
    :func:`..schema.concat_segments`)."""
    ev = box.pop()
    k = len(reps)
    mine = ev["source"].cat.codes.to_numpy()
    if "weight" in ev.columns and (w := ev["weight"].to_numpy()).max(initial=1) > 1:
        bounds = np.searchsorted(mine, np.arange(k + 1))
        wide = None
        for i in np.unique(mine[w > 1]):
            a, b = bounds[i], bounds[i + 1]
            own = pd.DataFrame({"weight": w[a:b], "locator": ev["locator"].iloc[a:b].reset_index(drop=True)})
            _bound_repeats(own, reps[i])
            if own["weight"].dtype == np.int64:  # past the budget: some rows counted once
                wide = w.astype(np.int64) if wide is None else wide
                wide[a:b] = own["weight"].to_numpy()
        if wide is not None:
            ev["weight"] = wide
    box.append(ev)
    del ev
    ev = finish_events(box)  # (its connections are per source: ``source`` is part of their key)
    release()
    for col in ("src_ip", "dst_ip"):
        ev[col] = normalize_ip(ev[col])
    ev["log"] = pd.Categorical.from_codes(np.zeros(len(ev), dtype=np.int8), categories=[log])
    ev = ev.drop(columns=[c for c in ev.columns if c.startswith("_") or c in ("role", "family", "weight")])
    ev = conform(ev)
    rows = np.bincount(ev["source"].cat.codes.to_numpy(), minlength=k)
    for rep, n in zip(reps, rows, strict=True):
        rep.events += int(n)
    return ev, rows.tolist()
