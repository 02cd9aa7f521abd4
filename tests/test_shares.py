"""The host-partitioned pipeline: events spilled to disk by host and analyzed a share of
hosts at a time give the same report as one frame of every event, and no step holds them all."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import analyzer.ingest.store as store_mod
import analyzer.shares as shares_mod
from analyzer import triage
from analyzer.errors import InputError
from analyzer.ingest import IngestOptions, runner
from analyzer.ingest.store import EventStore, Share
from analyzer.pipeline import TriageOptions
from analyzer.schema import conform

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SECURE = SAMPLES / "linux-brute-force" / "secure"  # names the host "bastion"
PFIREWALL = SAMPLES / "windows-firewall-blocked-pfirewall" / "pfirewall.log"
NEVER = 1 << 62  # a spill threshold never reached: one frame of every event, as for a ticket


def _report(inputs: list, spill: int, jobs: int = 1, workdir: Path | None = None, **window) -> dict:
    opts = TriageOptions(
        ingest=IngestOptions(lazy_raw=True, jobs=jobs, **window), spill_bytes=spill, spill_events=spill, workdir=workdir
    )
    return triage([str(p) for p in inputs], options=opts).data


def _same(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    a.pop("engine"), b.pop("engine")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture
def many_frames(monkeypatch):
    """Every input its own frame (many spill files, each written in pieces) and shares of a
    few hundred events (hosts dealt among many tasks)."""
    monkeypatch.setattr(runner, "SMALL_FRAMES", 1)
    monkeypatch.setattr(shares_mod, "SHARE_EVENTS", 300)
    monkeypatch.setattr(store_mod, "WRITE_ROWS", 97)  # a spill file written in many pieces


@pytest.mark.parametrize("jobs", [1, 2])
def test_spilled_samples_and_shared_data_give_the_same_report(many_frames, shared, jobs, tmp_path):
    inputs = [SAMPLES, shared()]
    whole = _report(inputs, NEVER, jobs)
    spilled = _report(inputs, 0, jobs, workdir=tmp_path)
    _same(whole, spilled)
    assert len(whole["hosts"]) > 50 and whole["totals"]["events"] > 10_000
    assert spilled["engine"]["tasks"] > whole["engine"]["tasks"]  # the shares are tasks of their own
    assert list(tmp_path.iterdir()) == []  # the spilled files are gone with the run


def test_spilled_window_counts_what_it_left_out(many_frames, shared):
    window = {"since": pd.Timestamp("2020-01-01", tz="UTC"), "until": pd.Timestamp("2025-06-01", tz="UTC")}
    whole = _report([SAMPLES, shared()], NEVER, **window)
    spilled = _report([SAMPLES, shared()], 0, **window)
    _same(whole, spilled)
    assert 0 < spilled["window"]["left_out"] < spilled["window"]["left_out"] + spilled["totals"]["events"]
    assert spilled["window"]["read_first"] and spilled["window"]["read_last"]


def _collector(root: Path, hosts: int, firewall: str) -> Path:
    for i in range(hosts):
        name = f"vm{i:03d}"
        (root / name).mkdir(parents=True)
        (root / name / "secure").write_text(SECURE.read_text().replace(" bastion ", f" {name} "))
    (root / firewall).mkdir(parents=True, exist_ok=True)
    shutil.copy(PFIREWALL, root / firewall / "pfirewall.log")
    return root


@pytest.mark.parametrize("firewall", ["vm777", "vm001"])  # its folder's name; the host of the log beside it
def test_spilled_firewall_log_takes_the_same_host(many_frames, tmp_path, firewall):
    root = _collector(tmp_path / "logs", 3, firewall)
    whole = _report([root], NEVER)
    spilled = _report([root], 0)
    _same(whole, spilled)
    fw = next(r for r in spilled["inputs"] if r["format"] == "pfirewall")
    assert fw["assumptions"]["host"].startswith(f"{firewall} for pfirewall.log")
    assert any(h["name"] == firewall for h in spilled["hosts"])


def test_no_share_holds_every_event(many_frames, shared, monkeypatch):
    loaded: list[int] = []
    load = Share.load

    def spy(self):
        events = load(self)
        loaded.append(len(events))
        return events

    monkeypatch.setattr(Share, "load", spy)
    doc = _report([SAMPLES, shared()], 0)
    largest = max(count["count"] for count in doc["events_by"]["host"])
    assert len(loaded) > 10
    assert sum(loaded) == doc["totals"]["events"]
    # a share is whole hosts: at most SHARE_EVENTS, or one host larger than that
    assert max(loaded) <= max(shares_mod.SHARE_EVENTS, largest) < doc["totals"]["events"]


def _frame(rows: list[tuple[str | None, str, int]]) -> pd.DataFrame:
    return conform(
        pd.DataFrame(
            {
                "host": pd.Categorical([h for h, _, _ in rows]),
                "source": pd.Categorical([s for _, s, _ in rows]),
                "locator": [n for _, _, n in rows],
                "timestamp": pd.to_datetime([n for _, _, n in rows], unit="s", utc=True),
            }
        )
    )


def test_store_gives_a_share_back_in_input_order_with_its_hostless_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "WRITE_ROWS", 3)
    store = EventStore(spill_bytes=0, workdir=tmp_path)
    store.add(_frame([("b", "b.log", 1), ("a", "a.log", 2), (None, "fw.log", 3), ("b", "b.log", 4)]))
    store.add(_frame([("a", "a.log", 5), (None, "fw.log", 6), (None, "other.log", 7), ("b", "b.log", 8)]))
    assert store.spilled and len(store.files) == 2
    assert store.pairs == {"a.log": {"a"}, "b.log": {"b"}} and store.hostless == {"fw.log", "other.log"}
    moves = {"fw.log": "a"}
    hosts = store.hosts(moves)
    assert sorted(hosts["a"]) == [("h", "a"), ("s", "fw.log")] and hosts[None] == [("s", "other.log")]
    got = store.share(hosts["a"], moves).load()
    assert got["locator"].tolist() == [2, 3, 5, 6]  # input order, the firewall's rows among a's
    assert got["host"].astype(str).tolist() == ["a"] * 4
    alone = store.share(hosts[None], moves).load()
    assert alone["locator"].tolist() == [7] and alone["host"].isna().all()
    assert (store.first, store.last) == (pd.Timestamp(1, unit="s", tz="UTC"), pd.Timestamp(8, unit="s", tz="UTC"))
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_store_keeps_frames_in_memory_below_its_threshold(tmp_path):
    store = EventStore(spill_bytes=1 << 30, workdir=tmp_path)
    one, two = _frame([("a", "a.log", 1)]), _frame([("b", "b.log", 2)])
    store.add(one)
    store.add(two)
    assert not store.spilled and store.frames() == [one, two] and list(tmp_path.iterdir()) == []


def test_a_work_directory_that_cannot_take_the_events_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(InputError, match=r"cannot spill the events read to .*not-a-dir.*TMPDIR"):
        _report([SAMPLES / "linux-brute-force"], 0, workdir=blocker / "spill")


def test_timeline_from_minute_cells_of_any_split_is_the_timeline():
    import numpy as np

    from analyzer.analysis import timeline, timeline_cells, timeline_of_cells

    rng = np.random.default_rng(7)
    for trial in range(40):
        n = int(rng.integers(1, 500))
        spread = [3_600, 86_400 * 30, 86_400 * 365 * 40][trial % 3]
        stamps = pd.Series(pd.to_datetime(rng.integers(-spread, spread, n) + 1_700_000_000, unit="s", utc=True))
        stamps[rng.random(n) < 0.05] = pd.NaT
        hosts = pd.Categorical(rng.choice(np.array(["a", "b", "c", None], dtype=object), n), categories=["c", "a", "b"])
        events = pd.DataFrame({"timestamp": stamps.astype("datetime64[us, UTC]"), "host": hosts})
        causes = pd.Series(pd.Categorical(rng.choice(np.array(["x", "y", None], dtype=object), n), categories=["y", "x"]))
        counted = rng.random(n) < 0.8
        whole = timeline(events, causes, counted=counted)
        part = rng.integers(0, 3, n)  # any split of the rows, as shares of hosts are one
        cells = [
            timeline_cells(events[part == k].reset_index(drop=True), causes[part == k].reset_index(drop=True),
                           counted[part == k])  # fmt: skip
            for k in range(3)
        ]
        assert timeline_of_cells(cells) == whole


def _attacked(tmp_path: Path, hosts: list[str], ip: str) -> Path:
    root = tmp_path / "logs"
    for i, host in enumerate(hosts):
        (root / f"h{i}").mkdir(parents=True)
        lines = [
            f"Nov  3 14:{m:02d}:{s:02d} {host} sshd[{1000 + m * 60 + s}]: Failed password for invalid user u{m}{s} "
            f"from {ip} port {40000 + m * 60 + s} ssh2"
            for m in range(3)
            for s in range(0, 60, 5)
        ]
        (root / f"h{i}" / "auth.log").write_text("\n".join(lines) + "\n")
    return root


def test_a_source_attacking_several_hosts_is_one_fact_in_every_format(tmp_path):
    from typer.testing import CliRunner

    from analyzer.cli import app

    root = _attacked(tmp_path, ["web<b>1", "db|2", "solo", "lo1", "lo2"], "198.51.100.23")
    (root / "h2" / "auth.log").write_text((root / "h2" / "auth.log").read_text().replace("198.51.100.23", "192.0.2.1"))
    for h in ("h3", "h4"):  # loopback on two hosts: each host itself, not one source
        (root / h / "auth.log").write_text((root / h / "auth.log").read_text().replace("198.51.100.23", "127.0.0.1"))
    doc = _report([root], NEVER)
    assert doc["sources_across_hosts"] == {
        "sources": 1,
        "top": [{"src_ip": "198.51.100.23", "hosts": 2, "host_names": ["db|2", "web<b>1"], "attempts": 72,
                 "tried_logins": True}],
    }  # fmt: skip
    _same(doc, _report([root], 0))
    out = {}
    for fmt in ("text", "md", "html"):
        res = CliRunner().invoke(app, ["analyze", str(root), "--year", "2025", "--format", fmt])
        assert res.exit_code == 0, res.output
        out[fmt] = res.stdout
    assert "1 source attacked more than one host:" in out["text"]
    assert "198.51.100.23 on 2 hosts, 72 attempts: db|2, web<b>1" in out["text"]
    assert "| 198\\.51.100.23 | 2 | 72 | db\\|2, web\\<b\\>1 |" in out["md"]
    assert "<td class=\"mono\">db|2, web&lt;b&gt;1</td>" in out["html"]
    # one host's report: the sources that attacked it and others too; none for a host attacked alone
    one = CliRunner().invoke(app, ["analyze", str(root), "--year", "2025", "--format", "json", "--host", "db|2"])
    assert json.loads(one.stdout)["sources_across_hosts"]["top"][0]["host_names"] == ["db|2", "web<b>1"]
    alone = CliRunner().invoke(app, ["analyze", str(root), "--year", "2025", "--format", "json", "--host", "solo"])
    assert json.loads(alone.stdout)["sources_across_hosts"] == {"sources": 0, "top": []}


def test_a_killed_runs_spill_directory_is_removed_by_the_next_run(tmp_path):
    import subprocess
    import sys

    from analyzer.ingest.store import LOCK

    # a run that was killed: its directory's lock is free (the kernel let go of it)
    stale = tmp_path / "authtriage-spill-4242-abc"
    stale.mkdir()
    (stale / LOCK).write_text("")
    (stale / "part-00000.arrow").write_bytes(b"x" * 10)
    # a live run, whatever its process id says (another container's): it holds its lock
    alive = tmp_path / f"authtriage-spill-{os.getpid()}-def"
    alive.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import fcntl,os,sys;fd=os.open({str(alive / LOCK)!r},os.O_CREAT|os.O_RDWR);"
         "fcntl.flock(fd,fcntl.LOCK_EX);print('held',flush=True);sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        _report([SAMPLES / "linux-brute-force"], 0, workdir=tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name]
    finally:
        holder.communicate("")


def test_inputs_named_by_fsspec_urls(tmp_path):
    import fsspec

    log = SAMPLES / "linux-brute-force" / "secure"
    local = _report([log.parent], NEVER)
    as_url = _report([log.parent.as_uri()], NEVER)  # file://: the local path it names
    _same(local, as_url)
    fs = fsspec.filesystem("memory")
    fs.pipe("/t27/vm1/secure", log.read_bytes())
    doc = _report(["memory://t27/"], NEVER)
    assert [i["name"] for i in doc["inputs"]] == ["memory:///t27/vm1/secure"]
    assert doc["totals"]["events"] == local["totals"]["events"]
    assert [f["cause"] for f in doc["findings"]] == [f["cause"] for f in local["findings"]]
    assert all(e["text"] for f in doc["findings"] for e in f["examples"])  # quoted as read: not read again
    with pytest.raises(Exception, match="nothing readable"):
        _report(["nosuchproto://x/y"], NEVER)
    bad = ["memory://alice:S3cret@t27/none", "nosuchproto://x/y?sig=T0KEN", "ftp://u:pw@127.0.0.1:1/x"]
    res = __import__("analyzer").read_events([*bad, str(log)])
    assert [(r.name, r.error) for r in res.inputs[:2]] == [
        ("memory://t27/none", "cannot open: No such file or directory"),
        ("nosuchproto://x/y?…", "cannot open: Protocol not known: nosuchproto"),
    ]
    assert res.inputs[2].name == "ftp://127.0.0.1:1/x" and res.inputs[2].error.startswith("cannot open: ")
    assert res.inputs[3].events > 0  # the inputs after a bad URL are read
    path = log.resolve()
    forms = [f"file://localhost{path}", f"file://alice:pw@localhost{path}", f"file://{str(path).replace('/', '%2F', 0)}"]
    for form in forms:  # RFC 8089: no host or localhost; credentials never shown
        got = __import__("analyzer").read_events([form])
        assert [(r.name, r.error) for r in got.inputs] == [(str(path), None)], form
    other = __import__("analyzer").read_events(["file://bob:pw@fileserver/etc/x"])
    assert [(r.name, r.error) for r in other.inputs] == [
        ("file://fileserver/etc/x", "cannot open: this file:// URL names another machine: mount it here")
    ]
    assert not any("S3cret" in str(r.as_dict()) or "T0KEN" in str(r.as_dict()) or "pw@" in r.name for r in res.inputs)


_REAL_ANALYZE_SHARE = shares_mod.analyze_share


def _dies_first(*args):
    """A share's task whose first run kills its worker process (a forked worker sees the marker)."""
    marker = Path(os.environ["AUTHTRIAGE_TEST_MARKER"])
    if not marker.exists():
        marker.write_text("died")
        os._exit(9)
    return _REAL_ANALYZE_SHARE(*args)


def _dies_always(*args):
    os._exit(9)


@pytest.mark.parametrize("task", [_dies_first, _dies_always])
def test_a_share_whose_worker_dies_is_analyzed_again_or_fails_in_one_line(many_frames, tmp_path, monkeypatch, task):
    from analyzer.engine import EngineError

    monkeypatch.setenv("AUTHTRIAGE_TEST_MARKER", str(tmp_path / "marker"))
    whole = _report([SAMPLES], NEVER, jobs=2)
    monkeypatch.setattr(shares_mod, "analyze_share", task)
    if task is _dies_first:
        _same(whole, _report([SAMPLES], 0, jobs=2))
        assert (tmp_path / "marker").exists()
    else:
        with pytest.raises(EngineError, match=r"^the analysis of a share of [\d,]+ events failed twice: its worker"):
            _report([SAMPLES], 0, jobs=2)


CROSS_HOST_RULE = """\
id: brute-force
title: Many failures from one source across hosts
cause: brute-force
confidence: high
priority: 63
detection:
  failed:
    outcome: failure
  condition: failed
group:
  group-by: [src_ip]
  timespan: 10m
  count: {gte: 5}
"""


def _two_hosts(root: Path) -> Path:
    for host in ("web1", "web2"):
        (root / host).mkdir(parents=True)
        lines = [
            f"Nov  3 14:00:{s:02d} {host} sshd[{2000 + s}]: Failed password for root from 198.51.100.9 port {4000 + s} ssh2"
            for s in (10, 20, 30, 40)
        ]
        (root / host / "auth.log").write_text("\n".join(lines) + "\n")
    return root


def test_a_rule_grouping_across_hosts_sees_every_host_when_spilled(tmp_path):
    logs = _two_hosts(tmp_path / "logs")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "063-across.yaml").write_text(CROSS_HOST_RULE)

    def run(spill: int) -> dict:
        opts = TriageOptions(ingest=IngestOptions(lazy_raw=True, year=2025), spill_bytes=spill, spill_events=spill)
        return triage([str(logs)], rules=[tmp_path / "rules"], options=opts).data

    whole, spilled = run(NEVER), run(0)
    _same(whole, spilled)
    assert [(f["cause"], f["host"]) for f in spilled["findings"]] == [("brute-force", "web1"), ("brute-force", "web2")]


def _whole_and_spilled(events: pd.DataFrame, inputs) -> tuple[dict, dict]:
    from analyzer.config import Profile
    from analyzer.engine import LocalEngine
    from analyzer.ingest import IngestResult
    from analyzer.pipeline import _report, _ruleset
    from analyzer.shares import run_shares, summarize_shares

    opts, profile, ruleset = IngestOptions(year=2025), Profile(), _ruleset(None)
    whole = _report(IngestResult(events=events.copy(), inputs=inputs), opts, profile, ruleset).data
    whole.pop("engine")
    store = EventStore(0)
    try:
        store.add(events.copy())
        result = IngestResult(events=events.iloc[:0], inputs=inputs, stored=store)
        spilled = summarize_shares(result, opts, profile, run_shares(store, ruleset, profile, opts, LocalEngine(1), None))
    finally:
        store.close()
    return whole, spilled


def test_a_host_named_like_the_unknown_one_reads_the_same_spilled(tmp_path, monkeypatch):
    from analyzer.ingest import read_events
    from analyzer.schema import UNKNOWN_HOST

    monkeypatch.setattr(shares_mod, "SHARE_EVENTS", 4)  # each host a share of its own, but these two
    res = read_events([str(_two_hosts(tmp_path / "logs"))], IngestOptions(year=2025))
    events = res.events
    events["host"] = events["host"].cat.rename_categories({"web2": UNKNOWN_HOST})
    events.loc[events["host"] == "web1", "host"] = None
    whole, spilled = _whole_and_spilled(events, res.inputs)
    assert json.dumps(whole, sort_keys=True, default=str) == json.dumps(spilled, sort_keys=True, default=str)
    rows = whole["timeline"]["hosts"][UNKNOWN_HOST].values()
    assert sum(sum(r) for r in rows) == 8  # both hosts' attempts, added (not one row over the other)


def test_no_share_is_over_its_size_unless_one_host_is(tmp_path, monkeypatch):
    monkeypatch.setattr(shares_mod, "SHARE_EVENTS", 100)
    store = EventStore(0, tmp_path)
    sizes = {"a": 80, "b": 80, "c": 40, "d": 30, "e": 150, "f": 10}
    rows = [(h, f"{h}.log", i) for h, n in sizes.items() for i in range(n)]
    store.add(_frame(rows))
    for workers in (1, 2, 4):
        got = shares_mod.deal(store, workers)
        loads = sorted(s.events for s in got)
        assert sum(loads) == sum(sizes.values())
        assert all(n <= 100 for n in loads if n != 150), loads  # e (150) alone
        assert len(got) >= min(2 * workers, len(sizes)) if workers > 1 else True
    assert [s.events for s in shares_mod.deal(store, 2, by_host=False)] == [sum(sizes.values())]
    store.close()


def test_sigterm_removes_the_spilled_events(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    script = f"""
import time
from analyzer.cli import _exit_on_sigterm
from analyzer import triage
from analyzer.ingest import IngestOptions
from analyzer.pipeline import TriageOptions
_exit_on_sigterm()
opts = TriageOptions(ingest=IngestOptions(jobs=1), spill_bytes=0, spill_events=0, workdir={str(tmp_path)!r},
                     progress=lambda rep: time.sleep(0.3))
triage([{str(SAMPLES)!r}], options=opts)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("authtriage-spill-*")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert list(tmp_path.glob("authtriage-spill-*")), "the run never spilled"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert list(tmp_path.iterdir()) == []
