"""Scheduled runs: incremental reading, rotation, crash safety, the lock, cleared EVTX,
retention, trends and the commands around them."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.evtxwriter import EVENTLOG, Event
from analyzer.ingest import IngestOptions, read_events
from analyzer.samples_windows import T0, _dc_probe, _member_mismatch, write_evtx
from analyzer.schedule import State, load_schedule, units
from analyzer.schedule.state import locked

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MISMATCH = (SAMPLES / "linux-password-mismatch" / "auth.log").read_bytes().splitlines(keepends=True)
ATTACKS = (SAMPLES / "linux-attacks" / "auth.log").read_bytes().splitlines(keepends=True)
runner = CliRunner()


def _config(tmp: Path, inputs: list[str], keep: int = 30, formats=("json", "text"), extra: str = "") -> Path:
    cfg = tmp / "authtriage.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [[job]]
            name = "nightly"
            inputs = {json.dumps(inputs)}
            output = "out"
            formats = {json.dumps(list(formats))}
            keep = {keep}
            {extra}
            """
        )
    )
    return cfg


def _run(cfg: Path, *args: str):
    res = runner.invoke(app, ["schedule", "run", "--config", str(cfg), "--jobs", "1", *args])
    return res


def _latest(tmp: Path) -> dict:
    return json.loads((tmp / "out" / "nightly" / "latest.json").read_text())


def _inputs(doc: dict) -> dict[str, dict]:
    return {Path(i["path"]).name: i for i in doc["inputs"] if i["path"]}


def _one_shot(path: Path) -> int:
    return len(read_events([str(path)], IngestOptions(jobs=1)).events)


# the samples' year-less (RFC 3164) lines take their year from the file's time: pin it to
# the scenario's year, so that they share a window with the samples that carry a year
_MTIME = T0.timestamp() + 3 * 86400


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.utime(path, (_MTIME, _MTIME))


def _append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as fh:
        fh.writelines(lines)
    os.utime(path, (_MTIME, _MTIME))


def test_second_run_reads_only_the_appended_lines(tmp_path):
    log = tmp_path / "logs" / "auth.log"
    log.parent.mkdir()
    half = len(MISMATCH) // 2
    _write(log, b"".join(MISMATCH[:half]))
    cfg = _config(tmp_path, ["logs/auth.log*"])
    assert _run(cfg).exit_code == 0
    first = _latest(tmp_path)
    assert _inputs(first)["auth.log"]["lines"] == half
    _append(log, MISMATCH[half:])
    assert _run(cfg).exit_code == 0
    second = _latest(tmp_path)
    item = _inputs(second)["auth.log"]
    assert item["lines"] == len(MISMATCH) - half
    assert "resumed" in item["assumptions"]
    # the window holds both runs' events: as many as one pass over the whole file gives
    assert second["schedule"]["window_events"] == _one_shot(log)
    assert second["schedule"]["new_events"] + first["schedule"]["new_events"] == _one_shot(log)
    # evidence locators count lines from the file's start, not from where the run began
    where = [e["where"] for f in second["findings"] for e in f["examples"]]
    assert where and all(int(w.rsplit(":", 1)[1]) <= len(MISMATCH) for w in where)
    # a third run with nothing appended reads nothing
    assert _run(cfg).exit_code == 0
    assert _inputs(_latest(tmp_path))["auth.log"]["lines"] == 0


def test_a_partly_written_last_line_waits_for_the_next_run(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:10]) + MISMATCH[10][:20])
    cfg = _config(tmp_path, [str(log)])
    assert _run(cfg).exit_code == 0
    assert _inputs(_latest(tmp_path))["auth.log"]["lines"] == 10
    _append(log, [MISMATCH[10][20:], *MISMATCH[11:20]])
    assert _run(cfg).exit_code == 0
    assert _inputs(_latest(tmp_path))["auth.log"]["lines"] == 10
    assert _latest(tmp_path)["schedule"]["window_events"] == _one_shot(log)


def test_rotation_between_runs_loses_and_repeats_nothing(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = MISMATCH + ATTACKS
    a, b, c, d = 150, 300, 520, len(lines)
    log = logs / "auth.log"
    _write(log, b"".join(lines[:a]))
    cfg = _config(tmp_path, ["logs/auth.log*"])
    read = []
    assert _run(cfg).exit_code == 0
    read.append(_latest(tmp_path)["totals"]["lines"])
    # more lines, then logrotate: rename, new file
    _append(log, lines[a:b])
    log.rename(logs / "auth.log.1")
    _write(log, b"".join(lines[b:c]))
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    assert _inputs(doc)["auth.log.1"]["lines"] == b - a
    assert _inputs(doc)["auth.log"]["lines"] == c - b
    read.append(doc["totals"]["lines"])
    # next rotation: .1 is compressed to .2.gz, auth.log becomes .1, and a new auth.log
    _append(log, lines[c : c + 10])
    _write(logs / "auth.log.2.gz", gzip.compress((logs / "auth.log.1").read_bytes()))
    (logs / "auth.log.1").unlink()
    log.rename(logs / "auth.log.1")
    _write(log, b"".join(lines[c + 10 : d]))
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    got = _inputs(doc)
    assert got["auth.log.2.gz"]["lines"] == 0
    assert got["auth.log.1"]["lines"] == 10
    assert got["auth.log"]["lines"] == d - c - 10
    read.append(doc["totals"]["lines"])
    assert sum(read) == len(lines)
    # the same events as one pass over the files as they now lie (a connection whose lines
    # logrotate split between two files is two sources either way)
    assert doc["schedule"]["window_events"] == _one_shot(logs)
    # and once more, unchanged: nothing is read, the .gz is not even decompressed again
    assert _run(cfg).exit_code == 0
    assert _latest(tmp_path)["totals"]["lines"] == 0


def _restamp(lines: list[bytes], index: int, at: dt.datetime) -> list[bytes]:
    """The RFC 3164 lines with RFC 3339 times, shifted so that line ``index`` is at ``at``: a
    log written up to now."""
    def when(line: bytes) -> dt.datetime:
        return dt.datetime.strptime("2026 " + line[:15].decode(), "%Y %b %d %H:%M:%S").replace(tzinfo=dt.UTC)

    shift = at - when(lines[index])
    return [(when(line) + shift).isoformat().encode() + line[15:] for line in lines]


def test_a_connection_still_going_on_is_left_for_the_next_run(tmp_path):
    """In a file being written to, the lines after the last pause of 2 minutes wait, so a
    PAM line and the sshd failure it belongs to are never counted apart."""
    cut = next(i for i, line in enumerate(MISMATCH) if b"pam_unix(sshd:auth): authentication failure" in line) + 1
    assert b"Failed password" in MISMATCH[cut]  # the run would see the PAM line without its sshd line
    lines = _restamp(MISMATCH, cut - 1, dt.datetime.now(dt.UTC).replace(microsecond=0))
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(lines[:cut]))  # modified just now, its last line just now: still being written
    cfg = _config(tmp_path, [str(log)])
    assert _run(cfg).exit_code == 0
    item = _inputs(_latest(tmp_path))["auth.log"]
    assert "held back" in item["assumptions"]
    first_lines = item["lines"]
    assert 0 < first_lines < cut
    with open(log, "ab") as fh:
        fh.writelines(lines[cut:])
    quiet = time.time() - 3600  # and now it has not been written to for an hour: read to the end
    os.utime(log, (quiet, quiet))
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    assert _inputs(doc)["auth.log"]["lines"] == len(MISMATCH) - first_lines
    assert doc["schedule"]["window_events"] == _one_shot(log)


@pytest.mark.parametrize("sample", [MISMATCH, ATTACKS], ids=["probe", "attacks"])
def test_a_second_run_with_nothing_new_gives_the_same_findings(tmp_path, sample):
    """A log copied just now (modified a moment ago, its newest line weeks old) is not being
    written: the first run reads it whole, and a second run with nothing new has the first
    run's findings, which are one ``analyze``'s. (The first run held back the lines after the
    last quiet moment: the second found web01's probe at 142 failures, not 140, and a
    success-after-attack the first had not.)"""
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(sample))  # copied just now
    cfg = _config(tmp_path, [str(log)])
    assert _run(cfg).exit_code == 0
    first = _latest(tmp_path)
    assert "held back" not in _inputs(first)["auth.log"]["assumptions"]
    assert first["totals"]["lines"] == len(sample)
    assert _run(cfg).exit_code == 0
    second = _latest(tmp_path)
    assert second["schedule"]["new_events"] == 0 and second["totals"]["lines"] == 0
    assert second["schedule"]["window"] == first["schedule"]["window"]
    assert second["findings"] == first["findings"]
    out = tmp_path / "analyze.json"
    res = runner.invoke(app, ["analyze", str(log), "--config", str(cfg), "--jobs", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["findings"] == first["findings"]


def test_a_gz_caught_half_written_is_read_again_whole(tmp_path):
    """logrotate compressing while the run reads: the truncated .gz gives an error and
    nothing from it is kept; the next run reads the finished file whole."""
    logs = tmp_path / "logs"
    logs.mkdir()
    full = gzip.compress(b"".join(MISMATCH))
    _write(logs / "auth.log.2.gz", full[: len(full) // 2])
    cfg = _config(tmp_path, ["logs/*"])
    assert _run(cfg).exit_code == 0
    item = _inputs(_latest(tmp_path))["auth.log.2.gz"]
    assert item["error"] and "corrupt compressed data" in item["error"]
    assert _latest(tmp_path)["schedule"]["new_events"] == 0
    _write(logs / "auth.log.2.gz", full)
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    assert _inputs(doc)["auth.log.2.gz"]["error"] is None
    assert _inputs(doc)["auth.log.2.gz"]["lines"] == len(MISMATCH)
    assert doc["schedule"]["window_events"] == _one_shot(logs / "auth.log.2.gz")


def test_copytruncate_is_read_from_the_start(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:100]))
    cfg = _config(tmp_path, [str(log)])
    assert _run(cfg).exit_code == 0
    with open(log, "r+b") as fh:  # same inode, new content
        fh.truncate(0)
        fh.write(b"".join(ATTACKS[:30]))
    os.utime(log, (_MTIME, _MTIME))
    assert _run(cfg).exit_code == 0
    assert _inputs(_latest(tmp_path))["auth.log"]["lines"] == 30


def _state_snapshot(db: Path) -> tuple:
    con = sqlite3.connect(db)
    try:
        return tuple(
            con.execute(sql).fetchall()
            for sql in (
                "SELECT job, key, path, offset, lines FROM files ORDER BY key",
                "SELECT id, status FROM runs ORDER BY id",
                "SELECT count(*), sum(rows) FROM batches",
                "SELECT * FROM seen ORDER BY host, cause, subject",
            )
        )
    finally:
        con.close()


KILLER = """
import os, sys
import analyzer.schedule.runner as r
original = r.write_reports
def write_then_die(*a, **k):
    out = original(*a, **k)
    os.kill(os.getpid(), 9)  # killed after the reports are written, before the state commits
    return out
r.write_reports = write_then_die
from analyzer.cli import main
sys.argv = ["authtriage", "schedule", "run", "--config", sys.argv[1], "--jobs", "1"]
main()
"""


def test_a_killed_run_leaves_the_state_as_it_was(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:200]))
    cfg = _config(tmp_path, [str(log)])
    assert _run(cfg).exit_code == 0
    db = load_schedule(cfg).state
    before = _state_snapshot(db)
    _append(log, MISMATCH[200:])
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg)], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert _state_snapshot(db) == before
    # the next run reads the same new lines again
    assert _run(cfg).exit_code == 0
    assert _inputs(_latest(tmp_path))["auth.log"]["lines"] == len(MISMATCH) - 200
    assert _latest(tmp_path)["schedule"]["window_events"] == _one_shot(log)


def test_a_second_concurrent_run_is_refused(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:50]))
    cfg = _config(tmp_path, [str(log)])
    db = load_schedule(cfg).state
    with locked(db):  # as if a run were going on in this process
        proc = subprocess.run(
            [sys.executable, "-m", "analyzer", "schedule", "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 75
    assert "another scheduled run" in proc.stderr and str(db) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "nightly").exists()
    assert _run(cfg).exit_code == 0  # once the lock is free, it runs


def test_the_lock_goes_with_a_killed_run_whose_workers_live_on(tmp_path):
    """A run killed while a forked worker of its lives on: the worker had inherited the lock
    file and kept the lock, so every later run was refused naming a dead pid."""
    db = tmp_path / "state" / "state.db"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from analyzer.schedule.state import locked
        with locked(Path({str(db)!r})):
            child = os.fork()
            if child == 0:  # a worker that outlives its parent (blocked, say, on a pipe)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1), os.dup2(null, 2)
                time.sleep(60)
                os._exit(0)
            print(child, flush=True)
            os._exit(9)  # as if killed: nothing is cleaned up
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    child = int(proc.stdout.strip())
    try:
        assert proc.returncode == 9 and os.path.exists(f"/proc/{child}")  # the worker still lives
        with locked(db):  # and the lock is free all the same
            pass
    finally:
        os.kill(child, 9)


def _security(path: Path, events: list[Event], first: int) -> None:
    write_evtx(path, events, first_record_id=first)


def test_evtx_reads_new_records_and_notices_a_cleared_log(tmp_path):
    events = sorted(_member_mismatch(random.Random(3)), key=lambda e: e.time)
    path = tmp_path / "Security.evtx"
    half = len(events) // 2
    _security(path, events[:half], first=1000)
    cfg = _config(tmp_path, [str(path)])
    assert _run(cfg).exit_code == 0
    assert _inputs(_latest(tmp_path))["Security.evtx"]["records"] == half
    _security(path, events, first=1000)  # the log grew
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    assert _inputs(doc)["Security.evtx"]["records"] == len(events) - half
    assert not doc["schedule"]["notes"]
    # cleared: a new log starting over at record 1 with a 1102
    cleared = [Event(1102, "Security", EVENTLOG, "APP01.corp.example", events[-1].time, {"SubjectUserName": "x"})]
    later = sorted(_member_mismatch(random.Random(4)), key=lambda e: e.time)[:20]
    _security(path, cleared + later, first=1)
    res = _run(cfg)
    assert res.exit_code == 0
    doc = _latest(tmp_path)
    assert _inputs(doc)["Security.evtx"]["records"] == 21
    notes = " ".join(doc["schedule"]["notes"])
    assert "cleared or replaced" in notes and "read from the start" in notes
    assert "event 1102" in notes
    text = " ".join((tmp_path / "out" / "nightly" / "latest.text").read_text().split())  # as wrapped to any width
    assert "cleared or replaced" in text


def test_an_archived_copy_of_a_windows_log_counts_once(tmp_path):
    events = sorted(_member_mismatch(random.Random(3)), key=lambda e: e.time)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_evtx(logs / "Security.evtx", events)
    (logs / "Archive-Security-2025-11-04.evtx").write_bytes((logs / "Security.evtx").read_bytes())
    cfg = _config(tmp_path, ["logs/*.evtx"])
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    assert doc["schedule"]["window_events"] == _one_shot(logs / "Security.evtx")
    assert any("counted once" in n for n in doc["schedule"]["notes"])
    assert {(t["host"], t["cause"]) for t in doc["schedule"]["trends"]["new"]}


def test_retention_keeps_the_newest_reports(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:20]))
    cfg = _config(tmp_path, [str(log)], keep=2, formats=("json", "md"))
    for i in range(4):
        _append(log, MISMATCH[20 + i : 21 + i])
        assert _run(cfg).exit_code == 0
    names = sorted(p.name for p in (tmp_path / "out" / "nightly").iterdir())
    assert len([n for n in names if n.endswith(".json") and not n.startswith("latest")]) == 2
    assert len([n for n in names if n.endswith(".md") and not n.startswith("latest")]) == 2
    assert "latest.json" in names and "latest.md" in names
    history = json.loads(runner.invoke(app, ["schedule", "history", "--config", str(cfg), "--format", "json"]).stdout)
    newest = history[0]["reports"]
    assert all(Path(p).exists() for p in newest)
    assert not any(Path(p).exists() for p in history[-1]["reports"])


def test_trends_report_new_continuing_and_quiet(tmp_path):
    """Scenario samples: a Linux server whose password changed, and a DC the probe
    keeps failing on; a second night brings a new host and the Linux probe's success goes
    quiet (it is still in the report: never "stopped")."""
    logs = tmp_path / "logs"
    logs.mkdir()
    half = len(MISMATCH) // 2
    _write(logs / "web01.log", b"".join(MISMATCH[:half]))
    dc = sorted(_dc_probe(random.Random(2), "0xc000006d", "0xc000006a"), key=lambda e: e.time)
    write_evtx(logs / "dc01.evtx", dc[: len(dc) // 2])
    cfg = _config(tmp_path, ["logs/*"], formats=("json", "html", "md", "text"))
    assert _run(cfg).exit_code == 0
    t1 = _latest(tmp_path)["schedule"]["trends"]
    assert {(t["host"], t["cause"]) for t in t1["new"]} >= {
        ("web01", "probe-ok"),
        ("web01", "probe-password-mismatch"),
        ("DC01.corp.example", "probe-dc-account"),
    }
    assert not t1["continuing"] and not t1["stopped"]
    # night two: both logs grew; a host appears with an attack
    _append(logs / "web01.log", MISMATCH[half:])
    write_evtx(logs / "dc01.evtx", dc)
    _write(logs / "bastion.log", b"".join(ATTACKS))
    assert _run(cfg).exit_code == 0
    doc = _latest(tmp_path)
    t2 = doc["schedule"]["trends"]
    cont = {(t["host"], t["cause"]): t for t in t2["continuing"]}
    assert ("web01", "probe-password-mismatch") in cont
    assert ("DC01.corp.example", "probe-dc-account") in cont
    mism = cont[("web01", "probe-password-mismatch")]
    first = {(t["host"], t["cause"]): t for t in t1["new"]}[("web01", "probe-password-mismatch")]
    assert mism["since"] == first["since"]
    assert "failing every 15 min since" in mism["text"]
    assert ("web01", "probe-ok") in {(t["host"], t["cause"]) for t in t2["quiet"]}
    assert not t2["stopped"]
    assert any(t["host"] == "gw01" and t["verdict"] == "attack" for t in t2["new"])
    jsonschema.validate(doc, json.loads((SAMPLES.parent / "reports" / "report.schema.json").read_text()))
    # every format shows it
    folder = tmp_path / "out" / "nightly"
    assert "What changed" in (folder / "latest.html").read_text()
    assert "**quiet**" in (folder / "latest.md").read_text()
    assert "continuing" in (folder / "latest.text").read_text()
    # night three: nothing new anywhere: every finding is still in the report, and quiet
    assert _run(cfg).exit_code == 0
    t3 = _latest(tmp_path)["schedule"]["trends"]
    assert not t3["new"] and not t3["continuing"] and not t3["stopped"]
    assert ("web01", "probe-password-mismatch") in {(t["host"], t["cause"]) for t in t3["quiet"]}
    # history shows the same, run by run
    res = runner.invoke(app, ["schedule", "history", "--config", str(cfg)])
    assert res.exit_code == 0
    assert res.stdout.count("run ") == 3
    assert "quiet      The password the platform holds" in res.stdout


def _failures(start: str, user: str, ip: str, count: int, every: str) -> list[bytes]:
    """sshd's failed passwords, ``count`` of them ``every`` apart from ``start`` (UTC)."""
    times = pd.date_range(start, periods=count, freq=every, tz="UTC")
    return [
        f"{t:%Y-%m-%dT%H:%M:%S}+00:00 web9 sshd[{1000 + i}]: Failed password for {user} from {ip} port "
        f"{40000 + i} ssh2\n".encode()
        for i, t in enumerate(times)
    ]


def _probe(start: str, end: str) -> list[bytes]:
    """The platform's login as root from its network every 15 min, failing (its password is wrong)."""
    n = int((pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta("15min")) + 1
    return _failures(start, "root", "198.51.100.10", n, "15min")


def _what_changed(tmp: Path) -> tuple[dict, dict[str, dict[tuple, dict]]]:
    doc = _latest(tmp)
    by_kind = {
        kind: {(t["host"], t["cause"], tuple(sorted(t["subject"].items()))): t for t in items}
        for kind, items in doc["schedule"]["trends"].items()
    }
    return doc, by_kind


def test_what_changed_labels_each_finding_across_three_runs(tmp_path):
    """Three runs over a growing log, a 12 h window: each finding of a report is new,
    continuing or quiet by its own identity (host, cause, and the source of an attack: a
    brute force from a new source is a new campaign), titled and dated from itself; a finding is "stopped" only once
    it has left the report; new attackers are named; only the platform's login "fails"."""
    from analyzer.schedule.trends import finding_key

    log = tmp_path / "auth.log"
    cfg = _config(
        tmp_path,
        [str(log)],
        extra='window_days = 0.5\n[job.platform]\nnetworks = ["198.51.100.0/24"]',
    )
    probe = ("web9", "probe-password-mismatch", (("src_ip", "198.51.100.10"), ("user", "root")))
    root = ("web9", "brute-force", (("src_ip", "203.0.113.7"),))
    root2 = ("web9", "brute-force", (("src_ip", "203.0.113.8"),))
    admin = ("web9", "brute-force", (("src_ip", "203.0.113.99"),))
    spray = ("web9", "password-spray", (("src_ip", "203.0.113.20"),))

    def check(doc: dict, by_kind: dict) -> None:
        # every finding of the report exactly once, as new, continuing or quiet, with its own
        # title and times; nothing stopped is in the report
        listed = [k for kind in ("new", "continuing", "quiet") for k in by_kind[kind]]
        keys = [(h, c, tuple(sorted(s))) for h, c, s in map(finding_key, doc["findings"])]
        assert sorted(listed) == sorted(keys)
        assert not set(by_kind["stopped"]) & set(keys)
        for f, key in zip(doc["findings"], keys, strict=True):
            item = next(by_kind[k][key] for k in ("new", "continuing", "quiet") if key in by_kind[k])
            assert (item["title"], item["first_seen"], item["last_seen"]) == (
                f["title"], f["first_seen"], f["last_seen"]
            )
            assert "failing" not in item["text"] or f["cause"] == "probe-password-mismatch", item["text"]
        text = (tmp_path / "out" / "nightly" / "latest.text").read_text()
        assert max(map(len, text.splitlines())) <= 80

    # run 1: the platform's login fails from 00:00; brute force against root (one source)
    # and against admin
    _write(
        log,
        b"".join(
            sorted(
                _probe("2025-11-03T00:00", "2025-11-03T03:00")
                + _failures("2025-11-03T00:10", "admin", "203.0.113.99", 6, "10s")
                + _failures("2025-11-03T01:30", "root", "203.0.113.7", 6, "10s")
            )
        ),
    )
    assert _run(cfg).exit_code == 0
    doc, by_kind = _what_changed(tmp_path)
    check(doc, by_kind)
    assert set(by_kind["new"]) == {probe, root, admin}
    assert "203.0.113.7" in by_kind["new"][root]["text"] and by_kind["new"][root]["new_sources"] == ["203.0.113.7"]
    assert "203.0.113.99" in by_kind["new"][admin]["text"]

    # run 2: the login still fails; a brute force against root from a second source (a
    # campaign of its own); a password spray from a third; nothing more against admin
    _append(
        log,
        sorted(
            _probe("2025-11-03T03:15", "2025-11-03T08:00")
            + _failures("2025-11-03T07:00", "root", "203.0.113.8", 6, "10s")
            + [
                f"2025-11-03T07:30:{i:02d}+00:00 web9 sshd[{2000 + i}]: Failed password for {u} from 203.0.113.20 "
                f"port {50000 + i} ssh2\n".encode()
                for i, u in enumerate(["alice", "bob", "carol", "dave", "erin"])
            ]
        ),
    )
    assert _run(cfg).exit_code == 0
    doc, by_kind = _what_changed(tmp_path)
    check(doc, by_kind)
    assert set(by_kind["new"]) == {spray, root2} and "203.0.113.20" in by_kind["new"][spray]["text"]
    assert "203.0.113.8" in by_kind["new"][root2]["text"] and by_kind["new"][root2]["new_sources"] == ["203.0.113.8"]
    assert set(by_kind["continuing"]) == {probe}
    assert set(by_kind["quiet"]) == {admin, root} and not by_kind["stopped"]
    assert "failing every 15 min since Nov 3 00:00 UTC" in by_kind["continuing"][probe]["text"]

    # run 3: only the platform's login; the window (12 h back from 13:00) now starts after
    # the attack on admin, which leaves the report: stopped. The attacks still in it are quiet.
    _append(log, _probe("2025-11-03T08:15", "2025-11-03T13:00"))
    assert _run(cfg).exit_code == 0
    doc, by_kind = _what_changed(tmp_path)
    check(doc, by_kind)
    assert not by_kind["new"]
    assert set(by_kind["continuing"]) == {probe}
    assert set(by_kind["quiet"]) == {root, root2, spray}
    assert set(by_kind["stopped"]) == {admin}
    gone = by_kind["stopped"][admin]
    assert gone["last_seen"] == "2025-11-03T00:10:50Z" and "no longer in this report" in gone["text"]
    # the platform's login: its first failure remembered from run 1, though no longer in the window
    item = by_kind["continuing"][probe]
    assert item["since"] == "2025-11-03T00:00:00Z" and item["first_seen"] > item["since"]
    assert "failing every 15 min since Nov 3 00:00 UTC (13 h)" in item["text"]
    jsonschema.validate(doc, json.loads((SAMPLES.parent / "reports" / "report.schema.json").read_text()))
    res = runner.invoke(app, ["schedule", "history", "--config", str(cfg)])
    assert "0 new, 1 continuing, 3 quiet, 1 stopped" in res.stdout


def test_hostile_strings_in_trends_are_escaped(tmp_path):
    evil = b'Nov  3 14:00:00 <script>x</script> sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2\n'
    _write(tmp_path / "a.log", evil * 30)
    cfg = _config(tmp_path, [str(tmp_path / "a.log")], formats=("html", "json"))
    assert _run(cfg).exit_code == 0
    html = (tmp_path / "out" / "nightly" / "latest.html").read_text()
    assert "<script>x" not in html


def test_help_shows_the_job_tables_as_written():
    """The help renderer took "[job]" in "[[job]]" for a style and showed "[]"."""
    res = runner.invoke(app, ["schedule", "run", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "with [[job]] tables" in res.stdout


def test_config_errors_name_the_file_and_job(tmp_path):
    cfg = tmp_path / "authtriage.toml"
    cfg.write_text('[[job]]\nname = "a"\ninputs = ["x"]\noutput = "o"\nformat = ["html"]\n')
    res = _run(cfg)
    assert res.exit_code == 2
    assert str(cfg) in res.stderr and "job 'a'" in res.stderr and "format" in res.stderr
    cfg.write_text("[platform]\n")
    res = _run(cfg)
    assert res.exit_code == 2 and "no [[job]] tables" in res.stderr
    res = _run(_config(tmp_path, ["x"]), "--job", "nope")
    assert res.exit_code == 2 and "no job named 'nope'" in res.stderr


def test_missing_inputs_are_reported_and_the_run_goes_on(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:30]))
    cfg = _config(tmp_path, [str(log), str(tmp_path / "gone.log"), str(tmp_path / "none*.log")])
    assert _run(cfg).exit_code == 0
    by_name = {i["name"]: i for i in _latest(tmp_path)["inputs"]}
    assert by_name[str(tmp_path / "gone.log")]["error"] == "not found"
    assert by_name[str(tmp_path / "none*.log")]["skip_reason"] == "no file matches this pattern"
    assert by_name[str(log)]["lines"] == 30


def test_units_name_the_config_and_directories(tmp_path):
    cfg = _config(tmp_path, ["/var/log/auth.log*"], extra="")
    sched = load_schedule(cfg)
    out = units(sched, command="/opt/authtriage/bin/authtriage")
    assert f"ExecStart=/opt/authtriage/bin/authtriage schedule run --config {cfg}" in out["authtriage.service"]
    assert "Type=oneshot" in out["authtriage.service"]
    assert f"ReadWritePaths={tmp_path / 'out'}" in out["authtriage.service"]
    # a configuration, logs or reports under /tmp stay visible: no private /tmp; scratch files
    # go beside the state, which the service may write
    assert "PrivateTmp" not in out["authtriage.service"]
    assert f'Environment="TMPDIR={tmp_path / "out"}"' in out["authtriage.service"]
    assert "OnCalendar=*-*-* 02:30" in out["authtriage.timer"] and "Persistent=true" in out["authtriage.timer"]
    assert out["crontab"].startswith("30 2 * * * /opt/authtriage/bin/authtriage schedule run --config ")
    res = runner.invoke(app, ["schedule", "units", "--config", str(cfg)])
    assert res.exit_code == 0 and "[Timer]" in res.stdout and "# ---- crontab ----" in res.stdout


def test_state_survives_reopening(tmp_path):
    log = tmp_path / "auth.log"
    _write(log, b"".join(MISMATCH[:40]))
    cfg = _config(tmp_path, [str(log)])
    assert _run(cfg).exit_code == 0
    st = State(load_schedule(cfg).state)
    try:
        (run,) = st.runs("nightly")
        assert run["status"] == "ok" and run["lines"] == 40
        assert len(st.files("nightly")) == 1
        events, fresh = st.events_since("nightly", pd.Timestamp(0, tz="UTC"), run["id"])
        assert len(events) == _one_shot(log) and fresh.all()
        assert str(events["host"].dtype) == "category"  # stored compactly, read back in the schema's dtypes
    finally:
        st.close()
    assert os.path.exists(str(load_schedule(cfg).state) + ".lock")


def test_a_state_from_before_findings_were_told_apart_continues(tmp_path):
    """A state written when "what changed" was kept per host and cause only: the first run
    after the upgrade matches its findings to those (continuing or quiet, from the times
    remembered), says "stopped" only of a host and cause no finding has now, and from then
    on keeps findings apart."""
    log = tmp_path / "auth.log"
    _write(log, b"".join(_probe("2025-11-03T00:00", "2025-11-03T03:00")))
    cfg = _config(tmp_path, [str(log)], extra='[job.platform]\nnetworks = ["198.51.100.0/24"]')
    assert _run(cfg).exit_code == 0
    db = load_schedule(cfg).state
    con = sqlite3.connect(db)
    with con:  # as the earlier version left it
        con.execute("DELETE FROM seen")
        con.executemany(
            "INSERT INTO streaks VALUES (?,?,?,?,?,?,?,?)",
            [
                ("nightly", "web9", "probe-password-mismatch", "2025-11-02T00:00:00Z", "2025-11-03T03:00:00Z", 1,
                 900.0, "The password the platform holds no longer matches the server's"),
                ("nightly", "web9", "brute-force", "2025-11-01T00:00:00Z", "2025-11-01T00:01:00Z", 1, None,
                 "Brute force against admin"),
                ("nightly", "web9", "user-typo", "2025-11-01T00:00:00Z", "2025-11-01T00:00:00Z", 0, None, "typo"),
            ],
        )
    con.close()
    _append(log, _probe("2025-11-03T03:15", "2025-11-03T05:00"))
    assert _run(cfg).exit_code == 0
    t = _latest(tmp_path)["schedule"]["trends"]
    assert not t["new"] and [i["cause"] for i in t["continuing"]] == ["probe-password-mismatch"]
    assert t["continuing"][0]["since"] == "2025-11-02T00:00:00Z"
    assert [(i["cause"], i["title"]) for i in t["stopped"]] == [("brute-force", "Brute force against admin")]
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(*) FROM streaks").fetchone() == (0,)
        assert con.execute("SELECT host, cause, subject FROM seen").fetchall() == [
            ("web9", "probe-password-mismatch", '[["src_ip", "198.51.100.10"], ["user", "root"]]')
        ]
    finally:
        con.close()


def test_a_campaign_is_continuing_when_its_source_goes_on_under_another_of_its_causes():
    """A brute force that gathered its source's user-name guessing (one campaign finding) goes
    on when this run read only guessing from that source: continuing, not quiet."""
    import numpy as np

    from analyzer.schedule.trends import finding_key, fresh_counts, trends

    events = pd.DataFrame(
        {
            "host": pd.Categorical(["web01"] * 3),
            "src_ip": pd.Categorical(["203.0.113.7"] * 3),
            "user": pd.Categorical(["admin", "guest", "oracle"]),
        }
    )
    causes = pd.Series(pd.Categorical(["user-enumeration"] * 3))
    finding = {
        "host": "web01", "cause": "brute-force", "verdict": "attack", "src_ips": ["203.0.113.7"],
        "users": ["admin", "guest", "oracle", "root"], "count": 40, "attempts": 30, "title": "Brute force",
        "first_seen": "2025-11-03T10:00:00Z", "last_seen": "2025-11-04T10:00:00Z",
    }  # fmt: skip
    previous = {finding_key(finding): {"title": "Brute force", "verdict": "attack", "since": finding["first_seen"],
                                       "last_seen": "2025-11-03T12:00:00Z", "src_ips": finding["src_ips"]}}  # fmt: skip
    fresh = fresh_counts(events, causes, np.ones(3, dtype=bool))
    out = trends([finding], previous, fresh, True)["trends"]
    assert [t["new_events"] for t in out["continuing"]] == [3] and not out["quiet"]
    nothing = trends([finding], previous, fresh_counts(events, causes, np.zeros(3, dtype=bool)), True)["trends"]
    assert [t["title"] for t in nothing["quiet"]] == ["Brute force"] and not nothing["continuing"]


def test_a_brute_force_that_got_in_is_the_same_campaign_in_the_next_run():
    """Its cause changed (brute force → success after an attack) and a source joined: the
    same campaign, continuing with its new source named — not "stopped" and "new"."""
    import numpy as np

    from analyzer.schedule.trends import finding_key, fresh_counts, trends

    before = {
        "host": "web01", "cause": "brute-force", "verdict": "attack", "src_ips": ["203.0.113.7"], "users": ["root"],
        "count": 40, "attempts": 30, "title": "Brute force against root",
        "first_seen": "2025-11-03T10:00:00Z", "last_seen": "2025-11-03T12:00:00Z",
    }  # fmt: skip
    previous = {finding_key(before): {"title": before["title"], "verdict": "attack", "since": before["first_seen"],
                                      "last_seen": before["last_seen"], "src_ips": before["src_ips"]}}  # fmt: skip
    now = dict(before, cause="success-after-attack", src_ips=["198.51.100.9", "203.0.113.7"], title="root logged in",
               last_seen="2025-11-04T10:00:00Z")  # fmt: skip
    events = pd.DataFrame({"host": pd.Categorical(["web01"]), "src_ip": pd.Categorical(["203.0.113.7"]),
                           "user": pd.Categorical(["root"])})  # fmt: skip
    fresh = fresh_counts(events, pd.Series(pd.Categorical(["success-after-attack"])), np.ones(1, dtype=bool))
    out = trends([now], previous, fresh, True)["trends"]
    assert not out["new"] and not out["stopped"], out
    (item,) = out["continuing"]
    assert item["since"] == before["first_seen"] and item["new_sources"] == ["198.51.100.9"]
