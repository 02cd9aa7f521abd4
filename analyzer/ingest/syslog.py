"""Line framing for text logs: RFC 3164, RFC 3339 (Debian 12's default, journalctl
short-iso), RFC 5424, epoch-prefixed lines.

A block of complete lines is split with numpy (zero-copy into an Arrow string array),
lines nobody could care about are dropped by one RE2 search (the catalog's line
filters), and only the rest get their header parsed. The header's length is known from
its captured parts (or, for the general forms, the whole header captured as ``hdr``), so
the message is sliced from the line buffer by offset rather than captured (capturing long
tails is what makes regex engines slow).

Times are resolved once a whole source is read (:func:`resolve_times`). An RFC 3164 date
has no year: each block counts its December→January turns (:class:`YearState`), a
source's rows carry a year index from its first line, and the year of that line comes
from ``--year``, else from a line with a full date nearest the last one without, else
from the file's modification time. Wall times without a zone get ``--tz`` (else UTC).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from .sources import Source
    from .types import IngestOptions, InputReport

__all__ = ["Framed", "frame_lines", "split_lines", "HEADERS", "FORMATS", "YearState", "resolve_times"]

_TAG = r"(?P<tag>[^ :\[\]]+(?:\[[0-9]+\])?|\[[^ \]]+\](?:\[[0-9]+\])?):? (?:\[ID [0-9]+ [a-zA-Z0-9.]+\] |<[a-z]+\.[a-z]+> )?"
_HOST = r"(?: (?P<host>[^ \[\]]*[^ \[\]:]))?"
# (journalctl -o short-precise adds the second's fraction)
_TS3164 = r"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
_TS3339 = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:?[0-9]{2})"
# the common shape after the time: `host prog[pid]: ` (four groups in all, so RE2 can use
# its one-pass engine: a fifth group doubled the time)
_FAST_TAIL = r" (?P<host>[^ \[\]:]+) (?P<prog>[^ :\[\]]+)(?:\[(?P<pid>[0-9]+)\])?: "
# (format, regex), tried in order on the lines no earlier one framed. The first two are
# fast paths for the common shapes: they capture `ts`, `host`, `prog` and `pid`, and the
# header's length is the sum of theirs. The general forms after them capture the whole
# header as `hdr` (the message is sliced after it), `ts`, `tag` and maybe `host`.
HEADERS: list[tuple[str, str]] = [
    ("rfc3164", r"^(?P<ts>" + _TS3164 + ")" + _FAST_TAIL),
    ("rfc3339", r"^(?P<ts>" + _TS3339 + ")" + _FAST_TAIL),
    (
        "rfc3164",
        r"^(?P<hdr>(?:<[0-9]{1,3}>)?(?P<ts>[A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?)"
        + _HOST
        + " "
        + _TAG
        + ")",
    ),
    (
        "rfc3339",
        r"^(?P<hdr>(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)"
        + _HOST
        + " "
        + _TAG
        + ")",
    ),
    (
        "rfc5424",
        r'^(?P<hdr><[0-9]{1,3}>1 (?P<ts>[^ ]+) (?P<host>[^ ]+) (?P<tag>[^ ]+ [^ ]+) [^ ]+ (?:-|(?:\[(?:[^\]"]|"(?:[^"\\]|\\.)*")*\])+) (?:'
        + "\ufeff"
        + ")?)",
    ),
    ("epoch", r"^(?P<hdr>(?P<ts>[0-9]{9,10}(?:\.[0-9]+)?)" + _HOST + " " + _TAG + ")"),
]
FORMATS = tuple(dict.fromkeys(name for name, _ in HEADERS))  # what Framed.fmt numbers
# tag → program and pid (`sshd[812]`, `[sshd]`, RFC 5424's `sshd 812` / `sshd -`)
_TAG_SPLIT = r"^(?P<prog>\[[^\]]+\]|[^\[ ]+)(?:\[(?P<pid>[0-9]+)\]| (?P<pid5424>[^ ]+))?$"
_MONTHS = {
    m: i + 1 for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
}
_REPEAT = r"^message repeated (?P<n>[0-9]+) times: \[ ?(?P<inner>.*?)\]$"


MAX_LINE_BYTES = 64 * 1024  # a longer line (no syslog daemon writes one) is cut to this


def line_list(numbers: list[int], total: int | None = None, most: int = 5) -> str:
    """Line numbers for a warning: the first ``most`` of ``numbers``, then how many more of
    ``total`` (default: all of ``numbers``)."""
    total = len(numbers) if total is None else total
    shown = ", ".join(str(n) for n in numbers[:most])
    return shown + (f" and {total - most} more" if total > most else "")


def char_end(data: bytes, at: int) -> int:
    """``at``, or past it to the end of the UTF-8 character it falls inside (at most 3 bytes
    on: a run of stray continuation bytes is no character)."""
    for _ in range(3):
        if at >= len(data) or data[at] & 0xC0 != 0x80:
            break
        at += 1
    return at


def cut_long_lines(block: bytes) -> tuple[bytes, np.ndarray]:
    """``block`` with each line longer than MAX_LINE_BYTES cut to its first MAX_LINE_BYTES
    (or the few fewer that end on a UTF-8 character), and the indexes of the lines cut. A
    forged line of many megabytes must not pass whole through every step."""
    buf = np.frombuffer(block, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.append(nl, len(block))  # the last "line" may be empty (block ends with a newline)
    long = np.flatnonzero(ends - starts > MAX_LINE_BYTES)
    if not long.size:
        return block, long
    parts, at = [], 0
    for i in long.tolist():  # few: each is over 64 KiB
        keep_to = int(starts[i]) + MAX_LINE_BYTES
        for _ in range(3):  # not inside a UTF-8 character: back to its first byte
            if buf[keep_to] & 0xC0 != 0x80:
                break
            keep_to -= 1
        parts.append(block[at:keep_to])
        at = int(ends[i])
    parts.append(block[at:])
    return b"".join(parts), long


def split_lines(block: bytes) -> tuple[pa.StringArray, np.ndarray, np.ndarray]:
    """A block of bytes → (lines with their newline, start offsets, end offsets).

    ``end`` excludes the newline and a trailing carriage return. Invalid UTF-8 must
    have been replaced before (see :func:`ensure_utf8`).
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    if len(block) and (nl.size == 0 or nl[-1] != len(block) - 1):
        nl = np.append(nl, len(block))  # last line without a newline
    starts = np.empty(nl.size, dtype=np.int64)
    starts[0:1] = 0
    starts[1:] = nl[:-1] + 1
    ends = nl.copy()
    if ends.size:
        cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
        ends = ends - cr
    offsets = np.empty(nl.size + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = np.minimum(nl + 1, len(block))
    arr = pa.StringArray.from_buffers(int(nl.size), pa.py_buffer(offsets), pa.py_buffer(block))
    return arr, starts, ends


def slice_buffer(block: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.StringArray:
    """Strings ``block[starts[i]:ends[i]]`` for increasing, non-overlapping ranges."""
    k = starts.size
    if k == 0:
        return pa.array([], pa.string())
    offsets = np.empty(2 * k, dtype=np.int32)
    offsets[0::2] = starts
    offsets[1::2] = ends
    # element 2i is the wanted slice, element 2i+1 the gap before the next one
    full = pa.StringArray.from_buffers(2 * k - 1, pa.py_buffer(offsets), pa.py_buffer(block))
    return full.take(pa.array(np.arange(0, 2 * k, 2, dtype=np.int64)))


def ensure_utf8(block: bytes) -> tuple[bytes, bool]:
    """Return the block as valid UTF-8 (bad bytes become U+FFFD) and whether it was."""
    try:
        block.decode("utf-8")
        return block, True
    except UnicodeDecodeError:
        return block.decode("utf-8", "replace").encode("utf-8"), False


@dataclass
class Framed:
    """Framed lines of one block: positions into the block and header fields."""

    rows: np.ndarray  # index of the line within the block
    fmt: np.ndarray  # header format per row: its index in FORMATS (int8)
    ts: pa.Array
    host: pa.Array
    prog: pa.Array
    pid: pa.Array
    msg: pa.Array
    text: pa.Array  # the candidate lines (without newline)
    tidx: np.ndarray  # per framed row, its index in ``text``
    unframed: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # candidate rows, no header

    def raw(self, rows: np.ndarray | None = None) -> pa.Array:
        """The original lines of framed rows (all of them, or ``rows``)."""
        idx = self.tidx if rows is None else self.tidx[rows]
        return self.text.take(pa.array(idx))


def frame_lines(
    block: bytes,
    lines: pa.StringArray,
    starts: np.ndarray,
    ends: np.ndarray,
    line_filter: str,
    skip_filter: str | None = None,
) -> Framed:
    """Frame the lines that pass ``line_filter`` (and not ``skip_filter``); report
    candidates that did not frame."""
    keep = np.asarray(pc.match_substring_regex(lines, line_filter).to_numpy(zero_copy_only=False), dtype=bool)
    if skip_filter:
        keep &= ~np.asarray(pc.match_substring_regex(lines, skip_filter).to_numpy(zero_copy_only=False), dtype=bool)
    cand = np.flatnonzero(keep)
    cs, ce = starts[cand], ends[cand]
    text = slice_buffer(block, cs, ce)
    # per part: (its rows in `cand`, format, header length, ts, host, prog, pid)
    parts: list[tuple[np.ndarray, str, np.ndarray, pa.Array, pa.Array, pa.Array, pa.Array]] = []
    pending = np.arange(cand.size)
    for name, regex in HEADERS:
        if pending.size == 0:
            break
        sub = text if pending.size == cand.size else text.take(pa.array(pending))
        st = pc.extract_regex(sub, regex)
        ok = np.asarray(st.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows = pending[ok]
        pending = pending[~ok]
        if not rows.size:
            continue
        st = st.filter(pa.array(ok))
        if "hdr" in st.type.names:
            hdr_len = _lengths(st.field("hdr"))
            tag = pc.extract_regex(st.field("tag"), _TAG_SPLIT)
            prog = pc.fill_null(tag.field("prog"), "")
            pid = pc.coalesce(null_empty(tag.field("pid")), null_empty(tag.field("pid5424")))
        else:  # a fast path: `ts host prog[pid]: `
            prog, pid = st.field("prog"), null_empty(st.field("pid"))
            pid_len = _lengths(st.field("pid"))
            hdr_len = _lengths(st.field("ts")) + _lengths(st.field("host")) + _lengths(prog) + 4
            hdr_len += np.where(pid_len > 0, pid_len + 2, 0)
            # Solaris' `[ID 123 auth.info] ` after the tag: left to the general forms
            tagged = _starts_with(block, cs[rows] + hdr_len, ce[rows], b"[ID ")
            if tagged.any():
                pending = np.sort(np.concatenate([pending, rows[tagged]]))
                keep_ = pa.array(~tagged)
                rows, hdr_len = rows[~tagged], hdr_len[~tagged]
                st, prog, pid = st.filter(keep_), prog.filter(keep_), pid.filter(keep_)
        host = st.field("host") if "host" in st.type.names else pa.nulls(len(st), pa.string())
        parts.append((rows, name, hdr_len, st.field("ts"), host, prog, pid))
    if not parts:
        empty = pa.array([], pa.string())
        none = np.empty(0, np.int64)
        return Framed(none, np.empty(0, np.int8), empty, empty, empty, empty, empty, text, none, cand[pending])
    order = np.concatenate([p[0] for p in parts])
    sort = np.argsort(order, kind="stable")
    idx = order[sort]
    take = pa.array(sort)

    def field_(k: int) -> pa.Array:
        return pa.concat_arrays([p[k] for p in parts]).take(take)

    fmt = np.concatenate([np.full(p[0].size, FORMATS.index(p[1]), dtype=np.int8) for p in parts])[sort]
    hdr_len = np.concatenate([p[2] for p in parts])[sort]
    msg = slice_buffer(block, cs[idx] + hdr_len, np.maximum(ce[idx], cs[idx] + hdr_len))
    pid = field_(6)
    pid = pc.if_else(pc.match_substring_regex(pid, r"^[0-9]+$"), pid, pa.scalar(None, pa.string()))
    return Framed(
        rows=cand[idx],
        fmt=fmt,
        ts=field_(3),
        host=null_empty(field_(4)),
        prog=field_(5),
        pid=pid,
        msg=msg,
        text=text,
        tidx=idx,
        unframed=cand[pending],
    )


def _lengths(arr: pa.Array) -> np.ndarray:
    """Byte lengths of strings (0 for null)."""
    return np.asarray(pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _starts_with(block: bytes, starts: np.ndarray, ends: np.ndarray, prefix: bytes) -> np.ndarray:
    """Whether ``block[starts[i]:ends[i]]`` begins with ``prefix``, for each i."""
    buf = np.frombuffer(block, dtype=np.uint8)
    out = ends - starts >= len(prefix)
    rows = np.flatnonzero(out)
    for k, byte in enumerate(prefix):  # the rows still in question only: after one byte, few
        at = rows[buf[starts[rows] + k] == byte]
        out[rows] = False
        out[at] = True
        rows = at
    return out


def null_empty(arr: pa.Array) -> pa.Array:
    """Empty strings (what RE2 gives for a group that did not take part) become null."""
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


MAX_REPEAT = 100_000  # one ``message repeated N times`` line counts as at most this many


def digits_to_int(arr: pa.Array, hi: int) -> pa.Array:
    """Strings of digits → int64; null when empty or above ``hi`` (a hostile line's
    ``sshd[99999999999999999999]`` must not stop the read)."""
    arr = pc.if_else(pc.less_equal(pc.utf8_length(arr), len(str(hi))), arr, pa.scalar(None, pa.string()))
    nums = pc.cast(null_empty(arr), pa.int64())
    return pc.if_else(pc.greater(nums, hi), pa.scalar(None, pa.int64()), nums)


def expand_repeats(msg: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Unwrap rsyslog's ``message repeated N times: [ … ]``; return messages and weights
    (N, at most MAX_REPEAT: rsyslog cannot have folded more in its flush interval, and a
    forged line must not make billions of events)."""
    weights = np.ones(len(msg), dtype=np.int64)
    maybe = np.flatnonzero(
        np.asarray(pc.starts_with(msg, "message repeated ").to_numpy(zero_copy_only=False), dtype=bool)
    )
    if maybe.size == 0:
        return msg, weights
    st = pc.extract_regex(msg.take(pa.array(maybe)), _REPEAT)
    ok = np.asarray(st.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = maybe[ok]
    if rows.size == 0:
        return msg, weights
    okm = pa.array(ok)
    inner = st.field("inner").filter(okm)
    n = pc.fill_null(digits_to_int(st.field("n").filter(okm), 10**12), MAX_REPEAT)
    weights[rows] = np.minimum(np.asarray(n.to_numpy(), dtype=np.int64), MAX_REPEAT)
    pos = np.full(len(msg), -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    merged = pc.if_else(
        pa.array(pos >= 0),
        pa.concat_arrays([inner, pa.nulls(1, pa.string())]).take(pa.array(np.where(pos >= 0, pos, rows.size))),
        msg,
    )
    return merged, weights


@dataclass
class YearState:
    """Year inference across the blocks of one source (RFC 3164 has no year)."""

    last_month: int = 0
    rollovers: int = 0
    first_month: int = 0  # the first known month seen (for stitching blocks together)


_RFC3164_TS = (
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<d>[0-9]{1,2}) (?P<H>[0-9]{2}):(?P<M>[0-9]{2}):(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,6}))?$"
)
_MONTH_SET = pa.array(list(_MONTHS), pa.string())


class _MonthKeys:
    """Three ASCII bytes of a month name, packed in an int → month number (NaN if none)."""

    def __init__(self) -> None:
        keys = np.array([ord(m[0]) << 16 | ord(m[1]) << 8 | ord(m[2]) for m in _MONTHS], dtype=np.int64)
        order = np.argsort(keys)
        self.keys, self.months = keys[order], np.arange(1, 13, dtype="float64")[order]

    def get(self, packed: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.keys, packed), 0, 11)
        return np.where(self.keys[pos] == packed, self.months[pos], np.nan)


_MONTH_KEYS = _MonthKeys()


def _fixed_width(arr: pa.Array, width: int) -> np.ndarray | None:
    """An (n, width) byte matrix when every string has exactly ``width`` bytes, else None."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if len(arr) == 0 or arr.null_count or not isinstance(arr, pa.StringArray):
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    if not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[-1]].reshape(-1, width)


def rfc3164_parts(ts: pa.Array, state: YearState, groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Month/day/time of ``Mmm dd hh:mm:ss`` strings plus a year index (0 = first year),
    as arrays (floats, NaN where unknown; the year index int64).

    A month that goes back by two or more (Dec → Jan) starts a new year; a step back of
    one month is taken as lines slightly out of order. ``groups`` (non-decreasing, one per
    row): rows of several sources, each its own year count from a fresh state (``state``
    is then left as it is).
    """
    fixed = _fixed_width(ts, 15)
    if fixed is not None:  # all `Mmm dd hh:mm:ss`: read the digits straight from the buffer
        keys = fixed[:, 0].astype(np.int64) << 16 | fixed[:, 1].astype(np.int64) << 8 | fixed[:, 2]
        month = _MONTH_KEYS.get(keys)
        day = np.where(fixed[:, 4] == 32, 0, fixed[:, 4] - 48) * 10.0 + (fixed[:, 5] - 48)
        digits = (fixed[:, [7, 8, 10, 11, 13, 14]].astype(np.int64) - 48).reshape(-1, 3, 2)
        hms = (digits[:, :, 0] * 10 + digits[:, :, 1]).astype("float64")
        parts = {"day": day, "H": hms[:, 0], "M": hms[:, 1], "S": hms[:, 2]}
        micro = np.zeros(len(day), dtype=np.int64)

        def num(name: str) -> np.ndarray:
            return parts[name]
    else:
        st = pc.extract_regex(ts, _RFC3164_TS)

        def num(name: str) -> np.ndarray:
            return pc.cast(st.field(name if name != "day" else "d"), pa.float64()).to_numpy(zero_copy_only=False)

        month = pc.index_in(st.field("mon"), value_set=_MONTH_SET).to_numpy(zero_copy_only=False)
        month = np.asarray(month, dtype="float64") + 1  # nulls (unknown month names) → NaN
        # the fraction's digits as microseconds: "5" → 500000 ("" where there is none → 0)
        frac = pc.utf8_rpad(pc.fill_null(st.field("f"), ""), 6, "0")
        micro = np.asarray(pc.cast(frac, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    m = np.nan_to_num(month, nan=0).astype(np.int64)
    last = np.where(m > 0, np.arange(m.size), -1)  # the latest row with a known month, so far
    np.maximum.accumulate(last, out=last)
    if groups is not None:
        yidx = _grouped_years(m, last, groups)
    else:
        known = np.where(last >= 0, m[np.maximum(last, 0)], state.last_month)
        prev = np.concatenate([[state.last_month], known[:-1]])
        roll = (prev > 0) & (m > 0) & (prev - m >= 2)
        yidx = state.rollovers + np.cumsum(roll)
        if not state.first_month and (m > 0).any():
            state.first_month = int(m[m > 0][0])
        if known.size:
            state.last_month = int(known[-1])
            state.rollovers = int(yidx[-1])
    return {
        "month": month,
        "day": num("day"),
        "hour": num("H"),
        "minute": num("M"),
        "second": num("S"),
        "micro": micro,
        "yidx": yidx,
    }


def _grouped_years(m: np.ndarray, last: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`rfc3164_parts`' year index for rows of several sources (``groups``), each
    counted as if alone: no month known before its first row, no turn carried over."""
    n = m.size
    begin = np.searchsorted(groups, groups, side="left")  # each row's source's first row
    last = np.where(last >= begin, last, -1)
    known = np.where(last >= 0, m[np.maximum(last, 0)], 0)
    prev = np.concatenate([[0], known[:-1]]) if n else known
    prev[begin == np.arange(n)] = 0
    roll = ((prev > 0) & (m > 0) & (prev - m >= 2)).astype(np.int64)
    total = np.cumsum(roll)
    return total - (total[begin] - roll[begin])


def iso_micros(ts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """RFC 3339 / ISO strings → (µs since the epoch as int64, has-zone flags): UTC for
    the zoned ones, wall time for the others; numpy's NaT (int64's minimum) for what is
    not a time."""
    has_zone = np.asarray(
        pc.match_substring_regex(ts, r"(?:Z|[+-][0-9]{2}:?[0-9]{2})$").to_numpy(zero_copy_only=False), dtype=bool
    )
    ts = pc.replace_substring(ts, ",", ".")
    out = np.full(len(ts), np.iinfo(np.int64).min, dtype=np.int64)
    for zoned in (True, False):
        rows = has_zone if zoned else ~has_zone
        if rows.any():
            out[rows] = parse_iso(ts.filter(pa.array(rows)), utc=zoned).asi8
    return out, has_zone


def parse_iso(strs: pa.Array, utc: bool) -> pd.DatetimeIndex:  # also Windows events' times
    """ISO 8601 text → µs datetimes (in UTC when ``utc``, else naive; NaT where unreadable):
    Arrow's cast when it reads every value (the usual form), else pandas' parser."""
    try:
        stamps = pc.cast(strs, pa.timestamp("us", tz="UTC") if utc else pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = pd.Series(strs.to_pylist(), dtype=object)
        return pd.DatetimeIndex(pd.to_datetime(texts, format="ISO8601", utc=utc, errors="coerce")).as_unit("us")
    return pd.DatetimeIndex(stamps.to_pandas()).as_unit("us")


# ---------------------------------------------------------------------------------
# Times: RFC 3164 dates without a year get one (the year resolution), wall times a zone.
# While a source is read, each row's time is one int64 (see T_UTC, T_LOCAL, T_3164);
# once the whole source is in, :func:`resolve_times` makes them UTC instants.


NAT = np.iinfo(np.int64).min  # numpy's NaT as int64
T_UTC, T_LOCAL, T_3164 = 0, 1, 2
# year index, month, day, hour, minute, second, microsecond: decimal digits of one int64
_PACK = (10**16, 10**14, 10**12, 10**10, 10**8, 10**6, 1)
_PACKED = ("yidx", "month", "day", "hour", "minute", "second", "micro")
# December→January turns one file may take: lines past this many have no time (a log of Dec and
# Jan lines in turn, forged or shuffled, would count a year a line, past any date there is);
# a year index is held at one past it, so packing never overflows
MAX_YEAR_STEPS = 100


def pack3164(parts: dict[str, np.ndarray]) -> np.ndarray:
    packed = np.zeros(len(parts["yidx"]), dtype=np.int64)
    bad = np.zeros(packed.size, dtype=bool)
    for col, scale in zip(_PACKED, _PACK, strict=True):
        values = parts[col]
        if values.dtype.kind == "f":
            bad |= np.isnan(values)
            values = np.nan_to_num(values).astype(np.int64)
        if col == "yidx":
            values = np.minimum(values, MAX_YEAR_STEPS + 1)
        packed += values * scale
    return np.where(bad, NAT, packed)


def _part(packed: np.ndarray, i: int) -> np.ndarray:
    """One field of packed RFC 3164 times (0 year index, 1 month, … 5 second, 6 microsecond)."""
    out = packed // _PACK[i]
    if i:
        out %= _PACK[i - 1] // _PACK[i]
    return out


def shift_years(t: np.ndarray, kind: np.ndarray, turns: int) -> np.ndarray:
    """Packed times ``t`` (``kind``: each one's :data:`T_3164` or other) of a block that
    ``turns`` more December→January turns precede, in place: their year indexes moved on
    (held at one past MAX_YEAR_STEPS, as :func:`pack3164` holds them)."""
    shift = (kind == T_3164) & (t != NAT)
    years = _part(t[shift], 0)
    t[shift] += (np.minimum(years + turns, MAX_YEAR_STEPS + 1) - years) * _PACK[0]
    return t


def _resolve3164(packed: np.ndarray, base_year: int) -> np.ndarray:
    """Packed RFC 3164 times → naive datetime64[us] once the first line's year is known;
    NaT for an unreadable time or a date that does not exist (Feb 30). A time past
    23:59:59 (a leap second) rolls on into the next minute."""
    ok = packed != NAT
    packed = np.where(ok, packed, 0)
    ok &= _part(packed, 0) <= MAX_YEAR_STEPS
    month, day = _part(packed, 1), _part(packed, 2)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    first = ((base_year - 1970 + _part(packed, 0)) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]")
    date = first.astype("datetime64[D]") + (np.clip(day, 1, 31) - 1)
    ok &= date.astype("datetime64[M]") == first  # day 31 of a 30-day month is not a date
    secs = _part(packed, 3) * 3600 + _part(packed, 4) * 60 + _part(packed, 5)
    out = date.astype("datetime64[us]") + secs * 1_000_000 + _part(packed, 6)
    out[~ok] = np.datetime64("NaT")
    return out


SLICE_ROWS = 1 << 18  # rows per slice of a step over a whole source (a dozen temporaries that long)


def _dated_neighbour(lines: pd.Series, t: np.ndarray, kind: np.ndarray) -> tuple[int, bool] | None:
    """The line with a full date (RFC 3339, RFC 5424, epoch) nearest the last RFC 3164 line
    of a source: the first one after it, else the last one before it (``lines``: each
    row's line number). Returns (row, after) or None when the source has no such line.
    Slice by slice: no copy of the source's line numbers."""
    slices = range(0, t.size, SLICE_ROWS)

    def line_numbers(a: int) -> np.ndarray:
        return lines.iloc[a : a + SLICE_ROWS].to_numpy(dtype=np.int64, na_value=0)

    last = None  # the largest line number of an RFC 3164 line with a time
    for a in slices:
        known = t[a : a + SLICE_ROWS] != NAT
        mine = line_numbers(a)[known & (kind[a : a + SLICE_ROWS] == T_3164)]
        if mine.size and (last is None or mine.max() > last):
            last = int(mine.max())
    if last is None:
        return None
    after = before = None  # (line, row): the first dated line after it; the last one not after it
    for a in slices:
        dated = np.flatnonzero((kind[a : a + SLICE_ROWS] != T_3164) & (t[a : a + SLICE_ROWS] != NAT))
        if not dated.size:
            continue
        numbers = line_numbers(a)[dated]
        later = numbers > last
        if later.any():
            i = int(np.argmin(np.where(later, numbers, np.iinfo(np.int64).max)))
            if after is None or numbers[i] < after[0]:  # the first row of the smallest line
                after = (int(numbers[i]), a + int(dated[i]))
        i = int(np.argmax(numbers))
        if before is None or numbers[i] > before[0]:  # the first row of the largest line
            before = (int(numbers[i]), a + int(dated[i]))
    if after is not None:
        return after[1], True
    return (before[1], False) if before is not None else None


def _last_3164(t: np.ndarray, kind: np.ndarray) -> int | None:
    """The packed time of the last RFC 3164 line with a readable time, found slice by
    slice from the end (no copy of the source's times)."""
    for end in range(t.size, 0, -SLICE_ROWS):
        start = max(0, end - SLICE_ROWS)
        hit = np.flatnonzero((kind[start:end] == T_3164) & (t[start:end] != NAT))
        if hit.size:
            return int(t[start + hit[-1]])
    return None


def _base_year(
    ev: pd.DataFrame, t: np.ndarray, kind: np.ndarray, src: Source, opts: IngestOptions, rep: InputReport
) -> int:
    """The year of the first RFC 3164 line (times carry a year index from it), and the
    assumption it rests on in ``rep``."""
    if opts.year is not None:
        rep.assumptions["year"] = f"{opts.year} for the first line (--year), +1 at each December→January step"
        return opts.year
    last = _last_3164(t, kind)
    if last is not None and (found := _dated_neighbour(ev["locator"], t, kind)):
        # the file has lines with a full date too (rsyslog switched formats, an upgrade to
        # Debian 12; programs logging through different templates): the one nearest the last
        # RFC 3164 line gives the year
        row, after = found
        date = t[row : row + 1].view("datetime64[us]").astype("datetime64[D]").astype(dt.date)[0]
        packed = np.array([last], dtype=np.int64)
        month, day = int(_part(packed, 1)[0]), int(_part(packed, 2)[0])
        if after:  # the last RFC 3164 line is on or before that date
            year = date.year - ((month, day) > (date.month, date.day + 1))
        else:  # on or after it
            year = date.year + ((month, day) < (date.month, date.day - 1))
        rep.assumptions["year"] = f"from a line with a full date nearby: the last line without one is in {year}"
        return year - int(_part(packed, 0)[0])
    zone = opts.zone()
    anchor = dt.datetime.fromtimestamp(src.mtime, zone) if src.mtime else dt.datetime.now(zone)
    what = "the file's modification time" if src.mtime else "today's date (no file time known)"
    year_last = anchor.year
    base = year_last
    if last is not None:
        packed = np.array([last], dtype=np.int64)
        if (int(_part(packed, 1)[0]), int(_part(packed, 2)[0])) > (anchor.month, anchor.day + 1):
            year_last -= 1
        base = year_last - int(_part(packed, 0)[0])
    rep.assumptions["year"] = f"from {what}: the last line is in {year_last}"
    return base


def resolve_times(ev: pd.DataFrame, src: Source, opts: IngestOptions, rep: InputReport) -> pd.Series:
    """Each row's time in UTC from ``_t``/``_tkind``: RFC 3164 dates get their year, wall
    times the zone. Computed slice by slice into one new array: the temporaries of a step
    stay the size of a slice, not a dozen arrays as long as a large source."""
    zone = opts.zone()
    t = ev["_t"].to_numpy(dtype=np.int64)
    kind = ev["_tkind"].to_numpy(dtype=np.int8)
    base = None
    if any((kind[i : i + SLICE_ROWS] == T_3164).any() for i in range(0, kind.size, SLICE_ROWS)):
        base = _base_year(ev, t, kind, src, opts, rep)
    out = np.empty(t.size, dtype=np.int64)
    bad = zoned = 0
    far: int | None = None  # the first row past MAX_YEAR_STEPS year turns
    n_far = 0
    for a in range(0, t.size, SLICE_ROWS):
        ts, k = t[a : a + SLICE_ROWS], kind[a : a + SLICE_ROWS]
        utc = np.where(k == T_UTC, ts, NAT).view("datetime64[us]")
        naive = np.where(k == T_LOCAL, ts, NAT).view("datetime64[us]")
        is3164 = k == T_3164
        if base is not None and is3164.any():
            past = np.flatnonzero(is3164 & (ts != NAT) & (_part(ts, 0) > MAX_YEAR_STEPS))
            if past.size:
                far = a + int(past[0]) if far is None else far
                n_far += past.size
            resolved = _resolve3164(ts[is3164], base)
            bad += int(np.isnat(resolved).sum()) - past.size
            naive[is3164] = resolved
            del resolved
        need_zone = ~np.isnat(naive)
        if need_zone.any():
            zoned += 1
            if opts.tz:
                local = pd.DatetimeIndex(naive[need_zone]).tz_localize(
                    zone, ambiguous=np.zeros(int(need_zone.sum()), dtype=bool), nonexistent="shift_forward"
                )
                utc[need_zone] = local.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()
            else:  # UTC assumed: the wall time is the time
                utc[need_zone] = naive[need_zone]
        out[a : a + SLICE_ROWS] = utc.view(np.int64)
    if far is not None:
        rep.warnings.append(
            f"more than {MAX_YEAR_STEPS} December→January turns (lines out of order, or forged): {n_far} lines "
            f"from line {int(ev['locator'].iloc[far])} on that have no year of their own have no time"
        )
    if bad:
        rep.warnings.append(f"{bad} lines with an unreadable RFC 3164 date (non-English month?) have no time")
    if zoned:
        rep.assumptions["timezone"] = f"{opts.tz or 'UTC'} for timestamps without a zone" + (
            "" if opts.tz else " (assumed; use --tz)"
        )
    # the new array itself, seen as UTC instants (no copy)
    return pd.Series(pd.Series(out.view("datetime64[us]"), copy=False).array.view(UTC_US), index=ev.index, copy=False)


UTC_US = pd.DatetimeTZDtype(unit="us", tz="UTC")
