"""The one read seam: paths and windows a caller made (a scheduled run's resumed files) go
through the same reading, limits and fault handling; one report merges its parts."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from analyzer.ingest import READERS, IngestOptions, InputReport, Window, read_events
from analyzer.ingest.sources import Limits, Source
from analyzer.ingest.types import MAX_SAMPLES
from analyzer.schedule.inputs import read_new

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FAILED = "Mar  4 09:15:02 web1 sshd[5]: Failed password for root from 203.0.113.7 port 22 ssh2\n"


def _window(data: bytes, name: str = "auth.log", fmt: str | None = "syslog") -> Window:
    """A window over ``data`` as the scheduler makes one: a stream whose head was read."""
    stream = io.BufferedReader(io.BytesIO(data))
    src = Source(name=name, stream=stream)
    src.head = stream.read(1024)
    return Window(src, fmt)


def test_a_window_reads_as_its_file_does(tmp_path):
    """The events and the account of a window are those of the same bytes read as a file."""
    data = (SAMPLES / "linux-password-mismatch" / "auth.log").read_bytes()
    (tmp_path / "auth.log").write_bytes(data)
    opts = IngestOptions(jobs=1, year=2025)
    as_file = read_events([str(tmp_path / "auth.log")], opts)
    as_window = read_events([_window(data, name=str(tmp_path / "auth.log"))], opts)
    pd.testing.assert_frame_equal(as_window.events, as_file.events)
    assert as_window.inputs[0].as_dict() == as_file.inputs[0].as_dict()


def test_a_window_keeps_the_format_its_caller_knows():
    """A window from the middle of a file may not look like its format at its start: read as
    the file's format, its lines are counted (sniffed, it would be skipped unread)."""
    lines = b"-- MARK --\n" * 3 + b"kernel: some noise\n"
    known = read_events([_window(lines)], IngestOptions(jobs=1)).inputs[0]
    assert known.format == "syslog" and not known.skipped and known.lines == 4
    sniffed = read_events([_window(lines, fmt=None)], IngestOptions(jobs=1)).inputs[0]
    assert sniffed.skipped and sniffed.format is None and sniffed.lines == 0


def test_windows_count_against_the_limits():
    """A window's bytes count against --max-total-bytes as they are read (the lines before
    the limit are kept, and the error names the window); windows past --max-inputs are not read."""
    data = FAILED.encode() * 4000  # ~350 KB
    limits = Limits(max_total_bytes=100_000, max_inputs=2)
    res = read_events([_window(data, "a.log"), _window(b"", "b.log"), _window(data, "c.log")], IngestOptions(jobs=1, year=2025, limits=limits))
    first, second, third = res.inputs
    assert "total uncompressed input exceeds 100000 bytes" in first.error and 0 < first.lines < 4000
    assert len(res.events) == first.events > 0
    # once the total is spent, later inputs are refused (as paths are), and past max_inputs not read
    assert second.skipped and "total uncompressed input exceeds" in second.error
    assert third.skipped and "more than 2 inputs" in third.error
    # paths have their own count (iter_sources'): the same limits, checked the same way
    within = read_events([_window(data, "a.log")], IngestOptions(jobs=1, year=2025, limits=Limits(max_total_bytes=10**6)))
    assert within.inputs[0].error is None and within.inputs[0].lines == 4000


def test_a_reader_fault_in_a_scheduled_file_is_that_file_s_error(tmp_path, monkeypatch):
    """The scheduler called the readers itself: a fault no reader foresaw ended the run. Through
    the seam it is that file's error; nothing of it is kept (the next run reads it again), the
    other files are read."""
    (tmp_path / "a.log").write_text(FAILED)
    (tmp_path / "b.json").write_text('{"MESSAGE": "Failed password for root from 203.0.113.8 port 22 ssh2",'
                                     ' "__REALTIME_TIMESTAMP": "1700000000000000", "SYSLOG_IDENTIFIER": "sshd"}\n')  # fmt: skip

    def broken(src, opts, rep):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setitem(READERS, "journal-json", broken)
    got = read_new([str(tmp_path)], [], IngestOptions(jobs=1, year=2025))
    errors = {Path(r.name).name: r.error for r in got.reports}
    assert errors["a.log"] is None and "OverflowError" in errors["b.json"]
    assert [Path(origin).name for origin, _ in got.events] == ["a.log"]
    assert {Path(f.path).name: f.offset for f in got.files}["b.json"] == 0  # read again next run


def test_merge_adds_counts_and_keeps_the_first_samples():
    whole = InputReport(name="t.zip", lines=1, unparsed=1, unparsed_samples=["x"])
    for i in range(3):
        part = InputReport(name=f"t.zip!{i}", lines=10, records=2, events=3, used=4, irrelevant=5, unparsed=6)
        part.unparsed_samples = [f"{i}:{j}" for j in range(9)]
        whole.merge(part)
    assert (whole.lines, whole.records, whole.events, whole.used, whole.irrelevant, whole.unparsed) == (31, 6, 9, 12, 15, 19)
    assert whole.unparsed_samples == ["x", *[f"{i}:{j}" for i in range(3) for j in range(9)]][:MAX_SAMPLES]
    assert whole.name == "t.zip" and whole.warnings == []
