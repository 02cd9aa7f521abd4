"""The EVTX writer: both parsers read every generated file strictly, checksums validated,
and every record's System and EventData fields are what the generator intended."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import Evtx.Evtx as E
import pytest
from evtx import PyEvtxParser

from analyzer.evtxwriter import SECURITY, Event, EvtxWriter
from analyzer.ingest.evtx import record_from_xml
from analyzer.samples_windows import _dc_probe, _member_mismatch, _wfp_drops, _winrm_stopped, large_security_evtx

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _rust(path: Path) -> list[dict]:
    return [json.loads(r["data"])["Event"] for r in PyEvtxParser(str(path), validate_checksums=True).records_json()]


def _python(path: Path) -> list:
    with E.Evtx(str(path)) as f:
        header = f.get_file_header()
        assert header.verify() and not header.is_dirty()
        out = []
        for chunk in header.chunks():
            assert chunk.verify()
            out.extend(record_from_xml(r.xml()) for r in chunk.records())
    return out


def _same(value: object, want: object) -> bool:
    if want == "":
        return value in ("", None)  # an empty <Data/> has no text in XML
    if isinstance(want, int) or (isinstance(want, str) and want.lower().startswith("0x")):
        return int(str(value), 0) == int(str(want), 0)
    return str(value) == str(want)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: _dc_probe(rng, "0xc000006d", "0xc000006a", beats=40, lockout=True),
        _member_mismatch,
        _wfp_drops,
        lambda rng: _winrm_stopped(),
    ],
)
def test_records_are_what_was_written(tmp_path, make):
    events = sorted(make(random.Random(5)), key=lambda e: e.time)
    path = tmp_path / "x.evtx"
    with EvtxWriter(path, first_record_id=77) as w:
        ids = [w.write(ev) for ev in events]
    assert ids == list(range(77, 77 + len(events)))
    rust, python = _rust(path), _python(path)
    assert len(rust) == len(python) == len(events)
    for ev, r, p in zip(events, rust, python, strict=True):
        sys_ = r["System"]
        eid = sys_["EventID"]["#text"] if isinstance(sys_["EventID"], dict) else sys_["EventID"]
        assert (eid, sys_["Channel"], sys_["Computer"]) == (ev.event_id, ev.channel, ev.computer)
        assert sys_["Provider"]["#attributes"]["Name"] == ev.provider[0]
        assert sys_["TimeCreated"]["#attributes"]["SystemTime"] == ev.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert (p.event_id, p.channel, p.provider, p.computer) == (ev.event_id, ev.channel, ev.provider[0], ev.computer)
        for name, want in ev.data.items():
            assert _same(r["EventData"][name], want), (name, r["EventData"][name], want)
            assert _same(p.data[name], want), (name, p.data[name], want)


def test_many_chunks_and_record_ids(tmp_path):
    path = tmp_path / "big.evtx"
    n = large_security_evtx(path, 3000, seed=2)
    rust = list(PyEvtxParser(str(path), validate_checksums=True).records_json())
    assert len(rust) == n == 3000
    assert [r["event_record_id"] for r in rust] == list(range(1, 3001))
    assert path.stat().st_size > 4096 + 65536 * 3  # several chunks
    assert len(_python(path)) == 3000


def test_every_committed_sample_evtx_parses_strictly_with_both_parsers():
    files = sorted(SAMPLES.rglob("*.evtx"))
    assert len(files) >= 7
    for path in files:
        rust = _rust(path)
        assert rust and len(rust) == len(_python(path)), path


def test_unnamed_time_zone_is_utc(tmp_path):
    path = tmp_path / "t.evtx"
    with EvtxWriter(path) as w:
        w.write(
            Event(4625, "Security", SECURITY, "H", dt.datetime(2025, 1, 2, 3, 4, 5, 678901), {"TargetUserName": "x"})
        )
    assert _rust(path)[0]["System"]["TimeCreated"]["#attributes"]["SystemTime"] == "2025-01-02T03:04:05.678901Z"
