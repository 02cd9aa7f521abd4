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
from .records import Record, plausible_id
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

    Records are grouped by table entry and mapped column-wise (:func:`map_table`);
    OpenSSH/Operational records carry sshd's own text and go through the Linux catalog."""
    sem = load_semantics()
    groups: dict[int, tuple[Entry, list[Record]]] = {}
    for rec in records:
        entry = sem.entry_for(rec)
        if entry is not None:
            groups.setdefault(id(entry), (entry, []))[1].append(rec)
    tables = [(entry, table_from_records(recs)) for entry, recs in groups.values()]
    return events_from_tables(sem, tables, source, log, keep_raw, own_ips or set())


MAX_FIELD = 64 * 1024  # characters a value keeps (an export's field may be megabytes, forged)


def _bounded(arr: pa.Array) -> pa.Array:
    """Values over MAX_FIELD characters cut to MAX_FIELD, with "…" after them."""
    if len(arr) == 0 or (pc.max(pc.binary_length(arr)).as_py() or 0) <= MAX_FIELD:  # bytes ≥ characters
        return arr
    long = pc.fill_null(pc.greater(pc.utf8_length(arr), MAX_FIELD), False)
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(arr, 0, MAX_FIELD), "…", "")
    return pc.if_else(long, cut, arr)


# the columns of a mapped part that hold whole numbers (int64 until the events are built)
_NUMBERS = {"locator": "Int64", "event_id": "Int32", **_INT_COLUMNS}


def events_from_tables(
    sem: Semantics,
    tables: list[tuple[Entry, pa.Table]],
    source: str,
    log: str,
    keep_raw: bool,
    own_ips: set[str],
    ordered: bool = True,
) -> tuple[pd.DataFrame, int]:
    """Per-entry record tables (:func:`table_from_records`, or the JSON reader's) → the
    schema's events (in record order unless ``ordered`` is False: a caller that orders
    the whole file afterwards). Mapped in Arrow; each text column becomes a categorical
    once, from its dictionary encoding."""
    parts: list[dict[str, pa.Array]] = []
    ssh_items: list[tuple[dict, str]] = []
    for entry, table in tables:
        if not table.num_rows:
            continue
        if entry.spec.get("sshd"):
            ssh_items.extend(_sshd_items(entry, table, keep_raw))
            continue
        part = map_table(sem, entry, table, keep_raw, own_ips)
        if len(part["locator"]):
            parts.append(part)
    if ssh_items and (rows := _sshd_rows(ssh_items)):
        parts.append(_rows_part(rows))
    if not parts:
        return empty_events(), 0
    cols: dict[str, pa.Array] = {}
    for name in dict.fromkeys(k for p in parts for k in p):
        kind = pa.int64() if name in _NUMBERS else pa.string()
        cols[name] = pa.concat_arrays([p[name] if name in p else pa.nulls(len(p["locator"]), kind) for p in parts])
    n = len(cols["locator"])
    cols = {k: _bounded(v) if pa.types.is_string(v.type) else v for k, v in cols.items()}
    if ordered:
        loc = cols["locator"]  # stable, nulls last
        order = np.lexsort((pc.fill_null(loc, 0).to_numpy(), pc.is_null(loc).to_numpy(zero_copy_only=False)))
        cols = {k: v.take(pa.array(order)) for k, v in cols.items()}
    index = pd.RangeIndex(n)
    out: dict[str, pd.Series] = {"timestamp": pd.Series(parse_iso(cols.pop("timestamp"), utc=True), index=index)}
    for name, arr in cols.items():
        if name in _NUMBERS:
            out[name] = pd.Series(_integers(arr, _NUMBERS[name]), index=index)
        elif name == "raw":
            out[name] = pd.Series(pd.arrays.ArrowStringArray(arr), index=index)
        else:
            out[name] = pd.Series(_categorical(arr), index=index)
    for name, value in (("source", source), ("log", log)):
        categories = pd.Index([value], dtype=object)
        out[name] = pd.Series(pd.Categorical.from_codes(np.zeros(n, np.int8), categories=categories), index=index)
    return conform(pd.DataFrame(out, copy=False)), n


def _integers(arr: pa.Array, dtype: str) -> pd.arrays.IntegerArray:
    """Whole numbers (int64, nulls) → a nullable column of ``dtype``; a number it cannot
    hold becomes null (as the schema's conform does)."""
    info = np.iinfo(dtype.lower())
    values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
    mask = pc.is_null(arr).to_numpy(zero_copy_only=False)
    out_of_range = (values < info.min) | (values > info.max)
    if out_of_range.any():
        mask = mask | out_of_range
        values = np.where(out_of_range, 0, values)
    return pd.arrays.IntegerArray(values.astype(dtype.lower()), mask)


def _categorical(arr: pa.Array) -> pd.Categorical:
    """Text (nulls for missing) → a categorical whose categories come in order of first
    appearance, as ``pd.factorize`` gives them."""
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    categories = pd.Index(np.asarray(enc.dictionary.to_pylist(), dtype=object), dtype=object)
    return pd.Categorical.from_codes(codes, categories=categories)


def _sshd_items(entry: Entry, table: pa.Table, keep_raw: bool) -> list[tuple[dict, str]]:
    """Windows OpenSSH records: (the record's system values, sshd's own message)."""
    payload = _field(table, "payload").to_pylist()
    raw = _render_table(entry, table).to_pylist() if keep_raw else None
    system = {
        name: _plain(table, column).to_pylist()
        for name, column in (("timestamp", "time"), ("host", "computer"), ("locator", "record_id"),
                             ("channel", "channel"), ("provider", "provider"), ("event_id", "event_id"))
    }  # fmt: skip
    items = []
    for i, p in enumerate(payload):
        if p is None:
            continue
        base = {name: values[i] for name, values in system.items()}
        if raw is not None:
            base["raw"] = raw[i]
        items.append((base, str(p)))
    return items


def _sshd_rows(items: list[tuple[dict, str]]) -> list[dict]:
    """Windows OpenSSH: sshd's own messages, through the same catalog as Linux."""
    from .catalog import load_catalog
    from .linux import match_messages

    msgs = pa.array([m for _, m in items], pa.string())
    matched = match_messages(pa.array(["sshd"] * len(items), pa.string()), msgs, load_catalog())
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


def _rows_part(rows: list[dict]) -> dict[str, pa.Array]:
    """Rows of values (the sshd path) → a mapped part: numbers as int64, the rest as text."""
    part = {}
    for name in dict.fromkeys(k for r in rows for k in r):
        values = [r.get(name) for r in rows]
        if name in _NUMBERS:
            part[name] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        else:
            part[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return part


# ---------------------------------------------------------------------------------------
# Column-wise mapping, over a table of the records of one table entry (system columns
# plus one column ``d.<field>`` per EventData field).

_BLANK = pa.array(["", "-"], pa.string())
_NULL_TEXT = pa.scalar(None, pa.string())


def table_from_records(records: list[Record]) -> pa.Table:
    """Records → the table the JSON reader gives: system columns and ``d.<field>`` as text."""

    def text(values) -> pa.Array:
        return pa.array([None if v is None else str(v) for v in values], pa.string())

    cols = {
        "record_id": pa.array([plausible_id(r.record_id) for r in records], pa.int64()),
        "time": text(r.time for r in records),
        "event_id": pa.array([plausible_id(r.event_id) for r in records], pa.int64()),
        "channel": text(r.channel for r in records),
        "provider": text(r.provider for r in records),
        "computer": text(r.computer for r in records),
    }
    for name in dict.fromkeys(k for r in records for k in r.data):
        cols[f"d.{name}"] = text(r.data.get(name) for r in records)
    return pa.table(cols)


def _plain(table: pa.Table, name: str) -> pa.Array:
    """A column as one array (text as it is; numbers stay numbers)."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    arr = table.column(name).combine_chunks()
    return arr.cast(pa.string()) if pa.types.is_null(arr.type) else arr


def _text(table: pa.Table, name: str) -> pa.Array:
    arr = _plain(table, name)
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


def _field(table: pa.Table, name: str) -> pa.Array:
    """A data field as text: missing column, "", "-" and whitespace become null."""
    arr = pc.utf8_trim_whitespace(_text(table, f"d.{name}"))
    return pc.if_else(pc.is_in(arr, value_set=_BLANK), _NULL_TEXT, arr)


def _map_unique(arr: pa.Array, fn) -> pa.Array:
    """Apply a Python function (text → text or None) once per distinct value."""
    enc = pc.dictionary_encode(arr)
    mapped = pa.array([fn(u) for u in enc.dictionary.to_pylist()], pa.string())
    return mapped.take(enc.indices)


def _map_numbers(arr: pa.Array, hi: int) -> pa.Array:
    """Text → whole numbers from 0 to ``hi`` (decimal or hex; null where there is none),
    each distinct value parsed once."""
    enc = pc.dictionary_encode(arr)
    found = (_number(u) for u in enc.dictionary.to_pylist())
    return pa.array([n if n is not None and 0 <= n <= hi else None for n in found], pa.int64()).take(enc.indices)


def _constant(value: object, n: int) -> pa.Array:
    return pa.array([str(value)], pa.string()).take(pa.array(np.zeros(n, np.int32)))


def _is(arr: pa.Array, values) -> pa.Array:
    """Membership as plain booleans (null never matches)."""
    return pc.fill_null(pc.is_in(arr, value_set=pa.array(list(values), arr.type)), False)


def _when(entry: Entry, table: pa.Table) -> pa.Table:
    """The records of ``table`` that the entry's ``when`` admits (all of them without one)."""
    keep = None
    for fname, values in (entry.spec.get("when") or {}).items():
        hit = _is(pc.utf8_lower(_field(table, fname)), values)
        keep = hit if keep is None else pc.and_(keep, hit)
    return table if keep is None else table.filter(keep)


def texts_from_tables(tables: list[tuple[Entry, pa.Table]], wanted: set[int]) -> dict[int, str]:
    """The evidence text (``raw``, as :func:`events_from_tables` gives it) of the records
    numbered ``wanted`` (their locators) in per-entry record tables: only those records
    are rendered, and nothing else of them is mapped. The first entry that takes a
    record gives its text (sshd's own messages after the others, as there)."""
    found: dict[int, str] = {}
    sshd: dict[int, str] = {}
    ids = pa.array(sorted(wanted), pa.int64())
    for entry, table in tables:
        if not table.num_rows:
            continue
        loc = pc.cast(_plain(table, "record_id"), pa.int64())
        table = table.filter(pc.fill_null(pc.is_in(loc, value_set=ids), False))
        is_sshd = bool(entry.spec.get("sshd"))
        table = table.filter(pc.is_valid(_field(table, "payload"))) if is_sshd else _when(entry, table)
        if not table.num_rows:
            continue
        into = sshd if is_sshd else found
        locs = pc.cast(_plain(table, "record_id"), pa.int64()).to_pylist()
        for rid, text in zip(locs, _bounded(_render_table(entry, table)).to_pylist(), strict=True):
            into.setdefault(rid, text)
    for rid, text in sshd.items():
        found.setdefault(rid, text)
    return found


def map_table(sem: Semantics, entry: Entry, table: pa.Table, keep_raw: bool, own_ips: set[str]) -> dict[str, pa.Array]:
    """Records of one entry (columns ``record_id…computer`` and ``d.<field>``) → event
    columns: text, or int64 for numbers (timestamps still as text)."""
    spec = entry.spec
    table = _when(entry, table)
    n = table.num_rows
    out: dict[str, pa.Array] = {
        "timestamp": _text(table, "time"),
        "host": _text(table, "computer"),
        "locator": pc.cast(_plain(table, "record_id"), pa.int64()),
        "channel": _text(table, "channel"),
        "provider": _text(table, "provider"),
        "event_id": pc.cast(_plain(table, "event_id"), pa.int64()),
    }
    if keep_raw:
        out["raw"] = _render_table(entry, table)
    for col, value in (spec.get("set") or {}).items():
        out[col] = _constant(value, n)
    for col, fname in (spec.get("fields") or {}).items():
        names = fname if isinstance(fname, list) else [fname]
        out[col] = pc.coalesce(*(_field(table, x) for x in names)) if len(names) > 1 else _field(table, names[0])
    if "src_ip" in out:
        out["src_ip"] = _map_unique(out["src_ip"], _ip)
    for col in ("status", "sub_status"):
        if col in out:
            out[col] = _map_unique(out[col], _hex_norm)
    for col in _INT_COLUMNS:
        if col in out:
            out[col] = _map_numbers(out[col], MAXIMA[col])
    if (f := spec.get("outcome_from_status")) is not None:
        ok = _is(_map_unique(_field(table, f), _hex_norm), ("0x0", "0"))
        out["outcome"] = pc.if_else(ok, "success", "failure")
    if (r := spec.get("reason")) is not None:
        outcome = out.get("outcome")
        failing = pc.fill_null(pc.not_equal(outcome, "success"), True) if outcome is not None else _truth(n, True)
        reason = out.get("reason", pa.nulls(n, pa.string()))
        found = _truth(n, False)
        for fname, tname in zip(r["from"], r["tables"], strict=True):
            value = _map_unique(_field(table, fname), lambda v: _hex_norm(v) if v.lower().startswith("0x") else v)
            value = pc.if_else(pc.equal(value, "0x0"), _NULL_TEXT, value)
            mapped = _map_unique(value, lambda v, t=sem.tables[tname]: t.get(v.lower()))
            take = pc.and_(pc.and_not(failing, found), pc.is_valid(mapped))
            reason = pc.if_else(take, mapped, reason)
            found = pc.or_(found, take)
        if outcome is None:
            default = pa.nulls(n, pa.string())
        else:
            default = pc.if_else(pc.equal(outcome, "failure"), "other", _NULL_TEXT)
        missing = pc.and_(pc.and_not(failing, found), pc.is_null(reason))
        out["reason"] = pc.if_else(missing, default, reason)
    if (s := spec.get("service")) and "service" not in (spec.get("set") or {}):
        lookup = sem.tables[s["table"]]
        out["service"] = pc.fill_null(_map_unique(_field(table, s["from"]), lambda v: lookup.get(v.lower())), "other")
    if st := spec.get("state"):
        lookup = sem.tables[st["table"]]
        out["reason"] = _map_unique(_field(table, st["from"]), lambda v: lookup.get(v.lower()))
    if spec.get("firewall"):
        _firewall_columns(out, table, own_ips)
    return out


def _truth(n: int, value: bool) -> pa.Array:
    return pa.array(np.full(n, value))


def _firewall_columns(out: dict[str, pa.Array], table: pa.Table, own_ips: set[str]) -> None:
    a_ip, b_ip = _map_unique(_field(table, "SourceAddress"), _ip), _map_unique(_field(table, "DestAddress"), _ip)
    a_port = _map_numbers(_field(table, "SourcePort"), MAXIMA["src_port"])
    b_port = _map_numbers(_field(table, "DestPort"), MAXIMA["dst_port"])
    n = table.num_rows
    a_local = _is(a_ip, own_ips) if own_ips else _truth(n, False)
    b_local = _is(b_ip, own_ips) if own_ips else _truth(n, False)
    undecided = pc.equal(a_local, b_local)
    by_port = pc.and_not(_is(a_port, WELL_KNOWN_PORTS), _is(b_port, WELL_KNOWN_PORTS))
    a_local = pc.if_else(undecided, by_port, a_local)
    out["src_ip"] = pc.if_else(a_local, b_ip, a_ip)
    out["src_port"] = pc.if_else(a_local, b_port, a_port)
    out["dst_ip"] = pc.if_else(a_local, a_ip, b_ip)
    out["dst_port"] = pc.if_else(a_local, a_port, b_port)
    names = {"6": "TCP", "17": "UDP", "1": "ICMP"}
    out["auth_method"] = _map_unique(_field(table, "Protocol"), lambda v: names.get(v, v))
    out["process"] = _field(table, "Application")
    pid = pc.coalesce(_field(table, "ProcessId"), _field(table, "ProcessID"))
    out["pid"] = _map_numbers(pid, MAXIMA["pid"])


_RENDER_MAX = 2000  # characters of evidence text per event


def _render_table(entry: Entry, table: pa.Table) -> pa.Array:
    """The evidence text of each record, column-wise in pyarrow (each distinct value
    shown once, nulls skipped, no Python string per record)."""
    parts = []
    for n in _render_names(entry):
        if f"d.{n}" not in table.column_names:
            continue
        enc = pc.dictionary_encode(null_empty(_text(table, f"d.{n}")))
        # "name=value" once per distinct value; a take then gives every row its text
        shown = pa.array([f"{n}={_show(n, v)}" for v in enc.dictionary.to_pylist()], pa.string())
        parts.append(shown.take(enc.indices))
    channel = pc.fill_null(_text(table, "channel"), "<NA>")
    event_id = pc.fill_null(_text(table, "event_id"), "<NA>")
    head = pc.binary_join_element_wise(channel, event_id, "/")
    joined = pc.binary_join_element_wise(head, *parts, " ", null_handling="skip") if parts else head
    if (pc.max(pc.binary_length(joined)).as_py() or 0) > _RENDER_MAX:  # bytes bound code units
        joined = pc.utf8_slice_codeunits(joined, 0, _RENDER_MAX)
    return joined
