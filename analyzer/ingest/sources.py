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
import contextlib
import io
import json
import lzma
import os
import re
import stat
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import InputError, LimitExceeded

__all__ = ["EventBudget", "Limits", "Source", "Skipped", "iter_sources", "read_once", "HEAD_BYTES"]

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
    max_ratio: float = 1000.0  # uncompressed / compressed bytes consumed so far, per compressed stream
    ratio_grace_bytes: int = 1024**2  # the ratio is checked from this many uncompressed bytes on
    max_depth: int = 2  # an archive inside an archive, no deeper
    max_inputs: int = 10_000  # files and archive members read (each costs ~10 ms however small)
    # events over all inputs: each costs ~50 B in the frame and ~150 B at the read's peak
    # (12 M events: a 2 GB peak), so this many need ~8 GB
    max_events: int = 50_000_000


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


@dataclass(slots=True)
class EventBudget:
    """Events still allowed over the whole analysis (``Limits.max_events``), taken input by
    input in input order: the input that passes the limit keeps its first events up to it and
    says where it was cut; no input after it is read."""

    limits: Limits
    used: int = 0
    full_at: str | None = None  # the input at which the limit was reached

    @property
    def full(self) -> bool:
        return self.full_at is not None

    def admit(self, rep, events):  # (InputReport, its events frame) -> the events kept
        """``events`` of the input ``rep`` reports, cut to what the budget still allows;
        ``rep`` says so when they are cut, or all dropped (an input read ahead in a worker
        while an earlier one reached the limit)."""
        most = self.limits.max_events
        if self.full_at is not None:
            if len(events) or rep.lines or rep.records:
                said = f"read, but none of its events kept: the {most:,} events allowed in all were reached in "
                rep.error = _joined(rep.error, said + f"{self.full_at} (--max-events: raise it to read more)")
                rep.events = 0
                return events.iloc[:0]
            return events
        room = most - self.used
        if len(events) <= room:
            self.used += len(events)
            return events
        self.used, self.full_at = most, rep.name
        where = ""
        with contextlib.suppress(TypeError, ValueError, IndexError):  # (a record without a number: none said)
            where = f" (up to {'line' if rep.lines else 'record'} {int(events['locator'].iloc[room - 1])})"
        rep.error = _joined(
            rep.error,
            f"more than {most:,} events in all: only the first {room:,} of this input's {len(events):,} were kept"
            f"{where}, and the inputs after it were not read (--max-events: raise it to read more)",
        )
        rep.events = room
        return events.iloc[:room].copy()

    def refusal(self, name: str) -> Skipped:
        """What an input after the one that reached the limit is, in the reports."""
        return Skipped(
            name,
            f"not read, nor any input after it: the {self.limits.max_events:,} events allowed in all were reached "
            f"in {self.full_at} (--max-events: raise it to read more)",
        )


def _joined(first: str | None, then: str) -> str:
    return then if not first else f"{first}; {then}"


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
        if is_url(path):
            yield from _url_sources(path, budget)
            continue
        yield from _walk(Path(path), budget)


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str) -> bool:
    """Whether an input is named by an fsspec URL (``file:///logs``, ``s3://bucket/logs/``)."""
    return _URL.match(path) is not None


def redacted(url: str) -> str:
    """A URL as reports and messages show it: without a user name and password, and without
    its query (signed URLs carry their tokens there)."""
    scheme, _, rest = url.partition("://")
    rest, query, _ = rest.partition("?")
    rest = rest.partition("#")[0]
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}{'?…' if query else ''}"


def _url_sources(url: str, budget: Budget) -> Iterator[Source | Skipped]:
    """The files under an fsspec URL: ``file://`` as the local path it names; any other
    filesystem's files (and the members of archives among them) read through fsspec, each
    directory's in name order as they are listed, each file named by its URL (credentials
    and query left out). Whatever the filesystem raises is that input's one-line error."""
    shown = redacted(url)
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "file":  # the local path it names (RFC 8089: no host, or localhost)
        from urllib.parse import unquote

        netloc, slash, path = rest.partition("?")[0].partition("#")[0].partition("/")
        if netloc.rpartition("@")[2].lower() not in ("", "localhost"):
            yield Skipped(shown, "cannot open: this file:// URL names another machine: mount it here", error=True)
            return
        yield from _walk(Path(unquote(slash + path)), budget)
        return
    try:
        import fsspec
    except ImportError:
        yield Skipped(shown, "URLs need fsspec: pip install 'authtriage[cluster]'", error=True)
        return
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except Exception as exc:  # noqa: BLE001  (an unknown protocol, its package missing, a refused connection)
        yield Skipped(shown, f"cannot open: {_why(exc)}", error=True)
        return
    if "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol):  # (a chained URL's)
        yield from _walk(Path(root), budget)
        return
    try:
        if fs.isdir(root):
            files = _listed(fs, root)
        elif fs.exists(root):
            files = iter([root])
        else:
            yield Skipped(shown, "cannot open: No such file or directory", error=True)
            return
    except Exception as exc:  # noqa: BLE001
        yield Skipped(shown, f"cannot open: {_why(exc)}", error=True)
        return
    found = False
    while True:
        try:
            name = next(files)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001  (a listing that fails part way)
            yield Skipped(shown, f"cannot list: {_why(exc)}", error=True)
            break
        found = True
        named = redacted(fs.unstrip_protocol(name))
        try:
            stream = fs.open(name, "rb")
        except Exception as exc:  # noqa: BLE001
            yield Skipped(named, f"cannot open: {_why(exc)}", error=True)
            continue
        with stream:
            yield from _expand(Source(name=named, stream=stream), budget, depth=0)
    if not found:
        yield Skipped(shown, "directory holds no files", error=False)


def _listed(fs, root: str) -> Iterator[str]:
    """The files under ``root`` of an fsspec filesystem, a directory at a time (not all listed
    first: a bucket of millions of keys stops at the inputs limit), names in order."""
    for top, dirs, names in fs.walk(root):
        dirs.sort()  # walked in this order
        for name in sorted(names):
            yield f"{top.rstrip('/')}/{name}"


def _why(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def read_once(path: str) -> bool:
    """Whether an input named on the command line can be read only once: standard input, or
    a pipe (``<(zcat auth.log.2.gz)`` names one as ``/dev/fd/N``)."""
    if path == "-":
        return True
    if is_url(path):  # read through fsspec: its quoted lines are kept as read (file:// is a path)
        return not path.lower().startswith("file://")
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _tree(top: Path) -> Iterator[tuple[str, list[str]]]:
    """Each directory under ``top`` (depth first, names sorted, links not followed) with the
    names of what it holds that is not a directory: ``os.walk`` without its recursion (a tree
    a thousand levels deep raised RecursionError); unreadable directories are passed over."""
    stack = [str(top)]
    while stack:
        root = stack.pop()
        try:
            with os.scandir(root) as it:
                entries = list(it)
        except OSError:
            continue
        dirs, files = [], []
        for entry in entries:
            try:
                (dirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
            except OSError:
                files.append(entry.name)
        yield root, sorted(files)
        stack.extend(os.path.join(root, d) for d in sorted(dirs, reverse=True))


def _pipe(path: Path, budget: Budget) -> Iterator[Source | Skipped]:
    """A pipe named on the command line: read once, as a stream (as standard input is)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        yield Skipped(str(path), f"cannot open: {exc.strerror or exc}")
        return
    try:
        yield from _expand(Source(name=str(path), stream=fh), budget, depth=0)
    finally:
        fh.close()


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
        for root, files in _tree(path):
            for fname in files:
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
    if stat.S_ISFIFO(st.st_mode):  # named by the user: a pipe they mean to be read
        yield from _pipe(path, budget)
        return
    if not stat.S_ISREG(st.st_mode):
        yield Skipped(str(path), "not a regular file (device or socket) skipped", error=False)
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
            yield from _expand_stream(src, budget, depth, kind)
        elif kind == "zip":
            yield from _expand_zip(src, budget, depth)
        else:
            yield from _expand_tar(src, budget, depth, src.name)
    except InputError as exc:  # (a LimitExceeded too)
        yield Skipped(exc.source or src.name, exc.message)
    except Exception as exc:  # noqa: BLE001 - a fault no one foresaw: this archive's rest only, not the run
        yield Skipped(
            src.name,
            f"could not be read further ({type(exc).__name__}: {str(exc)[:300]}); this is an authtriage bug, "
            "please report it",
        )


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


def _fetcher(src: Source) -> Callable[[int], bytes]:
    """``src.read`` (its head first), a read fault said as the input's own."""

    def fetch(n: int) -> bytes:
        try:
            return src.read(n)
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read: {exc}", source=src.name) from exc

    return fetch


_PIECE = 1 << 14  # compressed bytes given to zlib at a time (what it does not take is counted back)
_SMALL_PIECE = 1 << 12  # bzip2 and xz buffer all they are given: small pieces keep the count of bytes used close
_ZLIB = type(zlib.decompressobj())
_WHAT = {"gzip": "gzip member", "bzip2": "bzip2 stream", "xz": "xz stream", "deflate": "member", "stored": "member"}
_ZIP_KINDS = ("deflate", "stored")


def _new_decompressor(kind: str):
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)  # checks each member's CRC and length itself
    if kind == "deflate":
        return zlib.decompressobj(-zlib.MAX_WBITS)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor()
    return None  # stored


class _Decoder(io.RawIOBase):
    """A compressed stream, decompressed as it is read: gzip (one member after another),
    bzip2 and xz (concatenated streams), or a zip member's data (deflated or stored).

    ``fetch(n)`` gives up to ``n`` compressed bytes (b"" at the end). The ratio limit is
    checked against the compressed bytes the decompressor has actually used, from
    ``ratio_grace_bytes`` of output on: a stream that expands too fast is stopped within its
    first MiB, not once it has given a thousand times its whole size. Damage is raised as an
    :class:`InputError` that says which text is in doubt: deflate checks a member only at
    its end (its CRC), so the text read since that member began may hold garbled lines.

    A zip member: ``size`` compressed bytes (None: up to the end of its deflate stream, and
    ``descriptor`` says a data descriptor with its CRC follows), ``crc`` and ``usize`` from
    its header when known; ``tail`` then holds what was fetched past its end.
    """

    def __init__(
        self,
        fetch: Callable[[int], bytes],
        kind: str,
        name: str,
        limits: Limits,
        *,
        size: int | None = None,
        crc: int | None = None,
        usize: int | None = None,
        descriptor: bool = False,
        zip64: bool = False,
    ):
        self._fetch = fetch
        self._kind = kind
        self._name = name
        self._limits = limits
        self._left = size  # compressed bytes of a zip member still to fetch (None: unknown)
        self._crc_want = crc
        self._usize = usize
        self._descriptor = descriptor
        self._zip64 = zip64
        self._dec = _new_decompressor(kind)
        self._input = b""  # fetched, not yet given to the decompressor
        self._fetched = 0
        self._crc = 0
        self._fresh = False  # a bzip2/xz stream after the first, not yet known to be one
        self.out = 0  # decompressed bytes given out
        self.part = 1  # the gzip member or bzip2/xz stream being read
        self._part_start = 0  # decompressed bytes before it
        self.done = False
        self.tail = b""

    def readable(self) -> bool:
        return True

    def _more(self, n: int) -> bytes:
        if self._left is not None:
            n = min(n, self._left)
            if n <= 0:
                return b""
        data = self._fetch(n)
        self._fetched += len(data)
        if self._left is not None:
            self._left -= len(data)
        return data

    def _used(self) -> int:
        """Compressed bytes the decompressor has taken (what zlib left over is not counted)."""
        spare = len(self._input)
        if isinstance(self._dec, _ZLIB):
            spare += len(self._dec.unconsumed_tail) + len(self._dec.unused_data)
        return self._fetched - spare

    def readinto(self, b) -> int:  # type: ignore[override]
        want = len(b) if self._usize is None else min(len(b), self._usize - self.out)
        data = b""
        while not data and not self.done:
            if want <= 0:
                self._finish_member()
                break
            try:
                data = self._step(want)
            except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
                if self._fresh:  # not another bzip2/xz stream: padding after the last, let be as bzip2 and xz do
                    self.done = True
                    break
                raise self._damage(str(exc)) from exc
            self._fresh = False
        n = len(data)
        b[:n] = data
        self.out += n
        if self._crc_want is not None or self._descriptor:
            self._crc = zlib.crc32(data, self._crc)
        lim = self._limits
        if self.out > lim.ratio_grace_bytes and self.out > lim.max_ratio * max(self._used(), 1):
            raise LimitExceeded(
                f"compression ratio above {lim.max_ratio:g}:1 (possible zip bomb; raise --max-ratio to read it)",
                source=self._name,
            )
        return n

    def _step(self, want: int) -> bytes:
        """Some output, or b"" when a member ended or input was taken without output yet."""
        dec = self._dec
        if dec is None:  # stored
            data, self._input = self._input or self._more(want), b""
            if len(data) > want:
                data, self._input = data[:want], data[want:]
            if not data:
                if self._left:  # the archive ended inside it
                    raise self._cut_short()
                self._finish_member()
            return data
        if dec.eof:
            self._next_part(dec.unused_data)
            return b""
        if isinstance(dec, _ZLIB):
            chunk = dec.unconsumed_tail or self._input or self._more(_PIECE)
        elif dec.needs_input:
            chunk = self._input or self._more(_SMALL_PIECE)
        else:
            return dec.decompress(b"", want)
        self._input = b""
        if not chunk:
            raise self._cut_short()
        return dec.decompress(chunk, want)

    def _next_part(self, rest: bytes) -> None:
        """After a member or stream ended: the next one, or the end."""
        if self._kind == "deflate":
            self.tail = rest
            self._finish_member()
            return
        if self._kind == "gzip":
            rest = rest.lstrip(b"\0")  # gzip allows zero padding after a member
            while not rest:
                rest = self._more(_PIECE)
                if not rest:
                    self.done = True
                    return
                rest = rest.lstrip(b"\0")
            if not b"\x1f\x8b".startswith(rest[:2]):
                raise InputError(
                    f"corrupt compressed data: the bytes after gzip member {self.part} are not gzip "
                    "(damaged, or something appended): not read",
                    source=self._name,
                )
        elif not rest:
            rest = self._more(_SMALL_PIECE)
            if not rest:
                self.done = True
                return
        self._fresh = self._kind != "gzip"
        self._dec = _new_decompressor(self._kind)
        self._input = rest
        self.part += 1
        self._part_start = self.out

    def _finish_member(self) -> None:
        """The end of a zip member: its data descriptor read, its CRC checked."""
        self.done = True
        if self._descriptor:
            self._read_descriptor()
        if self._crc_want is not None and (self._crc & 0xFFFFFFFF) != self._crc_want:
            raise self._damage("CRC mismatch", crc=True)

    def _read_descriptor(self) -> None:
        self._descriptor = False  # (read once)
        need = 24 if self._zip64 else 16  # (a signature,) CRC, compressed and uncompressed sizes
        data = self.tail
        while len(data) < need:
            more = self._fetch(need - len(data))
            if not more:
                break
            data += more
        at = 4 if data.startswith(b"PK\x07\x08") else 0
        if len(data) < at + 12:
            raise self._cut_short()
        self._crc_want = struct.unpack_from("<I", data, at)[0]
        self.tail = data[at + (20 if self._zip64 else 12) :]

    def _damage(self, detail: str, crc: bool = False) -> InputError:
        """Damage found in the compressed data, with the text in doubt: deflate (gzip, zip)
        and xz check their data only at the end of a member or block, so what was decoded
        since it began may hold garbled lines; bzip2 checks blocks of up to 900 kB."""
        kind = self._kind
        if crc or "incorrect data check" in detail or "incorrect length check" in detail:
            detail = "CRC mismatch at the end of " + (
                f"gzip member {self.part}" if kind == "gzip" else "the member" if kind in _ZIP_KINDS else "a block"
            )
        if kind in _ZIP_KINDS:
            doubt = "a zip member is checked only at its end, so the damage may lie anywhere in its text"
        elif kind == "bzip2":
            doubt = "bzip2 checks a block (up to 900 kB of text) only at its end, so the damage may lie anywhere in "
            doubt += "the last 900 kB read"
        else:
            checks = "gzip checks its data only at the end of a member" if kind == "gzip" else (
                "xz checks its data only at the end of a block"
            )
            since = (
                f"since {_WHAT[kind]} {self.part} began (decompressed byte {self._part_start:,} on)"
                if self.part > 1
                else "from its start"
            )
            doubt = f"{checks}, so the damage may lie anywhere in the text read {since}"
        return InputError(
            f"corrupt compressed data ({detail}): {doubt}; lines read before this point may be garbled",
            source=self._name,
        )

    def _cut_short(self) -> InputError:
        what = "archive" if self._kind in ("deflate", "stored") else _WHAT[self._kind]
        return InputError(
            f"corrupt compressed data: cut short (the {what} ends before this member's end)"
            if what == "archive"
            else f"corrupt compressed data: cut short (the {what} ends before its end-of-stream marker)",
            source=self._name,
        )

    def readall(self) -> bytes:
        parts = []
        while data := self.read(1 << 20):
            parts.append(data)
        return b"".join(parts)

    def drain(self) -> None:
        """Read to the end, keeping nothing (a zip member read from its local header: the
        next one begins after it)."""
        buf = bytearray(1 << 20)
        while self.readinto(buf):
            pass


_STREAMS = ("gzip", "bzip2", "xz")  # a compressed stream (one file, not an archive)


def _expand_stream(src: Source, budget: Budget, depth: int, kind: str) -> Iterator[Source | Skipped]:
    """A gzip, bzip2 or xz stream: what it holds, decompressed as it is read."""
    inner = Source(name=src.name, stream=_Decoder(_fetcher(src), kind, src.name, budget.limits), mtime=src.mtime)
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


def _Reheaded(src: Source) -> Source:  # noqa: N802 - reads as a constructor
    """A fresh Source over ``src`` whose head is read again by the next expansion."""
    return Source(name=src.name, stream=_Rewound(src), mtime=src.mtime)


def _odd_name(name: str) -> str | None:
    """Why a member name cannot name an input (empty, or a NUL byte in it), or None."""
    if not name:
        return "member with an empty name"
    if "\x00" in name:
        return "member name with a NUL byte in it"
    return None


def _member_name(outer: str, name: str) -> str:
    """``outer!name``; a name that cannot be shown as is appears escaped (``repr``)."""
    return f"{outer}!{name!r}" if _odd_name(name) else f"{outer}!{name}"


def _zip_skip(info_name: str, flags: int, mode: int = 0) -> tuple[str, bool] | None:
    """Why a zip member is not read (and whether that is an error), or None to read it."""
    odd = _odd_name(info_name)
    if odd:
        return f"{odd}; not read", True
    if not _safe_member(info_name):
        return "member path escapes the archive (absolute or '..'); refused", True
    if mode and not stat.S_ISREG(mode):
        return "link or special file in archive skipped", False
    if flags & 0x41:  # traditional or strong encryption
        return "encrypted zip member; not read", True
    if flags & 0x20:
        return "patched zip member (a format for updates, not logs); not read", True
    return None


_ZIP_DECODED = {0: "stored", 8: "deflate", 12: "bzip2"}  # methods read here; others through zipfile
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # a zip member's local header


def _zip_member(fileobj: BinaryIO, info: zipfile.ZipInfo, name: str, limits: Limits) -> _Decoder | None:
    """A zip member's data from its local header on, decompressed as it is read (the ratio
    checked against the compressed bytes used); None for a method zipfile reads instead."""
    kind = _ZIP_DECODED.get(info.compress_type)
    if kind is None:
        return None
    fileobj.seek(info.header_offset)
    fields = fileobj.read(_LOCAL.size)
    if len(fields) < _LOCAL.size or fields[:4] != b"PK\x03\x04":
        raise InputError("cannot open member: no local header where the central directory says", source=name)
    *_, nlen, xlen = _LOCAL.unpack(fields)
    if fileobj.read(nlen).decode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace") != info.orig_filename:
        raise InputError("cannot open member: its local header names another file", source=name)
    pos = info.header_offset + _LOCAL.size + nlen + xlen
    end = getattr(info, "_end_offset", None)  # where the next member begins (zipfile knows it)
    if end is not None and pos + info.compress_size > end:
        raise InputError("cannot open member: it overlaps the next one (a zip bomb?)", source=name)

    def fetch(n: int) -> bytes:
        nonlocal pos
        fileobj.seek(pos)
        data = fileobj.read(n)
        pos += len(data)
        return data

    return _Decoder(fetch, kind, name, limits, size=info.compress_size, crc=info.CRC, usize=info.file_size)


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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        yield from _zip_local_members(fileobj, src, budget, depth, str(exc))
        return
    with zf:
        for info in zf.infolist():
            mname = _member_name(src.name, info.orig_filename)
            if info.orig_filename.endswith("/"):
                continue  # a directory
            skip = _zip_skip(info.orig_filename, info.flag_bits, (info.external_attr >> 16) & 0o170000)
            if skip:
                yield Skipped(mname, skip[0], error=skip[1])
                continue
            opened: BinaryIO | None = None  # a member zipfile reads (a method read here only through it)
            try:
                member = _zip_member(fileobj, info, mname, budget.limits)
                if member is None:
                    opened = zf.open(info)
                    member = _Guard(opened, mname, budget, compressed=info.compress_size)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
                yield Skipped(mname, f"cannot open member: {exc}")
                continue
            except InputError as exc:
                yield Skipped(mname, exc.message)
                continue
            with member, opened or contextlib.nullcontext():
                yield from _expand(Source(name=mname, stream=member, mtime=_zip_mtime(info)), budget, depth + 1)


class _Cursor:
    """Sequential reads over a stream, with bytes read too far put back."""

    def __init__(self, read: Callable[[int], bytes]):
        self._read = read
        self._back = b""
        self.pos = 0  # bytes consumed from the start

    def read(self, n: int) -> bytes:
        if self._back:
            data, self._back = self._back[:n], self._back[n:]
        else:
            data = self._read(n)
        self.pos += len(data)
        return data

    def exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            data = self.read(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def unread(self, data: bytes) -> None:
        self._back = data + self._back
        self.pos -= len(data)


_ZIP_END = {
    b"PK\x01\x02": "its central directory begins",
    b"PK\x05\x06": "its end record begins",
    b"PK\x06\x06": "its end record begins",
    b"PK\x07\x08": "a stray data descriptor",
}


def _zip_local_members(
    fileobj: BinaryIO, src: Source, budget: Budget, depth: int, why: str
) -> Iterator[Source | Skipped]:
    """A zip whose central directory is missing or damaged (cut short, as an upload or a copy
    interrupted leaves it): its members read from their local headers, in order, as
    ``unzip -F`` and streaming readers do. What stops the walk is said at its end."""
    fileobj.seek(0)

    def read(n: int) -> bytes:
        try:
            return fileobj.read(n)
        except OSError as exc:
            raise InputError(f"cannot read: {exc}", source=src.name) from exc

    cur = _Cursor(read)
    found = 0
    stop = ""
    while True:
        at = cur.pos
        fields = cur.exact(_LOCAL.size)
        if len(fields) < 4 or fields[:4] != b"PK\x03\x04":
            if not fields:
                stop = "the archive ends there"
            elif fields[:4] in _ZIP_END:
                stop = f"{_ZIP_END[fields[:4]]} there"
            else:
                stop = f"no member header at byte {at:,} (damaged there?): anything after it is not read"
            break
        if len(fields) < _LOCAL.size:
            stop = f"the archive ends inside a member header at byte {at:,}"
            break
        _, _, flags, method, _, _, crc, csize, usize, nlen, xlen = _LOCAL.unpack(fields)
        raw_name, extra = cur.exact(nlen), cur.exact(xlen)
        if len(extra) < xlen:
            stop = f"the archive ends inside a member header at byte {at:,}"
            break
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        zip64 = False
        if 0xFFFFFFFF in (csize, usize):
            sizes = _zip64_sizes(extra)
            if sizes is not None:
                usize, csize = sizes
                zip64 = True
        descriptor = bool(flags & 0x08)
        mname = _member_name(src.name, name)
        kind = _ZIP_DECODED.get(method)
        if descriptor and kind != "deflate" and not csize:
            # its size is given only after its data: without the central directory the end
            # of data that is not deflated cannot be found
            yield Skipped(mname, "its size is written only after its data, which cannot be found without the "
                          "central directory: this member and those after it were not read")  # fmt: skip
            stop = f"member {name!r} cannot be delimited"
            break
        known = not descriptor or kind != "deflate"
        member = _Decoder(
            cur.read,
            kind or "stored",
            mname,
            budget.limits,
            size=csize if known else None,
            crc=None if descriptor else crc,
            usize=None if descriptor else usize,
            descriptor=descriptor,
            zip64=zip64,
        )
        start = cur.pos
        skip = None if name.endswith("/") else _zip_skip(name, flags)
        if skip is None and kind is None and not name.endswith("/"):
            skip = f"compression method {method} is read only with the central directory", True
        if skip:
            yield Skipped(mname, skip[0], error=skip[1])
        elif not name.endswith("/"):  # (a directory has nothing to read)
            found += 1
            yield from _expand(Source(name=mname, stream=member, mtime=_dos_time(fields)), budget, depth + 1)
        try:  # on past the member, whatever the reader took of it
            if not known:
                member.drain()
            elif not member.done:
                left = start + csize - cur.pos
                if left > 0 and len(cur.exact(left)) < left:
                    stop = f"the archive ends inside member {name!r}"
                    break
                if descriptor:
                    member._read_descriptor()
            cur.unread(member.tail)
        except InputError as exc:
            stop = f"member {name!r} cannot be read to its end ({exc.message})"
            break
    yield Skipped(
        src.name,
        f"bad zip archive ({why}): its central directory is missing or damaged (cut short?); {found} member(s) "
        f"read from their local headers, in order; {stop}",
    )


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    """(uncompressed, compressed) size from a local header's zip64 extra field."""
    at = 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, at)
        if tag == 1 and size >= 16:
            return struct.unpack_from("<QQ", extra, at + 4)
        at += 4 + size
    return None


def _dos_time(fields: bytes) -> float | None:
    """A local header's modification time (DOS date and time)."""
    _, _, _, _, mtime, mdate, *_ = _LOCAL.unpack(fields)
    return _timestamp(
        (1980 + (mdate >> 9), (mdate >> 5) & 15, mdate & 31, mtime >> 11, (mtime >> 5) & 63, (mtime & 31) * 2)
    )


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    return _timestamp(info.date_time)


def _timestamp(parts: tuple[int, ...]) -> float | None:
    import datetime as dt

    try:
        return dt.datetime(*parts).timestamp()
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
