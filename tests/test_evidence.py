"""Evidence on demand: `analyze` reads text logs without keeping every line, then fetches
the lines its examples quote; they must be exactly what a full read keeps as `raw`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import analyzer.evidence as evidence
from analyzer.cli import app
from analyzer.ingest import IngestOptions, read_events
from analyzer.ingest.sources import Source


@pytest.mark.parametrize("chunk", [7, 64, 4 << 20])
def test_lines_at_any_chunking(monkeypatch, chunk):
    monkeypatch.setattr(evidence, "_CHUNK", chunk)
    data = b"one\r\ntwo\n\nfour \xff bad\nfive without newline"
    src = Source.from_bytes("x", data)
    got = evidence.lines_at(src, [1, 2, 3, 4, 5])
    assert got == {1: "one", 2: "two", 3: "", 4: "four \ufffd bad", 5: "five without newline"}
    assert evidence.lines_at(Source.from_bytes("x", data), [9]) == {}


def test_examples_quote_the_lines_a_full_read_keeps():
    res = CliRunner().invoke(app, ["analyze", "samples/ticket-bundle/ticket.zip", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    full = read_events(["samples/ticket-bundle/ticket.zip"], IngestOptions(jobs=1)).events
    raw = {f"{s}:{loc}": r for s, loc, r in zip(full["source"], full["locator"], full["raw"], strict=True)}
    examples = [e for f in doc["findings"] for e in f["examples"]]
    texts = [e for e in examples if "auth.log" in e["where"]]
    assert texts, "the bundle's Linux findings quote its auth logs (plain and .gz members)"
    assert any(".gz" in e["where"] for e in texts)
    assert any(".evtx" in e["where"] for e in examples), "and the DC's EVTX records, rendered again"
    for e in examples:
        assert e["text"] is not None and e["text"] == raw[e["where"]], e


def test_standard_input_keeps_its_lines(tmp_path):
    log = b"".join(
        f"Nov  3 14:{m:02d}:00 web9 sshd[{100 + m}]: Failed password for root from 203.0.113.9 port 5{m:04d} ssh2\n".encode()
        for m in range(12)
    )
    res = CliRunner().invoke(app, ["analyze", "-", "--format", "json", "--year", "2025"], input=log)
    assert res.exit_code == 0, res.output
    examples = [e for f in json.loads(res.stdout)["findings"] for e in f["examples"]]
    assert examples and all(e["text"] and "Failed password" in e["text"] for e in examples)


@pytest.mark.parametrize("headers", [True, False])
def test_evtx_texts_are_what_a_full_read_keeps(tmp_path, monkeypatch, headers):
    """EVTX evidence is rendered again for the quoted records: from the chunks whose
    headers hold them, or (headers that do not say) from the whole file."""
    from analyzer.ingest import winreaders
    from analyzer.ingest.sources import Limits, iter_sources
    from analyzer.samples_windows import large_security_evtx

    path = tmp_path / "Security.evtx"
    large_security_evtx(path, 3_000, seed=9)
    full = read_events([str(path)], IngestOptions(jobs=1)).events
    lazy = read_events([str(path)], IngestOptions(jobs=1, lazy_raw=True)).events
    assert full["raw"].notna().all() and lazy["raw"].isna().all()  # nothing kept for every event
    raw = dict(zip(full["locator"].tolist(), full["raw"].tolist(), strict=True))
    ids = sorted(raw)[:: max(1, len(raw) // 40)] + [sorted(raw)[-1]]
    if not headers:
        monkeypatch.setattr(winreaders, "chunk_spans", lambda where: [])
    for src in iter_sources([str(path)], Limits()):  # the source is open while iterating
        assert winreaders.evtx_texts(src.on_disk(), src.name, ids) == {i: raw[i] for i in ids}


def test_evtx_texts_of_real_logs_are_what_a_full_read_keeps(shared, monkeypatch):
    """Every EVTX file of ../shared/data (Sysmon, OpenSSH, PowerShell, cut and damaged logs
    of other people's systems): each event's text rendered again from its record alone is
    the one a read that keeps them gives it."""
    from analyzer.ingest import winreaders

    paths = sorted(shared().rglob("*.evtx"))
    expected: list[tuple[str, dict[int, str]]] = []
    for path in paths:
        full = read_events([str(path)], IngestOptions(jobs=1)).events
        if not len(full) or full["locator"].isna().any():
            continue
        raw: dict[int, str] = {}
        for loc, text in zip(full["locator"].tolist(), full["raw"].tolist(), strict=True):
            raw.setdefault(loc, text)  # (a record that gives two events: its first's text)
        assert winreaders.evtx_texts(str(path), str(path), sorted(raw)) == raw, path
        expected.append((str(path), raw))
    assert sum(len(raw) for _, raw in expected) > 2_000
    # all of them rendered together, as a share's quoted records are; a file that is gone: None
    # (most of these are records cut out of larger logs: their headers do not place them)
    files = [(path, sorted(raw)[::2] + sorted(raw)[-1:]) for path, raw in expected]
    alone: list[str] = []
    real_alone = winreaders.evtx_texts
    monkeypatch.setattr(winreaders, "evtx_texts", lambda where, *a: alone.append(where) or real_alone(where, *a))
    together = winreaders.evtx_texts_of_files([*files, (str(paths[0]) + ".gone", [1])])
    assert together[-1] is None and len(alone) < len(files) // 4
    for (path, ids), got in zip(files, together, strict=False):
        assert got == {i: dict(expected)[path][i] for i in ids}, path
    # the JSON reader refusing an event id's records together: each file's alone, the same
    monkeypatch.setattr(winreaders, "joined_table", lambda *a: None)
    assert winreaders.evtx_texts_of_files(files) == together[:-1]


def test_evtx_examples_rendered_again_in_workers(tmp_path):
    """With several jobs, the EVTX files a report quotes are rendered again in workers:
    the same texts as a read that keeps them."""
    from analyzer.samples_windows import large_security_evtx

    for i, host in enumerate(("DC01.corp.example", "DC02.corp.example")):
        (tmp_path / host).mkdir()
        large_security_evtx(tmp_path / host / "Security.evtx", 2_500, seed=20 + i, host=host)
    res = CliRunner().invoke(app, ["analyze", str(tmp_path), "--format", "json", "--jobs", "2"])
    assert res.exit_code == 0, res.output
    examples = [e for f in json.loads(res.stdout)["findings"] for e in f["examples"]]
    full = read_events([str(tmp_path)], IngestOptions(jobs=1)).events
    raw = {f"{s}:{loc}": r for s, loc, r in zip(full["source"], full["locator"], full["raw"], strict=True)}
    assert {e["where"].split("/")[-2] for e in examples} == {"DC01.corp.example", "DC02.corp.example"}
    assert all(e["text"] is not None and e["text"] == raw[e["where"]] for e in examples)


def test_quoting_from_another_working_directory(tmp_path, monkeypatch):
    """A cluster's worker quotes with ``base`` (the client's working directory): the plain
    files the inputs name, relative to it, are read from there (EVTX and text alike); an
    archive's members, a link inside a tree and a name outside the inputs are left to the
    client (no text)."""
    import zipfile

    from analyzer.ingest.sources import Limits
    from analyzer.samples_windows import large_security_evtx

    client = tmp_path / "client"
    (client / "logs" / "dc").mkdir(parents=True)
    large_security_evtx(client / "logs" / "dc" / "Security.evtx", 300, seed=4)
    line = "Nov  3 16:00:0{i} web sshd[9]: Failed password for root from 203.0.113.9 port 4000{i} ssh2\n"
    (client / "logs" / "auth.log").write_text("".join(line.format(i=i) for i in range(5)))
    with zipfile.ZipFile(client / "logs" / "old.zip", "w") as z:
        z.writestr("auth.log", "".join(line.format(i=i) for i in range(3)))
    (client / "outside.log").write_text("".join(line.format(i=i) for i in range(3)))
    (client / "logs" / "link.log").symlink_to(client / "outside.log")
    monkeypatch.chdir(client)
    full = read_events(["logs"], IngestOptions(jobs=1)).events
    evtx_ids = [int(x) for x in full.loc[full["source"] == "logs/dc/Security.evtx", "locator"]][:4]
    raw = {f"{s}:{loc}": r for s, loc, r in zip(full["source"], full["locator"], full["raw"], strict=True)}
    wheres = [f"logs/dc/Security.evtx:{i}" for i in evtx_ids] + ["logs/auth.log:2", "logs/old.zip!auth.log:1"]
    wheres += ["logs/link.log:1", "outside.log:1"]
    formats = {"logs/dc/Security.evtx": "evtx", "logs/auth.log": "syslog", "logs/old.zip!auth.log": "syslog"}
    formats |= {"logs/link.log": "syslog", "outside.log": "syslog"}
    findings = [{"examples": [{"where": w, "text": None} for w in wheres]}]
    monkeypatch.chdir(tmp_path)  # the worker's own directory: nothing of the client's here
    assert evidence.fill_examples(findings, ["logs"], formats, Limits(), 1, base=str(client)) == 5
    got = {e["where"]: e["text"] for e in findings[0]["examples"]}
    assert all(got[w] == raw[w] for w in wheres[:5])
    assert got["logs/old.zip!auth.log:1"] is None and got["logs/link.log:1"] is None and got["outside.log:1"] is None


def test_quoting_follows_no_link_to_another_file(tmp_path, monkeypatch):
    """An archive's member quoted again is the member, not a file its name leads to: a link
    in the tree named like the member's folder (``a.tar!evil``) points elsewhere, and a
    folder swapped for a link after the read is not followed either."""
    import io
    import tarfile

    from analyzer import TriageOptions, triage

    line = "Nov  3 16:00:0{i} web sshd[9]: Failed password for root from 203.0.113.9 port 4000{i} ssh2\n"
    lines = "".join(line.format(i=i) for i in range(8)).encode()
    (tmp_path / "logs" / "real").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "auth.log").write_text("".join(f"SECRET line {i}\n" for i in range(8)))
    with tarfile.open(tmp_path / "logs" / "a.tar", "w") as tar:
        info = tarfile.TarInfo("evil/auth.log")
        info.size = len(lines)
        tar.addfile(info, io.BytesIO(lines))
    (tmp_path / "logs" / "a.tar!evil").symlink_to(tmp_path / "secret")
    (tmp_path / "logs" / "real" / "auth.log").write_bytes(lines)
    monkeypatch.chdir(tmp_path)
    opts = TriageOptions(ingest=IngestOptions(lazy_raw=True, year=2025, jobs=1))
    real_walk = evidence.iter_sources

    def swapped(paths, limits=None):  # the folder read is a link to the secret by the time lines are quoted
        if (tmp_path / "logs" / "real").is_dir() and not (tmp_path / "logs" / "real").is_symlink():
            (tmp_path / "logs" / "real" / "auth.log").unlink()
            (tmp_path / "logs" / "real").rmdir()
            (tmp_path / "logs" / "real").symlink_to(tmp_path / "secret")
        return real_walk(paths, limits)

    monkeypatch.setattr(evidence, "iter_sources", swapped)
    texts = [e["text"] for f in triage(["logs"], options=opts).data["findings"] for e in f["examples"]]
    assert any(t and "Failed password" in t for t in texts)
    assert not any(t and "SECRET" in t for t in texts)


@pytest.mark.parametrize("examples", [2, 3])
def test_a_repeated_message_is_one_example(tmp_path, examples):
    """The events of one ``message repeated N times`` line are one example: a finding quoted
    the same line twice, and with several such lines in a row showed nothing else."""
    from analyzer import analysis
    from analyzer.classify import load_rules
    from analyzer.config import Profile

    head = "Nov  3 16:00:{s:02} bastion sshd[{pid}]: "
    lines = [head.format(s=0, pid=700) + "Failed password for root from 203.0.113.66 port 40000 ssh2"]
    lines += [head.format(s=i, pid=700 + i) + "message repeated 4 times: [ Failed password for root from "
              f"203.0.113.66 port {40000 + i} ssh2]" for i in range(1, 4)]
    lines += [head.format(s=10 + i, pid=800 + i) + f"Failed password for root from 203.0.113.66 port {41000 + i} ssh2"
              for i in range(30)]
    (tmp_path / "secure").write_text("\n".join(lines) + "\n")
    events = read_events([str(tmp_path / "secure")], IngestOptions(jobs=1, year=2025)).events
    cls_rules, profile = load_rules(), Profile()
    out = analysis._analyze_serial(events, cls_rules, profile)
    (f,) = [f for f in out["findings"] if f["cause"] == "brute-force"]
    assert f["count"] == 1 + 3 * 4 + 30
    found = analysis.findings(events, out["classification"], profile, examples=examples)
    (f,) = [f for f in found if f["cause"] == "brute-force"]
    assert [e["where"].rsplit(":", 1)[1] for e in f["examples"]] == [str(n) for n in range(1, examples + 1)]


def test_evtx_examples_of_records_numbered_apart_from_their_headers(tmp_path):
    """Records cut out of a larger log keep their System EventRecordID (the locator) while
    their headers count from 1: the examples were looked up by the header's number and came
    out without text (18 of ../shared/data's 105)."""
    import datetime as dt

    from analyzer.evtxwriter import EvtxWriter
    from analyzer.samples_windows import logon_failure

    t0 = dt.datetime(2025, 11, 3, 14, 0, tzinfo=dt.UTC)
    with EvtxWriter(tmp_path / "cut.evtx", first_record_id=1, system_id_offset=232_256_503) as w:
        for i in range(40):
            w.write(logon_failure("WIN", t0 + dt.timedelta(seconds=i), "Admin", "WIN", "0xc000006d", "0xc000006a",
                                  ip="203.0.113.9"))  # fmt: skip
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "cut.evtx"), "--format", "json"])
    assert res.exit_code == 0, res.output
    examples = [e for f in json.loads(res.stdout)["findings"] for e in f["examples"]]
    full = read_events([str(tmp_path / "cut.evtx")], IngestOptions(jobs=1)).events
    assert full["locator"].min() == 232_256_504
    raw = {f"{s}:{loc}": r for s, loc, r in zip(full["source"], full["locator"], full["raw"], strict=True)}
    assert examples and all(e["text"] is not None and e["text"] == raw[e["where"]] for e in examples)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 1 << 18])
def test_distinct_lines_slice_by_slice(step):
    """Runs of one line's events across slices of any size: the first k distinct lines of
    each group, as one pass over everything finds them."""
    import numpy as np
    import pandas as pd

    from analyzer.analysis import _distinct_lines, _Taken

    rng = np.random.default_rng(5)
    locator = np.repeat(np.arange(1, 41), rng.integers(1, 6, 40))  # lines 1..40, each 1-5 events
    gid = rng.integers(0, 3, locator.size) * (locator % 2 == 0)  # groups 0..2; odd lines all in group 0
    ev = pd.DataFrame({
        "source": pd.Categorical.from_codes(np.zeros(locator.size, np.int8), categories=["a.log"]),
        "locator": pd.array(locator, dtype="Int64"),
    })  # fmt: skip
    frame = _Taken(ev, None, np.arange(locator.size))
    groups = np.array([True, False, True])
    got = _distinct_lines(gid, frame, 4, groups, step)
    want = []
    for g in (0, 2):
        seen: list[int] = []
        for pos in np.flatnonzero(gid == g):
            if (not seen or locator[pos] != locator[seen[-1]]) and len(seen) < 4:
                seen.append(pos)
        want += seen
    assert sorted(got.tolist()) == sorted(want)
