"""The normalized event: one row per login attempt or observation.

This module is the contract between stages. Ingest produces a DataFrame with exactly
:data:`COLUMNS` in this order and these dtypes; every later stage reads it and never
re-derives what ingest decided. Enumerations are ``StrEnum`` so their values are plain
strings in the frame, in JSON and in rule files.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import union_categoricals

from ._memory import release

__all__ = [
    "COLUMNS",
    "Action",
    "Outcome",
    "Reason",
    "Service",
    "CATEGORICAL",
    "empty_events",
    "conform",
    "concat_events",
    "category_in",
]


class Outcome(StrEnum):
    """What happened to the attempt or observation."""

    SUCCESS = "success"
    FAILURE = "failure"
    BLOCKED = "blocked"
    INFO = "info"


class Action(StrEnum):
    """What kind of thing the row records."""

    LOGON = "logon"  # one authentication attempt and its result
    INVALID_USER = "invalid-user"  # sshd announces an unknown user name before any attempt
    AUTH_LIMIT = "auth-limit"  # too many failures, attempts exhausted, PAM retries summary
    LOCKOUT = "lockout"  # the account got locked (pam_faillock, Windows 4740)
    CONNECTION = "connection"  # a connection opened, or ended before authentication
    SESSION = "session"  # a session opened or closed after a successful logon
    CREDENTIAL_VALIDATION = "credential-validation"  # Windows 4776 (NTLM)
    KERBEROS_PREAUTH = "kerberos-preauth"  # Windows 4771
    KERBEROS_TICKET = "kerberos-ticket"  # Windows 4768/4769
    EXPLICIT_CREDENTIALS = "explicit-credentials"  # Windows 4648
    PASSWORD_CHANGE = "password-change"
    ACCOUNT_CHANGE = "account-change"  # usermod and similar edits of an account
    FIREWALL_DROP = "firewall-drop"
    FIREWALL_ALLOW = "firewall-allow"
    SERVICE_STATE = "service-state"
    LOG_CLEARED = "log-cleared"


class Service(StrEnum):
    """The door the attempt came through."""

    SSH = "ssh"
    WINRM = "winrm"
    RDP = "rdp"
    SMB = "smb"
    CONSOLE = "console"
    SUDO = "sudo"
    SU = "su"
    NETWORK = "network"
    KERBEROS = "kerberos"
    NTLM = "ntlm"
    OTHER = "other"


class Reason(StrEnum):
    """Why an attempt failed (or what an observation means), normalized across sources."""

    UNKNOWN_USER = "unknown-user"
    BAD_PASSWORD = "bad-password"
    KEY_REJECTED = "key-rejected"
    ACCOUNT_DISABLED = "account-disabled"
    ACCOUNT_LOCKED = "account-locked"
    ACCOUNT_EXPIRED = "account-expired"
    ACCOUNT_REVOKED = "account-revoked"  # Kerberos CLIENT_REVOKED: disabled, expired or locked
    PASSWORD_EXPIRED = "password-expired"
    PASSWORD_MUST_CHANGE = "password-must-change"
    LOGON_TYPE_NOT_GRANTED = "logon-type-not-granted"
    NOT_ALLOWED_BY_POLICY = "not-allowed-by-policy"
    ROOT_LOGIN_REFUSED = "root-login-refused"
    TOO_MANY_FAILURES = "too-many-failures"
    NO_AUTH_METHODS = "no-auth-methods"
    NEGOTIATION_FAILED = "negotiation-failed"
    PREAUTH_DISCONNECT = "preauth-disconnect"
    PROTOCOL_ERROR = "protocol-error"
    TIMEOUT = "timeout"
    FIREWALL = "firewall"
    SERVICE_STOPPED = "service-stopped"
    SERVICE_STARTED = "service-started"
    SERVICE_DISABLED = "service-disabled"
    OTHER = "other"


# name -> pandas dtype. Repeated strings are categoricals (compact, fast to group and
# filter); numbers are nullable integers; `raw` (the original line or record) is the only
# free text.
_CAT = "category"
COLUMNS: dict[str, str] = {
    "timestamp": "datetime64[us, UTC]",
    "host": _CAT,
    "source": _CAT,
    "locator": "Int64",  # line number, record number or EventRecordID within `source`
    "log": _CAT,
    "channel": _CAT,
    "provider": _CAT,
    "event_id": "Int32",
    "action": _CAT,
    "outcome": _CAT,
    "service": _CAT,
    "user": _CAT,
    "domain": _CAT,
    "src_ip": _CAT,
    "src_port": "UInt16",
    "dst_ip": _CAT,
    "dst_port": "UInt16",
    "logon_type": "Int16",
    "auth_method": _CAT,
    "status": _CAT,
    "sub_status": _CAT,
    "reason": _CAT,
    "process": _CAT,
    "pid": "UInt32",
    "raw": "string[pyarrow]",
}
CATEGORICAL = tuple(name for name, dtype in COLUMNS.items() if dtype == _CAT)
# for people: the host of events whose log names none (a pfirewall.log); findings keep null
UNKNOWN_HOST = "(unknown host)"
# the largest value each number column takes from a log (all start at 0); a value past it,
# from a damaged or forged line or record, is not a port or pid and becomes null
MAXIMA: dict[str, int] = {"src_port": 65535, "dst_port": 65535, "logon_type": (1 << 15) - 1, "pid": (1 << 32) - 1}

ENUMS: dict[str, type[StrEnum]] = {
    "action": Action,
    "outcome": Outcome,
    "service": Service,
    "reason": Reason,
}


def empty_events() -> pd.DataFrame:
    """A zero-row frame with the full schema."""
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in COLUMNS.items()})


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the schema's columns, order and dtypes.

    Missing columns are added as nulls; extra columns are an error (a stage that
    invents a column should add it to the schema first).
    """
    extra = set(frame.columns) - set(COLUMNS)
    if extra:
        raise ValueError(f"columns not in the event schema: {sorted(extra)}")
    n = len(frame)
    out = {}
    for name, dtype in COLUMNS.items():
        if name in frame.columns:
            col = frame[name]
            out[name] = col if str(col.dtype) == dtype else _as(col, dtype)
        elif dtype == _CAT:
            out[name] = pd.Series(pd.Categorical.from_codes(np.full(n, -1), categories=[]), index=frame.index)
        else:
            out[name] = pd.Series(_nulls(dtype, n), index=frame.index)
    return pd.DataFrame(out, index=frame.index, copy=False)  # the columns are new or the caller's


def _as(col: pd.Series, dtype: str) -> pd.Series:
    """``col`` in a schema dtype; a number the integer dtype cannot hold becomes null
    (pandas' cast would wrap it: 70000 as a UInt16 port is 4464)."""
    if not dtype.startswith(("Int", "UInt")) or isinstance(col.dtype, pd.CategoricalDtype):
        return col.astype(dtype)
    info = np.iinfo(dtype.lower())
    if pd.api.types.is_integer_dtype(col.dtype):
        have = np.iinfo(col.dtype.numpy_dtype if hasattr(col.dtype, "numpy_dtype") else col.dtype)
        if info.min <= have.min and have.max <= info.max:  # every value fits (int32 line numbers)
            return col.astype(dtype)
    nums = pd.to_numeric(col, errors="coerce")
    return nums.where((nums >= info.min) & (nums <= info.max)).astype(dtype)


def _nulls(dtype: str, n: int):
    """``n`` missing values of a schema dtype, without a Python object per row. Zeros come
    from ``np.zeros`` (calloc): their pages take no memory until something writes them,
    and nothing does (a text column of nulls, such as ``raw`` when the evidence text is
    read again later, cost 38 MB for 4.3 M events from ``pa.nulls``)."""
    if dtype.startswith(("Int", "UInt")):
        return pd.arrays.IntegerArray(np.zeros(n, dtype=dtype.lower()), np.ones(n, dtype=bool))
    if dtype.startswith("datetime64"):
        return pd.array(np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")).tz_localize("UTC")
    offsets, validity = np.zeros(n + 1, dtype=np.int64), np.zeros((n + 7) // 8, dtype=np.uint8)
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(b""), pa.py_buffer(validity), n)
    return pd.array(text, dtype=dtype)


def category_in(col: pd.Series, values) -> np.ndarray:
    """Which rows of a column hold one of ``values`` (nulls: no), as a bool array. A
    categorical is tested once per category and its rows look theirs up: pandas'
    ``isin`` hashes or sorts every row's code, with temporaries several times the column."""
    if not isinstance(col.dtype, pd.CategoricalDtype):
        return col.isin(values).to_numpy(dtype=bool, na_value=False)
    lookup = np.append(col.cat.categories.isin(list(values)), False)  # code -1 (null) takes the last
    return lookup[col.cat.codes.to_numpy()]


def _as_object(values: pd.Categorical) -> pd.Categorical:
    """The same codes, the categories as an object-typed index."""
    return pd.Categorical.from_codes(values.codes, categories=pd.Index(values.categories, dtype=object), validate=False)


def _union(parts: list[pd.Series]) -> pd.Categorical:
    """One categorical from several, recoding codes (not values); categories in order of
    first appearance."""
    arrays = [p.array for p in parts]
    mixed = len({str(a.categories.dtype) for a in arrays}) > 1  # say `str` here, `object` there
    if mixed:  # all as object, as the recoding below would make them; then pandas' union applies
        arrays = [_as_object(a) for a in arrays]
    try:  # pandas' own: the same result, a few times faster
        out = union_categoricals(arrays)
        return _as_object(out) if mixed else out
    except TypeError:  # categories it cannot join (of different kinds)
        pass
    cats = [np.asarray(p.cat.categories, dtype=object) for p in parts]
    union = pd.Index(np.concatenate(cats) if cats else [], dtype=object).unique()
    codes = []
    for p, c in zip(parts, cats, strict=True):
        old = p.cat.codes.to_numpy()
        mapping = union.get_indexer(c) if len(c) else np.empty(0, dtype=np.int64)
        codes.append(np.where(old >= 0, mapping[np.maximum(old, 0)] if len(c) else -1, -1))
    return pd.Categorical.from_codes(np.concatenate(codes), categories=union)


def used_categories(col: pd.Series, start: int = 0, stop: int | None = None) -> tuple[pd.Index, np.ndarray]:
    """The categories that rows ``start``…``stop`` of a categorical hold, in the order they
    first appear (none: an empty index of objects, whatever the column's categories were,
    as a column built with no values has), and their positions among the column's."""
    codes = col.cat.codes.to_numpy()[start:stop]
    seen = pd.unique(codes[codes >= 0])
    if not seen.size:
        return pd.Index([], dtype=object), seen
    return col.cat.categories.take(seen), seen


def _segment_categories(parts: list[tuple[pd.Series, int, int, bool | pd.Index]]) -> pd.Categorical:
    """:func:`_union` over segments (column, start, stop, categories): the rows of each in
    order; the categories those of :func:`_union` over the segments as separate frames, each
    segment's being the column's (False), only those its rows hold (True,
    :func:`used_categories`) or the ones given."""

    codes_of: dict[int, np.ndarray] = {}  # per column (a frame's rows may form several segments)
    for c, _, _, _ in parts:
        if id(c) not in codes_of:
            codes_of[id(c)] = c.cat.codes.to_numpy()

    def own(c: pd.Series, a: int, b: int, spec: bool | pd.Index) -> pd.Index:
        if isinstance(spec, pd.Index):
            return spec
        if not spec:
            return c.cat.categories
        codes = codes_of[id(c)][a:b]
        seen = pd.unique(codes[codes >= 0])  # as used_categories
        return c.cat.categories.take(seen) if seen.size else pd.Index([], dtype=object)

    seq = [own(*part) for part in parts]
    union = seq[0]
    if len({str(cats.dtype) for cats in seq}) > 1:  # as _union: all as object (Index.append would infer `str`)
        union = pd.Index(pd.unique(np.concatenate([np.asarray(cats, dtype=object) for cats in seq])), dtype=object)
    elif len(seq) > 1 and not all(len(c) == len(union) and union.equals(c) for c in seq[1:]):
        # as union_categoricals: the same categories in another order keep the first's too
        first = set(union.tolist())
        if not all(len(c) == len(first) and set(c.tolist()) == first for c in seq[1:]):
            union = union.append(seq[1:]).unique()
    lookup = {v: i for i, v in enumerate(union.tolist())}  # (a segment has few categories: no index built each)
    maps: dict[int, np.ndarray] = {}  # per column (a frame's rows may form several segments): its codes → union's
    codes = []
    for c, a, b, _ in parts:
        if (m := maps.get(id(c))) is None:
            cats = c.cat.categories
            # (-1: a category of a joined frame that none of its segments' rows hold)
            m = maps[id(c)] = np.array([*(lookup.get(v, -1) for v in cats.tolist()), -1], dtype=np.int64)
        codes.append(m[codes_of[id(c)][a:b]])  # code -1 (null) takes the last
    return pd.Categorical.from_codes(np.concatenate(codes), categories=union, validate=False)


Segment = tuple[pd.DataFrame, int, int, "bool | dict[str, pd.Index]"]


def concat_segments(segments: list[Segment]) -> pd.DataFrame:
    """Rows ``start``…``stop`` of each frame (frame, start, stop, categories), joined in
    order as :func:`concat_events` joins frames (the same columns and dtypes). A segment
    stands for a frame of its rows with the frame's categories (False), only those its rows
    hold (True), or those given per column (a dict): the events of one of several sources
    read together (:func:`.ingest.textlog.read_syslog_batch`, :func:`.ingest.evtxbatch.read_evtx_batch`)."""
    segments = [s for s in segments if s[2] > s[1]]
    if not segments:
        return empty_events()
    frames = {id(f): f for f, _, _, _ in segments}
    out = {}
    for name in segments[0][0].columns:
        columns = {k: f[name] for k, f in frames.items()}  # (one Series per frame: a frame's segments share it)
        parts = [
            (columns[id(f)], a, b, spec if isinstance(spec, bool) else spec.get(name, False))
            for f, a, b, spec in segments
        ]
        if isinstance(parts[0][0].dtype, pd.CategoricalDtype):
            out[name] = pd.Series(_segment_categories(parts))
            continue
        arrays = [c.array[a:b] for c, a, b, _ in parts]
        if len({str(x.dtype) for x in arrays}) == 1:
            out[name] = pd.Series(type(arrays[0])._concat_same_type(arrays), copy=False)
        else:
            out[name] = pd.concat([pd.Series(x) for x in arrays], ignore_index=True)
    return pd.DataFrame(out, copy=False)


_LARGE = 16 << 20  # a joined column this large hands its pieces' memory back (a trim costs ~2 ms)


def concat_events(frames: list[pd.DataFrame], consume: bool = False) -> pd.DataFrame:
    """Concatenate event frames, keeping categoricals categorical (unioned categories).

    With ``consume`` the list is emptied and each column let go as soon as it is copied, so
    at most one column exists twice, provided the caller holds no other reference to the
    frames."""
    given = frames
    frames = [f for f in given if len(f)]
    if consume:
        given.clear()  # the caller's list too: its frames must not outlive their columns
    if not frames:
        return empty_events()
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    names = list(frames[0].columns)
    columns = [[f[name] for f in frames] for name in names]
    if consume:  # from here on these columns are the only references to the frames' arrays
        frames.clear()
    out = {}
    for name in names:
        parts = columns.pop(0)
        large = consume and sum(p.memory_usage(index=False) for p in parts) >= _LARGE
        if isinstance(parts[0].dtype, pd.CategoricalDtype):
            out[name] = pd.Series(_union(parts))
        else:
            out[name] = pd.concat(parts, ignore_index=True)
        del parts
        if large:
            release()  # what the pieces' column held: else it stays, fragmented, beside the new one
    return pd.DataFrame(out, copy=False)  # the columns are new arrays
