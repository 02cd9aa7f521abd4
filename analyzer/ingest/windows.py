"""Windows event semantics → normalized rows, driven by ``data/windows_events.yaml``.

The table says which (channel, event id, provider) records matter and how their fields
map to event columns, with code tables for NTSTATUS, FailureReason tokens, Kerberos
result codes, logon types and service states. The same table decides what the EVTX
readers decode at all (:meth:`Semantics.wanted`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from .._yaml import SafeLoader
from ..errors import RuleError
from ..schema import COLUMNS, ENUMS, MAXIMA, conform, empty_events
from .evtx import Record
from .syslog import null_empty, parse_iso

__all__ = ["Semantics", "load_semantics", "records_to_events", "WELL_KNOWN_PORTS"]

WELL_KNOWN_PORTS = (22, 5985, 5986, 3389, 445)
_KNOWN_KEYS = {
    "channel", "event_id", "provider", "set", "fields", "outcome_from_status", "reason", "service",
    "when", "state", "firewall", "sshd",
}  # fmt: skip
_INT_COLUMNS = {name: COLUMNS[name] for name in ("src_port", "dst_port", "logon_type", "pid")}


@dataclass(frozen=True, slots=True)
class Entry:
    channel: str
    event_id: int
    provider: str | None
    spec: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Semantics:
    tables: dict[str, dict[str, str]]
    entries: dict[tuple[str, int], list[Entry]]
    properties: dict[int, list[str]] = field(default_factory=dict)

    @property
    def event_ids(self) -> frozenset[int]:
        """Every event id the table knows (the first, cheapest prefilter)."""
        return frozenset(eid for _, eid in self.entries)

    def wanted(self, channel: str | None, event_id: int | None) -> bool:
        """Cheap prefilter: is this (channel, event id) in the table at all?"""
        return (channel or "", event_id or -1) in self.entries

    def entry_for(self, rec: Record) -> Entry | None:
        for entry in self.entries.get((rec.channel or "", rec.event_id or -1), ()):
            if entry.provider is None or entry.provider == rec.provider:
                return entry
        return None


def _path() -> Path:
    return Path(str(resources.files("analyzer") / "data" / "windows_events.yaml"))


@cache
def load_semantics(path: str | None = None) -> Semantics:
    """Load and check the table once; every problem is an error naming the file."""
    p = Path(path) if path else _path()
    doc = yaml.load(p.read_text(encoding="utf-8"), Loader=SafeLoader)  # noqa: S506 - a safe loader
    tables = {name: {str(k).lower(): str(v) for k, v in t.items()} for name, t in doc["tables"].items()}
    reasons = {e.value for e in ENUMS["reason"]}
    services = {e.value for e in ENUMS["service"]}
    for name, table in tables.items():
        allowed = services if name in ("logon_type", "services") else reasons
        for key, value in table.items():
            if value not in allowed:
                raise RuleError(f"table {name}: {key!r} maps to {value!r}, not a known value", source=str(p))
    entries: dict[tuple[str, int], list[Entry]] = {}
    for i, spec in enumerate(doc["events"]):
        unknown = set(spec) - _KNOWN_KEYS
        if unknown:
            raise RuleError(f"event entry {i + 1}: unknown keys {sorted(unknown)}", source=str(p))
        for col, value in (spec.get("set") or {}).items():
            enum = ENUMS.get(col)
            if enum is not None and value not in {e.value for e in enum}:
                raise RuleError(f"event entry {i + 1}: {col}={value!r} is not a known value", source=str(p))
        for key in ("reason", "service", "state"):
            sub = spec.get(key)
            for t in (sub or {}).get("tables", [(sub or {}).get("table")]) if sub else []:
                if t not in tables:
                    raise RuleError(f"event entry {i + 1}: unknown table {t!r}", source=str(p))
        entry = Entry(str(spec["channel"]), int(spec["event_id"]), spec.get("provider"), spec)
        entries.setdefault((entry.channel, entry.event_id), []).append(entry)
    props = {int(k): [str(x) for x in v] for k, v in (doc.get("properties") or {}).items()}
    return Semantics(tables=tables, entries=entries, properties=props)


def _hex_norm(value: str | None) -> str | None:
    """``0xC000006D`` and ``0xc000006d`` alike; decimal stays decimal."""
    if value is None:
        return None
    v = value.strip()
    if v[:2].lower() == "0x":
        try:
            return hex(int(v, 16))
        except ValueError:
            return v
    return v


def _ip(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().strip("[]")
    if v.lower().startswith("::ffff:") and "." in v:
        v = v[7:]
    if "%" in v:
        v = v.split("%", 1)[0]
    return v or None


def _number(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


_DECIMAL_FIELDS = {"ProcessId", "ProcessID", "IpPort", "SourcePort", "DestPort", "LogonType", "Protocol"}


def _show(name: str, value: object) -> str:
    """A field value as the evidence shows it: ids in decimal, codes in short hex."""
    text = str(value)
    if name in _DECIMAL_FIELDS and (n := _number(text)) is not None:
        return str(n)
    return _hex_norm(text) or text


_NAMES: dict[int, tuple[str, ...]] = {}


def _render_names(entry: Entry) -> tuple[str, ...]:
    """The fields an entry uses, in a stable order (computed once per entry)."""
    cached = _NAMES.get(id(entry))
    if cached is not None:
        return cached
    spec = entry.spec
    names: list[str] = []
    for fname in (spec.get("fields") or {}).values():
        names.extend(fname if isinstance(fname, list) else [fname])
    for key in ("reason", "service", "state", "when"):
        sub = spec.get(key) or {}
        names.extend(
            sub.get("from", []) if isinstance(sub.get("from"), list) else [sub["from"]] if "from" in sub else []
        )
        if key == "when":
            names.extend(sub)
    if spec.get("firewall"):
        names += ["Direction", "SourceAddress", "SourcePort", "DestAddress", "DestPort", "Protocol", "Application"]
    if spec.get("sshd"):
        names += ["process", "payload"]
    result = tuple(dict.fromkeys(names))
    _NAMES[id(entry)] = result
    return result


def field_names(entry: Entry) -> frozenset[str]:
    """Every data field the mapping of ``entry`` may read (the rest need not be parsed)."""
    names = set(_render_names(entry))
    if f := entry.spec.get("outcome_from_status"):
        names.add(f)
    if entry.spec.get("firewall"):
        names |= {"ProcessId", "ProcessID"}
    return frozenset(names)


def records_to_events(
    records: Iterable[Record], source: str, log: str, keep_raw: bool = True, own_ips: set[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """Rows for the records the table knows; returns (events, records that became events).

    Records are grouped by table entry and mapped column-wise (:func:`map_frame`);
    OpenSSH/Operational records carry sshd's own text and go through the Linux catalog."""
    sem = load_semantics()
    groups: dict[int, tuple[Entry, list[Record]]] = {}
    for rec in records:
        entry = sem.entry_for(rec)
        if entry is not None:
            groups.setdefault(id(entry), (entry, []))[1].append(rec)
    frames = [(entry, frame_from_records(recs)) for entry, recs in groups.values()]
    return events_from_frames(sem, frames, source, log, keep_raw, own_ips or set())


def events_from_frames(
    sem: Semantics,
    frames: list[tuple[Entry, pd.DataFrame]],
    source: str,
    log: str,
    keep_raw: bool,
    own_ips: set[str],
    ordered: bool = True,
) -> tuple[pd.DataFrame, int]:
    """Per-entry record frames → the schema's events (in record order unless ``ordered``
    is False: a caller that orders the whole file afterwards)."""
    parts: list[pd.DataFrame] = []
    ssh_rows: list[tuple[dict, str]] = []
    for entry, frame in frames:
        if frame.empty:
            continue
        if entry.spec.get("sshd"):
            d = frame.rename(columns=lambda c: c[2:] if c.startswith("d.") else c)
            raw = _render_frame(entry, frame, d[[c for c in d.columns if c not in _SYSTEM]]) if keep_raw else None
            payload = _col(d, "payload")
            for i, (idx, p) in enumerate(payload.items()):
                if pd.isna(p):
                    continue
                base = {"timestamp": frame.at[idx, "time"], "host": frame.at[idx, "computer"],
                        "locator": frame.at[idx, "record_id"], "channel": frame.at[idx, "channel"],
                        "provider": frame.at[idx, "provider"], "event_id": frame.at[idx, "event_id"]}  # fmt: skip
                if keep_raw:
                    base["raw"] = raw.iloc[i]
                ssh_rows.append((base, str(p)))
            continue
        parts.append(map_frame(sem, entry, frame, keep_raw, own_ips))
    if ssh_rows:
        rows = _sshd_rows(ssh_rows)
        if rows:
            parts.append(pd.DataFrame(rows))
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_events(), 0
    frame = pd.concat(parts, ignore_index=True)
    if ordered:
        frame = frame.sort_values("locator", kind="stable", na_position="last").reset_index(drop=True)
    frame["timestamp"] = _utc_times(frame["timestamp"])
    frame["source"] = source
    frame["log"] = log
    for col, dtype in _INT_COLUMNS.items():
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(dtype)
    frame["event_id"] = pd.to_numeric(frame["event_id"], errors="coerce").astype("Int32")
    frame["locator"] = pd.to_numeric(frame["locator"], errors="coerce").astype("Int64")
    for col in frame.columns:
        if col not in ("timestamp", "raw") and (frame[col].dtype == object or str(frame[col].dtype) == "string"):
            frame[col] = _category(frame[col])
    if "raw" in frame:
        frame["raw"] = frame["raw"].astype("string[pyarrow]")
    return conform(frame), len(frame)


def _utc_times(col: pd.Series) -> pd.Series:
    """ISO 8601 text → UTC timestamps (µs; NaT where unreadable), as :func:`parse_iso` reads it."""
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow":
        text = pa.array(col.array)
    else:  # the python backend's records: Python strings or None
        text = pa.array([None if pd.isna(v) else str(v) for v in col], pa.string())
    return pd.Series(parse_iso(text, utc=True), index=col.index)


def _sshd_rows(items: list[tuple[dict, str]]) -> list[dict]:
    """Windows OpenSSH: sshd's own messages, through the same catalog as Linux."""
    from .linux import match_messages

    msgs = pa.array([m for _, m in items], pa.string())
    matched = match_messages(pa.array(["sshd"] * len(items), pa.string()), msgs)
    out = []
    if not len(matched):
        return out
    keep = (matched["role"] != "ignore").to_numpy(dtype=bool)
    m = matched.loc[keep]
    cols = [c for c in m.columns if c not in ("row", "pattern", "role", "family")]
    for rec in m.to_dict("records"):
        base = dict(items[int(rec["row"])][0])
        base.update({c: (None if pd.isna(rec[c]) else rec[c]) for c in cols})
        base["process"] = "sshd"
        if base.get("src_ip") is not None:
            base["src_ip"] = _ip(str(base["src_ip"]))
        out.append(base)
    return out


# ---------------------------------------------------------------------------------------
# Column-wise mapping: the same semantics as record_row/_render, over a frame of records
# of one table entry (system columns plus one column per EventData field).

_SYSTEM = ("record_id", "time", "event_id", "channel", "provider", "computer")


_BLANK = pa.array(["", "-"], pa.string())


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A field as text: missing column, "", "-" and whitespace become null."""
    if name not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    arr = pc.utf8_trim_whitespace(_arrow_text(frame[name]))
    arr = pc.if_else(pc.is_in(arr, value_set=_BLANK), pa.scalar(None, arr.type), arr)
    return pd.Series(pd.arrays.ArrowStringArray(arr), index=frame.index)


def _map_unique(s: pd.Series, fn) -> pd.Series:
    """Apply a Python function once per distinct value (nulls stay None)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    values = np.empty(len(uniques) + 1, dtype=object)  # the last one (code -1) stays None
    for i, u in enumerate(uniques):
        values[i] = fn(u)
    # the dtype is inferred from the distinct values (as it would be from every row), and
    # the rows are then taken from them
    return pd.Series(pd.Series(values).array.take(codes), index=s.index)


def _map_numbers(s: pd.Series, hi: int) -> pd.Series:
    """Text → whole numbers from 0 to ``hi`` (decimal or hex; None where there is none),
    each distinct value parsed once, as a nullable integer column."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    found = (_number(u) for u in uniques)
    numbers = pd.array([n if n is not None and 0 <= n <= hi else None for n in found] + [None], dtype="Int64")
    return pd.Series(numbers.take(codes), index=s.index)


def _category(col: pd.Series) -> pd.Categorical:
    """Text (None/NA for missing) → a categorical, from its distinct values only."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return pd.Categorical.from_codes(codes, categories=pd.Index(np.asarray(uniques, dtype=object), dtype=object))


def frame_from_records(records: list[Record]) -> pd.DataFrame:
    rows = [
        {"record_id": r.record_id, "time": r.time, "event_id": r.event_id, "channel": r.channel,
         "provider": r.provider, "computer": r.computer, **{f"d.{k}": v for k, v in r.data.items()}}
        for r in records
    ]  # fmt: skip
    return pd.DataFrame(rows)


def map_frame(sem: Semantics, entry: Entry, frame: pd.DataFrame, keep_raw: bool, own_ips: set[str]) -> pd.DataFrame:
    """Records of one entry (columns ``record_id…computer`` and ``d.<field>``) → event rows."""
    spec = entry.spec
    d = frame[[c for c in frame.columns if c.startswith("d.")]].rename(columns=lambda c: c[2:])
    keep = pd.Series(True, index=frame.index)
    for fname, values in (spec.get("when") or {}).items():
        keep &= _col(d, fname).str.lower().isin(values).fillna(False)
    frame, d = frame[keep], d[keep]
    out = pd.DataFrame(index=frame.index)
    out["timestamp"] = frame["time"]
    out["host"] = frame["computer"]
    out["locator"] = frame["record_id"]
    out["channel"] = frame["channel"]
    out["provider"] = frame["provider"]
    out["event_id"] = frame["event_id"]
    if keep_raw:
        out["raw"] = _render_frame(entry, frame, d)
    for col, value in (spec.get("set") or {}).items():
        out[col] = value
    for col, fname in (spec.get("fields") or {}).items():
        names = fname if isinstance(fname, list) else [fname]
        val = _col(d, names[0])
        for n in names[1:]:
            val = val.fillna(_col(d, n))
        out[col] = val
    if "src_ip" in out:
        out["src_ip"] = _map_unique(out["src_ip"], _ip)
    for col in ("status", "sub_status"):
        if col in out:
            out[col] = _map_unique(out[col], _hex_norm)
    for col in _INT_COLUMNS:
        if col in out:
            out[col] = _map_numbers(out[col], MAXIMA[col])
    if (f := spec.get("outcome_from_status")) is not None:
        status = _map_unique(_col(d, f), _hex_norm)
        out["outcome"] = status.isin(["0x0", "0"]).map({True: "success", False: "failure"})
    if (r := spec.get("reason")) is not None:
        failing = out.get("outcome", pd.Series("failure", index=out.index)) != "success"
        reason = out["reason"].astype(object) if "reason" in out else pd.Series(None, index=out.index, dtype=object)
        found = pd.Series(False, index=out.index)
        for fname, tname in zip(r["from"], r["tables"], strict=True):
            value = _map_unique(_col(d, fname), lambda v: _hex_norm(v) if v.lower().startswith("0x") else v)
            table = sem.tables[tname]
            mapped = _map_unique(value.mask(value == "0x0"), lambda v, t=table: t.get(v.lower()))
            take = failing & ~found & mapped.notna()
            reason = reason.mask(take, mapped)
            found |= take
        default = out.get("outcome", pd.Series(None, index=out.index)).map({"failure": "other"})
        missing = failing & ~found & reason.isna()
        out["reason"] = reason.mask(missing, default)
    if (s := spec.get("service")) and "service" not in (spec.get("set") or {}):
        table = sem.tables[s["table"]]
        out["service"] = _map_unique(_col(d, s["from"]), lambda v: table.get(v.lower())).fillna("other")
    if st := spec.get("state"):
        table = sem.tables[st["table"]]
        out["reason"] = _map_unique(_col(d, st["from"]), lambda v: table.get(v.lower()))
    if spec.get("firewall"):
        _firewall_frame(out, d, own_ips)
    return out


def _firewall_frame(out: pd.DataFrame, d: pd.DataFrame, own_ips: set[str]) -> None:
    a_ip, b_ip = _map_unique(_col(d, "SourceAddress"), _ip), _map_unique(_col(d, "DestAddress"), _ip)
    a_port = _map_numbers(_col(d, "SourcePort"), MAXIMA["src_port"])
    b_port = _map_numbers(_col(d, "DestPort"), MAXIMA["dst_port"])
    a_local = a_ip.isin(own_ips) if own_ips else pd.Series(False, index=d.index)
    b_local = b_ip.isin(own_ips) if own_ips else pd.Series(False, index=d.index)
    undecided = a_local == b_local
    by_port = a_port.isin(WELL_KNOWN_PORTS) & ~b_port.isin(WELL_KNOWN_PORTS)
    a_local = a_local.where(~undecided, by_port)
    out["src_ip"] = b_ip.where(a_local, a_ip)
    out["src_port"] = b_port.where(a_local, a_port)
    out["dst_ip"] = a_ip.where(a_local, b_ip)
    out["dst_port"] = a_port.where(a_local, b_port)
    proto = _col(d, "Protocol")
    out["auth_method"] = proto.map({"6": "TCP", "17": "UDP", "1": "ICMP"}).fillna(proto)
    out["process"] = _col(d, "Application")
    pid = _col(d, "ProcessId").fillna(_col(d, "ProcessID"))
    out["pid"] = _map_numbers(pid, MAXIMA["pid"])


_RENDER_MAX = 2000  # characters of evidence text per event


def _render_frame(entry: Entry, frame: pd.DataFrame, d: pd.DataFrame) -> pd.Series:
    """The evidence rendering of _render, column-wise in pyarrow (each distinct value
    shown once, nulls skipped, no Python string per record)."""
    parts = []
    for n in _render_names(entry):
        if n not in d.columns:
            continue
        enc = pc.dictionary_encode(null_empty(_arrow_text(d[n])))
        # "name=value" once per distinct value; a take then gives every row its text
        shown = pa.array([f"{n}={_show(n, v)}" for v in enc.dictionary.to_pylist()], pa.string())
        parts.append(shown.take(enc.indices))
    channel = pc.fill_null(_arrow_text(frame["channel"]), "<NA>")
    event_id = pc.fill_null(_arrow_text(frame["event_id"]), "<NA>")
    head = pc.binary_join_element_wise(channel, event_id, "/")
    joined = pc.binary_join_element_wise(head, *parts, " ", null_handling="skip") if parts else head
    if (pc.max(pc.binary_length(joined)).as_py() or 0) > _RENDER_MAX:  # bytes bound code units
        joined = pc.utf8_slice_codeunits(joined, 0, _RENDER_MAX)
    return pd.Series(pd.arrays.ArrowStringArray(joined), index=frame.index)


def _arrow_text(col: pd.Series) -> pa.Array:
    """A column as an Arrow string array (zero-copy for pyarrow-backed strings)."""
    arr = pa.array(col.array)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):  # a categorical: its codes and values, no object per row
        arr = arr.dictionary_decode()
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())
