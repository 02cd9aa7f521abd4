"""EVTX records, from either of two parsers: as Arrow tables per table entry (the Rust
parser's JSON read column-wise), or as plain :class:`Record` values.

- ``rust`` (default): the ``evtx`` package (``PyEvtxParser``, ``skip_errors=True``,
  checksums validated). Its warnings are captured and returned per file, never printed.
  Records are prefiltered on their JSON text (the event id) and read in batches by
  pyarrow's JSON reader; a batch it refuses is decoded record by record (``json.loads``).
- ``python``: python-evtx, without its known faults: every 64 KiB chunk of the file is
  visited (not just the header's chunk count, which is stale in "dirty" files), and an
  error in a record is reported as a warning while the others are kept. Times come from
  the record's raw FILETIME (truncated to microseconds, as the Rust parser does), not
  from its rendering.

Both give identical records for files both can read, and read damaged files alike: a
chunk that fails its checks (magic, checksums, free-space offset; cut short by the end of
the file) is repaired around its whole records and read after the sound ones, a record
met twice (a chunk repeated) is read once, and each damaged place is said in a warning
("chunk 3 (offset 0x31000): …"). The Python backend reads the records python-evtx cannot
decode with the Rust parser, and says so. A file cut inside its 4 KiB header is an
InputError.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import itertools
import json
import mmap
import re
import struct
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .._memory import thaw
from ..errors import InputError
from .records import ID_DIGITS, Record, plausible_id

__all__ = [
    "Bucket",
    "ChunkRange",
    "Record",
    "batch_table",
    "bucket_tables",
    "by_entry",
    "chunk_ranges",
    "chunk_spans",
    "field_names_by_id",
    "joined_table",
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


# ---------------------------------------------------------------------------------------
# damaged files: what their headers say, and the whole records of a damaged chunk
#
# A chunk is 512 header bytes (record ids, the free-space offset, a CRC32 of the records
# and one of the header, tables of names and templates that are only caches), then records
# one after another: "**\0\0", size, record id, time, BinXML, the size again. A record's
# names and templates are defined inline where the chunk first uses them and referred to
# by their offset in the chunk afterwards, so records keep their places when a damaged
# chunk is repaired: its header is rewritten, a stretch without a whole record is covered
# by a filler record the parsers fail on, and the parser reads the rest as usual.

_FILE_MAGIC = b"ElfFile\x00"
_RECORD_MAGIC = b"**\x00\x00"
_CHUNK_HEADER = 0x200
_NO_CRC32 = 0x4  # file and chunk header flag: no checksums kept
_MIN_RECORD = 28  # a record header and the size copy
_MIN_FILLER = _MIN_RECORD + 1  # and one byte of BinXML, which no parser takes
_FILLER_ID = 2**64 - 2  # a filler's record id (the parsers' complaints about it are dropped)
_NO_ID = 2**64 - 1  # as a repaired header's last record id: the parser reads to the free space
_MOST_RECORDS = (_CHUNK_SIZE - _CHUNK_HEADER) // _MIN_RECORD  # a header's wider id range is not believed


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "little")


def _span(chunk: bytes) -> tuple[int, int] | None:
    """The first and last record id a chunk's header gives (from its first 40 bytes); None
    when it has no magic, or a range no chunk can hold."""
    if chunk[:8] != _CHUNK_MAGIC or len(chunk) < 40:
        return None
    first, last = _u64(chunk, 24), _u64(chunk, 32)
    return (first, last) if first <= last < first + _MOST_RECORDS else None


def _head_problem(head: bytes) -> str | None:
    """What is wrong with a file's 4 KiB header (None: nothing). Parsers need little of it
    (the chunks are self-contained): a damaged one is said, and its chunks read all the same."""
    if len(head) < _HEADER_SIZE:
        return f"EVTX file header is incomplete ({len(head):,} of {_HEADER_SIZE:,} bytes)"
    if not head.startswith(_FILE_MAGIC):
        return "EVTX file header has no valid magic"
    if not _u32(head, 120) & _NO_CRC32 and _u32(head, 124) != zlib.crc32(head[:120]):
        return "EVTX file header is damaged (its checksum does not match)"
    return None


def _file_header(chunks: int = 1) -> bytes:
    """A sound file header for ``chunks`` chunks: what a parser is shown before repaired chunks."""
    head = bytearray(_HEADER_SIZE)
    head[:8] = _FILE_MAGIC
    struct.pack_into("<QQQIHHHH", head, 8, 0, max(chunks - 1, 0), 0, 0x80, 1, 3, _HEADER_SIZE, chunks)
    struct.pack_into("<I", head, 124, zlib.crc32(head[:120]))
    return bytes(head)


def _ids(ids: list[int]) -> str:
    """Record ids as ranges: ``1000–1071``, ``3, 7–9``; many as the first few and a count."""
    runs: list[list[int]] = []
    for rid in sorted(set(ids)):
        if runs and rid == runs[-1][1] + 1:
            runs[-1][1] = rid
        else:
            runs.append([rid, rid])
    text = ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs[:4])
    return text + (f" and {len(runs) - 4} more ranges" if len(runs) > 4 else "")


def _missing_notes(
    head: bytes,
    blank: list[bool],
    spans: dict[int, tuple[int, int]],
    place: Callable[[int], tuple[int, int]],
    present: int | None,
) -> list[str]:
    """Chunks that should be there and are not: runs of blank slots within the count of
    chunks the file header gives, or between chunks whose record ids leave a gap (a zeroed
    chunk; blank slots after the last chunk are a log's room to grow), and a file that ends
    before that count. ``place``: a slot → (chunk number, offset) in the file; ``present``:
    the slots a whole file holds, a partial one included (None for some of its chunks)."""
    declared = 0 if _head_problem(head) else _u16(head, 42)
    notes = []
    if present is not None and declared > present:
        notes.append(f"the file ends after {present} chunks, though its header counts {declared}")
    i = 0
    while i < len(blank):
        if not blank[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(blank) and blank[j + 1]:
            j += 1
        before, after = spans.get(i - 1), spans.get(j + 1)
        gap = before is not None and after is not None and before[1] + 1 < after[0]
        (first, offset), (last, _) = place(i), place(j)
        if gap or first < declared:
            which = f"chunk {first} (offset {offset:#x}) is"
            if i < j:
                which = f"chunks {first}–{last} (offset {offset:#x} on) are"
            if gap:
                them = "it" if i == j else "them"
                why = f"records {before[1] + 1}–{after[0] - 1} between the chunks around {them} are missing"
            else:
                why = f"the file header counts {declared} chunks in use"
            notes.append(f"{which} blank, though {why}")
        i = j + 1
    return notes


def _walk(raw: bytes, limit: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """The records of a chunk's bytes up to ``limit``: (offset in the chunk, size, record id)
    of each, and the stretches that are damaged. A record is whole when its header and its
    size copy at the end agree; where they do not, the next whole record is looked for from
    there, and one whose size copy alone is wrong (the parsers do not look at it) is kept,
    up to that next record, as far as its header is believable."""
    records: list[tuple[int, int, int]] = []
    gaps: list[tuple[int, int]] = []
    at, lost = _CHUNK_HEADER, None
    doubt: tuple[int, int] | None = None  # (offset, id) of a record whose size copy is wrong
    while at + _MIN_RECORD <= limit:
        if raw[at : at + 4] == _RECORD_MAGIC:
            size = _u32(raw, at + 4)
            if size >= _MIN_RECORD and at + size <= limit and _u32(raw, at + size - 4) == size:
                if doubt is not None:
                    records.append((doubt[0], at - doubt[0], doubt[1]))
                if lost is not None:
                    gaps.append((lost, at))
                doubt = lost = None
                records.append((at, size, _u64(raw, at + 8)))
                at += size
                continue
            if lost is None and size >= _MIN_RECORD and at + size <= limit:
                doubt = (at, _u64(raw, at + 8))
        lost = at if lost is None else lost
        at = raw.find(_RECORD_MAGIC, at + 1, limit)
        if at < 0:
            break
    end = lost if lost is not None else max(at, _CHUNK_HEADER)
    if doubt is not None:
        records.append((doubt[0], limit - doubt[0], doubt[1]))
    if raw[end:limit].strip(b"\x00"):  # the bytes after the last whole record are not blank
        gaps.append((end, limit))
    return records, gaps


@dataclass(slots=True)
class _Damage:
    """A chunk that is not sound: where it is, what is wrong, its whole records and the
    chunk repaired around them (64 KiB, a sound header, fillers over the damaged stretches)."""

    index: int  # chunk number in the file
    offset: int  # in the file
    problems: list[str]
    cut: bool = False
    records: list[tuple[int, int, int]] = field(default_factory=list)  # (offset in the chunk, size, id)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # ids of whole records a filler had to cover
    limit: int = 0  # where the records end (the free-space offset, or the bytes there are)
    chunk: bytes = b""
    trust: int = 1  # 0: its records' checksum matches; 1: it cannot be told (cut short…); 2: it does not match

    def say(self, read: list[int], again: list[int], bad: list[int], why: str = "") -> str:
        """The warning: the chunk, what is wrong with it, and what of it was read (``why``:
        the first complaint about a record that could not be decoded)."""
        found = []
        if read:
            found.append(f"{len(read)} whole record{'s' * (len(read) != 1)} read (ids {_ids(read)})")
        if again:
            found.append(f"{len(again)} (ids {_ids(again)}) also in another chunk, counted once")
        if bad or self.lost:
            why = f"; first: {why}" if why else ""
            found.append(f"{len(bad) + len(self.lost)} could not be decoded (ids {_ids(bad + self.lost)}{why})")
        gaps = [g for g in self.gaps if not (self.cut and g[1] == self.limit)]  # (a cut: the record cut short)
        if not (self.records or read or again or bad):
            found.append("no whole record in it")
        elif gaps:
            more = f" and {len(gaps) - 1} more" if len(gaps) > 1 else ""
            found.append(f"damaged at chunk bytes {gaps[0][0]:#x}–{gaps[0][1]:#x}{more}")
        if self.cut and self.records:
            found.append("the rest lost")
        what = "; ".join(self.problems)
        return f"chunk {self.index} (offset {self.offset:#x}): " + (f"{what}: " if what else "") + ", ".join(found)


def _examine(raw: bytes, index: int, offset: int, suspect: str | None = None, repair: bool = True) -> _Damage | None:
    """A chunk's bytes (64 KiB, fewer when the file ends within it) checked: None when it is
    blank or sound (its magic, its checksums, its free-space offset), else its damage and,
    with ``repair``, its whole records found and the chunk repaired. ``suspect``: why to look
    into a chunk whose checks pass (the parser could not read it)."""
    if raw[:8] != _CHUNK_MAGIC and not raw.strip(b"\x00"):
        return None
    problems = []
    cut = len(raw) < _CHUNK_SIZE
    if cut:
        problems.append(f"cut short after {len(raw):,} of {_CHUNK_SIZE:,} bytes")
    sound_head = raw[:8] == _CHUNK_MAGIC and len(raw) >= _CHUNK_HEADER
    checked = sound_head and not _u32(raw, 120) & _NO_CRC32
    if raw[:8] != _CHUNK_MAGIC:
        problems.append("no chunk magic")
    elif checked and _u32(raw, 124) != zlib.crc32(raw[:120] + raw[128:_CHUNK_HEADER]):
        problems.append("header checksum does not match")
        sound_head = False
    free = _u32(raw, 48) if sound_head else 0
    if sound_head and not _CHUNK_HEADER <= free <= _CHUNK_SIZE:
        problems.append(f"impossible free-space offset {free:#x}")
        sound_head = False
    if sound_head and checked and free <= len(raw) and _u32(raw, 52) != zlib.crc32(raw[_CHUNK_HEADER:free]):
        problems.append("records checksum does not match")
    if not problems and suspect is None:
        return None
    if suspect and not problems:
        problems.append(suspect)
    limit = min(free, len(raw)) if sound_head else len(raw)
    damage = _Damage(index, offset, problems, cut, limit=limit)
    # the records' own checksum, even under a damaged header (its fields may have been spared:
    # where the checksum then matches, the records end where the header says)
    end = _u32(raw, 48) if len(raw) >= 56 else 0
    if not _u32(raw, 120) & _NO_CRC32 and _CHUNK_HEADER <= end <= len(raw):
        damage.trust = 0 if _u32(raw, 52) == zlib.crc32(raw[_CHUNK_HEADER:end]) else 2
        damage.limit = end if damage.trust == 0 else damage.limit
    if repair:
        damage.records, damage.gaps = _walk(raw, damage.limit)
        _repair(damage, raw, sound_head)
    return damage


def _repair(damage: _Damage, raw: bytes, sound_head: bool) -> None:
    """The chunk rebuilt around its whole records: they stay at their places (what they
    refer to is found there), each stretch before or between them is covered by a filler
    record, the header gives their ids and end, and its caches are dropped unless the header
    was sound."""
    kept: list[tuple[int, int, int]] = []
    fills: list[tuple[int, int]] = []
    at = _CHUNK_HEADER
    for off, size, rid in damage.records:
        if 0 < off - at < _MIN_FILLER:  # too short a stretch for a filler: this record goes with it
            damage.lost.append(rid)
            continue
        if off > at:
            fills.append((at, off))
        kept.append((off, size, rid))
        at = off + size
    damage.records = kept
    if not kept:
        return
    buf = bytearray(_CHUNK_SIZE)
    buf[:at] = raw[:at]
    buf[:8] = _CHUNK_MAGIC
    if not sound_head:
        buf[128:_CHUNK_HEADER] = bytes(_CHUNK_HEADER - 128)  # the name and template caches
        struct.pack_into("<QQ", buf, 8, 1, len(kept))
    for off, size, _ in kept:  # (as it was, but for a record whose size copy was wrong)
        struct.pack_into("<I", buf, off + 4, size)
        struct.pack_into("<I", buf, off + size - 4, size)
    for a, b in fills:
        struct.pack_into("<4sIQQ", buf, a, _RECORD_MAGIC, b - a, _FILLER_ID, 0)
        buf[a + 24] = 0xFF  # no BinXML token: the rest of the stretch stays, for what later records refer to
        struct.pack_into("<I", buf, b - 4, b - a)
    struct.pack_into("<QQIII", buf, 24, kept[0][2], _NO_ID, 0x80, kept[-1][0], at)
    struct.pack_into("<I", buf, 52, zlib.crc32(buf[_CHUNK_HEADER:at]))
    struct.pack_into("<I", buf, 120, 0)
    struct.pack_into("<I", buf, 124, zlib.crc32(buf[:120] + buf[128:_CHUNK_HEADER]))
    damage.chunk = bytes(buf)


def _rust_chunk(chunk: bytes) -> tuple[dict[int, dict], list[str]]:
    """The Rust parser's records of one 64 KiB chunk, by record id, and its complaints
    (none about fillers)."""
    from evtx import PyEvtxParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parser = PyEvtxParser(io.BytesIO(_file_header() + chunk), number_of_threads=1, skip_errors=True)
        records = {r["event_record_id"]: r for r in parser.records_json() if r["event_record_id"] != _FILLER_ID}
    said = [str(w.message).replace("\n", " ").removeprefix("Skipping EVTX data: RuntimeError: ") for w in caught]
    return records, [m[:200] for m in said if str(_FILLER_ID) not in m and "Failed to parse chunk " not in m]


def read_python(data: bytes, wanted: Wanted, warn: Warn, counts: dict, after: int = 0) -> Iterator[Record]:
    """A file's records by python-evtx (those ``wanted`` by channel and event id, with an
    record id above ``after``); warnings to ``warn``, the records read and not decoded
    counted in ``counts``."""
    problem = _head_problem(data[:_HEADER_SIZE])
    if len(data) < _HEADER_SIZE:
        raise InputError(f"{problem}: no chunk to read")
    present, tail = divmod(len(data) - _HEADER_SIZE, _CHUNK_SIZE)
    if problem:
        warn(f"{problem}: its chunks are read all the same")
    else:
        declared = int.from_bytes(data[42:44], "little")
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
        yield from _python_chunks(data, present + (tail > 0), wanted, warn, counts, after)
    finally:
        thaw()


@dataclass(slots=True)
class _Met:
    """The record ids of a file met so far: read (or skipped as read by an earlier run),
    and found but not decoded (→ the first complaint); a record is read once, from the
    first copy that decodes, and counted once."""

    read: set[int] = field(default_factory=set)
    unread: dict[int, str] = field(default_factory=dict)

    def close(self, counts: dict) -> None:
        """Count the records found that no copy of decoded: read, and unparsed."""
        lost = [rid for rid in self.unread if rid not in self.read]
        _count_lost(counts, lost)


def _python_chunks(
    data: bytes, slots: int, wanted: Wanted, warn: Warn, counts: dict, after: int = 0
) -> Iterator[Record]:
    """Every chunk slot's records: the sound chunks' as python-evtx reads them, then the
    damaged ones', each repaired around its whole records (a record a sound chunk also
    has is read from there, and one of two damaged chunks from the one trusted more)."""
    met = _Met()
    blank: list[bool] = []
    spans: dict[int, tuple[int, int]] = {}
    damaged: list[tuple[int, int]] = []
    for i in range(slots):
        off = _HEADER_SIZE + i * _CHUNK_SIZE
        raw = data[off : off + _CHUNK_SIZE]
        damage = _examine(raw, i, off, repair=False)
        blank.append(damage is None and raw[:8] != _CHUNK_MAGIC)
        if (span := _span(raw)) is not None:
            spans[i] = span
        if damage is not None:
            damaged.append((damage.trust, i))  # (repaired below: a repaired chunk is not kept meanwhile)
        elif not blank[-1]:
            _, again, _ = yield from _python_chunk(data, off, None, i, wanted, warn, counts, after, met)
            if again:
                warn(_Damage(i, off, []).say([], again, []))
    said: dict[int, list[str]] = {}
    for _, i in sorted(damaged):  # the chunks whose records can be trusted most first: theirs are read
        off = _HEADER_SIZE + i * _CHUNK_SIZE
        damage = _examine(data[off : off + _CHUNK_SIZE], i, off)
        if damage is None:
            continue
        notes = said[i] = []
        got: tuple[list[int], list[int], list[int]] = ([], [], [])
        if damage.chunk:
            offsets = [r[0] for r in damage.records]
            got = yield from _python_chunk(
                damage.chunk, 0, offsets, damage.index, wanted, notes.append, counts, after, met
            )
        for rid in damage.lost:
            met.unread.setdefault(rid, "")
        read, again, bad = got
        notes.append(damage.say(read, again, bad, met.unread.get(bad[0], "") if bad else ""))
    for i in sorted(said):  # (in the file's order)
        for note in said[i]:
            warn(note)
    met.close(counts)
    whole = (len(data) - _HEADER_SIZE) // _CHUNK_SIZE
    present = whole + (len(blank) > whole and not blank[-1])  # a partial last slot that is not blank counts
    for note in _missing_notes(data[:_HEADER_SIZE], blank[:whole], spans, _slot_place, present):
        warn(note)


def _slot_place(slot: int) -> tuple[int, int]:
    return slot, _HEADER_SIZE + slot * _CHUNK_SIZE


def _count_lost(counts: dict, ids: list[int]) -> None:
    """Whole records found that no parser could decode: read, and unparsed."""
    if ids:
        counts["records"] += len(ids)
        counts["failed"] = counts.get("failed", 0) + len(ids)
        note_id_range(counts, min(ids), max(ids))


def _python_chunk(
    buf: bytes,
    at: int,
    offsets: list[int] | None,
    index: int,
    wanted: Wanted,
    warn: Warn,
    counts: dict,
    after: int,
    met: _Met,
) -> Generator[Record, None, tuple[list[int], list[int], list[int]]]:
    """One chunk's records (at ``offsets`` in it, a damaged chunk's, or as python-evtx
    walks them); those it cannot decode, or does not reach, from the Rust parser. Returns
    the ids read, read before (from another chunk) and not decoded."""
    from Evtx.Evtx import ChunkHeader
    from Evtx.Evtx import Record as EvtxRecord
    from Evtx.Nodes import FiletimeTypeNode
    from Evtx.Views import render_root_node

    done: list[int] = []
    again: list[int] = []
    failed: dict[int, str] = {}
    stopped = None
    try:
        chunk = ChunkHeader(buf, at)
        records = chunk.records() if offsets is None else (EvtxRecord(buf, at + o, chunk) for o in offsets)
        for record in records:
            rid = record.record_num()
            if rid in met.read:
                again.append(rid)
                continue
            if not _seen(counts, rid, after):
                met.read.add(rid)
                continue
            try:
                root = record.root()  # parsed once: rendered here, its values reused below
                xml = render_root_node(root)
                m = _XML_EID.search(xml)
                c = _XML_CHANNEL.search(xml)
                if not wanted(c.group(1) if c else None, int(m.group(1)) if m else None):
                    rec = None
                else:
                    time = None
                    try:
                        for sub in root.substitutions():
                            if isinstance(sub, FiletimeTypeNode):
                                ticks = sub.unpack_qword(0)
                                time = _us_to_iso(ticks // 10 - _FILETIME_EPOCH_US)
                                break
                    except Exception:  # noqa: BLE001 - fall back to the rendered time
                        time = None
                    rec = record_from_xml(xml, time_override=time)
            except Exception as exc:  # noqa: BLE001 - python-evtx raises many kinds (and its XML may not be)
                failed[rid] = f"{type(exc).__name__}: {exc}"
                continue
            met.read.add(rid)
            counts["records"] += 1
            done.append(rid)
            if rec is not None:
                yield rec
    except Exception as exc:  # noqa: BLE001
        stopped = f"{type(exc).__name__}: {exc}"
    if not (failed or stopped):
        return done, again, []
    # the Rust parser reads what python-evtx could not
    rust, said = _rust_chunk(bytes(buf[at : at + _CHUNK_SIZE]))
    rescued = []
    for rid, raw in rust.items():
        if rid in failed:
            pass
        elif stopped is None or rid in met.read:
            continue
        elif not _seen(counts, rid, after):  # a record python-evtx did not reach
            met.read.add(rid)
            continue
        recs, bad = _json_records(raw["data"].encode(), [rid])
        if bad:
            failed.setdefault(rid, "the Rust parser's JSON of it cannot be read")
            continue
        failed.pop(rid, None)
        met.read.add(rid)
        counts["records"] += 1
        rescued.append(rid)
        if wanted(recs[0].channel, recs[0].event_id):
            yield recs[0]
    for rid, why in failed.items():  # (the Rust parser's complaint about it, else python-evtx's)
        met.unread.setdefault(rid, next((m for m in said if f"record number {rid}:" in m), why))
    where = f"chunk {index} (offset {_HEADER_SIZE + index * _CHUNK_SIZE:#x})"
    what = f"stopped ({stopped})" if stopped else f"cannot decode {len(rescued) + len(failed)} records"
    note = f"{where}: python-evtx {what}"
    if rescued:
        note += f"; {len(rescued)} (ids {_ids(rescued)}) read with the Rust parser instead"
    if failed and offsets is None:  # (a damaged chunk's warning says which were not decoded)
        note += f"; {len(failed)} (ids {_ids(list(failed))}) not decoded by either ({next(iter(failed.values()))})"
    if rescued or offsets is None:
        warn(note[:500])
    return done + rescued, again, list(failed)


def chunk_ranges(path: str, per_part: int, workers: int = 1) -> list[tuple[int, int]] | None:
    """Split a file's chunks, up to the last one that is not blank (a log not yet full has
    empty space after its chunks), into ranges of about ``per_part`` for separate parsers,
    as many as a multiple of ``workers`` (so that they finish together); None when the
    file is not worth splitting, or has something wrong that one parser over the whole
    file sees (a damaged file header, a chunk cut short at its end, a chunk repeated)."""
    try:
        with open(path, "rb") as fh:
            layout = _layout(fh)
    except OSError:
        return None
    used = layout.used
    if layout.troubled or used < 2 * per_part:
        return None
    if workers > 1:  # equal ranges (±1 chunk), as many as a multiple of the workers
        count = workers * max(1, round(used / (workers * per_part)))
        return [(used * k // count, used * (k + 1) // count) for k in range(count)]
    return [(lo, min(lo + per_part, used)) for lo in range(0, used, per_part)]


class ChunkRange(io.RawIOBase):
    """A file's header (or ``head`` in its place) followed by some of its chunks (``lo``…
    ``hi-1``, or the indexes ``chunks``): what a parser sees as a whole EVTX file (chunks
    are self-contained; the header's chunk count is not relied on)."""

    def __init__(
        self,
        source: str | BinaryIO,
        lo: int = 0,
        hi: int = 0,
        chunks: list[int] | None = None,
        head: bytes | None = None,
    ) -> None:
        super().__init__()
        self._own = isinstance(source, str)
        self._fh = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115 - closed with this
        self._fh.seek(0)
        self._head = self._fh.read(_HEADER_SIZE) if head is None else head
        self._chunks = list(range(lo, hi)) if chunks is None else list(chunks)
        self._size = _HEADER_SIZE + len(self._chunks) * _CHUNK_SIZE
        self._pos = 0

    @property
    def head(self) -> bytes:
        """The file header this range is shown with."""
        return self._head

    def chunk_index(self, k: int) -> int:
        """The number in its file of this range's chunk ``k``."""
        return self._chunks[k]

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


@dataclass(slots=True)
class _Layout:
    """A file's headers, read without parsing it: the file header, and per 64 KiB slot
    whether it is blank and which record ids its chunk header gives."""

    head: bytes
    slots: int  # whole 64 KiB slots after the file header
    tail: bool  # a last, partial slot that is not blank: a chunk cut short
    used: int  # slots up to the last one that is not blank
    spans: dict[int, tuple[int, int]]  # slot → (first, last record id), where the header has a believable range
    again: set[int]  # slots whose ids an earlier slot's header gives too: a chunk repeated
    holes: bool  # a chunk missing: a slot that starts blank where one should be, or the file ends before it

    @property
    def troubled(self) -> bool:
        """Something a parser would not say (or would stop at) is wrong."""
        return bool(self.tail or self.again or self.holes or _head_problem(self.head))


def _starts(fh: BinaryIO, slots: int) -> list[bytes]:
    """The first 40 bytes of each of a file's 64 KiB slots (a file on disk: mapped, not read
    a slot at a time)."""
    try:
        fd = fh.fileno() if slots else -1
    except (OSError, ValueError):  # (io.UnsupportedOperation: a stream, not a file)
        fd = -1
    if fd >= 0:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
            return [mm[at : at + 40] for at in range(_HEADER_SIZE, _HEADER_SIZE + slots * _CHUNK_SIZE, _CHUNK_SIZE)]
    out = []
    for i in range(slots):
        fh.seek(_HEADER_SIZE + i * _CHUNK_SIZE)
        out.append(fh.read(40))
    return out


def _layout(fh: BinaryIO) -> _Layout:
    """Read a file's headers (4 KiB, then 40 bytes a chunk, and a partial last slot)."""
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    head = fh.read(_HEADER_SIZE)
    slots, tail = divmod(max(size - _HEADER_SIZE, 0), _CHUNK_SIZE)
    spans: dict[int, tuple[int, int]] = {}
    used = 0
    blank = []
    zero = bytes(8)
    for i, start in enumerate(_starts(fh, slots)):
        blank.append(start[:8] == zero)
        if not blank[-1]:  # a chunk, or leftovers a parser should see and report
            used = i + 1
        if (span := _span(start)) is not None:
            spans[i] = span
    if tail:
        fh.seek(_HEADER_SIZE + slots * _CHUNK_SIZE)
        tail = bool(fh.read(_CHUNK_SIZE).strip(b"\x00"))
    # a slot whose range meets one before it in id order: the later of the two in the file repeats
    again: set[int] = set()
    reach: tuple[int, int] | None = None  # (last id, slot) of the ranges so far
    for slot, (first, last) in sorted(spans.items(), key=lambda s: (s[1][0], s[0])):
        if reach is not None and first <= reach[0]:
            again.add(max(slot, reach[1]))
            reach = (max(last, reach[0]), min(slot, reach[1]))
        else:
            reach = (last, slot)
    present = None if isinstance(fh, ChunkRange) else slots + bool(tail)
    holes = bool(_missing_notes(head, blank, spans, lambda k: _place(fh, k), present))
    return _Layout(head, slots, bool(tail), used, spans, again, holes)


def _once(records: Iterator[dict]) -> Iterator[dict]:
    """Records, each id once."""
    ids = set()
    for record in records:
        if (rid := record["event_record_id"]) not in ids:
            ids.add(rid)
            yield record


def _place(fh: BinaryIO, slot: int) -> tuple[int, int]:
    """A slot of what a parser reads → (chunk number, offset) in the file it comes from."""
    index = fh.chunk_index(slot) if isinstance(fh, ChunkRange) else slot
    return index, _HEADER_SIZE + index * _CHUNK_SIZE


def _recovered(fh: BinaryIO, layout: _Layout, seen: list, notes: list[str], counts: dict) -> Iterator[dict]:
    """After the parser's pass over a file with something wrong: the records of every chunk
    it did not read whole (damaged, cut short, refused, or repeating another), from the
    chunk repaired around them, in the parser's shape, the chunks trusted most first (a
    record two damaged chunks have is read from the one whose checksum matches, or that
    was only cut short); a warning for each such chunk, in the file's order."""
    have = set(seen)
    met = _Met(have)
    blank = []
    todo = []
    for slot in range(layout.slots + layout.tail):
        fh.seek(_HEADER_SIZE + slot * _CHUNK_SIZE)
        raw = fh.read(_CHUNK_SIZE)
        blank.append(not raw.strip(b"\x00"))
        span = layout.spans.get(slot)
        suspect = None
        if slot in layout.again:
            suspect = ""
        elif span is not None and span[1] not in have:
            suspect = "the parser did not read it whole"
        damage = _examine(raw, *_place(fh, slot), suspect, repair=False)
        if damage is not None:
            todo.append((damage.trust, slot, suspect))
    said: dict[int, str] = {}
    for _, slot, suspect in sorted(todo):
        fh.seek(_HEADER_SIZE + slot * _CHUNK_SIZE)
        damage = _examine(fh.read(_CHUNK_SIZE), *_place(fh, slot), suspect)
        if damage is None:
            continue
        # a chunk whose checks pass was read by the parser (some of it): what it has is its own,
        # unless another chunk's header claims it too
        parsed = damage.problems in ([], [suspect])
        others = [s for k, s in layout.spans.items() if k != slot]
        read, again, bad, complaints = [], [], [], []
        fresh = [r for r in damage.records if r[2] not in have]
        got, complaints = _rust_chunk(damage.chunk) if damage.chunk and fresh else ({}, [])
        for _, _, rid in damage.records:
            if rid in have:
                mine = parsed and not any(a <= rid <= b for a, b in others)
                (read if mine else again).append(rid)
            elif rid in got:
                have.add(rid)
                read.append(rid)
                yield got[rid]
            else:
                bad.append(rid)
                met.unread.setdefault(rid, next((m for m in complaints if f"record number {rid}:" in m), ""))
        for rid in damage.lost:
            met.unread.setdefault(rid, "")
        said[slot] = damage.say(read, again, bad, met.unread.get(bad[0], "") if bad else "")
    met.close(counts)
    notes.extend(said[k] for k in sorted(said))
    present = None if isinstance(fh, ChunkRange) else len(blank)
    notes.extend(_missing_notes(layout.head, blank[: layout.slots], layout.spans, lambda k: _place(fh, k), present))


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


def batch_table(
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
        return pc.cast(pc.if_else(pc.match_substring_regex(t, ID_DIGITS), t, pa.scalar(None, pa.string())), pa.int64())

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


def _json_records(blob: bytes, ids: list[int]) -> tuple[list[Record], list[int]]:
    """The records of a batch the JSON reader refused, one by one (a damaged name is written
    by the parser as it is, control characters and line breaks included: taken as they
    are), and the ids of any that is not JSON even so (the next is looked for on the next line)."""
    text = blob.decode("utf-8", "replace")
    decode = json.JSONDecoder(strict=False).raw_decode
    recs: list[Record] = []
    bad: list[int] = []
    at = 0
    for rid in ids:
        try:
            event, end = decode(text, at)
        except ValueError:
            event, end = None, text.find("\n", at)
        at = end + 1 if end >= 0 else len(text)  # (past the line break after it)
        if not isinstance(event, dict):
            bad.append(rid)
            continue
        rec = record_from_json(event)
        rec.record_id = rec.record_id if rec.record_id is not None else rid
        recs.append(rec)
    return recs, bad


_UNSEEN: tuple = (None, [], None)  # a shortcut not yet taken (distinct from None: an id to skip)


def by_entry(sem, table: pa.Table, eid: int) -> list[tuple[object, pa.Table]]:
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
    collect: list[Bucket] | None = None,
):
    """The Rust parser's records, prefiltered on their JSON text and parsed column-wise:
    yields lists of (table entry, Arrow table of its records) per batch of wanted records.
    ``threads``: the parser's own worker threads (0: one per CPU); ``only``: just these record ids;
    ``json_threads``: pyarrow's JSON reader on its thread pool (not in a worker process,
    where the workers are the parallelism). A damaged file's sound chunks are read as any
    file's; its damaged ones afterwards, each repaired around its whole records.
    ``collect``: each batch's records are not parsed but added to it (event id, their JSON
    texts, their ids), for :func:`bucket_tables` over several files' at once (what is
    yielded is then empty)."""
    fh, layout = _surveyed(fileobj)
    try:
        yield from _rust_tables(
            fileobj, fh, layout, sem, warn, counts, batch, after, threads, only, json_threads, collect
        )
    finally:
        if fh is not None and fh is not fileobj:
            fh.close()


def _surveyed(fileobj) -> tuple[BinaryIO | None, _Layout | None]:
    """The file (opened when named by its path) and its headers; (None, None) when it cannot
    be read here (the parser then says why). Some chunks of a file with a sound header (a
    worker's part, whose file was found sound as a whole): (the chunks, None), their headers
    read only if the parser complains."""
    if isinstance(fileobj, ChunkRange) and not _head_problem(fileobj.head):
        return fileobj, None
    try:
        fh = open(fileobj, "rb") if isinstance(fileobj, str) else fileobj  # noqa: SIM115 - closed by the caller
    except OSError:
        return None, None
    try:
        layout = _layout(fh)
        if not isinstance(fileobj, str):
            fh.seek(0)
    except (OSError, ValueError):
        if fh is not fileobj:
            fh.close()
        return None, None
    return fh, layout


Bucket = tuple[int, bytes, list[int]]  # one event id's records: (the id, their JSON texts a line each, their ids)


def field_names_by_id(sem) -> dict[int, frozenset[str]]:
    """Per event id, the data fields its table entries use (what a parse keeps)."""
    from .windows import field_names

    by_id: dict[int, list] = {}
    for (_, eid), entries in sem.entries.items():
        by_id.setdefault(eid, []).extend(entries)
    return {eid: frozenset().union(*map(field_names, entries)) for eid, entries in by_id.items()}


def bucket_tables(sem, bucket: Bucket, names: frozenset[str], json_threads: bool, counts: dict, warn: Warn) -> list:
    """One event id's records (a :data:`Bucket`) → (table entry, Arrow table of its
    records) for each entry that takes them: in one go by the JSON reader, else record by
    record (those that are not JSON counted ``failed`` and said)."""
    from .windows import table_from_records

    eid, blob, ids = bucket
    table = batch_table(blob, ids, json_threads, (eid, names))
    if table is None:
        recs, bad = _json_records(blob, ids)
        if bad:
            counts["failed"] = counts.get("failed", 0) + len(bad)
            warn(f"records {_ids(bad)}: the parser's JSON of them cannot be read; not used")
        table = table_from_records(recs)
    return by_entry(sem, table, eid)


def joined_table(buckets: list[Bucket], names: frozenset[str], json_threads: bool) -> pa.Table | None:
    """Buckets of one event id (several files' records) read as one table by one JSON read,
    their rows in order; None when the reader refuses them together, or when its rows are not
    their records one for one (the files' rows could not be told apart)."""
    eid = buckets[0][0]
    ids = [r for _, _, got in buckets for r in got]
    table = batch_table(b"".join(blob for _, blob, _ in buckets), ids, json_threads, (eid, names))
    return None if table is None or table.num_rows != len(ids) else table


def _rust_tables(fileobj, fh, layout, sem, warn, counts, batch, after, threads, only, json_threads, collect):
    """read_rust_tables's body: ``fh`` and ``layout`` as _surveyed gives them."""
    from evtx import PyEvtxParser

    source = fileobj
    if layout is not None:
        problem = _head_problem(layout.head)
        if len(layout.head) < _HEADER_SIZE:
            raise InputError(f"{problem}: no chunk to read")
        if problem:
            warn(f"{problem}: its chunks are read all the same")
        if problem:  # a sound header in its place
            source = ChunkRange(fh, 0, layout.slots, head=_file_header(layout.slots))
    # the checksums are checked, so that a damaged chunk is not read as if it were sound:
    # the parser skips it, and it is read afterwards, repaired around its whole records
    parser = PyEvtxParser(source, number_of_threads=threads, skip_errors=True, validate_checksums=True)
    # the records are bucketed by event id alone, the one thing found per record; the
    # channel is a column of the parsed batch and is matched there, once per batch
    names_of = field_names_by_id(sem)
    # per event id: (write, record ids, buffer) — each record's JSON is written out as
    # UTF-8 at once (its text is then freed: its memory, still in the cache, serves the
    # next record), one a line, as the JSON reader takes them
    buckets: dict[int, tuple[Callable, list[int], io.BytesIO]] = {}
    pending = 0

    def flush() -> list:
        frames = []
        for eid, (_, ids, buffer) in buckets.items():
            if collect is not None:
                collect.append((eid, buffer.getvalue(), ids))
            else:
                bucket = (eid, buffer.getvalue(), ids)
                frames.extend(bucket_tables(sem, bucket, names_of[eid], json_threads, counts, warn))
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
    notes: list[str] = []  # about the chunks read after the parser's pass
    recovering = False

    def passes() -> Iterator[Iterator[dict]]:
        """The parser's pass; then, when it complained or the headers show something wrong,
        the chunks it did not read whole."""
        nonlocal recovering
        # a chunk repeated: its records are passed on once (a sound chunk's copy: a damaged
        # chunk is left to the repair)
        yield _once(parser.records_json()) if layout is not None and layout.again else parser.records_json()
        found = _layout(fh) if layout is None and fh is not None and caught else layout
        if found is not None and (caught or found.troubled):
            recovering = True
            yield _recovered(fh, found, seen, notes, counts)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for raw in itertools.chain.from_iterable(passes()):
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
    said = set()
    for msg in [str(w.message).replace("\n", " ")[:300] for w in caught] + notes:
        # a chunk the parser refused is said again, as read afterwards
        if msg not in said and not (recovering and "Failed to parse chunk " in msg):
            said.add(msg)
            warn(msg)
