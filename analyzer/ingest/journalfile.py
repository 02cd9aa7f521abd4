"""systemd journal files: what journald writes under ``/var/log/journal`` (``*.journal``,
``*.journal~``), read without ``journalctl`` (a support engineer's laptop may have none).

The layout (systemd's ``docs/JOURNAL_FILE_FORMAT.md``): a header, then 8-byte aligned
objects, each ``{type u8, flags u8, 6 reserved, size u64}`` and its payload. An ENTRY object
holds one record's time and the offsets of its DATA objects, each one ``FIELD=value`` shared
by every entry that has it; a DATA object larger than journald's threshold (512 bytes) is
compressed with xz, lz4 or zstd. "Compact" files (systemd 252 and later) store 32-bit offsets.

Entries are read in the file's order (the order journald appended them); a file that
journald was still writing, or that was cut short, is read up to its last whole object.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Callable, Iterator

import pyarrow as pa

from ..errors import InputError

MAGIC = b"LPKSHHRH"
_HEADER_MIN = 208  # through tail_entry_monotonic: every version since the format began

# incompatible flags
_XZ, _LZ4, _KEYED_HASH, _ZSTD, _COMPACT = 1, 2, 4, 8, 16
_KNOWN = _XZ | _LZ4 | _KEYED_HASH | _ZSTD | _COMPACT
# object types and their compression flags
_DATA, _ENTRY = 1, 3
_OBJ_XZ, _OBJ_LZ4, _OBJ_ZSTD = 1, 2, 4
_OBJECT = struct.Struct("<BB6xQ")
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")

# the fields a record needs (the rest are skipped without being decoded)
FIELDS = frozenset({"MESSAGE", "_HOSTNAME", "SYSLOG_IDENTIFIER", "_COMM", "SYSLOG_PID", "_PID"})
MAX_FIELD = 1 << 24  # a field this large after decompression is not a log message: left out

Warn = Callable[[str], None]


def journal_records(data: bytes, warn: Warn) -> Iterator[dict[str, str | int]]:
    """The entries of a journal file as dicts of the fields in FIELDS (values decoded as
    UTF-8, invalid bytes replaced) and ``__REALTIME_TIMESTAMP`` (µs since the epoch)."""
    view = memoryview(data)
    if len(view) < _HEADER_MIN or bytes(view[:8]) != MAGIC:
        raise InputError("not a systemd journal file (header missing or cut short)")
    incompat = _U32.unpack_from(view, 12)[0]
    if incompat & ~_KNOWN:
        raise InputError(
            f"a journal file with features this reader does not know (flags {incompat:#x}): "
            "export it with `journalctl --file FILE -o export`"
        )
    compact = bool(incompat & _COMPACT)
    header_size, arena_size = struct.unpack_from("<QQ", view, 88)
    tail = _U64.unpack_from(view, 136)[0]  # the last object journald finished
    end = min(len(view), header_size + arena_size)
    fields: dict[int, tuple[str, str] | None] = {}  # shared DATA objects' offsets → their field, if wanted
    pos = header_size
    while pos + _OBJECT.size <= end:
        kind, _, size = _OBJECT.unpack_from(view, pos)
        if kind == 0 or size < _OBJECT.size or pos + size > end:
            if pos <= tail:
                warn(f"the journal file is damaged or cut short at byte {pos:,}: the entries after it are not read")
            break
        if kind == _ENTRY and size >= 64:
            rec: dict[str, str | int] = {"__REALTIME_TIMESTAMP": _U64.unpack_from(view, pos + 24)[0]}
            n = (size - 64) // (4 if compact else 16)
            offsets = struct.unpack_from(f"<{n}I", view, pos + 64) if compact else (
                struct.unpack_from(f"<{2 * n}Q", view, pos + 64)[::2]  # (offset, hash) pairs
            )
            for off in offsets:
                got = fields.get(off, _UNSEEN)
                if got is _UNSEEN:
                    got = _field(view, off, end, compact, warn)
                    if _shared(view, off, end):  # the same host or program in many entries: read once
                        fields[off] = got
                if got is not None:
                    rec[got[0]] = got[1]
            yield rec
        pos += (size + 7) & ~7


_UNSEEN = object()


def _shared(view: memoryview, off: int, end: int) -> bool:
    """Whether the DATA object at ``off`` belongs to more than one entry (its n_entries):
    only those are worth keeping decoded — a message is most often in one entry alone, and
    keeping every one would hold the whole journal decoded."""
    return off + 64 <= end and _U64.unpack_from(view, off + 56)[0] > 1


def _field(view: memoryview, off: int, end: int, compact: bool, warn: Warn) -> tuple[str, str] | None:
    """The DATA object at ``off`` as (field, value) when its field is one of FIELDS."""
    if off + 64 > end:
        return None
    kind, flags, size = _OBJECT.unpack_from(view, off)
    start = off + (72 if compact else 64)
    if kind != _DATA or off + size > end or start > off + size:
        return None
    payload = view[start : off + size]
    if flags & (_OBJ_XZ | _OBJ_LZ4 | _OBJ_ZSTD):
        try:
            payload = memoryview(_decompress(flags, payload))
        except (ValueError, lzma.LZMAError, OSError, pa.ArrowException) as exc:
            warn(f"a compressed field at byte {off:,} could not be read ({exc}); its entries lack it")
            return None
    eq = bytes(payload[:64]).find(b"=")
    if eq <= 0:
        return None
    name = bytes(payload[:eq]).decode("ascii", "replace")
    if name not in FIELDS:
        return None
    return name, bytes(payload[eq + 1 :]).decode("utf-8", "replace")


def _decompress(flags: int, payload: memoryview) -> bytes:
    if flags & _OBJ_XZ:
        return lzma.LZMADecompressor().decompress(payload, max_length=MAX_FIELD)
    if flags & _OBJ_LZ4:  # the size (le64), then an LZ4 block
        size = _U64.unpack_from(payload, 0)[0]
        if size > MAX_FIELD:
            raise ValueError(f"{size:,} bytes")
        return pa.Codec("lz4_raw").decompress(payload[8:], decompressed_size=size, asbytes=True)
    size = _zstd_size(payload)
    if size is None or size > MAX_FIELD:
        raise ValueError("a zstd frame without its size" if size is None else f"{size:,} bytes")
    return pa.Codec("zstd").decompress(payload, decompressed_size=size, asbytes=True)


def _zstd_size(frame: memoryview) -> int | None:
    """The content size a zstd frame's header gives (journald compresses in one call, which
    writes it), or None."""
    if len(frame) < 6 or _U32.unpack_from(frame, 0)[0] != 0xFD2FB528:
        raise ValueError("not a zstd frame")
    fhd = frame[4]
    single = bool(fhd & 0x20)
    fcs_size = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    if not fcs_size:
        return None
    at = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
    if at + fcs_size > len(frame):
        return None
    value = int.from_bytes(frame[at : at + fcs_size], "little")
    return value + 256 if fcs_size == 2 else value
