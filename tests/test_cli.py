"""The command line: events, analyze, exit codes, errors without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from analyzer.cli import app, parse_when

runner = CliRunner()
LINE = "Mar  4 09:15:02 web1 sshd[812]: Failed password for {user} from 203.0.113.7 port 51022 ssh2\n"


def _log(tmp_path, user="root", name="auth.log"):
    p = tmp_path / name
    p.write_text(LINE.format(user=user))
    return p


def test_events_jsonl_has_iso_utc_times(tmp_path):
    res = runner.invoke(app, ["events", str(_log(tmp_path)), "--year", "2025"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout.splitlines()[0])
    assert rec["timestamp"] == "2025-03-04T09:15:02.000000Z"
    assert (rec["user"], rec["src_ip"], rec["outcome"], rec["locator"]) == ("root", "203.0.113.7", "failure", 1)


def test_dash_output_is_standard_output(tmp_path, monkeypatch):
    """``-o -`` writes to standard output (as ``-`` reads standard input), not to a file named "-"."""
    monkeypatch.chdir(tmp_path)
    log = str(_log(tmp_path))
    res = runner.invoke(app, ["events", log, "--year", "2025", "-o", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["user"] == "root"
    res = runner.invoke(app, ["analyze", log, "--year", "2025", "--format", "json", "--output", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["totals"]["failures"] == 1
    assert not (tmp_path / "-").exists()


def test_events_csv_neutralizes_formulas(tmp_path):
    out = tmp_path / "e.csv"
    res = runner.invoke(
        app, ["events", str(_log(tmp_path, user="=HYPERLINK(1)")), "--format", "csv", "-o", str(out), "--year", "2025"]
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["user"] == "'=HYPERLINK(1)"
    assert rows[0]["src_ip"] == "203.0.113.7"


def test_analyze_summary(tmp_path):
    res = runner.invoke(app, ["analyze", str(_log(tmp_path)), "--tz", "Europe/Berlin", "--year", "2025"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["totals"]["failures"] == 1
    assert doc["inputs"][0]["format"] == "syslog" and doc["inputs"][0]["lines"] == 1
    assert doc["failures_by"]["user"] == [{"value": "root", "count": 1}]
    assert doc["first_seen"] == "2025-03-04T08:15:02Z"
    assert "Europe/Berlin" in doc["assumptions"]["timezone"][0]


def test_since_until_window(tmp_path):
    p = tmp_path / "a.log"
    p.write_text(LINE.format(user="a").replace("Mar  4", "Mar  1") + LINE.format(user="b"))
    res = runner.invoke(
        app, ["events", str(p), "--year", "2025", "--since", "2025-03-02", "--until", "2025-03-05T00:00Z"]
    )
    assert [json.loads(x)["user"] for x in res.stdout.splitlines()] == ["b"]
    assert "outside" not in res.stderr  # some events remain: nothing to say
    res = runner.invoke(app, ["events", str(p), "--year", "2025", "--since", "2026-01-01"])
    assert res.exit_code == 0 and res.stdout == ""
    assert res.stderr.strip() == (
        "authtriage: all 2 events read lie outside --since/--until "
        "(the events read run from 2025-03-01T09:15:02Z to 2025-03-04T09:15:02Z)"
    )


def test_report_says_what_the_window_left_out(tmp_path):
    """A window that leaves events out says how many and when the events read lie, so an
    empty report over the wrong window is not read as "no failed logins"."""
    p = tmp_path / "a.log"
    p.write_text(LINE.format(user="a").replace("Mar  4", "Mar  1") + LINE.format(user="b") * 2)
    args = ["analyze", str(p), "--year", "2025"]
    res = runner.invoke(app, [*args, "--format", "json", "--since", "2025-03-02", "--until", "2025-03-05T00:00Z"])
    w = json.loads(res.stdout)["window"]
    assert (w["left_out"], w["read_first"], w["read_last"]) == (1, "2025-03-01T09:15:02Z", "2025-03-04T09:15:02Z")
    res = runner.invoke(app, [*args, "--format", "text", "--since", "2025-06-01T10:00:00.123456+02:00"])
    assert res.exit_code == 0, res.output
    assert "0 events" in res.stdout
    assert (
        "Only events at or after 2025-06-01T08:00:00Z: 3 event(s) read lie outside this window and are left out "
        "(the events read run from 2025-03-01T09:15:02Z to 2025-03-04T09:15:02Z)."
    ) in " ".join(res.stdout.split())  # (wrapped to 80 columns)
    for fmt, shown in (("md", "3 event(s) read lie outside"), ("html", "3 event(s) read lie outside")):
        res = runner.invoke(app, [*args, "--format", fmt, "--until", "2025-03-01T12:00Z"])
        assert "before 2025-03-01T12:00:00Z" in res.stdout.replace("\\", "") and "2 event" in res.stdout, fmt
        res = runner.invoke(app, [*args, "--format", fmt, "--since", "2026-01-01"])
        assert shown in res.stdout, fmt
    res = runner.invoke(app, [*args, "--format", "text", "--since", "2025-01-01"])
    assert "every event read is inside this window" in " ".join(res.stdout.split())
    res = runner.invoke(app, [*args, "--format", "json"])  # no window: nothing said, nothing left out
    assert json.loads(res.stdout)["window"]["left_out"] == 0
    res = runner.invoke(app, [*args, "--format", "text"])
    assert "Only events" not in res.stdout


def test_relative_times():
    import datetime as dt

    now = dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)
    assert str(parse_when("24h", now)) == "2025-03-03 12:00:00+00:00"
    assert str(parse_when("7d", now)) == "2025-02-25 12:00:00+00:00"


def test_usage_errors_exit_2_without_traceback(tmp_path):
    res = runner.invoke(app, ["events", str(_log(tmp_path)), "--tz", "Mars/Olympus"])
    assert res.exit_code == 2 and "unknown time zone" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["events", str(_log(tmp_path)), "--since", "yesterday-ish"])
    assert res.exit_code == 2 and "cannot read the time" in res.output
    res = runner.invoke(app, ["analyze", str(_log(tmp_path)), "--year", "300000"])
    assert res.exit_code == 2 and "--year 300000: give a year from 1970 to 9999" in res.output



@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "99999999999d"], "reaches back too far"),  # an OverflowError traceback
        (["--until", "2000000w"], "reaches back too far"),
        (["--since", "99999-01-01"], "cannot read the time"),
        (["--since", "1d", "--until", "2d"], "is not before --until"),  # every event was left out
        (["--since", "2025-03-04", "--until", "2025-03-04"], "is not before --until"),
        (["--jobs", "100000"], "give 1 to"),  # forked 255 processes in 3 s
        (["--jobs", "0"], "give 1 to"),
        (["--jobs", "-3"], "give 1 to"),
        (["--max-ratio", "nan"], "not a positive number"),  # switched the ratio check off
        (["--max-ratio", "inf"], "not a positive number"),
        (["--max-total-bytes", "0"], "not a positive number"),
        (["--max-inputs", "-1"], "not a positive number"),
        (["--max-events", "0"], "not a positive number"),
        (["--tz", ""], "IANA zone"),  # an empty zone was taken as UTC
        (["--tz", "  "], "IANA zone"),
    ],
)
def test_cli_bounds_are_usage_errors(tmp_path, args, says):
    for command in ("events", "analyze"):
        res = runner.invoke(app, [command, str(_log(tmp_path)), *args])
        assert res.exit_code == 2, (command, args, res.output)
        assert says in " ".join(res.output.split()) and "Traceback" not in res.output


def test_events_prints_the_inputs_warnings(tmp_path):
    """`events` writes no report, so an input's warnings (here a damaged byte) went nowhere."""
    log = tmp_path / "auth.log"
    line = b"Nov  3 10:00:00 web1 sshd[1]: Failed password for root from 203.0.113.1 port 1 ssh2\n"
    log.write_bytes(line + b"\xff" + line)
    res = subprocess.run(
        [sys.executable, "-m", "analyzer", "events", str(log)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 1  # the damaged line is unparsed
    assert f"authtriage: {log}: warning: invalid UTF-8 bytes were replaced" in res.stderr

def test_nothing_readable_exits_2(tmp_path):
    res = runner.invoke(app, ["analyze", str(tmp_path / "missing.log")])
    assert res.exit_code == 2
    assert "missing.log: cannot open" in res.output
    assert "nothing readable" in res.output


def test_nothing_readable_says_why_each_input_was_skipped(tmp_path):
    """No report is written then, so each skipped input's reason goes to stderr, in input order."""
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["analyze", str(tmp_path / "notes.txt"), str(tmp_path / "empty"), str(tmp_path / "gone")])
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert lines[0].startswith(f"authtriage: {tmp_path / 'notes.txt'}: skipped: unknown format")
    assert lines[1] == f"authtriage: {tmp_path / 'empty'}: skipped: directory holds no files"
    assert lines[2].startswith(f"authtriage: {tmp_path / 'gone'}: cannot open")
    assert lines[3] == "authtriage: nothing readable in the inputs given"
    # with something readable, skips are the report's to list, not stderr's
    res = runner.invoke(app, ["analyze", str(tmp_path / "notes.txt"), str(_log(tmp_path)), "--format", "json"])
    assert res.exit_code == 0 and "skipped" not in res.stderr


def test_one_bad_input_does_not_stop_the_others(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    res = runner.invoke(app, ["analyze", str(tmp_path / "bad.gz"), str(_log(tmp_path)), "--year", "2025"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["totals"]["failures"] == 1 and doc["totals"]["errors"] == 1


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "analyzer", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("authtriage ")


def test_every_command_has_help():
    for args in (["events", "--help"], ["analyze", "--help"], ["samples", "generate", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output


HOSTILE = [
    "<script>alert(1)</script>",
    "=cmd|' /C calc'!A0",
    "+SUM(1)",
    "@evil",
    "-2+3",
    "a|b`c`*d*",
    "\x1b[31mred\x1b[0m",
    "x" * 5000,
]


def test_hostile_user_names_survive_every_event_format(tmp_path):
    p = tmp_path / "auth.log"
    p.write_text("".join(LINE.format(user=u) for u in HOSTILE))
    res = runner.invoke(app, ["events", str(p), "--year", "2025"])
    assert res.exit_code == 0
    users = [json.loads(line)["user"] for line in res.stdout.splitlines()]
    assert users == HOSTILE  # JSON escapes; the text is kept exactly
    out = tmp_path / "e.csv"
    res = runner.invoke(app, ["events", str(p), "--year", "2025", "--format", "csv", "-o", str(out)])
    assert res.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    got = [r["user"] for r in rows]
    want = ["'" + u if u[0] in "=+-@" else u for u in HOSTILE]
    assert got == want
    assert all(not r["raw"].startswith(("=", "+", "-", "@")) for r in rows)


def test_events_jsonl_escapes_hostile_strings():
    import pandas as pd

    from analyzer.export import write_events
    from analyzer.schema import conform

    hostile = ['a"b\\c', "line\nbreak\r\t", "\u2028\x85\u2029\x00\x1b[31m\x0b\x1c", "\ufffd é 😀", "</script>", "=1+1"]
    frame = conform(
        pd.DataFrame(
            {
                "timestamp": pd.to_datetime(["2025-03-04T09:15:02Z"] * 5 + [None], utc=True).as_unit("us"),
                "user": pd.Categorical(hostile),
                "raw": pd.array(hostile, dtype="string[pyarrow]"),
                "src_port": pd.array([22, None, 1, 2, 3, 4], dtype="Int32"),
            }
        )
    )
    out = io.StringIO()
    assert write_events(frame, out) == len(hostile)
    lines = out.getvalue().splitlines()  # Python's idea of a line end is the broadest
    assert len(lines) == len(hostile)  # no value breaks a line
    back = [json.loads(line) for line in lines]
    assert [r["user"] for r in back] == hostile and [r["raw"] for r in back] == hostile
    assert [r["src_port"] for r in back] == [22, None, 1, 2, 3, 4] and back[0]["event_id"] is None
    assert back[0]["timestamp"] == "2025-03-04T09:15:02.000000Z" and back[-1]["timestamp"] is None


def test_a_lone_surrogate_escape_in_json_input_is_replaced_not_fatal(tmp_path):
    line = (
        '{"__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"5",'
        '"MESSAGE":"Failed password for ro\\ud800ot from 203.0.113.7 port 22 ssh2"}\n'
    )
    (tmp_path / "j.json").write_text(line)
    res = runner.invoke(app, ["events", str(tmp_path / "j.json")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["user"] == "ro\ufffdot"


def test_summary_counts_break_ties_by_value_whatever_the_category_order():
    """The top lists of the summary do not depend on the order categories were met in
    (which differs with batching and workers): ties go by value, and the cut is stable."""
    import pandas as pd

    from analyzer import summary

    values = ["b", "a", "c", "c", "d", "d", "e"]
    forward = pd.DataFrame({"user": pd.Categorical(values, categories=["e", "d", "c", "b", "a"])})
    backward = pd.DataFrame({"user": pd.Categorical(values, categories=["a", "b", "c", "d", "e"])})
    expect = [("c", 2), ("d", 2), ("a", 1), ("b", 1), ("e", 1)]
    for frame in (forward, backward):
        assert [(r["value"], r["count"]) for r in summary.top_counts(summary.value_counts(frame, "user"))] == expect
    old = summary.TOP
    try:
        summary.TOP = 3
        assert [r["value"] for r in summary.top_counts(summary.value_counts(forward, "user"))] == ["c", "d", "a"]
    finally:
        summary.TOP = old


def test_jsonl_text_escaping_matches_orjson_value_by_value(tmp_path):
    """Free text is escaped column-wise; every value must come out as orjson writes it,
    and a UTF-8 file gets the same lines as a text stream."""
    import orjson
    import pandas as pd
    import pyarrow as pa

    from analyzer.export import _json_text, write_events
    from analyzer.schema import conform

    texts = ['C:\\Windows\\x "q"', "\\\\", '"', "tab\there", "\x00\x1f\x7f", "é\u2028😀", "", "plain", "a\\\"b"]
    got = _json_text(pa.array([*texts, None], pa.string())).to_pylist()
    assert got == [orjson.dumps(t).decode() for t in texts] + [None]
    frame = conform(pd.DataFrame({"raw": pd.array(texts, dtype="string[pyarrow]")}))
    stream = io.StringIO()
    write_events(frame, stream)
    with open(tmp_path / "e.jsonl", "w", encoding="utf-8", newline="") as fh:
        write_events(frame, fh)
    on_disk = (tmp_path / "e.jsonl").read_text(encoding="utf-8")
    assert on_disk == stream.getvalue()
    assert [json.loads(line)["raw"] for line in on_disk.splitlines()] == texts


def test_jsonl_times_and_chunk_order_survive_threaded_writing(monkeypatch):
    """Lines are built a few chunks ahead by threads but written in order; times are ISO
    8601 UTC with microseconds whatever the zone they were held in (NaT → null)."""
    import numpy as np
    import pandas as pd

    from analyzer import export
    from analyzer.schema import conform

    stamps = pd.to_datetime(
        ["1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", "2025-03-30T01:00:00.5Z", None, "2038-01-19T03:14:08Z"],
        utc=True,
        format="ISO8601",
    )
    want = [None if t is pd.NaT else np.datetime_as_string(t.to_datetime64(), unit="us") + "Z" for t in stamps]
    n = 23
    frame = conform(
        pd.DataFrame(
            {
                "timestamp": pd.Series([stamps[i % 5] for i in range(n)]).dt.tz_convert("Asia/Kolkata"),
                "raw": pd.array([f"line {i}" for i in range(n)], dtype="string[pyarrow]"),
            }
        )
    )
    monkeypatch.setattr(export, "CHUNK_ROWS", 4)
    outs = []
    for threads in (1, 3):
        stream = io.StringIO()
        assert export.write_events(frame, stream, threads=threads) == n
        outs.append(stream.getvalue())
    assert outs[0] == outs[1]
    rows = [json.loads(line) for line in outs[1].splitlines()]
    assert [r["raw"] for r in rows] == [f"line {i}" for i in range(n)]
    assert [r["timestamp"] for r in rows] == [want[i % 5] for i in range(n)]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_input_read_in_part_is_reported_not_dropped(tmp_path, jobs):
    """A compressed log damaged half-way: the lines before the damage are analyzed and the
    fault is named (it was "nothing readable", exit 2, and the lines read were lost), the
    same with workers (which counted the line cut short by the damage, and said "bytes")."""
    import gzip
    import random

    rng = random.Random(1)  # lines that do not compress to nothing: the damage falls mid-file
    text = "".join(LINE.format(user=f"u{rng.randrange(10**9)}") for _ in range(20_000))
    data = gzip.compress(text.encode())
    (tmp_path / "auth.log.gz").write_bytes(data[: len(data) // 2])
    args = ["analyze", str(tmp_path / "auth.log.gz"), "--year", "2025", "--format", "json", "--jobs", jobs]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rep = doc["inputs"][0]
    assert 1000 < rep["lines"] < 20_000 and doc["totals"]["failures"] == rep["lines"] and rep["irrelevant"] == 0
    assert rep["error"].endswith(f"(after line {rep['lines']}; the lines before it were read)")
    assert "auth.log.gz" in res.stderr and "nothing readable" not in res.stderr


@pytest.mark.parametrize("command", ["analyze", "events"])
def test_an_output_that_cannot_be_written_fails_before_the_reading(tmp_path, command, monkeypatch):
    """A missing directory, or a directory given as the file: one line and exit 2, before
    any input is read (it was a traceback after the whole run's work)."""
    import analyzer.cli as cli

    read = []
    monkeypatch.setattr(cli, "read_events", lambda *a, **k: read.append(a))
    for out, why in ((tmp_path / "no" / "report.html", "no directory"), (tmp_path, "it is a directory")):
        res = runner.invoke(app, [command, str(_log(tmp_path)), "-o", str(out)])
        assert res.exit_code == 2 and f"cannot write {out}: {why}" in res.output, res.output
        assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    assert not read


def test_a_report_replaces_the_last_one_whole(tmp_path, monkeypatch):
    """Written beside the old one and renamed over it: a failed write leaves the last report."""
    import os

    out = tmp_path / "report.txt"
    out.write_text("the last report\n")
    log = str(_log(tmp_path))

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    res = runner.invoke(app, ["analyze", log, "-o", str(out)])
    assert res.exit_code == 2 and "cannot write" in res.output and "No space left" in res.output
    assert out.read_text() == "the last report\n" and sorted(p.name for p in tmp_path.iterdir()) == ["auth.log", "report.txt"]
    monkeypatch.undo()
    assert runner.invoke(app, ["analyze", log, "-o", str(out)]).exit_code == 0
    assert out.read_text().startswith("authtriage: why logins fail")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.log", "report.txt"]


@pytest.mark.parametrize("command", [["events"], ["events", "--format", "csv"], ["analyze", "--format", "text"]])
def test_a_full_standard_output_is_one_line_not_a_traceback(tmp_path, command):
    log = _log(tmp_path)
    with open("/dev/full", "w") as full:
        res = subprocess.run(
            [sys.executable, "-m", "analyzer", command[0], str(log), *command[1:]],
            stdout=full, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "authtriage: cannot write standard output: No space left on device"


def test_a_reader_that_went_away_ends_the_run_quietly(tmp_path, monkeypatch):
    """``authtriage events … | head``: no traceback and no message, exit 1 (as Python tools do)."""
    import typer

    from analyzer import cli

    class Gone(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return sink.fileno()

    sink = open(tmp_path / "sink", "w")  # noqa: SIM115 - what standard output is pointed at afterwards
    monkeypatch.setattr(sys, "stdout", Gone())
    with pytest.raises(typer.Exit) as ended:
        cli._to_stdout(lambda: sys.stdout.write("x" * 10))
    sink.close()
    assert ended.value.exit_code == 1


def test_samples_generate_into_a_file_is_one_line(tmp_path):
    """--out names a directory: a file there is a usage error of one line, not a traceback."""
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    res = runner.invoke(app, ["samples", "generate", "--out", str(target)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().count("\n") == 0 and str(target) in res.stderr and "not a directory" in res.stderr
    assert target.read_text() == "mine"
    inside = target / "logs"  # below a file: the file system's error, named
    res = runner.invoke(app, ["samples", "generate", "--out", str(inside)])
    assert res.exit_code == 2 and res.stderr.startswith("authtriage: cannot write ") and "Traceback" not in res.output


def test_max_events_bounds_what_is_kept_and_says_so(tmp_path):
    """--max-events: the input that reaches it keeps its first events; the error names it and
    the option that raises the bound."""
    log = tmp_path / "auth.log"
    line = "Nov  3 10:00:{:02d} web1 sshd[{}]: Failed password for root from 203.0.113.1 port 1 ssh2\n"
    log.write_text("".join(line.format(i % 60, i) for i in range(50)))
    res = subprocess.run(
        [sys.executable, "-m", "analyzer", "events", str(log), "--max-events", "20"],
        capture_output=True, text=True, timeout=120,
    )
    assert len(res.stdout.splitlines()) == 20
    assert f"{log}: more than 20 events in all" in res.stderr and "--max-events" in res.stderr


def test_ticket_paragraphs_by_option_and_by_extension(tmp_path):
    """--format ticket and -o NAME.ticket write each host's paragraph and nothing else."""
    log = "samples/linux-root-refused/auth.log"
    res = runner.invoke(app, ["analyze", log, "--year", "2025", "--format", "ticket"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("db02\nThe platform's login to db02 as root over SSH fails since Nov 3 14:00 UTC")
    assert "{" not in res.stdout and "[" not in res.stdout  # no findings, no JSON
    out = tmp_path / "answer.ticket"
    res = runner.invoke(app, ["analyze", log, "--year", "2025", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text() == runner.invoke(app, ["analyze", log, "--year", "2025", "--format", "ticket"]).stdout
