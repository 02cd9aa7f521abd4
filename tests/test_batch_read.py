"""A batch of small files read in one task (``runner._read_batch``): its text logs are read
as one block, its EVTX files' records mapped together, and each file's report (lines, events, unparsed, format, warnings, assumptions)
and events come out as reading that file alone gives them."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from analyzer.ingest import IngestOptions, evtxbatch, runner, textlog
from analyzer.ingest.sources import Source
from analyzer.ingest.types import InputReport
from analyzer.schema import concat_events

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

# one sshd connection (pid 4242) whose PAM line is in one file and its failure in the next:
# folding must not join them across files
_PAM_ONLY = "Nov  3 16:00:00 alpha sshd[4242]: pam_unix(sshd:auth): authentication failure; rhost=203.0.113.9 user=root\n"
_FAIL_ONLY = "Nov  3 16:00:01 alpha sshd[4242]: Failed password for root from 203.0.113.9 port 50000 ssh2\n"
# RFC 3164 lines across New Year: each file counts its own year turns from its own first line
_NEW_YEAR = (
    "Dec 31 23:59:58 beta sshd[10]: Failed password for root from 198.51.100.7 port 1000 ssh2\n"
    "Jan  1 00:00:02 beta sshd[11]: Failed password for root from 198.51.100.7 port 1001 ssh2\n"
)
_JANUARY = "Jan  1 00:00:05 gamma sshd[12]: Failed password for admin from 198.51.100.8 port 1002 ssh2\n"
# an sshd line no pattern knows (unparsed, sampled), a line without a header, a repeated line
_BAD_LINE = (
    "Nov  3 16:00:00 delta sshd[77]: Failed password for root from 192.0.2.5 port 22 ssh2\n"
    "Nov  3 16:00:01 delta sshd[77]: Failed bogus authentication gizmo for root\n"
    "this line has no syslog header at all: sshd Failed password\n"
    "Nov  3 16:00:02 delta sshd[78]: message repeated 4 times: [ Failed password for root from 192.0.2.5 port 22 ssh2]\n"
)


def _auth(host: str) -> str:
    return (SAMPLES / "linux-root-refused" / "auth.log").read_text().replace(" db02 ", f" {host} ")


def _files(root: Path) -> list[Path]:
    """Varied small inputs, in the order a batch takes them."""
    made = {
        "a/auth.log": _auth("web01"),
        "b/auth.log": _auth("web02"),
        "c/secure": (SAMPLES / "linux-brute-force" / "secure").read_text(),
        "d/journal.export": (SAMPLES / "linux-journal-export" / "journal.export").read_text(),
        "e/empty.log": "",
        "f/bad.log": _BAD_LINE,
        "g/pam.log": _PAM_ONLY,
        "h/fail.log": _FAIL_ONLY,
        "i/newyear.log": _NEW_YEAR,
        "j/january.log": _JANUARY,
        "k/no-newline.log": _FAIL_ONLY.rstrip("\n"),  # (read alone: its last line is not whole)
        "l/latin1.log": _JANUARY.replace("admin", "m\xfcller").encode("latin-1"),  # invalid UTF-8: alone
        "m/auth.log": _auth("web03"),
        "n/Security.evtx": (SAMPLES / "windows-dc-disabled" / "Security.evtx").read_bytes(),
        "o/System.evtx": (SAMPLES / "windows-winrm-stopped" / "System.evtx").read_bytes(),
        "p/Security.evtx": (SAMPLES / "windows-kerberos-spray" / "Security.evtx").read_bytes(),
        # cut inside its first chunk: the whole records before the cut, and a warning
        "q/cut.evtx": (SAMPLES / "windows-dc-lockout" / "Security.evtx").read_bytes()[: 4096 + 30000],
        # cut inside its file header: an error (read alone)
        "r/header.evtx": (SAMPLES / "windows-dc-lockout" / "Security.evtx").read_bytes()[:2000],
    }
    paths = []
    for rel, text in made.items():
        path = root / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        paths.append(path)
    return paths


def _alone(files: tuple, opts: IngestOptions) -> tuple[list[dict], list[pd.DataFrame]]:
    got = [runner._read_file(path, name, mtime, opts) for path, name, mtime in files]
    return [rep.as_dict() for rep, _ in got], [events for _, events in got]


@pytest.mark.parametrize("opts", [IngestOptions(year=2025, jobs=1), IngestOptions(jobs=1, lazy_raw=True)])
def test_a_batch_reads_each_file_as_it_is_read_alone(tmp_path, monkeypatch, opts):
    paths = _files(tmp_path)
    files = tuple((str(p), str(p), 1762200000.0) for p in paths)
    joined: list[int] = []
    real = textlog.read_syslog_batch

    def spy(items, o):
        joined.append(len(items))
        return real(items, o)

    monkeypatch.setattr(textlog, "read_syslog_batch", spy)
    batch = runner._read_batch(files, opts)
    assert joined == [9]  # the whole text logs in valid UTF-8, as one block (not the journal, empty, cut, latin-1)
    mapped = evtxbatch.read_evtx_batch([(Source(str(p), io.BytesIO(), path=str(p)), InputReport(str(p))) for p in paths[13:]], opts)
    if opts.lazy_raw:  # without raw text, the EVTX files' records are mapped together (not the unreadable one)
        assert mapped is not None and mapped[2] == [True, True, True, True, False]
    else:
        assert mapped is None
    reports, frames = _alone(files, opts)
    assert [r.as_dict() for r in batch.reports] == reports
    assert batch.rows == [len(f) for f in frames]
    pd.testing.assert_frame_equal(batch.events, concat_events(frames))
    by_name = {Path(r["name"]).parent.name: r for r in reports}
    # the cases are what they are meant to be
    assert by_name["d"]["format"] == "journal-export" and by_name["e"]["skipped"]
    assert by_name["f"]["unparsed"] >= 1 and by_name["f"]["unparsed_samples"]
    assert by_name["g"]["events"] == 1 and by_name["h"]["events"] == 1  # not folded into one across files
    assert any("U+FFFD" in w for w in by_name["l"]["warnings"])
    assert by_name["a"]["events"] > 0 and by_name["c"]["events"] > 0
    assert all(by_name[x]["format"] == "evtx" and by_name[x]["events"] > 0 for x in "nop")
    assert by_name["q"]["warnings"] and by_name["q"]["events"] > 0 and "header" in by_name["r"]["error"]
    years = batch.events.loc[batch.events["source"].str.endswith(("newyear.log", "january.log")), "timestamp"]
    if opts.year is not None:  # each file's first line is in --year: gamma's January too
        assert [t.year for t in years] == [2025, 2026, 2025]


def test_a_batch_without_whole_text_logs_reads_each_alone(tmp_path):
    paths = _files(tmp_path)
    files = tuple((str(p), str(p), None) for p in paths if p.parent.name in ("d", "e", "k"))
    opts = IngestOptions(year=2025, jobs=1)
    batch = runner._read_batch(files, opts)
    reports, frames = _alone(files, opts)
    assert [r.as_dict() for r in batch.reports] == reports
    pd.testing.assert_frame_equal(batch.events, concat_events(frames))


def test_a_fault_in_the_joined_read_reads_each_file_alone(tmp_path, monkeypatch):
    paths = _files(tmp_path)
    files = tuple((str(p), str(p), None) for p in paths)
    opts = IngestOptions(year=2025, jobs=1)

    def boom(*_args):
        raise RuntimeError("joined read fault")

    monkeypatch.setattr(textlog, "read_syslog_batch", boom)
    batch = runner._read_batch(files, opts)
    reports, frames = _alone(files, opts)
    assert [r.as_dict() for r in batch.reports] == reports
    pd.testing.assert_frame_equal(batch.events, concat_events(frames))


def test_real_evtx_files_read_in_batches_as_alone(shared, monkeypatch):
    """Every small EVTX file of ../shared/data (other people's systems: Sysmon, OpenSSH,
    PowerShell, cut and damaged logs), read in batches of 24 as the collector's small files
    are: each one's report and events as it gives them alone; each event id's records of a
    batch go through one JSON read (fewer reads than files), and when that read refuses
    them, through one a file with the same result."""
    paths = sorted(p for p in shared().rglob("*.evtx") if p.stat().st_size <= runner.BATCH_FILE_BYTES)
    assert len(paths) > 50
    opts = IngestOptions(jobs=1, lazy_raw=True)
    files = [(str(p), str(p), None) for p in paths]
    batches = [tuple(files[k : k + 24]) for k in range(0, len(files), 24)]
    reads: list[int] = []
    real = evtxbatch.joined_table

    def spy(*args, **kwargs):
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evtxbatch, "joined_table", spy)
    joined = [runner._read_batch(b, opts) for b in batches]
    assert 0 < len(reads) < len(paths)
    # the batch path itself takes nearly every file (a fault in it would read each alone: the same result)
    done = [
        ok
        for b in batches
        for ok in evtxbatch.read_evtx_batch(
            [(Source(name, io.BytesIO(), path=path), InputReport(name)) for path, name, _ in b], opts
        )[2]
    ]
    assert sum(done) >= 0.9 * len(paths)
    monkeypatch.setattr(evtxbatch, "joined_table", lambda *a, **k: None)  # the joined read refuses: each alone
    refused = [runner._read_batch(b, opts) for b in batches[:2]]
    for batch, got in zip(batches, joined, strict=True):
        reports, frames = _alone(batch, opts)
        assert [r.as_dict() for r in got.reports] == reports
        pd.testing.assert_frame_equal(got.events, concat_events(frames))
    for first, again in zip(joined, refused, strict=False):
        assert [r.as_dict() for r in first.reports] == [r.as_dict() for r in again.reports]
        pd.testing.assert_frame_equal(first.events, again.events)


def test_segments_without_a_columns_values_join_as_read_alone(tmp_path):
    """Files whose events hold no value of a column (a PAM line's, a failure's, a success's
    ``reason``): the batch's categories are those of the files joined after reading each alone."""
    texts = [
        _PAM_ONLY,
        _FAIL_ONLY.replace("4242", "4243"),
        "Nov  3 16:00:02 alpha sshd[4244]: Accepted password for ops from 198.51.100.4 port 50001 ssh2\n",
    ]
    files = []
    for k, text in enumerate(texts):
        path = tmp_path / f"{k}.log"
        path.write_text(text)
        files.append((str(path), str(path), None))
    opts = IngestOptions(year=2025, jobs=1, lazy_raw=True)
    batch = runner._read_batch(tuple(files), opts)
    _, frames = _alone(tuple(files), opts)
    pd.testing.assert_frame_equal(batch.events, concat_events(frames))
