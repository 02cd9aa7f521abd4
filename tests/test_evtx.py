"""EVTX against the shared corpus and its MANIFEST: counts, auth breakdown, both backends."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from conftest import SHARED_DATA, shared_path

from analyzer.ingest import IngestOptions, read_events, runner


def _manifest() -> dict:
    return json.loads(shared_path("MANIFEST.json").read_text())["files"]


def _evtx_files() -> list[str]:
    path = SHARED_DATA / "MANIFEST.json"
    if not path.exists():
        return ["(shared data missing)"]
    files = json.loads(path.read_text())["files"]
    return sorted(k for k in files if k.endswith(".evtx"))


@cache
def _read(rel: str, backend: str):
    res = read_events([str(SHARED_DATA / rel)], IngestOptions(evtx_backend=backend, jobs=1))
    return res.inputs[0], res.events


def _breakdown(ev: pd.DataFrame) -> dict[str, dict[str, int]]:
    """MANIFEST's auth_detail, recomputed from the normalized events."""
    sec = ev[(ev["channel"] == "Security") & (ev["provider"] == "Microsoft-Windows-Security-Auditing")]
    out: dict[str, Counter] = {}
    for rec in sec.to_dict("records"):
        eid = int(rec["event_id"])
        if eid == 4624:
            key = f"LogonType={rec['logon_type']}"
        elif eid == 4625:
            key = f"LogonType={rec['logon_type']} Status={rec['status']} SubStatus={rec['sub_status']}"
        elif eid in (4776, 4768, 4769, 4771):
            key = f"Status={rec['status']}"
        else:
            continue
        out.setdefault(str(eid), Counter())[key] += 1
    return {k: dict(v) for k, v in out.items()}


@pytest.mark.parametrize("rel", _evtx_files())
def test_rust_backend_reads_every_record_and_reproduces_auth_detail(rel):
    entry = _manifest()[rel]
    rep, ev = _read(rel, "rust")
    assert rep.error is None, rep.error
    assert rep.records == entry["records"], rep.warnings
    want = {k: {kk: int(vv) for kk, vv in v.items()} for k, v in (entry.get("auth_detail") or {}).items()}
    got = _breakdown(ev)
    assert {k: v for k, v in got.items() if k in want or v} == want
    if entry.get("ground_truth_mode") == "skip_errors":
        assert rep.warnings, "a damaged file must say so"


def _comparable(ev: pd.DataFrame) -> pd.DataFrame:
    out = ev.drop(columns=["source"]).astype(object).where(ev.drop(columns=["source"]).notna(), None)
    return out.sort_values(["locator", "event_id"], key=lambda s: s.astype(str)).reset_index(drop=True)


@pytest.mark.parametrize("rel", _evtx_files())
def test_python_backend_matches_rust(rel):
    rust_rep, rust_ev = _read(rel, "rust")
    py_rep, py_ev = _read(rel, "python")
    assert py_rep.error is None
    entry = _manifest()[rel]
    full = py_rep.records == rust_rep.records == entry["records"] and py_rep.unparsed == 0
    if not full:
        # python-evtx cannot finish this file: it must say so, and keep what it read
        assert py_rep.warnings, f"{rel}: python backend read {py_rep.records} of {entry['records']} records silently"
        assert len(py_ev) <= len(rust_ev)
        return
    a, b = _comparable(rust_ev), _comparable(py_ev)
    if not a.equals(b):
        for i in range(min(len(a), len(b))):
            ra, rb = a.iloc[i].to_dict(), b.iloc[i].to_dict()
            if ra != rb:
                diff = {k: (ra[k], rb[k]) for k in ra if ra[k] != rb[k]}
                pytest.fail(f"{rel}: record {ra['locator']} differs (rust, python): {diff}")
        pytest.fail(f"{rel}: {len(a)} events with rust, {len(b)} with python")


def _header_bound_count(path: Path) -> int:
    """What python-evtx alone returns: records of the chunks the file header declares."""
    import Evtx.Evtx as E

    with E.Evtx(str(path)) as f:
        return sum(1 for chunk in f.chunks() for _ in chunk.records())


def test_stale_header_files_read_fully_with_python_backend():
    manifest = _manifest()
    stale = []
    for rel, entry in manifest.items():
        if rel.endswith(".evtx") and _header_bound_count(SHARED_DATA / rel) < entry["records"]:
            stale.append(rel)
    assert len(stale) >= 5  # RDPAuth_Security.evtx: python-evtx alone gives 95 of 789
    for rel in stale:
        rep, _ = _read(rel, "python")
        assert any("header declares" in w for w in rep.warnings), rel
        if manifest[rel]["ground_truth_mode"] == "strict":
            assert rep.records == manifest[rel]["records"], rel


def test_application_4625_is_not_a_logon_failure():
    rel = "evtx/sans-blue-team__DeepBlueCLI/evtx/many-events-application.evtx"
    rep, ev = _read(rel, "rust")
    assert rep.records == 2216 and ev.empty


def test_wfp_local_end_and_service_state():
    manifest = _manifest()
    rel = next(k for k in manifest if k.endswith("RDPAuth_Security.evtx"))
    _, ev = _read(rel, "rust")
    wfp = ev[ev["event_id"] == 5157]
    assert len(wfp) > 0 and (wfp["action"] == "firewall-drop").all()
    rel = next(k for k in manifest if k.endswith("Security_short_selected.evtx"))
    _, ev = _read(rel, "rust")
    drop = ev[ev["event_id"] == 5152].iloc[0]
    # inbound to RDP: the well-known port marks the local end, whatever the field names say
    assert (drop["dst_port"], drop["src_ip"]) == (3389, "23.94.153.202")


def test_winrm_and_openssh_operational():
    manifest = _manifest()
    rel = next(k for k in manifest if k.endswith("RemotePowerShell_MS_Windows-Remote_Management_EventID_169.evtx"))
    _, ev = _read(rel, "rust")
    assert list(ev["service"].astype(str).unique()) == ["winrm"]
    assert (ev["user"] == "iewin7\\ieuser").sum() == 3 and (ev["auth_method"] == "NTLM").all()
    rel = next(k for k in manifest if k.endswith("ID4-OpenSSH server listening.evtx"))
    _, ev = _read(rel, "rust")
    assert len(ev) == 6 and (ev["reason"] == "service-started").all() and (ev["service"] == "ssh").all()
    assert set(ev["dst_port"]) == {22}


def test_scm_7036_for_winrm_only():
    manifest = _manifest()
    rel = next(k for k in manifest if k.endswith("RDPAuth_System.evtx"))
    rep, ev = _read(rel, "rust")
    assert rep.records == manifest[rel]["records"]
    scm = ev[ev["event_id"] == 7036].sort_values("locator")
    # the System log has dozens of 7036 records; only WinRM's matter (by display or service name)
    assert list(zip(scm["locator"], scm["service"], scm["reason"], strict=True)) == [
        (15432, "winrm", "service-stopped"),
        (15535, "winrm", "service-started"),
    ]
    assert (scm["action"] == "service-state").all()


def test_rust_prefilter_reads_every_shape_of_event_id_and_channel(monkeypatch):
    """The per-record prefilter finds the event id and channel with plain string search;
    the shapes it does not take directly (an id with attributes, a quoted id, an id last
    in System, an escaped channel) still reach the regex and are not lost."""
    import sys
    import types

    from analyzer.ingest.evtx import read_rust_tables
    from analyzer.ingest.windows import load_semantics

    def text(system: str) -> str:
        data = '"EventData":{"TargetUserName":"bob","IpAddress":"203.0.113.9","Status":"0xc000006d","LogonType":3}'
        head = '"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},'
        return '{"Event":{"System":{' + head + system + "}," + data + "}}"

    time = '"TimeCreated":{"#attributes":{"SystemTime":"2025-01-02T03:04:05.000000Z"}},"Computer":"h"'
    records = [
        (1, text(f'"EventID":4625,"Version":0,{time},"Channel":"Security"')),
        (2, text(f'"EventID":{{"#attributes":{{"Qualifiers":0}},"#text":4625}},{time},"Channel":"Security"')),
        (3, text(f'"EventID":"4625",{time},"Channel":"Security"')),
        (4, text(f'{time},"Channel":"Security","EventID":4625')),
        (5, text(f'"EventID":4625,{time},"Channel":"Secu\\u0072ity"')),
        (6, text(f'"EventID":4634,{time},"Channel":"Security"')),  # not in the table
        (7, text(f'"EventID":4625,{time},"Channel":"Application"')),  # not this channel
        (8, text(f'"EventID":4625,{time},"Channel":null')),
    ]

    class Parser:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def records_json(self):
            for rid, data in records:
                json.loads(data)  # the fixture is real JSON
                yield {"event_record_id": rid, "timestamp": "", "data": data}

    monkeypatch.setitem(sys.modules, "evtx", types.SimpleNamespace(PyEvtxParser=Parser))
    sem = load_semantics()
    for after, expect in ((0, [1, 2, 3, 4, 5]), (2, [3, 4, 5])):
        counts = {"records": 0}
        frames = [f for batch in read_rust_tables("x.evtx", sem, print, counts, after=after) for _, f in batch]
        got = sorted(r for f in frames for r in f["record_id"].to_pylist())
        assert got == expect, after
        assert counts["records"] == 8 - after and (counts["min_id"], counts["max_id"]) == (1, 8)


def test_corpus_read_in_chunk_ranges_matches_a_whole_read(monkeypatch):
    """Every shared EVTX file cut into one-chunk ranges for the workers gives the events and
    counts of one parser over the whole file, dirty files (stale headers, bad chunks, empty
    space after the chunks) included, and the same warnings, named by the file's chunk
    numbers. The one difference allowed: a blank chunk after the last one in use is not
    parsed, so the whole-file parser's complaint about its missing magic is not repeated."""
    import re

    from analyzer.ingest import winreaders

    root = shared_path("evtx")
    monkeypatch.setattr(winreaders, "PART_CHUNKS", 1)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 0)  # files are read here, their parts by workers
    keys = ("records", "used", "irrelevant", "unparsed", "events", "first_record", "last_record")
    blank = "found `[ 0,  0,  0,  0,  0,  0,  0,  0]`"
    split = 0
    for rel in _evtx_files():
        path = str(root.parent / rel)
        if not winreaders.chunk_ranges(path, 1):
            continue
        split += 1
        whole = read_events([path], IngestOptions(jobs=1))
        parts = read_events([path], IngestOptions(jobs=2))
        a, b = whole.inputs[0], parts.inputs[0]
        assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys], rel
        pd.testing.assert_frame_equal(whole.events.astype(object), parts.events.astype(object), obj=rel)
        said = [re.sub(r"^chunks \d+-\d+: ", "", w) for w in b.warnings]
        assert all(w.startswith("chunks ") for w in b.warnings), rel
        assert said == [w for w in a.warnings if w in said or blank not in w], rel
    assert split >= 30  # the corpus really exercised the parts


class _Forgetful(dict):
    """A schema cache that learns nothing: every batch is inferred afresh."""

    def __setitem__(self, key, value) -> None:
        pass

    def setdefault(self, key, default=None):
        return default


def _read_corpus(monkeypatch, schemas: dict) -> dict[str, pd.DataFrame]:
    from analyzer.ingest import evtx

    monkeypatch.setattr(evtx, "_SCHEMAS", schemas)
    return {rel: read_events([str(SHARED_DATA / rel)], IngestOptions(jobs=1)).events for rel in _evtx_files()}


def test_learned_schemas_read_the_corpus_as_inference_does(monkeypatch):
    """After a first batch of an event id, later batches are read with the schema it was
    inferred to have, cut to the fields the table uses: every shared EVTX file, in tiny
    batches (so that path carries nearly every record), gives the events of a read that
    infers every batch — values of other types and fields the first records lacked
    included."""
    from analyzer.ingest import evtx, winreaders

    learned = 0
    monkeypatch.setattr(winreaders, "BATCH", 40)
    monkeypatch.setattr(evtx, "_SAMPLE", 1 << 60)  # no batch is large enough to learn from its start
    inferred = _read_corpus(monkeypatch, _Forgetful())
    schemas: dict = {}
    real = evtx._read_table

    def counting(blob, threads, key):
        nonlocal learned
        learned += key in schemas
        return real(blob, threads, key)

    monkeypatch.setattr(evtx, "_read_table", counting)
    pruned = _read_corpus(monkeypatch, schemas)
    assert learned > 100 and schemas
    for rel, events in inferred.items():
        pd.testing.assert_frame_equal(events.astype(object), pruned[rel].astype(object), obj=rel)


def test_schemas_learned_from_a_batch_start_read_the_corpus_as_inference_does(monkeypatch):
    """A batch of an event id with no schema learned yet is read with the one its first
    records have (here the first ~2 KB; 256 KB in use): every shared EVTX file gives the
    events of a read that infers every batch whole, records whose values or fields differ
    from the first ones' included (that batch is then inferred whole)."""
    from analyzer.ingest import evtx

    monkeypatch.setattr(evtx, "_SAMPLE", 1 << 60)
    inferred = _read_corpus(monkeypatch, _Forgetful())
    monkeypatch.setattr(evtx, "_SAMPLE", 2000)
    sampled = 0
    real = evtx.pj.read_json

    def counting(source, read_options=None, parse_options=None):
        nonlocal sampled
        sampled += read_options is not None and not read_options.use_threads and parse_options is None
        return real(source, read_options=read_options, parse_options=parse_options)

    monkeypatch.setattr(evtx.pj, "read_json", counting)
    learned = _read_corpus(monkeypatch, _Forgetful())  # forgetful: every large batch learns from its start
    assert sampled > 30
    for rel, events in inferred.items():
        pd.testing.assert_frame_equal(events.astype(object), learned[rel].astype(object), obj=rel)


def test_batches_the_json_reader_refuses_are_decoded_record_by_record(monkeypatch):
    """When pyarrow cannot read a batch in one go, its records are decoded one by one from
    the same buffer: every shared EVTX file then gives the events of the columnar read."""
    from analyzer.ingest import evtx

    def read() -> dict[str, pd.DataFrame]:
        return {rel: read_events([str(SHARED_DATA / rel)], IngestOptions(jobs=1)).events for rel in _evtx_files()}

    columnar = read()
    refused = 0

    def refuse(blob, threads, key):
        nonlocal refused
        refused += 1
        raise pa.ArrowInvalid("refused for the test")

    monkeypatch.setattr(evtx, "_read_table", refuse)
    one_by_one = read()
    assert refused > 30 and sum(map(len, columnar.values())) > 1000
    for rel, events in columnar.items():
        pd.testing.assert_frame_equal(events.astype(object), one_by_one[rel].astype(object), obj=rel)


def test_a_learned_schema_gives_way_to_values_of_another_type():
    """A field first seen as a number, then as text (or a field the first records did not
    have at all): the batch is inferred again, nothing is lost."""
    from analyzer.ingest import evtx

    def record(rid: int, data: dict) -> str:
        system = {"EventID": 4625, "EventRecordID": rid, "Channel": "Security", "Computer": "h",
                  "TimeCreated": {"#attributes": {"SystemTime": "2025-01-02T03:04:05.000000Z"}},
                  "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}}  # fmt: skip
        return json.dumps({"Event": {"System": system, "EventData": data}})

    def lines(*texts: str) -> bytes:  # as the reader buffers them: UTF-8, one a line
        return "".join(t + "\n" for t in texts).encode()

    key = (4625, frozenset({"LogonType", "IpPort", "SubStatus"}))
    evtx._SCHEMAS.pop(key, None)
    first = evtx._batch_table(lines(record(1, {"LogonType": 3, "IpPort": "1"})), [1], key=key)
    assert key in evtx._SCHEMAS and first["d.LogonType"].to_pylist() == ["3"]
    later = evtx._batch_table(
        lines(record(2, {"LogonType": "x", "IpPort": "2"}), record(3, {"LogonType": "y", "SubStatus": "0xC0000064"})),
        [2, 3],
        key=key,
    )
    assert later["d.LogonType"].to_pylist() == ["x", "y"]
    assert later["d.SubStatus"].to_pylist()[1] == "0xC0000064"
    again = evtx._batch_table(lines(record(4, {"LogonType": "z", "SubStatus": "0x0", "Other": "y"})), [4], key=key)
    assert again["d.SubStatus"].to_pylist() == ["0x0"] and "d.Other" not in again.column_names


def test_evidence_text_is_cut_at_2000_characters_not_bytes():
    """A long field value: the rendering stops at 2000 characters, multi-byte ones counted
    once; short renderings are left whole."""
    from analyzer.ingest.evtx import Record
    from analyzer.ingest.windows import records_to_events

    def rec(rid: int, user: str) -> Record:
        return Record(rid, "2025-01-02T03:04:05.000000Z", 4625, "Security", "Microsoft-Windows-Security-Auditing",
                      "dc", {"TargetUserName": user, "Status": "0xC000006D", "IpAddress": "10.0.0.1"})  # fmt: skip

    events, _ = records_to_events([rec(1, "é" * 3000), rec(2, "bob")], "x.evtx", "evtx")
    long, short = events["raw"].tolist()
    assert len(long) == 2000 and long.startswith("Security/4625 TargetUserName=éé")
    assert short.startswith("Security/4625 TargetUserName=bob") and len(short) < 200
    events, _ = records_to_events([rec(3, "é" * 1500)], "x.evtx", "evtx")  # 3000+ bytes, < 2000 chars
    assert events["raw"].iloc[0].endswith("Status=0xc000006d")  # whole


def test_event_times_read_by_arrow_or_pandas_alike():
    """Times are cast by Arrow when it reads every value of a column, else by pandas'
    ISO 8601 parser: either way the same instants (NaT for what is not a time)."""
    from analyzer.ingest.syslog import parse_iso

    good = ["2025-11-03T14:00:00.140000Z", "2025-11-03T14:00:00Z", "2025-11-03T14:00:00+02:00", None,
            "1601-01-01T00:00:00.000000Z"]  # fmt: skip
    odd = ["2025-11-03T14:00:00.1234567Z", "2025-11-03 14:00:00", "garbage", "2025-02-30T00:00:00Z", *good]
    for values in (good, odd):
        index = list(range(10, 10 + len(values)))[::-1]
        want = pd.to_datetime(pd.Series(values, dtype=object, index=index), format="ISO8601", utc=True, errors="coerce")
        got = pd.Series(parse_iso(pa.array(values, pa.string()), utc=True), index=index)
        assert str(got.dtype) == "datetime64[us, UTC]"
        pd.testing.assert_series_equal(got, want.dt.as_unit("us"))
