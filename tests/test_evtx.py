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
    if entry.get("ground_truth_mode") == "skip_errors":
        # a damaged file: it must say so, and may give more than the manifest's count (taken
        # by a parser that drops a damaged chunk whole), not fewer
        assert rep.records >= entry["records"] and rep.warnings, rep.warnings
    else:
        assert rep.records == entry["records"], rep.warnings
    want = {k: {kk: int(vv) for kk, vv in v.items()} for k, v in (entry.get("auth_detail") or {}).items()}
    got = _breakdown(ev)
    assert {k: v for k, v in got.items() if k in want or v} == want


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
    first = evtx.batch_table(lines(record(1, {"LogonType": 3, "IpPort": "1"})), [1], key=key)
    assert key in evtx._SCHEMAS and first["d.LogonType"].to_pylist() == ["3"]
    later = evtx.batch_table(
        lines(record(2, {"LogonType": "x", "IpPort": "2"}), record(3, {"LogonType": "y", "SubStatus": "0xC0000064"})),
        [2, 3],
        key=key,
    )
    assert later["d.LogonType"].to_pylist() == ["x", "y"]
    assert later["d.SubStatus"].to_pylist()[1] == "0xC0000064"
    again = evtx.batch_table(lines(record(4, {"LogonType": "z", "SubStatus": "0x0", "Other": "y"})), [4], key=key)
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


# ---------------------------------------------------------------------------------------
# damaged files: whole records are kept, and the warning says where the damage is

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FIREWALL = SAMPLES / "windows-firewall-blocked" / "Security.evtx"  # one chunk: records 1000–1095
PROBE = SAMPLES / "windows-dc-probe" / "Security.evtx"  # two chunks: records 1000–1178, 1179–1335
BACKENDS = ["rust", "python"]


@cache
def _intact(path: Path, backend: str) -> pd.DataFrame:
    return read_events([str(path)], IngestOptions(evtx_backend=backend, jobs=1)).events


def _damaged(tmp_path: Path, data: bytes, backend: str, jobs: int = 1):
    path = tmp_path / "Security.evtx"
    path.write_bytes(data)
    res = read_events([str(path)], IngestOptions(evtx_backend=backend, jobs=jobs))
    return res.inputs[0], res.events


def _same_events(got: pd.DataFrame, want: pd.DataFrame) -> None:
    keep = got.columns.drop("source")
    pd.testing.assert_frame_equal(
        got[keep].reset_index(drop=True).astype(object), want[keep].reset_index(drop=True).astype(object)
    )


def _of(events: pd.DataFrame, ids) -> pd.DataFrame:
    return events[events["locator"].isin(list(ids))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_cut_mid_chunk_keeps_whole_records(tmp_path, backend):
    """The issue's `head -c 34672`: 72 of the chunk's 96 records lie wholly before the cut.
    They are read (as in the whole file), and the warning says which chunk was cut where."""
    rep, ev = _damaged(tmp_path, FIREWALL.read_bytes()[:34672], backend)
    assert rep.error is None and rep.records == 72 and rep.unparsed == 0
    _same_events(ev, _of(_intact(FIREWALL, backend), range(1000, 1072)))
    assert rep.warnings == [
        "chunk 0 (offset 0x1000): cut short after 30,576 of 65,536 bytes: "
        "72 whole records read (ids 1000–1071), the rest lost"
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_second_chunk_cut_keeps_its_whole_records(tmp_path, backend):
    """A second chunk cut 40,000 bytes in: the first chunk whole, and the 102 records of the
    second that lie before the cut."""
    data = PROBE.read_bytes()[: 0x1000 + 0x10000 + 40_000]
    rep, ev = _damaged(tmp_path, data, backend)
    assert rep.records == 179 + 102 and (rep.first_record, rep.last_record) == (1000, 1280)
    _same_events(ev, _of(_intact(PROBE, backend), range(1000, 1281)))
    assert rep.warnings == [
        "chunk 1 (offset 0x11000): cut short after 40,000 of 65,536 bytes: "
        "102 whole records read (ids 1179–1280), the rest lost"
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_cut_in_file_header_is_an_error_naming_it(tmp_path, backend):
    """A file cut inside its 4 KiB header has no chunk to read: an error that says so (the
    CLI names the file), not "an authtriage bug", not a silent empty read."""
    rep, ev = _damaged(tmp_path, FIREWALL.read_bytes()[:2000], backend)
    assert rep.error == "EVTX file header is incomplete (2,000 of 4,096 bytes): no chunk to read"
    assert ev.empty and rep.records == 0


def test_evtx_cut_in_file_header_is_said_by_the_cli(tmp_path):
    from typer.testing import CliRunner

    from analyzer.cli import app

    path = tmp_path / "Security.evtx"
    path.write_bytes(FIREWALL.read_bytes()[:2000])
    res = CliRunner().invoke(app, ["events", str(path)])
    assert res.exit_code == 2
    assert f"{path}: EVTX file header is incomplete (2,000 of 4,096 bytes)" in res.stderr
    assert "authtriage bug" not in res.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_duplicated_chunk_counted_once(tmp_path, backend):
    """A chunk written twice (its record ids twice): each record counted and read once, and
    the warning names the repeating chunk."""
    data = PROBE.read_bytes()
    first = data[0x1000:0x11000]
    rep, ev = _damaged(tmp_path, data + first, backend)
    assert rep.records == 336 and ev["locator"].is_unique
    _same_events(ev, _intact(PROBE, backend))
    assert rep.warnings[-1] == "chunk 2 (offset 0x21000): 179 (ids 1000–1178) also in another chunk, counted once"
    # the copy first, then the original: the copy's records are the ones read
    rep, ev = _damaged(tmp_path, data[:0x1000] + first + data[0x1000:], backend)
    assert rep.records == 336 and ev["locator"].is_unique
    assert "chunk 1 (offset 0x11000): 179 (ids 1000–1178) also in another chunk, counted once" in rep.warnings


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_damaged_file_header_still_reads_the_chunks(tmp_path, backend):
    """A flipped bit in the file header's checked part (its chunk count, here): said, and
    every chunk read all the same."""
    data = bytearray(PROBE.read_bytes())
    data[42] ^= 0x40
    rep, ev = _damaged(tmp_path, bytes(data), backend)
    assert rep.records == 336
    _same_events(ev, _intact(PROBE, backend))
    assert rep.warnings == ["EVTX file header is damaged (its checksum does not match): its chunks are read all the same"]


def _records_of(chunk: bytes) -> list[tuple[int, int, int]]:
    """(offset, size, id) of a sound chunk's records, by its header's free-space offset."""
    import struct

    free, at, out = struct.unpack_from("<I", chunk, 48)[0], 0x200, []
    while at < free:
        size, rid = struct.unpack_from("<IQ", chunk, at + 4)
        out.append((at, size, rid))
        at += size
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_damaged_record_loses_only_that_record(tmp_path, backend):
    """A record whose header is damaged mid-chunk: the parsers used to stop at it (the rest of
    the chunk lost, silently); now only it is missing, and the warning says where."""
    data = bytearray(PROBE.read_bytes())
    off, size, rid = _records_of(bytes(data[0x1000:0x11000]))[40]
    data[0x1000 + off + 5] ^= 0x01  # its size: neither it nor its copy at the end agree
    rep, ev = _damaged(tmp_path, bytes(data), backend)
    assert rep.records == 335 and rid not in set(ev["locator"])
    _same_events(ev, _intact(PROBE, backend).query("locator != @rid"))
    assert rep.warnings == [
        f"chunk 0 (offset 0x1000): records checksum does not match: 178 whole records read (ids 1000–{rid - 1}, "
        f"{rid + 1}–1178), damaged at chunk bytes {off:#x}–{off + size:#x}"
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_record_with_a_damaged_size_copy_is_still_read(tmp_path, backend):
    """Only a record's size copy (at its end, which parsers do not read) damaged: the record
    is read as before, and the warning says where the damage is."""
    data = bytearray(PROBE.read_bytes())
    off, size, rid = _records_of(bytes(data[0x1000:0x11000]))[40]
    data[0x1000 + off + size - 3] ^= 0x10
    rep, ev = _damaged(tmp_path, bytes(data), backend)
    assert rep.records == 336
    _same_events(ev, _intact(PROBE, backend))
    assert rep.warnings == [
        "chunk 0 (offset 0x1000): records checksum does not match: 179 whole records read (ids 1000–1178), "
        f"damaged at chunk bytes {off:#x}–{off + size:#x}"
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_damaged_value_is_said(tmp_path, backend):
    """A bit flipped inside a record's data: its chunk's checksum says so (the record itself
    may decode, with the value changed), and the chunk's records are read."""
    data = bytearray(PROBE.read_bytes())
    off, size, rid = _records_of(bytes(data[0x11000:0x21000]))[-1]
    data[0x11000 + off + size - 20] ^= 0x20
    rep, ev = _damaged(tmp_path, bytes(data), backend)
    assert rep.records == 336
    assert len(rep.warnings) == 1 and rep.warnings[0].startswith(
        "chunk 1 (offset 0x11000): records checksum does not match: 157 whole records read (ids 1179–1335)"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_zeroed_chunk_is_said(tmp_path, backend):
    """A chunk zeroed where the file header counts one: the other chunks read, and the blank
    slot said (blank slots after the last chunk, a log's room to grow, are not)."""
    data = bytearray(PROBE.read_bytes())
    data[0x1000:0x11000] = bytes(0x10000)
    rep, ev = _damaged(tmp_path, bytes(data) + bytes(0x30000), backend)
    assert rep.records == 157
    _same_events(ev, _of(_intact(PROBE, backend), range(1179, 1336)))
    assert rep.warnings == ["chunk 0 (offset 0x1000) is blank, though the file header counts 2 chunks in use"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evtx_damaged_chunk_header_keeps_its_records(tmp_path, backend):
    """A chunk whose header is damaged (its magic, its name cache): its records are found by
    their own headers and read, as in the sound file."""
    for at in (0, 0x90):
        data = bytearray(PROBE.read_bytes())
        data[0x11000 + at] ^= 0xFF
        rep, ev = _damaged(tmp_path, bytes(data), backend)
        assert rep.records == 336, at
        _same_events(ev, _intact(PROBE, backend))
        what = "no chunk magic" if at == 0 else "header checksum does not match"
        assert rep.warnings == [f"chunk 1 (offset 0x11000): {what}: 157 whole records read (ids 1179–1335)"]


def test_evtx_python_backend_reads_what_python_evtx_cannot_decode(shared):
    """python-evtx cannot decode this file's records (its template cache breaks on the first):
    the Python backend used to give 0 events, silently on the command line; now the Rust
    parser reads those records, the warning says so, and the events are the Rust backend's."""
    rel = "evtx/mdecrevoisier__EVTX-to-MITRE-Attack/TA0007-Discovery/T1069-Permission Groups Discovery/ID4799-4624-Local admin group enumerated by SharpHound.evtx"
    shared(rel)
    rust_rep, rust_ev = _read(rel, "rust")
    py_rep, py_ev = _read(rel, "python")
    assert len(rust_ev) == 44 and py_rep.records == rust_rep.records == 55 and py_rep.unparsed == 0
    pd.testing.assert_frame_equal(_comparable(py_ev), _comparable(rust_ev))
    assert py_rep.warnings == [
        "chunk 0 (offset 0x1000): python-evtx cannot decode 25 records; 25 (ids 1–25) read with the Rust parser instead",
        "chunk 1 (offset 0x11000): python-evtx cannot decode 25 records; 25 (ids 26–50) read with the Rust parser instead",
        "chunk 2 (offset 0x21000): python-evtx cannot decode 5 records; 5 (ids 51–55) read with the Rust parser instead",
    ]


def test_evtx_damaged_file_in_parts_reads_as_whole(tmp_path, monkeypatch):
    """A large file read in parts by worker processes, one chunk damaged mid-file: the
    worker reading it repairs it as one parser over the whole file does (same events, same
    warning, the chunk named by its number in the file)."""
    import re

    from analyzer.ingest import winreaders
    from analyzer.samples_windows import large_security_evtx

    path = tmp_path / "Security.evtx"
    large_security_evtx(path, 3_000, seed=3)
    data = bytearray(path.read_bytes())
    chunk = 0x1000 + 5 * 0x10000
    off, size, rid = _records_of(bytes(data[chunk : chunk + 0x10000]))[10]
    data[chunk + off] ^= 0x01  # its magic
    path.write_bytes(bytes(data))
    monkeypatch.setattr(winreaders, "PART_CHUNKS", 2)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 0)
    whole = read_events([str(path)], IngestOptions(jobs=1))
    parts = read_events([str(path)], IngestOptions(jobs=2))
    assert winreaders.chunk_ranges(str(path), 2)
    a, b = whole.inputs[0], parts.inputs[0]
    assert (a.records, a.events, a.unparsed) == (b.records, b.events, b.unparsed)
    pd.testing.assert_frame_equal(whole.events.astype(object), parts.events.astype(object))
    assert a.warnings[0].startswith(f"chunk 5 (offset {chunk:#x}): records checksum does not match:")
    assert len(a.warnings) == len(b.warnings) == 1
    assert re.fullmatch(r"chunks \d+-\d+: " + re.escape(a.warnings[0]), b.warnings[0])  # (the part that had it)
    assert rid not in set(whole.events["locator"]) and rid + 1 in set(whole.events["locator"])


def test_chunk_ranges_leave_troubled_files_to_one_parser(tmp_path):
    """What only one parser over the whole file can see (a damaged file header, a chunk cut
    short, a chunk repeated, a zeroed one) keeps the file whole."""
    from analyzer.ingest.evtx import chunk_ranges
    from analyzer.samples_windows import large_security_evtx

    path = tmp_path / "Security.evtx"
    large_security_evtx(path, 2_000, seed=4)
    data = path.read_bytes()
    assert chunk_ranges(str(path), 2)
    header = bytearray(data)
    header[42] ^= 1
    zeroed = bytearray(data)
    zeroed[0x11000:0x21000] = bytes(0x10000)
    for bad in (bytes(header), data + data[0x1000:0x2000], data + data[0x1000:0x11000], bytes(zeroed)):
        path.write_bytes(bad)
        assert chunk_ranges(str(path), 2) is None
