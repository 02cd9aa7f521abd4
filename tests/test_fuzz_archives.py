"""Property tests of archives: any member names (empty, NUL, traversal, links), nesting
(a gz in a zip in a tar.gz), truncation and damage at any point. No fault escapes, nothing is
written to disk, and every member that lies wholly before a cut is read whole.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from fuzzing import crash_files, fuzz_settings, kept_if_it_fails, read_checked
from hypothesis import given
from hypothesis import strategies as st

from analyzer.errors import InputError
from analyzer.ingest.sources import Limits, Skipped, iter_sources

LINE = b"Mar  4 09:15:02 web1 sshd[812]: Failed password for root from 203.0.113.7 port 51022 ssh2\n"
NAMES = st.one_of(
    st.sampled_from(
        ["auth.log", "var/log/secure", "", "\x00", "a\x00b.log", "../../etc/passwd", "/abs/auth.log", "C:\\x.log",
         "dir/", "./auth.log", "a//b.log", "\u202eevil.log", "x" * 300, "..", "a/../../b", "\\\\server\\share"]
    ),  # fmt: skip
    st.text(min_size=0, max_size=20),
)


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zip(members: list[tuple[str, bytes]], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            info = zipfile.ZipInfo("m")
            info.filename = info.orig_filename = name  # as a forged archive may hold it (zipfile cuts at NUL)
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes]], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name.replace("\x00", "") or "x")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


CONTAINERS = {
    "zip-deflated": lambda m: _zip(m, zipfile.ZIP_DEFLATED),
    "zip-stored": lambda m: _zip(m, zipfile.ZIP_STORED),
    "zip-bzip2": lambda m: _zip(m, zipfile.ZIP_BZIP2),
    "tar": lambda m: _tar(m, "w"),
    "tar.gz": lambda m: _gz(_tar(m, "w")),  # (tarfile's own w:gz puts the time in: not the same bytes twice)
    "tar.xz": lambda m: lzma.compress(_tar(m, "w")),
}
STREAMS = {"gz": _gz, "bz2": bz2.compress, "xz": lzma.compress}


@st.composite
def contents(draw, depth: int) -> bytes:
    text = LINE * draw(st.integers(0, 5)) + draw(st.sampled_from([b"", b"\x00" * 100 + LINE, b"garbage\xff\n"]))
    if depth <= 0 or draw(st.booleans()):
        return text
    if draw(st.booleans()):
        return STREAMS[draw(st.sampled_from(sorted(STREAMS)))](draw(contents(depth - 1)))
    return draw(archives(depth - 1))


@st.composite
def archives(draw, depth: int = 2) -> bytes:
    kind = draw(st.sampled_from(sorted(CONTAINERS)))
    members = draw(st.lists(st.tuples(NAMES, contents(depth)), min_size=0, max_size=5))
    return CONTAINERS[kind](members)


@st.composite
def damaged(draw) -> tuple[bytes, bytes, int | None]:
    """(intact archive, the archive handed over, where it was cut (None: not cut))."""
    whole = draw(archives())
    how = draw(st.integers(0, 3))
    if how == 0 or not whole:
        return whole, whole, None
    at = draw(st.integers(0, len(whole)))
    if how == 1:
        return whole, whole[:at], at
    data = bytearray(whole)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return whole, bytes(data), None


def _read_all(path: Path) -> dict[str, bytes]:
    """What iter_sources gives of ``path``: each source read whole (a fault in a member is
    that member's, said as an InputError), or skipped with a reason."""
    got: dict[str, bytes] = {}
    for item in iter_sources([str(path)], Limits(max_total_bytes=64 << 20)):
        if isinstance(item, Skipped):
            assert item.reason and "\n" not in item.reason, item
            continue
        try:
            got[item.name] = item.read()
        except InputError:
            continue
    return got


def _whole_before(whole: bytes, cut: int) -> dict[str, bytes]:
    """The members of a zip (intact: ``whole``) that lie wholly before byte ``cut``, with
    plain names and plain text: each must be read whole from the cut archive."""
    out = {}
    try:
        zf = zipfile.ZipFile(io.BytesIO(whole))
    except zipfile.BadZipFile:
        return out
    for info in zf.infolist():
        name = info.orig_filename
        if not name or "\x00" in name or name.endswith("/") or ".." in name.replace("\\", "/").split("/"):
            continue
        if name.startswith(("/", "\\")) or name[1:3] in (":/", ":\\"):
            continue
        data = zf.read(info)
        if data[:2] in (b"\x1f\x8b", b"PK", b"BZ") or data[:6] == b"\xfd7zXZ\x00" or data[257:262] == b"ustar":
            continue  # nested: named otherwise
        end = info.header_offset + 30 + len(info.orig_filename.encode()) + len(info.extra) + info.compress_size
        if end <= cut and data:
            out[name] = data
    return out


def _cwd() -> list[str]:
    """What the working directory holds (but Hypothesis' own cache, which it may start then)."""
    return sorted(name for name in os.listdir(".") if name != ".hypothesis")


@fuzz_settings(25)
@given(case=damaged())
def test_any_archive_is_read_without_fault_or_file_written_and_nothing_before_a_cut_lost(tmp_path_factory, case):
    whole, data, cut = case
    folder = tmp_path_factory.mktemp("archive")
    path = folder / "upload.bin"
    path.write_bytes(data)
    cwd_before = _cwd()
    with kept_if_it_fails("archives", data):
        got = _read_all(path)
        if cut is not None and whole[:2] == b"PK":
            for name, text in _whole_before(whole, cut).items():
                assert got.get(f"{path}!{name}") == text, name
        read_checked(path)
        assert sorted(p.name for p in folder.iterdir()) == ["upload.bin"]
        assert _cwd() == cwd_before


@pytest.mark.parametrize("path", crash_files("archives"), ids=lambda p: p.name)
def test_kept_archives_are_read_without_fault(path, tmp_path):
    """Archives a campaign (or a bug report) found: each stays a regression case."""
    _read_all(path)
    read_checked(path)
    assert list(tmp_path.iterdir()) == []
