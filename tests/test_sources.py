"""Inputs: files, directories, stdin, archives as streams, limits on untrusted uploads."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from analyzer.ingest import IngestOptions, read_events
from analyzer.ingest.sources import Limits, Skipped, Source, iter_sources

ROOT = Path(__file__).resolve().parent.parent
LINE = b"Mar  4 09:15:02 web1 sshd[812]: Failed password for root from 203.0.113.7 port 51022 ssh2\n"


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _names(paths, limits=None):
    out = []
    for item in iter_sources([str(p) for p in paths], limits):
        if isinstance(item, Skipped):
            out.append(("skipped", item.name, item.reason))
        else:
            out.append(("read", item.name, item.read()))
    return out


def test_gz_zip_tar_members_are_named_and_read(tmp_path):
    (tmp_path / "auth.log.2.gz").write_bytes(_gz(LINE))
    (tmp_path / "bundle.zip").write_bytes(_zip({"web/auth.log": LINE, "web/auth.log.1.gz": _gz(LINE)}))
    (tmp_path / "logs.tar.gz").write_bytes(_gz(_tar({"var/log/secure": LINE})))
    (tmp_path / "plain.tar").write_bytes(_tar({"a/auth.log": LINE}))
    got = {name: data for kind, name, data in _names([tmp_path]) if kind == "read"}
    assert got == {
        str(tmp_path / "auth.log.2.gz"): LINE,
        f"{tmp_path / 'bundle.zip'}!web/auth.log": LINE,
        f"{tmp_path / 'bundle.zip'}!web/auth.log.1.gz": LINE,
        f"{tmp_path / 'logs.tar.gz'}!var/log/secure": LINE,
        f"{tmp_path / 'plain.tar'}!a/auth.log": LINE,
    }


def test_nested_one_level_is_read_deeper_is_refused(tmp_path):
    inner = _zip({"auth.log": LINE})
    (tmp_path / "outer.tar.gz").write_bytes(_gz(_tar({"inner.zip": inner})))
    (tmp_path / "deep.zip").write_bytes(_zip({"mid.zip": _zip({"in.zip": inner})}))
    items = _names([tmp_path])
    read = [n for k, n, _ in items if k == "read"]
    assert f"{tmp_path / 'outer.tar.gz'}!inner.zip!auth.log" in read
    refused = [(n, r) for k, n, r in items if k == "skipped"]
    assert any(n.endswith("deep.zip!mid.zip!in.zip") and "nested" in r for n, r in refused)


def test_zip_bomb_is_refused_and_other_inputs_still_read(tmp_path):
    (tmp_path / "bomb.zip").write_bytes(_zip({"zeros.log": LINE * 400_000}))
    (tmp_path / "auth.log").write_bytes(LINE)
    res = read_events(
        [str(tmp_path)], IngestOptions(year=2025, limits=Limits(max_ratio=50, ratio_grace_bytes=1024 * 1024))
    )
    by_name = {r.name: r for r in res.inputs}
    bomb = by_name[f"{tmp_path / 'bomb.zip'}!zeros.log"]
    assert bomb.error and "ratio" in bomb.error and "zip bomb" in bomb.error
    assert by_name[str(tmp_path / "auth.log")].events == 1
    # reading stopped early; the lines read before the limit tripped are kept (nothing read is lost)
    assert bomb.lines < 400_000 // 4
    assert len(res.events) == 1 + bomb.events


def test_total_size_limit(tmp_path):
    (tmp_path / "a.log").write_bytes(LINE * 100)
    res = read_events([str(tmp_path / "a.log")], IngestOptions(year=2025, limits=Limits(max_total_bytes=1000)))
    assert "total uncompressed input exceeds 1000 bytes" in res.inputs[0].error


def test_path_traversal_members_are_refused(tmp_path):
    (tmp_path / "evil.zip").write_bytes(_zip({"../../etc/passwd": LINE, "/abs/auth.log": LINE, "ok/auth.log": LINE}))
    items = _names([tmp_path / "evil.zip"])
    assert [n for k, n, _ in items if k == "read"] == [f"{tmp_path / 'evil.zip'}!ok/auth.log"]
    refused = {n: r for k, n, r in items if k == "skipped"}
    assert all("escapes the archive" in r for r in refused.values()) and len(refused) == 2


def test_links_and_devices_in_tar_are_skipped(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("shadow")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tf.addfile(link)
        dev = tarfile.TarInfo("sda")
        dev.type = tarfile.BLKTYPE
        tf.addfile(dev)
        info = tarfile.TarInfo("auth.log")
        info.size = len(LINE)
        tf.addfile(info, io.BytesIO(LINE))
    (tmp_path / "t.tar").write_bytes(buf.getvalue())
    items = _names([tmp_path / "t.tar"])
    assert [n.rsplit("!", 1)[1] for k, n, _ in items if k == "read"] == ["auth.log"]
    assert {n.rsplit("!", 1)[1] for k, n, _ in items if k == "skipped"} == {"shadow", "sda"}


def test_symlink_inside_directory_is_skipped(tmp_path):
    (tmp_path / "real.log").write_bytes(LINE)
    os.symlink("/etc/hostname", tmp_path / "link.log")
    items = _names([tmp_path])
    assert ("read", str(tmp_path / "real.log"), LINE) in items
    assert any(k == "skipped" and n.endswith("link.log") and "link" in r for k, n, r in items)


def test_corrupt_archive_reports_one_line_and_keeps_the_rest(tmp_path):
    good = _gz(LINE * 3)
    (tmp_path / "broken.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04garbage")
    (tmp_path / "auth.log").write_bytes(LINE)
    res = read_events([str(tmp_path)], IngestOptions(year=2025))
    errors = {r.name: r.error for r in res.inputs if r.error}
    assert set(errors) == {str(tmp_path / "bad.zip"), str(tmp_path / "broken.gz")}
    assert all("\n" not in e for e in errors.values())
    assert len(res.events) >= 1


def test_missing_path_is_an_error_not_a_crash(tmp_path):
    res = read_events([str(tmp_path / "nope.log")])
    assert res.inputs[0].error.startswith("cannot open")
    assert not res.readable


def test_unknown_format_is_skipped_with_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    res = read_events([str(tmp_path / "notes.txt")])
    rep = res.inputs[0]
    assert rep.skipped and rep.error is None and rep.skip_reason.startswith("unknown format")


def test_source_from_bytes_reads_in_pieces():
    src = Source.from_bytes("mem", LINE * 3)
    assert b"".join(src.chunks(7)) == LINE * 3


@pytest.mark.parametrize("compress", [False, True])
def test_stdin(monkeypatch, compress):
    data = _gz(LINE) if compress else LINE

    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(data))

        @staticmethod
        def close() -> None:  # a forked worker closes its standard input first
            pass

    monkeypatch.setattr("sys.stdin", FakeStdin)
    res = read_events(["-"], IngestOptions(year=2025))
    assert res.inputs[0].name == "<stdin>"
    assert len(res.events) == 1


def test_total_size_limit_counts_an_evtx_file_the_parser_opens_itself(tmp_path):
    evtx = Path(__file__).resolve().parent.parent / "samples" / "windows-dc-probe" / "Security.evtx"
    size = evtx.stat().st_size
    within = read_events([str(evtx)], IngestOptions(limits=Limits(max_total_bytes=size)))
    assert within.inputs[0].error is None and len(within.events) > 0
    (tmp_path / "a.log").write_bytes(LINE)
    over = read_events([str(evtx), str(tmp_path / "a.log")], IngestOptions(year=2025, limits=Limits(max_total_bytes=size)))
    errors = {r.name: r.error for r in over.inputs}
    assert "total uncompressed input exceeds" in errors[str(tmp_path / "a.log")]
    assert errors[str(evtx)] is None


def test_a_read_ahead_prefix_is_read_then_let_go():
    """A large stream read ahead for sniffing goes on from a view of what was read (no copy),
    and that memory is let go once the view has been read through."""
    import sys

    from analyzer.ingest.sources import Prefixed

    data = bytes(range(256)) * 64
    before = sys.getrefcount(data)
    ahead = Prefixed(memoryview(data)[100:], io.BytesIO(b"the rest"))
    assert sys.getrefcount(data) > before  # the view holds the read-ahead
    got = b""
    while chunk := ahead.read(1000):
        got += chunk
    assert got == data[100:] + b"the rest"
    assert sys.getrefcount(data) == before  # … until it has been read


def _utf16(text: str, order: str) -> bytes:
    bom = {"le": b"\xff\xfe", "be": b"\xfe\xff"}[order]
    return bom + text.encode(f"utf-16-{order}")


@pytest.mark.parametrize("order", ["le", "be"])
def test_utf16_text_logs_are_read_as_their_utf8_selves(tmp_path, order):
    """A log saved as UTF-16 with a byte order mark (PowerShell 5's ``>``): syslog text, a
    firewall log and a Get-WinEvent JSON export give the events of their UTF-8 selves,
    quoted lines included, whole or in an archive; the report says how it was read."""
    from analyzer.samples import large_auth_log

    syslog = "".join(large_auth_log(30_000, seed=5))  # past the 1 MiB a transcoding step takes
    syslog += "Mar  4 09:15:02 web1 sshd[9]: Failed password for Zoë from 203.0.113.7 port 5 ssh2\n"
    firewall = (ROOT / "samples" / "windows-firewall-blocked-pfirewall" / "pfirewall.log").read_text()
    winjson = json.dumps(
        [
            {
                "Id": 4625,
                "LogName": "Security",
                "ProviderName": "Microsoft-Windows-Security-Auditing",
                "MachineName": "dc1",
                "RecordId": 7,
                "TimeCreated": "/Date(1730642400000)/",
                "Properties": [],
                "Message": "An account failed to log on.",
            }
        ]
    )
    for name, text in (("auth.log", syslog), ("pfirewall.log", firewall), ("events.json", winjson)):
        plain, wide = tmp_path / "utf8" / name, tmp_path / "utf16" / name
        plain.parent.mkdir(exist_ok=True)
        wide.parent.mkdir(exist_ok=True)
        plain.write_text(text, encoding="utf-8")
        wide.write_bytes(_utf16(text, order))
        (tmp_path / "utf16" / f"{name}.zip").write_bytes(_zip({name: _utf16(text, order)}))
    opts = IngestOptions(year=2025, jobs=1, lazy_raw=True)
    want = read_events([str(tmp_path / "utf8")], opts)
    got = read_events([str(tmp_path / "utf16")], opts)
    by_name = {r.name.rsplit("/", 1)[-1]: r for r in got.inputs}
    for name in ("auth.log", "pfirewall.log", "events.json"):
        assert by_name[name].format == by_name[f"{name}.zip!{name}"].format != None, name  # noqa: E711
        assert "UTF-16" in by_name[name].assumptions["encoding"]
    events = got.events.assign(source=got.events["source"].astype(str).str.replace(".zip!", "/").str.rsplit("/", n=1).str[-1])
    whole = events[~got.events["source"].astype(str).str.contains("!")].reset_index(drop=True)
    inner = events[got.events["source"].astype(str).str.contains("!")].reset_index(drop=True)
    mine = want.events.assign(source=want.events["source"].astype(str).str.rsplit("/", n=1).str[-1])
    assert len(mine) > 10_000 and "Zoë" in set(mine["user"].astype(str))

    def rows(ev: pd.DataFrame) -> pd.DataFrame:  # raw aside: the UTF-8 log's is read again later
        return ev.drop(columns="raw").astype(str).sort_values(["source", "locator"]).reset_index(drop=True)

    for part in (whole, inner):
        pd.testing.assert_frame_equal(rows(part), rows(mine))
    # quoted as read (the evidence step re-reads lines by their bytes), and as the UTF-8 lines
    quoted = whole[whole["source"] == "auth.log"].set_index("locator")["raw"]
    lines = syslog.splitlines()
    assert quoted.notna().all() and all(lines[k - 1] == text for k, text in quoted.items())


def test_utf16_lone_surrogate_becomes_a_replacement_character(tmp_path):
    line = "Mar  4 09:15:02 web1 sshd[812]: Failed password for X from 203.0.113.7 port 51022 ssh2\n"
    data = b"\xff\xfe" + line.encode("utf-16-le").replace("X".encode("utf-16-le"), b"\x00\xd8")
    (tmp_path / "auth.log").write_bytes(data)
    ev = read_events([str(tmp_path / "auth.log")], IngestOptions(year=2025, jobs=1)).events
    assert list(ev["user"].astype(str)) == ["\ufffd"]


def test_bzip2_and_xz_streams_and_tars_are_read_and_guarded(tmp_path):
    """Rotated logs compressed with bzip2 or xz (logrotate's compresscmd), and tars so
    compressed, are read as streams like gzip: named, nested one level, ratio-limited, a
    broken one reported on one line while the others are read."""
    import bz2
    import lzma

    (tmp_path / "auth.log.2.bz2").write_bytes(bz2.compress(LINE))
    (tmp_path / "auth.log.3.xz").write_bytes(lzma.compress(LINE))
    (tmp_path / "logs.tar.xz").write_bytes(lzma.compress(_tar({"var/log/secure": LINE})))
    (tmp_path / "logs.tar.bz2").write_bytes(bz2.compress(_tar({"var/log/auth.log": LINE})))
    (tmp_path / "two.xz").write_bytes(lzma.compress(LINE) + lzma.compress(LINE))  # concatenated streams
    (tmp_path / "in.zip").write_bytes(_zip({"old/auth.log.1.xz": lzma.compress(LINE)}))
    got = {name: data for kind, name, data in _names([tmp_path]) if kind == "read"}
    assert got == {
        str(tmp_path / "auth.log.2.bz2"): LINE,
        str(tmp_path / "auth.log.3.xz"): LINE,
        f"{tmp_path / 'logs.tar.xz'}!var/log/secure": LINE,
        f"{tmp_path / 'logs.tar.bz2'}!var/log/auth.log": LINE,
        str(tmp_path / "two.xz"): LINE * 2,
        f"{tmp_path / 'in.zip'}!old/auth.log.1.xz": LINE,
    }
    assert len(read_events([str(tmp_path)], IngestOptions(year=2025)).events) == 7

    for name, data in (("bomb.xz", lzma.compress(LINE * 40_000)), ("bomb.bz2", bz2.compress(LINE * 40_000))):
        (tmp_path / name).write_bytes(data)
    good_xz, good_bz2 = lzma.compress(LINE * 3000), bz2.compress(LINE * 3000)
    (tmp_path / "broken.xz").write_bytes(good_xz[: len(good_xz) // 2] + b"\0" * 64)
    (tmp_path / "broken.bz2").write_bytes(good_bz2[:100] + b"\xff" * 64 + good_bz2[164:])
    res = read_events(
        [str(tmp_path)], IngestOptions(year=2025, limits=Limits(max_ratio=50, ratio_grace_bytes=1024 * 1024))
    )
    errors = {r.name.rsplit("/", 1)[-1]: r.error for r in res.inputs if r.error}
    assert set(errors) == {"bomb.xz", "bomb.bz2", "broken.xz", "broken.bz2"}, errors
    assert "ratio" in errors["bomb.xz"] and "ratio" in errors["bomb.bz2"]
    assert all("\n" not in e for e in errors.values())
    assert sum(r.events for r in res.inputs if r.error is None) == 7


def test_inputs_known_by_their_first_bytes_are_skipped_saying_what_they_are(tmp_path):
    """zstd, 7-Zip, RAR...: skipped with what it is and what to do, whole or as an archive
    member, not as "binary data of an unknown format"."""
    from analyzer.ingest.sniff import UNREAD

    for i, (magic, _) in enumerate(UNREAD):
        (tmp_path / f"f{i}").write_bytes(magic + bytes(range(256)) * 4)
    (tmp_path / "in.zip").write_bytes(_zip({"auth.log.zst": UNREAD[0][0] + b"\0" * 512}))
    res = read_events([str(tmp_path)], IngestOptions(jobs=1))
    why = {r.name.rsplit("/", 1)[-1]: r.skip_reason for r in res.inputs}
    assert all(r.skipped and r.error is None for r in res.inputs)
    for i, (_, what) in enumerate(UNREAD):
        assert why[f"f{i}"] == what
    assert why["in.zip!auth.log.zst"].startswith("zstd-compressed: decompress it first")


def test_inputs_past_max_inputs_are_not_read_and_that_is_said(tmp_path):
    """Each input costs milliseconds however small: an archive of a million one-byte members
    must not take hours. Files and members past the limit are not read; the first of them
    is named with the limit, and the others are not listed one by one."""
    for i in range(4):
        (tmp_path / f"a{i}.log").write_bytes(LINE)
    (tmp_path / "b.zip").write_bytes(_zip({f"m{i}.log": LINE for i in range(10)}))
    (tmp_path / "c.log").write_bytes(LINE)
    items = _names([tmp_path], Limits(max_inputs=7))
    read = [n for k, n, _ in items if k == "read"]
    assert len(read) == 7 and read[-1].endswith("b.zip!m2.log")
    skipped = [(n, why) for k, n, why in items if k == "skipped"]
    assert skipped == [(f"{tmp_path / 'b.zip'}!m3.log", skipped[0][1])]
    assert "more than 7 inputs" in skipped[0][1] and "--max-inputs" in skipped[0][1]
    res = read_events([str(tmp_path)], IngestOptions(year=2025, limits=Limits(max_inputs=7)))
    assert len(res.events) == 7 and res.inputs[-1].error.startswith("more than 7 inputs")
    from typer.testing import CliRunner

    from analyzer.cli import app

    out = CliRunner().invoke(app, ["events", str(tmp_path), "--year", "2025", "--max-inputs", "3"])
    assert out.exit_code == 0 and len(out.stdout.splitlines()) == 3 and "more than 3 inputs" in out.stderr


# --- hardening: archives and text inputs (no crash, no silent loss, bounded expansion) ---


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(
        b"Mar  4 09:%02d:%02d web1 sshd[%d]: Failed password for root from 203.0.113.%d port %d ssh2\n"
        % ((i // 60) % 60, i % 60, 1000 + i % 5000, i % 250, 1024 + i)
        for i in range(start, start + n)
    )


def _by_name(res):
    return {r.name: r for r in res.inputs}


@pytest.mark.parametrize("odd", ["\x00", "", "auth.log\x00.evil"])
def test_zip_member_with_an_empty_or_nul_name_is_skipped_and_the_others_are_read(tmp_path, odd):
    """A member named '' or with a NUL byte (ZipInfo('\\x00')) crashed the whole run
    (``info.is_dir()`` → IndexError); it is skipped, named escaped, and the others are read."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("before/auth.log", LINE)
        info = zipfile.ZipInfo("placeholder")
        zf.writestr(info, LINE)
        zf.writestr("after/auth.log", LINE)
    data = buf.getvalue()
    if odd != "":  # write the odd name into both headers (zipfile itself cuts a name at its NUL)
        data = data.replace(b"placeholder", odd.encode().ljust(len("placeholder"), b"\x00")[: len("placeholder")])
    else:
        data = data.replace(b"placeholder", b"\x00" * len("placeholder"))
    (tmp_path / "odd.zip").write_bytes(data)
    (tmp_path / "plain.log").write_bytes(LINE)
    res = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=1))
    reps = _by_name(res)
    zpath = tmp_path / "odd.zip"
    assert reps[f"{zpath}!before/auth.log"].events == 1
    assert reps[f"{zpath}!after/auth.log"].events == 1
    assert reps[str(tmp_path / "plain.log")].events == 1
    (bad,) = [r for r in res.inputs if r.error]
    assert bad.skipped and "NUL byte" in bad.error and bad.name.startswith(f"{zpath}!'")
    assert "\x00" not in bad.name  # named escaped (repr)
    assert len(res.events) == 3


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_nul_hole_at_the_start_of_a_text_log_is_skipped_and_named(tmp_path, jobs):
    """A crash hole (zeros where lost blocks were) in the first 4 KiB made the whole log
    "binary data"; it is read, the hole named by line, and every line still counted."""
    body = _lines(300)
    (tmp_path / "auth.log").write_bytes(b"\x00" * 4096 + body)
    # a hole mid-file that cut a line short: its fragment goes with the hole
    cut = body.index(b"\n", 5000) + 1
    (tmp_path / "auth.log.1").write_bytes(body[:cut] + body[cut : cut + 40] + b"\x00" * 8192 + body[cut:])
    res = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=jobs))
    reps = _by_name(res)
    head = reps[str(tmp_path / "auth.log")]
    assert head.format == "syslog" and head.error is None
    assert head.lines == 300 and head.events == 300
    assert head.used + head.irrelevant + head.unparsed == head.lines
    assert head.warnings == ["NUL bytes (a crash hole?) on line 1 (bytes 1–4,096): skipped, the line read from the text after them"]
    # a line quoted in a report (read again by its number) is the text after the hole too
    from analyzer.evidence import lines_at

    with open(tmp_path / "auth.log", "rb") as fh:
        assert lines_at(Source(name="auth.log", stream=fh), [1]) == {1: body.split(b"\n")[0].decode()}
    mid = reps[str(tmp_path / "auth.log.1")]
    line = body[:cut].count(b"\n") + 1
    assert mid.lines == 300 and mid.events == 300, mid
    assert mid.warnings == [
        f"NUL bytes (a crash hole?) on line {line} (bytes 41–8,232): skipped, the line read from the text after "
        "them; 40 bytes of text before them (a line the hole cut short) were skipped with them"
    ]


def test_a_nul_hole_in_a_large_text_log_read_in_ranges_is_named_by_its_line(tmp_path):
    """The same in a log large enough to be read by the workers in byte ranges."""
    body = _lines(110_000)  # ~9.4 MB: more than one 8 MiB range
    at = body.index(b"\n", 8_500_000) + 1
    line = body[:at].count(b"\n") + 1
    (tmp_path / "auth.log").write_bytes(body[:at] + b"\x00" * 3000 + body[at:])
    for jobs in (1, 2):
        rep = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=jobs)).inputs[0]
        assert rep.lines == 110_000 and rep.events == 110_000 and rep.error is None
        assert rep.warnings == [f"NUL bytes (a crash hole?) on line {line} (bytes 1–3,000): skipped, the line read from the text after them"]


def test_an_input_that_is_all_nul_says_so():
    from analyzer.ingest.sniff import sniff

    fmt, why = sniff(b"\x00" * 65536)
    assert fmt is None and "all NUL (a crash hole?)" in why
    assert sniff(bytes(range(256)) * 64)[1] == "unknown format: binary data of an unknown format"


def test_a_stream_that_expands_too_fast_is_stopped_within_its_first_mib(tmp_path):
    """A 24 KB zip (or gz) of newlines after one log line expands ~1030:1: the ratio is
    checked against the compressed bytes used so far, from the first MiB on, not against the
    whole member once a thousand times its size has been read (a 1 MB zip gave 1.05 billion
    empty lines and 116 s before the check fired)."""
    payload = LINE + b"\n" * (24 << 20)
    (tmp_path / "nl.zip").write_bytes(_zip({"a.log": payload}))
    (tmp_path / "nl.gz").write_bytes(gzip.compress(payload, 9))
    (tmp_path / "auth.log").write_bytes(LINE)
    res = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=1))
    reps = _by_name(res)
    for name in (f"{tmp_path / 'nl.zip'}!a.log", str(tmp_path / "nl.gz")):
        rep = reps[name]
        assert rep.error and "compression ratio above 1000:1" in rep.error, name
        assert rep.events == 1 and rep.lines < 6 << 20, (name, rep.lines)  # of 24 M: stopped within a few MiB
    assert reps[str(tmp_path / "auth.log")].events == 1


def test_total_events_are_bounded_and_the_input_past_the_bound_is_named(tmp_path):
    """Events over all inputs are limited (max_events): the input that passes the limit keeps
    its events up to it and says where it was cut; the inputs after it are named, not read."""
    for i in range(4):
        (tmp_path / f"{i}.log").write_bytes(_lines(100, 100 * i))
    for jobs in (1, 2):
        res = read_events([str(tmp_path)], IngestOptions(year=2025, jobs=jobs, limits=Limits(max_events=150)))
        assert len(res.events) == 150
        reps = [_by_name(res)[str(tmp_path / f"{i}.log")] for i in range(3)]
        assert reps[0].events == 100 and reps[0].error is None
        assert reps[1].events == 50
        assert reps[1].error.startswith("more than 150 events in all: only the first 50 of this input's 100 were kept (up to line 50)")
        assert reps[2].events == 0 and "150 events allowed in all were reached in" in reps[2].error
        assert str(tmp_path / "1.log") in reps[2].error
        assert res.events["locator"].max() == 100 and res.readable


def _central_directory(whole: bytes) -> int:
    """Where a zip's central directory begins (from its end record)."""
    return int.from_bytes(whole[-22 + 16 : -22 + 20], "little")


def _truncated_zip(data: bytes, streamed: bool) -> bytes:
    """A zip of one member holding ``data``, cut before its central directory. ``streamed``:
    written as to a pipe (sizes in a data descriptor after the data, as streaming zippers do)."""
    if streamed:

        class Pipe(io.RawIOBase):
            def __init__(self):
                self.buf = bytearray()

            def writable(self):
                return True

            def write(self, b):
                self.buf += b
                return len(b)

        pipe = Pipe()
        with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("var/log/auth.log", "w") as fh:
            fh.write(data)
        whole = bytes(pipe.buf)
    else:
        whole = _zip({"var/log/auth.log": data})
    return whole[: _central_directory(whole)]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_zip_whose_central_directory_is_missing_is_read_from_its_local_headers(tmp_path, streamed):
    """A zip cut before its central directory gave "bad zip archive" and 0 of 200,000 intact
    lines; its members are read from their local headers, in order, and the archive is named
    with what happened."""
    n = 20_000 if streamed else 200_000
    (tmp_path / "cut.zip").write_bytes(_truncated_zip(_lines(n), streamed))
    res = read_events([str(tmp_path / "cut.zip")], IngestOptions(year=2025))
    reps = _by_name(res)
    member = reps[f"{tmp_path / 'cut.zip'}!var/log/auth.log"]
    assert member.error is None and member.lines == n and member.events == n
    note = reps[str(tmp_path / "cut.zip")].error
    assert "central directory is missing or damaged" in note and "1 member(s) read from their local headers" in note
    # cut inside the member's data: the lines before the cut are kept, the cut is named
    whole = (tmp_path / "cut.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) * 2 // 3])
    res = read_events([str(tmp_path / "cut.zip")], IngestOptions(year=2025))
    member = _by_name(res)[f"{tmp_path / 'cut.zip'}!var/log/auth.log"]
    assert n // 2 < member.lines < n and "cut short" in member.error
    assert len(res.events) == member.events == member.lines


def test_a_fault_no_one_foresaw_in_an_archive_costs_that_archive_not_the_run(tmp_path, monkeypatch):
    from analyzer.ingest import sources

    (tmp_path / "a.zip").write_bytes(_zip({"auth.log": LINE}))
    (tmp_path / "b.log").write_bytes(LINE)
    monkeypatch.setattr(sources, "_zip_member", lambda *a: [][0])  # an IndexError, as ZipInfo('\x00') raised
    items = _names([tmp_path])
    assert ("read", str(tmp_path / "b.log"), LINE) in items
    assert any(k == "skipped" and "IndexError" in r and "authtriage bug" in r for k, n, r in items), items


def test_local_headers_walk_several_members_and_skips_what_it_must(tmp_path):
    whole = _zip({"a/auth.log": _lines(10), "../evil.log": LINE, "b/secure": _lines(5, 10), "c.gz": _gz(LINE)})
    (tmp_path / "t.zip").write_bytes(whole[: _central_directory(whole) - 12])  # the last member cut short
    items = _names([tmp_path / "t.zip"])
    read = {n.rsplit("!", 1)[1]: d for k, n, d in items if k == "read"}
    assert read == {"a/auth.log": _lines(10), "b/secure": _lines(5, 10)}
    skipped = {n.rpartition("!")[2]: r for k, n, r in items if k == "skipped"}
    assert "escapes the archive" in skipped["../evil.log"]
    assert "cut short" in skipped["c.gz"]
    assert "3 member(s) read from their local headers" in skipped[str(tmp_path / "t.zip")]


def test_a_damaged_gz_names_the_text_in_doubt(tmp_path):
    """A .gz damaged in its middle: deflate finds out late (here at the CRC check at its end)
    and the lines decoded before are read; the error names the last line read (in the
    reader's numbering) and says that the member's text is in doubt back to its start."""
    data = _lines(50_000)
    gz = bytearray(gzip.compress(data, mtime=0))
    for k in range(4):
        gz[len(gz) // 2 + k] ^= 0x55
    (tmp_path / "auth.log.2.gz").write_bytes(bytes(gz))
    rep = read_events([str(tmp_path)], IngestOptions(year=2025)).inputs[0]
    assert rep.error.startswith("corrupt compressed data (")
    assert "gzip checks its data only at the end of a member, so the damage may lie anywhere in the text read from its start" in rep.error, rep.error
    assert rep.error.endswith(f"(after line {rep.lines}; the lines before it were read)")
    # two members (cat a.gz b.gz), the second damaged: the doubt begins with the second
    first = gzip.compress(_lines(1000), mtime=0)
    (tmp_path / "auth.log.2.gz").write_bytes(first + bytes(gz))
    rep = read_events([str(tmp_path)], IngestOptions(year=2025)).inputs[0]
    assert f"since gzip member 2 began (decompressed byte {len(_lines(1000)):,} on)" in rep.error, rep.error
    assert rep.lines >= 1000 and rep.events >= 1000


def test_a_directory_tree_990_levels_deep_is_read(tmp_path):
    """os.walk recursed once per level: a tree this deep raised RecursionError."""
    import subprocess

    here = tmp_path / "deep"
    here.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(here)  # (paths this long are made one level at a time)
        for _ in range(990):
            os.mkdir("d")
            os.chdir("d")
        Path("auth.log").write_text(
            "Nov  3 10:00:00 web1 sshd[1]: Failed password for root from 203.0.113.1 port 1 ssh2\n"
        )
    finally:
        os.chdir(cwd)
    try:
        res = read_events([str(here)], IngestOptions(year=2025, jobs=1))
        assert len(res.events) == 1 and res.inputs[0].name.endswith("/d/auth.log")
    finally:  # shutil.rmtree (pytest's clean-up of old temporary folders) recurses too: rm does not
        subprocess.run(["rm", "-rf", str(here)], check=True)


def test_a_pipe_named_on_the_command_line_is_read(tmp_path):
    """`authtriage analyze <(zcat auth.log.2.gz)` names a pipe (/dev/fd/N): it was skipped as
    "not a regular file"; the report quotes its lines from what was read (a pipe is read once)."""
    import subprocess
    import sys
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    line = "Nov  3 10:00:{:02d} web1 sshd[1]: Failed password for root from 203.0.113.1 port 1 ssh2\n"

    def write() -> None:
        with open(fifo, "w") as fh:
            fh.write("".join(line.format(i) for i in range(8)))

    writer = threading.Thread(target=write)
    writer.start()
    res = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", "--format", "json", "--year", "2025", str(fifo)],
        capture_output=True, text=True, timeout=120,
    )
    writer.join(timeout=10)
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["totals"]["events"] == 8, res.stderr
    quoted = [ex["text"] for f in doc["findings"] for ex in f["examples"]]
    assert quoted and all("Failed password for root" in t for t in quoted)
