"""EVTX records, from either of two parsers: as Arrow tables per table entry (the Rust
parser's JSON read column-wise), or as plain :class:`Record` values.

- ``rust`` (default): the ``evtx`` package (``PyEvtxParser``, ``skip_errors=True``). Its
  warnings are captured and returned per file, never printed. Records are prefiltered on
  their JSON text (the event id) and read in batches by pyarrow's JSON reader; a batch it
  refuses is decoded record by record (``json.loads``).
- ``python``: python-evtx, without its known faults: every 64 KiB chunk of the file is
  visited (not just the header's chunk count, which is stale in "dirty" files), chunks
  without a valid magic are skipped, and an error in a record or chunk is reported as a
  warning while the records read before it are kept. Times come from the record's raw
  FILETIME (truncated to microseconds, as the Rust parser does), not from its rendering.

Both give identical records for files both can read.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import json
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .._memory import thaw

__all__ = [
    "ChunkRange",
    "Record",
    "chunk_ranges",
    "chunk_spans",
    "note_id_range",
    "read_python",
    "read_rust_tables",
    "record_from_json",
    "record_from_xml",
]

Wanted = Callable[[str | None, int | None], bool]
Warn = Callable[[str], None]

_CHUNK_MAGIC = b"ElfChnk\x00"
_CHUNK_SIZE = 0x10000
_HEADER_SIZE = 0x1000
_FILETIME_EPOCH_US = 11644473600 * 1_000_000
_NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
_JSON_EID = re.compile(r'"EventID":(?:\{"#attributes":\{[^{}]*\},"#text":)?"?(\d+)')
_XML_EID = re.compile(r"<EventID[^>]*>(\d+)</EventID>")
_XML_CHANNEL = re.compile(r"<Channel>([^<]*)</Channel>")
_JSON_BLOCK = 4 << 20  # pyarrow parses JSON in blocks of this size, in parallel
_RUST_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"


@dataclass(slots=True)
class Record:
    """One event record: System fields and the EventData (or UserData) fields by name."""

    record_id: int | None
    time: str | None  # ISO 8601 UTC, microseconds, "Z"
    event_id: int | None
    channel: str | None
    provider: str | None
    computer: str | None
    data: dict[str, str | None] = field(default_factory=dict)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return _text(value.get("#text"))
    if isinstance(value, list):
        return ",".join(t for v in value if (t := _text(v)) is not None)
    return str(value)


def _int(value: object) -> int | None:
    text = _text(value)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _flatten(block: object) -> dict[str, str | None]:
    """EventData / UserData → {name: text}. UserData wraps its fields in one element."""
    if not isinstance(block, dict):
        return {}
    if "EventData" not in block and len([k for k in block if not k.startswith("#")]) == 1:
        inner = next(v for k, v in block.items() if not k.startswith("#"))
        if isinstance(inner, dict) and not ("#text" in inner and len(inner) <= 2):
            block = inner
    return {k: (v if type(v) is str else _text(v)) for k, v in block.items() if k[0] != "#"}


def record_from_json(event: dict) -> Record:
    """A record from the Rust parser's JSON (or any JSON of the same shape)."""
    ev = event.get("Event", event)
    system = ev.get("System") or {}
    provider = (system.get("Provider") or {}).get("#attributes", {}).get("Name")
    created = (system.get("TimeCreated") or {}).get("#attributes", {}).get("SystemTime")
    data = ev.get("EventData")
    if data is None and ev.get("UserData") is not None:
        data = ev.get("UserData")
    return Record(
        record_id=_int(system.get("EventRecordID")),
        time=_iso(_text(created)),
        event_id=_int(system.get("EventID")),
        channel=_text(system.get("Channel")),
        provider=provider,
        computer=_text(system.get("Computer")),
        data=_flatten(data),
    )


def _iso(text: str | None) -> str | None:
    """Normalize a SystemTime to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (microseconds, truncated)."""
    if not text:
        return None
    t = text.strip().replace(" ", "T")
    if t.endswith("+00:00"):
        t = t[:-6]
    t = t.rstrip("Z")
    if "." in t:
        head, frac = t.split(".", 1)
        frac = (frac + "000000")[:6]
    else:
        head, frac = t, "000000"
    return f"{head}.{frac}Z"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def record_from_xml(xml: str | ET.Element, time_override: str | None = None) -> Record:
    """A record from Event XML (python-evtx, wevtutil, Event Viewer exports)."""
    root = ET.fromstring(xml) if isinstance(xml, str) else xml
    system = root.find(f"{_NS}System")
    if system is None:
        system = root.find("System")

    def sys_text(name: str) -> str | None:
        el = system.find(f"{_NS}{name}") if system is not None else None
        if el is None and system is not None:
            el = system.find(name)
        return None if el is None else (el.text or "").strip() or None

    def sys_attr(name: str, attr: str) -> str | None:
        el = system.find(f"{_NS}{name}") if system is not None else None
        if el is None and system is not None:
            el = system.find(name)
        return None if el is None else el.get(attr)

    data: dict[str, str | None] = {}
    for child in root:
        kind = _local(child.tag)
        if kind == "EventData":
            unnamed = 0
            for item in child:
                name = item.get("Name")
                if name is None:
                    unnamed += 1
                    name = _local(item.tag) if _local(item.tag) != "Data" else f"Data{unnamed}"
                data[name] = item.text if item.text is not None else None
        elif kind == "UserData":
            for wrapper in child:
                for item in wrapper:
                    data[_local(item.tag)] = item.text
    return Record(
        record_id=_int(sys_text("EventRecordID")),
        time=time_override or _iso(sys_attr("TimeCreated", "SystemTime")),
        event_id=_int(sys_text("EventID")),
        channel=sys_text("Channel"),
        provider=sys_attr("Provider", "Name"),
        computer=sys_text("Computer"),
        data=data,
    )


# ---------------------------------------------------------------------------------------
# backends


def note_id_range(counts: dict, lo: int | None, hi: int | None) -> None:
    """Widen the record-id range noted in ``counts`` (``min_id``/``max_id``) to ``lo``…``hi``."""
    if lo is None or hi is None:
        return
    counts["min_id"] = lo if counts.get("min_id") is None else min(counts["min_id"], lo)
    counts["max_id"] = hi if counts.get("max_id") is None else max(counts["max_id"], hi)


def _seen(counts: dict, rid: int | None, after: int) -> bool:
    """Note a record id's range; False when the record is at or below ``after`` (read before)."""
    if rid is None:
        return True
    note_id_range(counts, rid, rid)
    return rid > after


def _note_ids(counts: dict, seen: list[int | None], skipped: int) -> None:
    """Count the records read (all but ``skipped``) and note their id range."""
    counts["records"] += len(seen) - skipped
    ids = [r for r in seen if r is not None] if None in seen else seen
    if ids:
        note_id_range(counts, min(ids), max(ids))


def read_python(data: bytes, wanted: Wanted, warn: Warn, counts: dict, after: int = 0) -> Iterator[Record]:
    from Evtx.Evtx import FileHeader

    if len(data) < _HEADER_SIZE:
        warn("file shorter than an EVTX header")
        return
    header = FileHeader(data, 0)
    declared = header.chunk_count()
    present = (len(data) - _HEADER_SIZE) // _CHUNK_SIZE
    extra = sum(
        data[_HEADER_SIZE + i * _CHUNK_SIZE : _HEADER_SIZE + i * _CHUNK_SIZE + 8] == _CHUNK_MAGIC
        for i in range(declared, present)
    )
    if extra:
        warn(f"header declares {declared} chunks but {extra} more follow them: reading every chunk")
    # python-evtx allocates masses of short-lived cyclic node objects, and every collection
    # also walks all the process already holds (pandas, pyarrow, the events so far):
    # freezing those first keeps the collections small (about 1.4× faster here).
    gc.freeze()
    try:
        yield from _python_chunks(data, present, wanted, warn, counts, after)
    finally:
        thaw()


def _python_chunks(
    data: bytes, present: int, wanted: Wanted, warn: Warn, counts: dict, after: int = 0
) -> Iterator[Record]:
    from Evtx.Evtx import ChunkHeader
    from Evtx.Nodes import FiletimeTypeNode
    from Evtx.Views import render_root_node

    for i in range(present):
        off = _HEADER_SIZE + i * _CHUNK_SIZE
        if data[off : off + 8] != _CHUNK_MAGIC:
            if data[off : off + _CHUNK_SIZE].strip(b"\x00"):
                warn(f"chunk {i} at offset {off:#x} has no valid magic; skipped")
            continue
        try:
            chunk = ChunkHeader(data, off)
            records = chunk.records()
            for record in records:
                if not _seen(counts, record.record_num(), after):
                    continue
                counts["records"] += 1
                try:
                    root = record.root()  # parsed once: rendered here, its values reused below
                    xml = render_root_node(root)
                except Exception as exc:  # noqa: BLE001 - python-evtx raises many kinds
                    counts["failed"] = counts.get("failed", 0) + 1
                    warn(f"record {record.record_num()} in chunk {i}: {type(exc).__name__}: {exc}"[:300])
                    continue
                m = _XML_EID.search(xml)
                c = _XML_CHANNEL.search(xml)
                if not wanted(c.group(1) if c else None, int(m.group(1)) if m else None):
                    continue
                time = None
                try:
                    for sub in root.substitutions():
                        if isinstance(sub, FiletimeTypeNode):
                            ticks = sub.unpack_qword(0)
                            time = _us_to_iso(ticks // 10 - _FILETIME_EPOCH_US)
                            break
                except Exception:  # noqa: BLE001 - fall back to the rendered time
                    time = None
                yield record_from_xml(xml, time_override=time)
        except Exception as exc:  # noqa: BLE001
            warn(f"chunk {i} at offset {off:#x}: {type(exc).__name__}: {exc}; records before it kept"[:300])
            continue


def chunk_ranges(path: str, per_part: int, workers: int = 1) -> list[tuple[int, int]] | None:
    """Split a file's chunks, up to the last one that is not blank (a log not yet full has
    empty space after its chunks), into ranges of about ``per_part`` for separate parsers,
    as many as a multiple of ``workers`` (so that they finish together); None when the
    file is not worth splitting or ends in a partial chunk (read whole, by one parser)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_SIZE)
            size = os.fstat(fh.fileno()).st_size
            present, tail = divmod(max(size - _HEADER_SIZE, 0), _CHUNK_SIZE)
            if len(head) < _HEADER_SIZE or not head.startswith(b"ElfFile\x00") or present < 2 * per_part:
                return None
            used = 0
            for i in range(present + (1 if tail else 0)):
                fh.seek(_HEADER_SIZE + i * _CHUNK_SIZE)
                start = fh.read(8)
                if start == _CHUNK_MAGIC and i == present:  # a chunk cut short: leave it to one parser
                    return None
                if start.strip(b"\x00"):  # a chunk, or leftovers the parser should see and report
                    used = i + 1
    except OSError:
        return None
    if used < 2 * per_part:
        return None
    if workers > 1:  # equal ranges (±1 chunk), as many as a multiple of the workers
        count = workers * max(1, round(used / (workers * per_part)))
        return [(used * k // count, used * (k + 1) // count) for k in range(count)]
    return [(lo, min(lo + per_part, used)) for lo in range(0, used, per_part)]


class ChunkRange(io.RawIOBase):
    """A file's header followed by some of its chunks (``lo``…``hi-1``, or the indexes
    ``chunks``): what a parser sees as a whole EVTX file (chunks are self-contained; the
    header's chunk count is not relied on)."""

    def __init__(self, source: str | BinaryIO, lo: int = 0, hi: int = 0, chunks: list[int] | None = None) -> None:
        super().__init__()
        self._own = isinstance(source, str)
        self._fh = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115 - closed with this
        self._fh.seek(0)
        self._head = self._fh.read(_HEADER_SIZE)
        self._chunks = list(range(lo, hi)) if chunks is None else list(chunks)
        self._size = _HEADER_SIZE + len(self._chunks) * _CHUNK_SIZE
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        if self._pos < _HEADER_SIZE:
            data = self._head[self._pos : self._pos + want]
        else:  # within one chunk at a time
            k, within = divmod(self._pos - _HEADER_SIZE, _CHUNK_SIZE)
            self._fh.seek(_HEADER_SIZE + self._chunks[k] * _CHUNK_SIZE + within)
            data = self._fh.read(min(want, _CHUNK_SIZE - within))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._own:
            self._fh.close()
        super().close()


def chunk_spans(source: str | BinaryIO) -> list[tuple[int, int, int]]:
    """(chunk index, first record id, last record id) of every chunk with a valid magic,
    from the chunk headers: where to look for a record without parsing the file."""
    fh = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115
    try:
        fh.seek(0, io.SEEK_END)
        present = (fh.tell() - _HEADER_SIZE) // _CHUNK_SIZE
        spans = []
        for i in range(max(present, 0)):
            fh.seek(_HEADER_SIZE + i * _CHUNK_SIZE)
            head = fh.read(40)
            if head[:8] == _CHUNK_MAGIC and len(head) == 40:
                first, last = int.from_bytes(head[24:32], "little"), int.from_bytes(head[32:40], "little")
                spans.append((i, first, last))
        return spans
    finally:
        if isinstance(source, str):
            fh.close()


def _us_to_iso(us: int) -> str:
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_SYSTEM_FIELDS = ("Provider", "EventID", "TimeCreated", "EventRecordID", "Channel", "Computer")
# per (channel, event id, fields): the schema a first batch's records were inferred to
# have, cut down to the system fields and the data fields the table's entries use
_SCHEMAS: dict[tuple, pa.Schema] = {}


# the one value read of a system field that is an element with attributes
_SYSTEM_LEAVES = {"Provider": ("#attributes", "Name"), "TimeCreated": ("#attributes", "SystemTime")}


def _narrowed(f: pa.Field, path: tuple[str, ...]) -> pa.Field:
    """``f`` cut down to the one value at ``path`` where its structs have it (a provider's
    GUID, say, is then skipped by the reader, not built into an array)."""
    if not path or not pa.types.is_struct(f.type) or (i := f.type.get_field_index(path[0])) < 0:
        return f
    return pa.field(f.name, pa.struct([_narrowed(f.type.field(i), path[1:])]))


def _pruned(schema: pa.Schema, names: frozenset[str]) -> pa.Schema | None:
    """``schema`` with only what the mapping reads: fields JSON has in other places or
    that no entry uses are then skipped by the reader instead of built into arrays."""
    if schema.get_field_index("Event") < 0 or not pa.types.is_struct(event := schema.field("Event").type):
        return None

    def keep(struct: pa.StructType, wanted) -> list[pa.Field]:
        return [struct.field(i) for i in range(struct.num_fields) if wanted(struct.field(i).name)]

    kept: list[pa.Field] = []
    for f in keep(event, lambda n: n in ("System", "EventData", "UserData")):
        if not pa.types.is_struct(f.type):
            kept.append(f)
        elif f.name == "System":
            system = [_narrowed(x, _SYSTEM_LEAVES.get(x.name, ())) for x in keep(f.type, _SYSTEM_FIELDS.__contains__)]
            kept.append(pa.field(f.name, pa.struct(system)))
        elif f.name == "EventData":
            fields = keep(f.type, names.__contains__)
            # a field the first records lacked (another version of the event) is still read
            fields += [pa.field(n, pa.string()) for n in sorted(names - {x.name for x in fields})]
            kept.append(pa.field(f.name, pa.struct(fields)))
        else:  # UserData: <wrapper element>: {fields}
            wrappers = [
                pa.field(w.name, pa.struct(keep(w.type, names.__contains__))) if pa.types.is_struct(w.type) else w
                for w in keep(f.type, lambda n: True)
            ]
            kept.append(pa.field(f.name, pa.struct(wrappers)))
    return pa.schema([pa.field("Event", pa.struct(kept))])


_SAMPLE = 256 << 10  # bytes of a batch's first records a schema is learned from
_ID_LIMIT = 10**18  # record and event ids below this, well inside int64
_ID_DIGITS = rf"^[0-9]{{1,{len(str(_ID_LIMIT)) - 1}}}$"  # the same bound, for an id as text


def plausible_id(value: int | None) -> int | None:
    """A record or event id as int64 holds it, or None (a damaged or hostile file's
    2**64 - 1 must not stop the read)."""
    return value if value is not None and 0 <= value < _ID_LIMIT else None


def _read_table(blob: bytes, threads: bool, key: tuple | None) -> pa.Table:
    """The records of one event id as a table: with the schema learned from an earlier
    batch, or else from this batch's first records (inferring a schema as the reader goes
    costs half again a read with one); a value of another type or shape than those had:
    the whole batch inferred again."""
    options = pj.ReadOptions(use_threads=threads, block_size=_JSON_BLOCK)
    schema = _SCHEMAS.get(key) if key is not None else None
    if schema is None and key is not None and len(blob) > 2 * _SAMPLE and (cut := blob.rfind(b"\n", 0, _SAMPLE)) > 0:
        try:
            sample = pj.read_json(io.BytesIO(blob[: cut + 1]), read_options=pj.ReadOptions(use_threads=False))
            schema = _pruned(sample.schema, key[-1])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            schema = None
    if schema is not None:
        parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        try:
            table = pj.read_json(io.BytesIO(blob), read_options=options, parse_options=parse)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            _SCHEMAS.setdefault(key, schema)
            return table
    table = pj.read_json(io.BytesIO(blob), read_options=options)
    if key is not None:
        pruned = _pruned(table.schema, key[-1])
        if pruned is not None:
            _SCHEMAS[key] = pruned
    return table


def _batch_table(
    blob: bytes, record_ids: list[int], threads: bool = True, key: tuple | None = None
) -> pa.Table | None:
    """JSON texts of one event id, one a line (UTF-8) → a table of system columns and
    ``d.<field>``, parsed by pyarrow's JSON reader in one go. None when the texts do not
    fit one schema (the caller then decodes them one by one). ``key``: (event id, the data
    fields the entries use; its last item), to read only those after the first batch."""
    try:
        table = _read_table(blob, threads, key)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    cols = {name: table.column(name) for name in table.column_names}

    def pick(*names: str) -> pa.ChunkedArray | None:
        return next((cols[n] for n in names if n in cols), None)

    def text(arr: pa.ChunkedArray | None) -> pa.Array:
        if arr is None or pa.types.is_null(arr.type):
            return pa.nulls(table.num_rows, pa.string())
        arr = arr.combine_chunks()
        return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())

    def number(arr: pa.ChunkedArray | None) -> pa.Array:
        if arr is not None and pa.types.is_integer(arr.type) and arr.type != pa.uint64():  # JSON numbers
            return pc.cast(arr.combine_chunks(), pa.int64())
        # anything else (text, a number too large for int64 read as uint64 or double): the
        # whole numbers an id can be, else null
        t = text(arr)
        return pc.cast(pc.if_else(pc.match_substring_regex(t, _ID_DIGITS), t, pa.scalar(None, pa.string())), pa.int64())

    record_id = number(pick("Event.System.EventRecordID"))
    if record_id.null_count:  # the parser's own count of the record stands in
        record_id = pc.coalesce(record_id, pa.array(map(plausible_id, record_ids), pa.int64()))
    out = {
        "record_id": record_id,
        "time": text(pick("Event.System.TimeCreated.#attributes.SystemTime")),
        "event_id": number(pick("Event.System.EventID.#text", "Event.System.EventID")),
        "channel": text(pick("Event.System.Channel")),
        "provider": text(pick("Event.System.Provider.#attributes.Name")),
        "computer": text(pick("Event.System.Computer")),
    }
    for name, arr in cols.items():
        for prefix in ("Event.EventData.", "Event.UserData."):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :].split(".")
            field = rest[0] if prefix == "Event.EventData." and len(rest) == 1 else rest[1] if len(rest) == 2 else None
            if field and not field.startswith("#") and not pa.types.is_list(arr.type):
                out[f"d.{field}"] = text(arr)
    # the Rust parser writes times as 2025-01-02T03:04:05.678901Z already; normalize the rest
    times = out["time"]
    odd = pc.invert(pc.fill_null(pc.match_substring_regex(times, _RUST_TIME), False))
    if pc.any(odd).as_py():
        fixed = [_iso(t) for t in times.to_pylist()]
        out["time"] = pa.array(fixed, pa.string())
    return pa.table(out)


_UNSEEN: tuple = (None, [], None)  # a shortcut not yet taken (distinct from None: an id to skip)


def _by_entry(sem, table: pa.Table, eid: int) -> list[tuple[object, pa.Table]]:
    """A parsed batch of one event id → (table entry, its records) for each channel the
    table has that id for: the whole channel, or the entry's provider within it."""
    out = []
    channels = table.column("channel")
    present = pc.unique(channels).to_pylist()
    for channel in present:
        entries = sem.entries.get((channel or "", eid), ())
        if not entries:
            continue
        if len(present) == 1:
            part = table
        else:
            same = pc.is_null(channels) if channel is None else pc.fill_null(pc.equal(channels, channel), False)
            part = table.filter(same)
        for entry in entries:
            if entry.provider is None:
                out.append((entry, part))
                break
            sub = part.filter(pc.fill_null(pc.equal(part.column("provider"), entry.provider), False))
            if sub.num_rows:
                out.append((entry, sub))
    return out


def read_rust_tables(
    fileobj,
    sem,
    warn: Warn,
    counts: dict,
    batch: int = 50_000,
    after: int = 0,
    threads: int = 0,
    only: set[int] | None = None,
    json_threads: bool = True,
):
    """The Rust parser's records, prefiltered on their JSON text and parsed column-wise:
    yields lists of (table entry, Arrow table of its records) per batch of wanted records.
    ``threads``: the parser's own worker threads (0: one per CPU); ``only``: just these record ids;
    ``json_threads``: pyarrow's JSON reader on its thread pool (not in a worker process,
    where the workers are the parallelism)."""
    from evtx import PyEvtxParser

    from .windows import field_names, table_from_records

    parser = PyEvtxParser(fileobj, number_of_threads=threads, skip_errors=True)
    # the records are bucketed by event id alone, the one thing found per record; the
    # channel is a column of the parsed batch and is matched there, once per batch
    by_id: dict[int, list] = {}
    for (_, eid), entries in sem.entries.items():
        by_id.setdefault(eid, []).extend(entries)
    names_of = {eid: frozenset().union(*map(field_names, entries)) for eid, entries in by_id.items()}
    # per event id: (write, record ids, buffer) — each record's JSON is written out as
    # UTF-8 at once (its text is then freed: its memory, still in the cache, serves the
    # next record), one a line, as the JSON reader takes them
    buckets: dict[int, tuple[Callable, list[int], io.BytesIO]] = {}
    pending = 0

    def flush() -> list:
        frames = []
        for eid, (_, ids, buffer) in buckets.items():
            blob = buffer.getvalue()
            table = _batch_table(blob, ids, json_threads, (eid, names_of[eid]))
            if table is None:
                recs = []
                for t, rid in zip(blob.split(b"\n")[:-1], ids, strict=True):
                    rec = record_from_json(json.loads(t))
                    rec.record_id = rec.record_id if rec.record_id is not None else rid
                    recs.append(rec)
                table = table_from_records(recs)
            frames.extend(_by_entry(sem, table, eid))
        buckets.clear()
        return frames

    # '"EventID":4624,' (the common shape of a record's event id) → its bucket, or None
    # for an id the table does not know; other shapes (attributes, quoted, last in System)
    # go through the regex
    event_ids = sem.event_ids
    shortcut: dict[str, tuple[Callable, list[int], io.BytesIO] | None] = {}
    seen: list[int | None] = []  # every record's id: the file's range, what was read before
    note = seen.append
    skipped = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for raw in parser.records_json():
            rid = raw.get("event_record_id")
            note(rid)
            if (rid is not None and rid <= after) or (only is not None and rid not in only):
                skipped += 1
                continue
            text = raw["data"]
            # str.find, not a regex, per record: this loop runs once per record of the file
            i = text.find('"EventID":')
            if i < 0:
                continue
            key = text[i : text.find(",", i) + 1]
            bucket = shortcut.get(key, _UNSEEN)
            if bucket is None:
                continue
            if bucket is _UNSEEN:
                m = _JSON_EID.search(text, i)
                eid = int(m.group(1)) if m else None
                if eid in event_ids:
                    bucket = buckets.get(eid)
                    if bucket is None:
                        buffer = io.BytesIO()
                        bucket = buckets[eid] = (buffer.write, [], buffer)
                else:
                    bucket = None
                if key[10:-1].isdigit():  # the plain shape: the same text, the same bucket
                    shortcut[key] = bucket
                if bucket is None:
                    continue
            bucket[0](text.encode())
            bucket[0](b"\n")
            bucket[1].append(rid)
            pending += 1
            if pending >= batch:
                yield flush()
                pending = 0
                shortcut = {k: v for k, v in shortcut.items() if v is None}  # buckets start anew
        _note_ids(counts, seen, skipped)
        if buckets:
            yield flush()
        for w in caught:
            warn(str(w.message).replace("\n", " ")[:300])
