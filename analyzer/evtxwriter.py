"""A small EVTX writer: real files for samples, tests and benchmarks.

Layout (as Windows writes it): a 4 KiB file header, then 64 KiB chunks. Each chunk has a
512-byte header (record numbers, free-space offset, CRC32 of the records and of the header,
a common-string table and a template table), then event records. A record holds BinXML:
a fragment header and a *template instance* — the template (the Event element tree with
substitution tokens where values go) is defined inline the first time a chunk uses it and
referred to by offset afterwards — followed by the substitution values with their types.

    with EvtxWriter(path) as w:
        w.write(Event(event_id=4625, channel="Security", provider=SECURITY, computer="DC01",
                      time=datetime(...), data={"TargetUserName": "Administrator", ...}))

Values are typed like Windows types them where it matters to readers (numbers, hex
codes, FILETIME); everything else is a UTF-16 string.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Event", "EvtxWriter", "SECURITY", "SCM", "EVENTLOG", "WINRM", "OPENSSH"]

SECURITY = ("Microsoft-Windows-Security-Auditing", "{54849625-5478-4994-A5BA-3E3B0328C30D}")
SCM = ("Service Control Manager", "{555908d1-a6d7-4695-8e1e-26931d2012f4}")
EVENTLOG = ("Microsoft-Windows-Eventlog", "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}")
WINRM = ("Microsoft-Windows-WinRM", "{a7975c8f-ac13-49f1-87da-5a984a4ab417}")
OPENSSH = ("OpenSSH", "{C4B57D35-0636-4BC3-A262-370F249F9802}")

_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
_CHUNK = 0x10000
_FILE_HEADER = 0x1000
_CHUNK_HEADER = 0x200
_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)

# value types
T_NULL, T_STRING, T_UINT8, T_UINT16, T_UINT32, T_UINT64 = 0x00, 0x01, 0x04, 0x06, 0x08, 0x0A
T_FILETIME, T_HEX32, T_HEX64 = 0x11, 0x14, 0x15
# fields Windows types as numbers or hex (the rest are strings)
FIELD_TYPES = {
    "LogonType": T_UINT32,
    "Status": T_HEX32,
    "SubStatus": T_HEX32,
    "ProcessId": T_HEX64,
    "KeyLength": T_UINT32,
}


@dataclass
class Event:
    event_id: int
    channel: str
    provider: tuple[str, str]
    computer: str
    time: dt.datetime
    data: dict[str, object] = field(default_factory=dict)
    level: int = 0
    task: int = 0
    keywords: int = 0x8010000000000000
    process_id: int = 4
    thread_id: int = 100
    qualifiers: int | None = None


def _filetime(t: dt.datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _name_hash(name: str) -> int:
    h = 0
    for ch in name.encode("utf-16-le")[::2]:
        h = (h * 65599 + ch) & 0xFFFFFFFF
    return h & 0xFFFF


class _Chunk:
    """One 64 KiB chunk being filled."""

    def __init__(self, first_record: int) -> None:
        self.buf = bytearray(_CHUNK_HEADER)
        self.first = first_record
        self.last = first_record - 1
        self.last_offset = 0
        self.names: dict[str, int] = {}  # name → offset of its inline definition
        self.templates: dict[bytes, int] = {}  # template key → offset of its definition

    # -- BinXML pieces (each appends to a bytearray that will sit at chunk offset ``base``)
    def name(self, out: bytearray, base: int, text: str) -> None:
        """A name reference; the first use in the chunk defines it inline."""
        if text in self.names:
            out += struct.pack("<I", self.names[text])
            return
        here = base + len(out) + 4
        out += struct.pack("<I", here)
        self.names[text] = here
        encoded = text.encode("utf-16-le")
        out += struct.pack("<IHH", 0, _name_hash(text), len(text)) + encoded + b"\x00\x00"

    def element(self, out: bytearray, base: int, tag: str, attrs: list[tuple[str, object]], children: list) -> None:
        """<tag attrs>children</tag>; attribute values and children are text or ('sub', index, type)."""
        start = len(out)
        out += bytes([0x41 if attrs else 0x01]) + struct.pack("<H", 0xFFFF)
        size_at = len(out)
        out += b"\x00\x00\x00\x00"  # data size, patched below
        self.name(out, base, tag)
        if attrs:
            list_at = len(out)
            out += b"\x00\x00\x00\x00"  # attribute list size, patched below
            for i, (aname, value) in enumerate(attrs):
                out += bytes([0x46 if i < len(attrs) - 1 else 0x06])
                self.name(out, base, aname)
                self.value(out, value)
            struct.pack_into("<I", out, list_at, len(out) - list_at - 4)
        if children:
            out += b"\x02"
            for child in children:
                if isinstance(child, tuple) and child[0] == "el":
                    self.element(out, base, child[1], child[2], child[3])
                else:
                    self.value(out, child)
            out += b"\x04"
        else:
            out += b"\x03"
        struct.pack_into("<I", out, size_at, len(out) - size_at - 4)
        del start

    @staticmethod
    def value(out: bytearray, value: object) -> None:
        if isinstance(value, tuple) and value[0] == "sub":
            _, index, vtype = value
            out += struct.pack("<BHB", 0x0E, index, vtype)  # optional substitution
        else:
            text = str(value)
            out += struct.pack("<BBH", 0x05, T_STRING, len(text)) + text.encode("utf-16-le")


def _template(ev: Event, names: list[str]) -> tuple:
    """The Event element tree with substitutions; values 0-12 are System, then EventData."""
    eid_attrs = [("Qualifiers", ("sub", 13, T_UINT16))] if ev.qualifiers is not None else []
    system = (
        "el",
        "System",
        [],
        [
            ("el", "Provider", [("Name", ev.provider[0]), ("Guid", ev.provider[1])], []),
            ("el", "EventID", eid_attrs, [("sub", 0, T_UINT16)]),
            ("el", "Version", [], [("sub", 1, T_UINT8)]),
            ("el", "Level", [], [("sub", 2, T_UINT8)]),
            ("el", "Task", [], [("sub", 3, T_UINT16)]),
            ("el", "Opcode", [], [("sub", 4, T_UINT8)]),
            ("el", "Keywords", [], [("sub", 5, T_HEX64)]),
            ("el", "TimeCreated", [("SystemTime", ("sub", 6, T_FILETIME))], []),
            ("el", "EventRecordID", [], [("sub", 7, T_UINT64)]),
            ("el", "Correlation", [], []),
            ("el", "Execution", [("ProcessID", ("sub", 8, T_UINT32)), ("ThreadID", ("sub", 9, T_UINT32))], []),
            ("el", "Channel", [], [("sub", 10, T_STRING)]),
            ("el", "Computer", [], [("sub", 11, T_STRING)]),
            ("el", "Security", [], []),
        ],
    )
    first = 14 if ev.qualifiers is not None else 12
    data = [
        ("el", "Data", [("Name", n)], [("sub", first + i, FIELD_TYPES.get(n, T_STRING))]) for i, n in enumerate(names)
    ]
    return ("el", "Event", [("xmlns", _NS)], [system, ("el", "EventData", [], data)])


def _encode(vtype: int, value: object) -> bytes:
    if value is None:
        return b""
    if vtype == T_STRING:
        return str(value).encode("utf-16-le")
    if vtype == T_UINT8:
        return struct.pack("<B", int(value))
    if vtype == T_UINT16:
        return struct.pack("<H", int(value))
    if vtype in (T_UINT32, T_HEX32):
        return struct.pack("<I", int(str(value), 0) if isinstance(value, str) else int(value))
    if vtype in (T_UINT64, T_HEX64, T_FILETIME):
        return struct.pack("<Q", int(str(value), 0) if isinstance(value, str) else int(value))
    raise ValueError(f"no encoding for value type {vtype:#x}")


class EvtxWriter:
    """Write events to an EVTX file; close() (or the context manager) finishes it."""

    def __init__(self, path: str | Path, first_record_id: int = 1, system_id_offset: int = 0) -> None:
        """``system_id_offset``: each record's System EventRecordID is its header's number plus
        this (as in records cut out of a larger log; 0 in a log Windows wrote)."""
        self.path = Path(path)
        self.next_id = first_record_id
        self.system_id_offset = system_id_offset
        self.chunks: list[bytes] = []
        self.chunk = _Chunk(self.next_id)

    def __enter__(self) -> EvtxWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, ev: Event) -> int:
        """Append one event; return its record id."""
        record = self._record(ev, self.chunk, len(self.chunk.buf))
        if len(self.chunk.buf) + len(record) > _CHUNK:
            self._finish_chunk()
            record = self._record(ev, self.chunk, len(self.chunk.buf))
        self.chunk.last_offset = len(self.chunk.buf)
        self.chunk.buf += record
        self.chunk.last = self.next_id
        self.next_id += 1
        return self.chunk.last

    def _record(self, ev: Event, chunk: _Chunk, at: int) -> bytes:
        names = list(ev.data)
        values: list[tuple[int, object]] = [
            (T_UINT16, ev.event_id),
            (T_UINT8, 0),
            (T_UINT8, ev.level),
            (T_UINT16, ev.task),
            (T_UINT8, 0),
            (T_HEX64, ev.keywords),
            (T_FILETIME, _filetime(ev.time)),
            (T_UINT64, self.next_id + self.system_id_offset),
            (T_UINT32, ev.process_id),
            (T_UINT32, ev.thread_id),
            (T_STRING, ev.channel),
            (T_STRING, ev.computer),
        ]
        if ev.qualifiers is not None:
            values += [(T_NULL, None), (T_UINT16, ev.qualifiers)]
        for n in names:
            v = ev.data[n]
            vtype = FIELD_TYPES.get(n, T_STRING)
            values.append((T_NULL, None) if v is None else (vtype, v))
        key = hashlib.sha1(repr((ev.provider, ev.qualifiers is not None, names)).encode()).digest()
        body = bytearray()
        base = at + 24  # BinXML starts after the record header
        body += b"\x0f\x01\x01\x00"  # fragment header
        body += b"\x0c\x01" + struct.pack("<I", int.from_bytes(key[:4], "little"))
        if key in chunk.templates:
            body += struct.pack("<I", chunk.templates[key])
        else:
            here = base + len(body) + 4
            body += struct.pack("<I", here)
            chunk.templates[key] = here
            tpl = bytearray()
            tpl_base = here + 24  # after next-offset, GUID and size
            tpl += b"\x0f\x01\x01\x00"
            chunk.element(tpl, tpl_base, *_template(ev, names)[1:])
            tpl += b"\x00"  # end of fragment
            body += struct.pack("<I", 0) + key[:16] + struct.pack("<I", len(tpl)) + tpl
        encoded = [_encode(t, v) for t, v in values]
        body += struct.pack("<I", len(values))
        for (t, _), e in zip(values, encoded, strict=True):
            body += struct.pack("<HBB", len(e), t, 0)
        for e in encoded:
            body += e
        size = 24 + len(body) + 4
        return struct.pack("<IIQQ", 0x00002A2A, size, self.next_id, _filetime(ev.time)) + body + struct.pack("<I", size)

    def _finish_chunk(self) -> None:
        c = self.chunk
        if c.last < c.first:
            return
        free = len(c.buf)
        data = bytes(c.buf) + b"\x00" * (_CHUNK - free)
        header = bytearray(data[:_CHUNK_HEADER])
        header[0:8] = b"ElfChnk\x00"
        struct.pack_into("<QQQQ", header, 8, c.first, c.last, c.first, c.last)
        struct.pack_into("<III", header, 40, 0x80, c.last_offset, free)
        struct.pack_into("<I", header, 52, zlib.crc32(data[_CHUNK_HEADER:free]))
        struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120]) + bytes(header[128:_CHUNK_HEADER])))
        self.chunks.append(bytes(header) + data[_CHUNK_HEADER:])
        self.chunk = _Chunk(self.next_id)

    def close(self) -> None:
        self._finish_chunk()
        header = bytearray(_FILE_HEADER)
        header[0:8] = b"ElfFile\x00"
        n = len(self.chunks)
        struct.pack_into("<QQQ", header, 8, 0, max(n - 1, 0), self.next_id)
        struct.pack_into("<IHHHH", header, 32, 0x80, 1, 3, _FILE_HEADER, n)
        struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
        with open(self.path, "wb") as fh:
            fh.write(header)
            for chunk in self.chunks:
                fh.write(chunk)
