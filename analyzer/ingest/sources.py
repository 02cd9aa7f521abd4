"""Paths → named byte streams, safely.

Files, directories (recursive), ``-`` for stdin, and archives read as streams — never
extracted to disk: gzip, bzip2, xz, zip, tar (plain or compressed). An archive member is named
``outer.zip!path/inside``; one level of nesting is followed (a ``.gz`` inside a zip, a zip
inside a ``.tar.gz``), deeper nesting is refused. Inputs are untrusted: total
uncompressed bytes and the compression ratio are limited, member names that try to
escape (``..``, absolute paths) and links or devices are refused or skipped, and every
problem is reported for that one input while the others carry on.

The one seam for I/O: :func:`iter_sources` yields :class:`Source` (a readable stream with
a name) or :class:`Skipped` (why an input was not read). Tests can build a ``Source``
from bytes with :meth:`Source.from_bytes`.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
import os
import re
import stat
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import InputError, LimitExceeded

__all__ = ["Limits", "Source", "Skipped", "iter_sources", "HEAD_BYTES"]

HEAD_BYTES = 65536
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_NESTED_ZIP_MEMORY = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Safety limits for untrusted inputs; each is a CLI option too."""

    max_total_bytes: int = 64 * 1024**3  # uncompressed bytes over all inputs
    max_ratio: float = 1000.0  # uncompressed / compressed, per compressed member
    ratio_grace_bytes: int = 16 * 1024**2  # the ratio is checked past this many bytes
    max_depth: int = 2  # an archive inside an archive, no deeper
    max_inputs: int = 10_000  # files and archive members read (each costs ~10 ms however small)


@dataclass(slots=True)
class Budget:
    """Bytes still allowed over the whole run (shared by every stream)."""

    limits: Limits
    used: int = 0

    def spend(self, n: int, name: str) -> None:
        self.used += n
        if self.used > self.limits.max_total_bytes:
            raise LimitExceeded(
                f"total uncompressed input exceeds {self.limits.max_total_bytes} bytes "
                "(raise --max-total-bytes to read more)",
                source=name,
            )


class _Guard(io.RawIOBase):
    """A counting reader over another stream.

    Over a decompressing stream (``compressed`` known or live) it enforces the ratio
    limit; over a leaf stream (``leaf=True``) it spends the bytes from the total budget,
    so every byte is counted once.
    """

    def __init__(self, inner: BinaryIO, name: str, budget: Budget, compressed: int | None = None, leaf: bool = False):
        self._inner = inner
        self._name = name
        self._budget = budget
        self._compressed = compressed  # compressed size, when known
        self._leaf = leaf
        self.count = 0

    def readable(self) -> bool:
        return True

    def _compressed_size(self) -> int | None:
        return self._compressed

    def readinto(self, b) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(b))
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, tarfile.TarError) as exc:
            what = "cannot read" if self._leaf else "corrupt compressed data"
            raise InputError(f"{what}: {exc}", source=self._name) from exc
        n = len(data)
        b[:n] = data
        self.count += n
        if self._leaf:
            self._budget.spend(n, self._name)
        lim = self._budget.limits
        compressed = self._compressed_size()
        if (
            compressed is not None
            and self.count > lim.ratio_grace_bytes
            and self.count > lim.max_ratio * max(compressed, 1)
        ):
            raise LimitExceeded(
                f"compression ratio above {lim.max_ratio:g}:1 (possible zip bomb; raise --max-ratio to read it)",
                source=self._name,
            )
        return n


@dataclass(slots=True)
class Source:
    """One readable input: a name for reports, a stream, what we know of it."""

    name: str
    stream: BinaryIO
    head: bytes = b""  # the first bytes, already read from ``stream``
    mtime: float | None = None
    path: str | None = None  # set when the stream is a plain file on disk, read as is
    _head_consumed: bool = field(default=False, repr=False)

    @classmethod
    def from_bytes(cls, name: str, data: bytes, mtime: float | None = None) -> Source:
        """A source over bytes in memory (tests, stdin)."""
        return _with_head(cls(name=name, stream=io.BytesIO(data), mtime=mtime))

    def read(self, n: int = -1) -> bytes:
        """Read from the start, the head included."""
        if not self._head_consumed:
            self._head_consumed = True
            if n < 0:
                return self.head + self.stream.read()
            if n <= len(self.head):
                rest = self.head[n:]
                out = self.head[:n]
                self.head = rest
                self._head_consumed = not rest
                return out
            return self.head + self.stream.read(n - len(self.head))
        return self.stream.read(n)

    def on_disk(self, within_budget: bool = False) -> str | None:
        """The file's path, for a reader that opens the file itself (the EVTX parser reads
        a path faster than a stream, and without a copy in memory); None when the input is
        not a plain file read from its start. The bytes are counted against the total
        limit now, as reading them would. With ``within_budget``, None too when they would
        exceed it (a stream then reads up to the limit, and keeps what came before)."""
        if self.path is None or self._head_consumed:
            return None
        if isinstance(self.stream, _Guard):
            inner = self.stream._inner
            try:
                rest = max(os.fstat(inner.fileno()).st_size - inner.tell(), 0)
            except (OSError, AttributeError, io.UnsupportedOperation):
                return None
            budget = self.stream._budget
            if within_budget and budget.used + rest > budget.limits.max_total_bytes:
                return None
            budget.spend(rest, self.name)
            self.stream.count += rest
        self._head_consumed = True
        return self.path

    def chunks(self, size: int) -> Iterator[bytes]:
        """The whole content in blocks of about ``size`` bytes."""
        while True:
            block = self.read(size)
            if not block:
                return
            yield block


class Prefixed(io.RawIOBase):
    """``prefix`` bytes (or a memoryview of them, let go once read), then at most ``limit``
    bytes of ``inner`` (all of it when None); ``count`` says how many came from ``inner``."""

    def __init__(self, prefix: bytes | memoryview, inner, limit: int | None = None) -> None:
        self.prefix = memoryview(prefix)
        self.inner = inner
        self.left = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if len(self.prefix):
            n = min(len(b), len(self.prefix))
            b[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:] if n < len(self.prefix) else memoryview(b"")  # the last read: let it go
            return n
        want = len(b) if self.left is None else min(len(b), self.left)
        if want <= 0:
            return 0
        data = self.inner.read(want)
        n = len(data)
        b[:n] = data
        self.count += n
        if self.left is not None:
            self.left -= n
        return n


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input that was not read, and why (one line, naming it)."""

    name: str
    reason: str
    error: bool = True  # False for deliberate skips (links, empty directories)


def _with_head(src: Source) -> Source:
    src.head = _read_full(src.stream, HEAD_BYTES, src.name)
    return src


def _read_full(stream: BinaryIO, n: int, name: str) -> bytes:
    parts = []
    need = n
    while need > 0:
        try:
            chunk = stream.read(need)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise InputError(f"cannot read: {exc}", source=name) from exc
        if not chunk:
            break
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


def _kind(head: bytes) -> str | None:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(_BZ2_MAGIC) and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return None


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return not (p.is_absolute() or ".." in p.parts or (name[1:3] == ":/" or name[1:3] == ":\\"))


def iter_sources(paths: list[str], limits: Limits | None = None) -> Iterator[Source | Skipped]:
    """Yield every readable stream under ``paths``, in a stable order.

    A yielded :class:`Source` is valid until the next item is requested (tar members are
    read in place), so consume it before advancing.
    """
    budget = Budget(limits or Limits())
    found = 0
    for item in _all_sources(paths, budget):
        if isinstance(item, Source):
            found += 1
            if found > budget.limits.max_inputs:
                yield Skipped(
                    item.name,
                    f"more than {budget.limits.max_inputs:,} inputs: this one and those after it were not read "
                    "(raise --max-inputs to read more)",
                )
                return
        yield item


def _all_sources(paths: list[str], budget: Budget) -> Iterator[Source | Skipped]:
    for path in paths:
        if path == "-":
            src = Source(name="<stdin>", stream=sys.stdin.buffer)
            yield from _expand(src, budget, depth=0)
            continue
        yield from _walk(Path(path), budget)


def _walk(path: Path, budget: Budget) -> Iterator[Source | Skipped]:
    try:
        st = path.lstat()
    except OSError as exc:
        yield Skipped(str(path), f"cannot open: {exc.strerror or exc}")
        return
    if stat.S_ISLNK(st.st_mode):
        # A link named on the command line is the user's choice; links found inside
        # directories are skipped (they may point anywhere).
        try:
            st = path.stat()
        except OSError as exc:
            yield Skipped(str(path), f"cannot open: {exc.strerror or exc}")
            return
    if stat.S_ISDIR(st.st_mode):
        found = False
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for fname in sorted(files):
                p = Path(root) / fname
                found = True
                try:
                    mode = p.lstat().st_mode
                except OSError as exc:
                    yield Skipped(str(p), f"cannot open: {exc.strerror or exc}")
                    continue
                if stat.S_ISLNK(mode):
                    yield Skipped(str(p), "symbolic link skipped", error=False)
                elif not stat.S_ISREG(mode):
                    yield Skipped(str(p), "not a regular file (device, fifo or socket) skipped", error=False)
                else:
                    yield from _open_file(p, budget)
        if not found:
            yield Skipped(str(path), "directory holds no files", error=False)
        return
    if not stat.S_ISREG(st.st_mode):
        yield Skipped(str(path), "not a regular file (device, fifo or socket) skipped", error=False)
        return
    yield from _open_file(path, budget)


def _open_file(path: Path, budget: Budget) -> Iterator[Source | Skipped]:
    name = str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        yield Skipped(name, f"cannot open: {exc.strerror or exc}")
        return
    try:
        mtime = os.fstat(fh.fileno()).st_mtime
        yield from _expand(Source(name=name, stream=fh, mtime=mtime, path=name), budget, depth=0)
    finally:
        fh.close()


def _expand(src: Source, budget: Budget, depth: int) -> Iterator[Source | Skipped]:
    """Yield ``src`` itself, or the members of the archive it is."""
    try:
        _with_head(src)
    except InputError as exc:
        yield Skipped(src.name, exc.message)
        return
    kind = _kind(src.head)
    if kind is None:
        try:
            budget.spend(len(src.head), src.name)
        except LimitExceeded as exc:
            yield Skipped(src.name, exc.message)
            return
        src.stream = _Guard(src.stream, src.name, budget, leaf=True)
        yield src
        return
    if depth >= budget.limits.max_depth:
        yield Skipped(src.name, f"archive nested more than {budget.limits.max_depth - 1} level deep; not read")
        return
    try:
        if kind in _STREAMS:
            yield from _expand_stream(src, budget, depth, _STREAMS[kind])
        elif kind == "zip":
            yield from _expand_zip(src, budget, depth)
        else:
            yield from _expand_tar(src, budget, depth, src.name)
    except LimitExceeded as exc:
        yield Skipped(exc.source or src.name, exc.message)
    except InputError as exc:
        yield Skipped(exc.source or src.name, exc.message)


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def utf16_as_utf8(src: Source) -> Source | None:
    """A source whose text is UTF-16 with a byte order mark (what Windows PowerShell 5's
    ``>`` and ``Out-File`` write: a log copied so) read as UTF-8, a stream of its own (no
    path: its bytes on disk are not these); None for any other source. Code units that
    are not text (a lone surrogate) become U+FFFD."""
    if not src.head.startswith(_UTF16_BOMS) or len(src.head) < 4:
        return None
    return _with_head(Source(name=src.name, stream=_Utf16Reader(src), mtime=src.mtime))


class _Utf16Reader(io.RawIOBase):
    """UTF-16 (endianness from its BOM) in, UTF-8 out, a chunk at a time."""

    _CHUNK = 1 << 20

    def __init__(self, src: Source):
        self._src = src
        self._decoder = codecs.getincrementaldecoder("utf-16")("replace")
        self._out = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while len(self._out) < len(b) and not self._done:
            chunk = self._src.read(self._CHUNK)
            self._done = not chunk
            self._out += self._decoder.decode(chunk, final=self._done).encode("utf-8")
        n = min(len(b), len(self._out))
        b[:n] = self._out[:n]
        del self._out[:n]
        return n


class _Rewound(io.RawIOBase):
    """A stream whose first bytes were already read into ``head``."""

    def __init__(self, src: Source):
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._src.read(len(b))
        b[: len(data)] = data
        return len(data)


class _CountingRaw(io.RawIOBase):
    """Counts bytes read from a compressed stream (for the ratio check)."""

    def __init__(self, inner: io.RawIOBase):
        self._inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._inner.readinto(b)
        self.count += n or 0
        return n or 0


# a compressed stream (one file, not an archive) → a decompressing reader over a file object
_STREAMS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "gzip": lambda fh: gzip.GzipFile(fileobj=fh, mode="rb"),
    "bzip2": lambda fh: bz2.BZ2File(fh, mode="rb"),
    "xz": lambda fh: lzma.LZMAFile(fh, mode="rb"),  # noqa: SIM115 - closed with the stream
}


def _expand_stream(
    src: Source, budget: Budget, depth: int, opener: Callable[[BinaryIO], BinaryIO]
) -> Iterator[Source | Skipped]:
    """A gzip, bzip2 or xz stream: what it holds, decompressed as it is read."""
    raw = _CountingRaw(_Rewound(src))
    inner_name = src.name
    guard = _RatioGuard(opener(io.BufferedReader(raw, 1 << 20)), inner_name, budget, raw)
    inner = Source(name=inner_name, stream=guard, mtime=src.mtime)
    try:
        _with_head(inner)
    except InputError as exc:
        yield Skipped(src.name, exc.message)
        return
    if _kind(inner.head) == "tar":
        # .tar.gz / .tgz / .tar.xz / .tar.bz2: one container, not two levels.
        yield from _expand_tar(inner, budget, depth, src.name)
        return
    yield from _expand(_Reheaded(inner), budget, depth + 1)


class _RatioGuard(_Guard):
    """Like _Guard, with the compressed size read live from a counting stream."""

    def __init__(self, inner: BinaryIO, name: str, budget: Budget, counter: _CountingRaw):
        super().__init__(inner, name, budget)
        self._counter = counter

    def _compressed_size(self) -> int | None:
        return max(self._counter.count, 1)


def _Reheaded(src: Source) -> Source:  # noqa: N802 - reads as a constructor
    """A fresh Source over ``src`` whose head is read again by the next expansion."""
    return Source(name=src.name, stream=_Rewound(src), mtime=src.mtime)


def _expand_zip(src: Source, budget: Budget, depth: int) -> Iterator[Source | Skipped]:
    stream = src.stream
    if isinstance(stream, io.BufferedReader | io.BytesIO) and stream.seekable():
        fileobj: BinaryIO = stream
        fileobj.seek(0)
    else:
        # A zip inside a stream (tar member, stdin) needs random access: hold it in
        # memory, bounded, rather than extract it to disk.
        data = src.read(_NESTED_ZIP_MEMORY + 1)
        if len(data) > _NESTED_ZIP_MEMORY:
            yield Skipped(src.name, f"nested zip larger than {_NESTED_ZIP_MEMORY} bytes; unzip it first")
            return
        fileobj = io.BytesIO(data)
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield Skipped(src.name, f"bad zip archive: {exc}")
        return
    with zf:
        for info in zf.infolist():
            mname = f"{src.name}!{info.filename}"
            if info.is_dir():
                continue
            if not _safe_member(info.filename):
                yield Skipped(mname, "member path escapes the archive (absolute or '..'); refused")
                continue
            mode = (info.external_attr >> 16) & 0o170000
            if mode and not stat.S_ISREG(mode):
                yield Skipped(mname, "link or special file in archive skipped", error=False)
                continue
            if info.flag_bits & 0x1:
                yield Skipped(mname, "encrypted zip member; not read")
                continue
            try:
                member = zf.open(info)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
                yield Skipped(mname, f"cannot open member: {exc}")
                continue
            with member:
                guard = _Guard(member, mname, budget, compressed=info.compress_size)
                mtime = _zip_mtime(info)
                yield from _expand(Source(name=mname, stream=guard, mtime=mtime), budget, depth + 1)


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    import datetime as dt

    try:
        return dt.datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        return None


def _expand_tar(src: Source, budget: Budget, depth: int, outer: str) -> Iterator[Source | Skipped]:
    try:
        tf = tarfile.open(fileobj=io.BufferedReader(_Rewound(src), 1 << 20), mode="r|")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        yield Skipped(outer, f"bad tar archive: {exc}")
        return
    with tf:
        while True:
            try:
                info = tf.next()
            except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                yield Skipped(outer, f"tar archive damaged after the members read so far: {exc}")
                return
            if info is None:
                return
            mname = f"{outer}!{info.name}"
            if info.isdir():
                continue
            if not _safe_member(info.name):
                yield Skipped(mname, "member path escapes the archive (absolute or '..'); refused")
                continue
            if not info.isreg():
                yield Skipped(mname, "link or special file in archive skipped", error=False)
                continue
            fh = tf.extractfile(info)
            if fh is None:
                continue
            guard = _Guard(fh, mname, budget, compressed=None)
            yield from _expand(Source(name=mname, stream=guard, mtime=float(info.mtime)), budget, depth + 1)


_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"
_SURROGATE_IN = {bytes: re.compile(_SURROGATE_ESCAPE.encode()), str: re.compile(_SURROGATE_ESCAPE)}


def loads_text(text: str | bytes) -> object:
    """``json.loads``, with lone UTF-16 surrogates (a hostile ``\\ud800`` escape) turned
    into U+FFFD: Python strings may hold them, UTF-8 and Arrow may not."""
    try:
        obj = json.loads(text)
    except RecursionError:  # arrays in arrays thousands deep: no record, a forged line
        raise ValueError("nested too deeply") from None
    return _scrub(obj) if _SURROGATE_IN[type(text)].search(text) else obj


def _scrub(obj: object) -> object:
    if isinstance(obj, str):
        return obj.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(obj, dict):
        return {_scrub(k): _scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj
