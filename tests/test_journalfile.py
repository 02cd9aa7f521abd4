"""systemd journal files read without journalctl, against what systemd itself reads in them.

The fixtures (tests/files/journal, made by its make.py with systemd-journal-remote) are one
stream of records written in each layout (compact or not), zstd-compressed as systemd 252
writes; beside each, ``journalctl -o export`` of it: the oracle. Older compressions (xz,
lz4) are tested on files written here.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.ingest import IngestOptions, journal, read_events, runner
from analyzer.ingest.journalfile import journal_records

FILES = Path(__file__).resolve().parent / "files" / "journal"
FIXTURES = sorted(p.name[: -len(".journal.gz")] for p in FILES.glob("*-?.journal.gz"))


def _journal(name: str) -> bytes:
    return gzip.decompress((FILES / f"{name}.journal.gz").read_bytes())


def _read(path: Path, jobs: int = 1):
    res = read_events([str(path)], IngestOptions(jobs=jobs))
    (rep,) = res.inputs
    return rep, res.events.drop(columns=["source"])


def _objects(data: bytes) -> list[tuple[int, int, int, int]]:
    """(offset, type, flags, size) of every object."""
    out, pos = [], struct.unpack_from("<Q", data, 88)[0]
    while pos + 16 <= len(data):
        kind, flags, size = struct.unpack_from("<BB6xQ", data, pos)
        if kind == 0 or size < 16:
            break
        out.append((pos, kind, flags, size))
        pos += (size + 7) & ~7
    return out


def test_the_fixtures_cover_both_layouts_and_compression():
    assert FIXTURES == ["zstd-0", "zstd-1"]
    for name in FIXTURES:
        data = _journal(name)
        flags = struct.unpack_from("<I", data, 12)[0]
        assert flags & 8 and bool(flags & 16) == name.endswith("1"), name
        packed = [o for o in _objects(data) if o[1] == 1 and o[2]]
        assert len(packed) > 20, f"{name}: compressed DATA objects (long messages, a long _CMDLINE)"


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_journal_file_reads_as_journalctl_exports_it(tmp_path, name, jobs):
    """Every entry as systemd reads it: the same events, counts and times as the export
    of the same file (long messages compressed, bytes that are not UTF-8, a record
    without a host, PAM lines folded into sshd's)."""
    rep, ev = _read(FILES / f"{name}.journal.gz", jobs)
    oracle_rep, oracle = _read(FILES / f"{name}.journal.export.gz", jobs)
    assert rep.format == "journal-file" and rep.error is None and not rep.warnings
    pd.testing.assert_frame_equal(ev, oracle)
    assert (rep.lines, rep.irrelevant, rep.unparsed, rep.events) == (
        oracle_rep.lines, oracle_rep.irrelevant, oracle_rep.unparsed, oracle_rep.events,
    )  # fmt: skip
    assert rep.lines == 240 and len(ev) > 100
    assert ev["user"].astype(str).str.len().max() > 512  # a compressed message, read
    assert ev["user"].astype(str).str.contains("\ufffd").any()  # not UTF-8: replaced, not fatal
    # the file whole, as journald leaves it (the rest of its arena preallocated zeros)
    data = _journal(name)
    header_size, arena = struct.unpack_from("<QQ", data, 88)
    (tmp_path / "whole.journal").write_bytes(data + b"\0" * (header_size + arena - len(data)))
    pd.testing.assert_frame_equal(_read(tmp_path / "whole.journal")[1], oracle)


def test_a_journal_file_cut_short_is_read_up_to_the_cut(tmp_path):
    data = _journal("zstd-1")
    entries = [o for o in _objects(data) if o[1] == 3]
    cut = entries[150][0] + 20  # inside the 151st entry
    (tmp_path / "cut.journal").write_bytes(data[:cut])
    rep, ev = _read(tmp_path / "cut.journal")
    _, oracle = _read(FILES / "zstd-1.journal.export.gz")
    assert rep.lines == 150 and rep.error is None
    assert rep.warnings == [f"the journal file is damaged or cut short at byte {entries[150][0]:,}: the entries after it are not read"]
    pd.testing.assert_frame_equal(ev, oracle[oracle["locator"] <= 150].reset_index(drop=True), check_categorical=False)


def test_hostile_journal_files_are_errors_or_warnings_not_crashes(tmp_path):
    data = bytearray(_journal("zstd-0"))
    objects = _objects(bytes(data))
    warned: list[str] = []
    # an object claiming to run past the end: the entries before it are read
    first_entry = next(o for o in objects if o[1] == 3)
    bad = bytearray(data)
    struct.pack_into("<Q", bad, first_entry[0] + 8, 1 << 62)
    assert list(journal_records(bytes(bad), warned.append)) == [] and "damaged or cut short" in warned[-1]
    # an entry pointing at garbage: that field is missing, nothing else
    bad = bytearray(data)
    struct.pack_into("<Q", bad, first_entry[0] + 64, len(bad) + 4096)
    assert len(list(journal_records(bytes(bad), warned.append))) == 240
    # a compressed field that does not decompress: said once, its entries lack it
    packed = next(o for o in objects if o[1] == 1 and o[2])
    bad = bytearray(data)
    bad[packed[0] + 64 + 8 : packed[0] + 64 + 16] = b"\xff" * 8
    warned.clear()
    assert len(list(journal_records(bytes(bad), warned.append))) == 240
    assert len(warned) == 1 and "could not be read" in warned[0]
    # flags from a future systemd, and a header cut short: the input's error, named
    future = bytearray(data)
    struct.pack_into("<I", future, 12, struct.unpack_from("<I", future, 12)[0] | 1 << 10)
    (tmp_path / "future.journal").write_bytes(future)
    (tmp_path / "stub.journal").write_bytes(bytes(data[:100]))
    res = read_events([str(tmp_path)], IngestOptions(jobs=1))
    errors = {r.name.rsplit("/", 1)[-1]: r.error for r in res.inputs}
    assert "features this reader does not know" in errors["future.journal"]
    assert "cut short" in errors["stub.journal"]


def test_analyze_a_journal_directory(tmp_path):
    """/var/log/journal/<machine id>/ as a customer sends it: analyzed like any log."""
    (tmp_path / "0123abcd").mkdir()
    (tmp_path / "0123abcd" / "system.journal").write_bytes(_journal("zstd-1"))
    res = CliRunner().invoke(app, ["analyze", str(tmp_path), "--format", "json"])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.stdout)
    assert doc["inputs"][0]["format"] == "journal-file" and doc["totals"]["failures"] > 50
    assert {h["name"] for h in doc["hosts"]} >= {"web01", "web02"}


def _write_journal(records: list[dict[str, bytes]], compress: str, compact: bool) -> bytes:
    """A minimal journal file (what the reader walks: header, DATA and ENTRY objects; no hash
    tables or entry arrays), its DATA objects compressed as systemd's compress.c does: xz
    (an .xz stream, no check), lz4 (the size as le64, then an LZ4 block), zstd (a frame)."""
    import lzma

    import pyarrow as pa

    flag = {"xz": 1, "lz4": 2, "zstd": 8}[compress]
    header_size = 272
    out = bytearray(header_size)
    offsets: dict[bytes, int] = {}
    tail = 0

    def put(kind: int, flags: int, body: bytes) -> int:
        nonlocal tail
        at = len(out)
        out.extend(struct.pack("<BB6xQ", kind, flags, 16 + len(body)) + body)
        out.extend(b"\0" * (-len(out) % 8))
        tail = at
        return at

    for i, rec in enumerate(records):
        items = []
        for key, value in rec.items():
            payload = key.encode() + b"=" + value
            if payload not in offsets:
                blob, obj_flags = payload, 0
                if len(payload) > 64:
                    obj_flags = {"xz": 1, "lz4": 2, "zstd": 4}[compress]
                    if compress == "xz":
                        blob = lzma.compress(payload, check=lzma.CHECK_NONE)
                    elif compress == "lz4":
                        blob = struct.pack("<Q", len(payload)) + pa.Codec("lz4_raw").compress(payload, asbytes=True)
                    else:
                        blob = pa.Codec("zstd").compress(payload, asbytes=True)
                head = struct.pack("<QQQQQQ", 0, 0, 0, 0, 0, 1) + (struct.pack("<II", 0, 0) if compact else b"")
                offsets[payload] = put(1, obj_flags, head + blob)
            items.append(offsets[payload])
        body = struct.pack("<QQQ16sQ", i + 1, 1_762_178_400_000_000 + i, i, b"\0" * 16, 0)
        body += b"".join(struct.pack("<I", o) if compact else struct.pack("<QQ", o, 0) for o in items)
        put(3, 0, body)
    out[:8] = b"LPKSHHRH"
    struct.pack_into("<II", out, 8, 0, flag | (16 if compact else 0))
    struct.pack_into("<QQ", out, 88, header_size, len(out) - header_size)
    struct.pack_into("<Q", out, 136, tail)
    return bytes(out)


@pytest.mark.parametrize("compress", ["xz", "lz4", "zstd"])
@pytest.mark.parametrize("compact", [False, True])
def test_each_compression_systemd_has_written(compress, compact):
    """journald wrote xz (systemd before 229), lz4 (until 249, as in RHEL 8 and Debian 11)
    and zstd (Debian 12's systemd 252 writes only that: the fixtures above)."""
    long_user = "u" * 700
    records = [
        {"_HOSTNAME": b"db01", "SYSLOG_IDENTIFIER": b"sshd", "_PID": b"4242",
         "MESSAGE": f"Failed password for {long_user} from 203.0.113.5 port 51000 ssh2".encode()},
        {"_HOSTNAME": b"db01", "SYSLOG_IDENTIFIER": b"sshd", "_PID": b"4243",
         "MESSAGE": b"Failed password for root from 203.0.113.6 port 51001 ssh2", "_CMDLINE": b"sshd: root " * 40},
    ]  # fmt: skip
    got = list(journal_records(_write_journal(records, compress, compact), pytest.fail))
    assert got == [
        {"__REALTIME_TIMESTAMP": 1_762_178_400_000_000 + i, **{k: v.decode() for k, v in rec.items() if k != "_CMDLINE"}}
        for i, rec in enumerate(records)
    ]


def test_journal_records_are_turned_into_rows_a_batch_at_a_time(monkeypatch):
    """Batches of a few records (a PAM line and its sshd failure in different batches, as
    well as bad JSON lines) give what one batch gives: records numbered across batches,
    source-wide steps over all of them."""

    samples = Path(__file__).resolve().parent.parent / "samples"
    inputs = [
        FILES / "zstd-1.journal.gz",
        FILES / "zstd-0.journal.export.gz",
        samples / "linux-journal" / "journal.json",
        samples / "linux-journal-export" / "journal.export",
    ]
    whole = [read_events([str(p)], IngestOptions(jobs=1)) for p in inputs]
    monkeypatch.setattr(journal, "JOURNAL_BATCH", 7)
    for p, one in zip(inputs, whole, strict=True):
        few = read_events([str(p)], IngestOptions(jobs=1))
        pd.testing.assert_frame_equal(few.events, one.events, check_categorical=False)  # categories' order aside
        assert few.inputs[0].as_dict() == one.inputs[0].as_dict()
        assert len(one.events) > 14, p  # more than two batches of rows


def test_large_files_of_formats_read_whole_go_to_a_worker(tmp_path, monkeypatch):
    """A journal file larger than the workers' whole-file size was read by the parent alone
    (the workers waited): it goes to a worker, and the result is --jobs 1's."""
    from analyzer.ingest import workers

    for name in FIXTURES:
        (tmp_path / f"{name}.journal").write_bytes(_journal(name))
    (tmp_path / "auth.log").write_text("Nov  3 16:00:00 db01 sshd[77]: Failed password for root from 203.0.113.9 port 1 ssh2\n")
    one = read_events([str(tmp_path)], IngestOptions(jobs=1, year=2025))
    monkeypatch.setattr(runner, "WHOLE_BYTES", 4096)  # the journal files are larger, the text log not
    sent: list[str] = []
    pool = workers.pool

    class Spy:
        def __init__(self, real):
            self.real = real

        def submit(self, fn, *args):
            sent.append(f"{fn.__name__} {Path(args[0]).name}")
            return self.real.submit(fn, *args)

    monkeypatch.setattr(workers, "pool", lambda jobs: Spy(pool(jobs)))
    two = read_events([str(tmp_path)], IngestOptions(jobs=2, year=2025))
    assert sorted(sent) == ["_read_file auth.log", "_read_file zstd-0.journal", "_read_file zstd-1.journal"]
    pd.testing.assert_frame_equal(two.events, one.events)
    assert [r.as_dict() for r in two.inputs] == [r.as_dict() for r in one.inputs]
