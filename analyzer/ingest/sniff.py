"""Format detection by content, never by file name.

Archives (gzip, zip, tar) are recognized and opened by :mod:`sources`; what reaches
:func:`sniff` is a leaf stream's first bytes. Rules are tried in order; each is a
small function over the head, listed in :data:`RULES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .holes import head_without_holes
from .syslog import HEADERS

__all__ = ["sniff", "FORMATS", "RULES", "UNREAD"]

FORMATS = (
    "evtx",
    "journal-file",
    "journal-export",
    "journal-json",
    "pfirewall",
    "windows-xml",
    "windows-json",
    "syslog",
)

_HEADER_RES = [re.compile(regex.encode()) for _, regex in HEADERS]
_EXPORT_KEY = re.compile(
    rb"^(?:__CURSOR|__REALTIME_TIMESTAMP|__MONOTONIC_TIMESTAMP|_BOOT_ID|MESSAGE|PRIORITY|_HOSTNAME)=", re.M
)


def _lines(head: bytes, n: int = 200) -> list[bytes]:
    out = []
    for line in head.split(b"\n")[:-1] or head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line.strip():
            out.append(line)
        if len(out) >= n:
            break
    return out


def _evtx(head: bytes) -> bool:
    return head.startswith(b"ElfFile\x00")


def _journal_export(head: bytes) -> bool:
    return head.startswith((b"__CURSOR=", b"__REALTIME_TIMESTAMP=")) or (
        len(_EXPORT_KEY.findall(head[:4096])) >= 3 and b"\n\n" in head + b"\n\n"
    )


def _journal_json(head: bytes) -> bool:
    """Every line a JSON object, and at least one a journal record."""
    lines = _lines(head, 50)
    if not lines or not all(line.startswith(b"{") for line in lines):
        return False
    for line in lines:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # (objects in objects thousands deep)
            continue
        if isinstance(obj, dict) and ("__REALTIME_TIMESTAMP" in obj or "MESSAGE" in obj):
            return True
    return False


def _pfirewall(head: bytes) -> bool:
    return (
        b"#Software: Microsoft Windows Firewall" in head[:2048]
        or head.lstrip(b"\xef\xbb\xbf").startswith(b"#Version:")
        and b"#Fields: date time action" in head[:4096]
    )


def _windows_xml(head: bytes) -> bool:
    h = head.lstrip(b"\xef\xbb\xbf\r\n\t ")
    text = h[:4096].decode("utf-16") if h[:2] in (b"\xff\xfe", b"\xfe\xff") else h[:4096].decode("utf-8", "replace")
    return text.startswith("<") and "<Event" in text and "schemas.microsoft.com/win/2004/08/events/event" in text


def _windows_json(head: bytes) -> bool:
    h = head.lstrip(b"\xef\xbb\xbf\r\n\t ")
    return h[:1] in (b"[", b"{") and b'"Id"' in h[:8192] and (b'"ProviderName"' in h[:8192] or b'"LogName"' in h[:8192])


def _syslog(head: bytes) -> bool:
    if b"\x00" in head[:4096]:
        return False
    return any(any(r.match(line) for r in _HEADER_RES) for line in _lines(head))


RULES: list[tuple[str, Callable[[bytes], bool]]] = [
    ("evtx", _evtx),
    ("journal-file", lambda head: head.startswith(b"LPKSHHRH")),
    ("journal-export", _journal_export),
    ("journal-json", _journal_json),
    ("pfirewall", _pfirewall),
    ("windows-xml", _windows_xml),
    ("windows-json", _windows_json),
    ("syslog", _syslog),
]


# what an input that authtriage does not read is, and what to do with it, by its first bytes
UNREAD: list[tuple[bytes, str]] = [
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first (zstd -d), or recompress with gzip or xz"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: extract it first, or pack the logs as zip or tar.gz"),
    (b"Rar!\x1a\x07", "a RAR archive: extract it first, or pack the logs as zip or tar.gz"),
    (b"\x04\x22\x4d\x18", "lz4-compressed: decompress it first (lz4 -d)"),
    (b"%PDF-", "a PDF document, not a log"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office document (OLE), not a log"),
]

def sniff(head: bytes) -> tuple[str | None, str]:
    """Return (format, why) — format is None when nothing fits; ``why`` then says what was
    seen, as a skipped input's reason."""
    if not head:
        return None, "unknown format: empty input"
    for magic, what in UNREAD:
        if head.startswith(magic):
            return None, what
    for name, test in RULES:
        try:
            if test(head):
                return name, ""
        except (UnicodeDecodeError, ValueError):
            continue
    # a text log with a crash hole (a run of NUL bytes) near its start: told by the text after it
    holed = head_without_holes(head)
    if holed is not None and _syslog(holed):
        return "syslog", ""
    if not head.strip(b"\x00"):
        return None, (
            f"unknown format: its first {len(head):,} bytes are all NUL (a crash hole?), nothing to tell its "
            "format by; cut them off (tr -d '\\000') to read the rest"
        )
    if b"\x00" in head[:4096]:
        return None, "unknown format: binary data of an unknown format"
    return None, "unknown format: no line in the first 64 KiB looks like a syslog, journal or Windows log record"
