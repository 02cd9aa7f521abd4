"""Windows XML and Get-WinEvent JSON exports, and pfirewall.log, read with the EVTX semantics."""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pandas as pd
import pytest
from evtx import PyEvtxParser

from analyzer.ingest import IngestOptions, read_events
from analyzer.ingest.windows import load_semantics

ROOT = Path(__file__).resolve().parent.parent
NS = "http://schemas.microsoft.com/win/2004/08/events/event"


def _xml(event: dict) -> str:
    """Render the Rust parser's JSON of a record as Event XML, the way wevtutil writes it."""
    s = event["System"]
    eid = s["EventID"]["#text"] if isinstance(s["EventID"], dict) else s["EventID"]
    t = s["TimeCreated"]["#attributes"]["SystemTime"].replace("Z", "0Z")  # 7 fraction digits
    data = event.get("EventData") or {}
    items = "".join(
        f"<Data Name={quoteattr(k)}>{escape(str(v))}</Data>"
        for k, v in data.items()
        if not k.startswith("#") and v is not None
    )
    return (
        f'<Event xmlns="{NS}"><System><Provider Name={quoteattr(s["Provider"]["#attributes"]["Name"])}/>'
        f'<EventID>{eid}</EventID><TimeCreated SystemTime="{t}"/><EventRecordID>{s["EventRecordID"]}</EventRecordID>'
        f"<Channel>{escape(s['Channel'])}</Channel><Computer>{escape(s['Computer'])}</Computer></System>"
        f"<EventData>{items}</EventData></Event>"
    )


def _ps(event: dict) -> dict:
    """The same record as Get-WinEvent | ConvertTo-Json writes it: values by position."""
    s = event["System"]
    eid = int(s["EventID"]["#text"] if isinstance(s["EventID"], dict) else s["EventID"])
    data = event.get("EventData") or {}
    names = load_semantics().properties.get(eid, [])
    ms = int(pd.Timestamp(s["TimeCreated"]["#attributes"]["SystemTime"]).timestamp() * 1000)
    return {
        "Id": eid,
        "LogName": s["Channel"],
        "ProviderName": s["Provider"]["#attributes"]["Name"],
        "RecordId": s["EventRecordID"],
        "MachineName": s["Computer"],
        "TimeCreated": f"/Date({ms})/",
        "Properties": [{"Value": data.get(n)} for n in names],
        "Message": "ignored",
    }


def _key(ev: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "locator",
        "event_id",
        "action",
        "outcome",
        "user",
        "domain",
        "src_ip",
        "logon_type",
        "status",
        "sub_status",
        "reason",
    ]
    return ev[cols].astype(object).where(ev[cols].notna(), None).sort_values("locator").reset_index(drop=True)


def test_xml_and_json_exports_give_the_evtx_events(shared, tmp_path):
    path = shared(
        "evtx", "sbousseaden__EVTX-ATTACK-SAMPLES", "Credential Access", "CA_4624_4625_LogonType2_LogonProc_chrome.evtx"
    )
    records = [json.loads(r["data"])["Event"] for r in PyEvtxParser(str(path), skip_errors=True).records_json()]
    (tmp_path / "export.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Events>' + "".join(_xml(r) for r in records) + "</Events>",
        encoding="utf-8",
    )
    (tmp_path / "wevtutil.xml").write_text("\n".join(_xml(r) for r in records), encoding="utf-16")
    (tmp_path / "winevent.json").write_text(json.dumps([_ps(r) for r in records]), encoding="utf-8")
    evtx = read_events([str(path)]).events
    assert len(evtx) > 0
    for name, fmt in (
        ("export.xml", "windows-xml"),
        ("wevtutil.xml", "windows-xml"),
        ("winevent.json", "windows-json"),
    ):
        res = read_events([str(tmp_path / name)])
        assert res.inputs[0].format == fmt, name
        pd.testing.assert_frame_equal(_key(res.events), _key(evtx), check_dtype=False)
        got = res.events.sort_values("locator")["timestamp"].dt.floor("ms").to_numpy()
        assert (got == evtx.sort_values("locator")["timestamp"].dt.floor("ms").to_numpy()).all(), name


PFIREWALL = """#Version: 1.5
#Software: Microsoft Windows Firewall
#Time Format: Local
#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid

2025-03-04 09:15:02 DROP TCP 198.51.100.10 192.0.2.20 51022 5985 52 S 1234567 0 64240 - - - RECEIVE 4
2025-03-04 09:15:05 ALLOW TCP 192.0.2.20 192.0.2.1 50000 443 0 - - - - - - - SEND 880
2025-03-04 09:15:06 DROP UDP 198.51.100.99 192.0.2.20 5353 5353 60 - - - - - - - RECEIVE 4
2025-03-04 09:30:02 DROP TCP 198.51.100.10 192.0.2.20 51030 5985 52 S 1234568 0 64240 - - - RECEIVE 4
"""


def test_pfirewall_log(tmp_path):
    path = tmp_path / "pfirewall.log"
    path.write_text(PFIREWALL)
    res = read_events([str(path)], IngestOptions(tz="Europe/Berlin"))
    rep, ev = res.inputs[0], res.events
    assert rep.format == "pfirewall"
    assert len(ev) == 2 and (ev["action"] == "firewall-drop").all()
    assert list(ev["dst_port"]) == [5985, 5985] and set(ev["src_ip"]) == {"198.51.100.10"}
    assert str(ev["timestamp"].iloc[0]) == "2025-03-04 08:15:02+00:00"
    assert rep.lines == rep.used + rep.irrelevant + rep.unparsed
    assert "Europe/Berlin" in rep.assumptions["timezone"]


def test_pfirewall_line_over_64_kib_is_not_read(tmp_path):
    """A forged line of megabytes (its "address" went into the report whole) is one unparsed
    line, named in a warning; the others are read."""
    drop = [line for line in PFIREWALL.splitlines() if " DROP TCP " in line][0]
    forged = drop.replace("198.51.100.10", "1" * 70_000, 1)
    path = tmp_path / "pfirewall.log"
    path.write_text(PFIREWALL + forged + "\n" + drop + "\n")
    rep = read_events([str(path)], IngestOptions()).inputs[0]
    assert rep.events == 3 and rep.unparsed == 1
    assert rep.warnings == [f"line(s) longer than 64 KiB not read: {len(PFIREWALL.splitlines()) + 1}"]


def test_a_field_of_megabytes_in_an_export_is_cut(tmp_path):
    """A forged export's value (here a user name of 100,000 characters, non-ASCII) is cut to
    MAX_FIELD characters with "…" after them; the other values are whole."""
    from analyzer.ingest.windows import MAX_FIELD

    src = (ROOT / "samples" / "windows-dc-unknown-user" / "Security.xml").read_text(encoding="utf-8")
    forged = src.replace('<Data Name="TargetUserName">Administrator</Data>', f'<Data Name="TargetUserName">{"ü" * 100_000}</Data>', 1)
    assert forged != src
    (tmp_path / "Security.xml").write_text(forged, encoding="utf-8")
    (tmp_path / "plain.xml").write_text(src, encoding="utf-8")
    got = read_events([str(tmp_path / "Security.xml")], IngestOptions()).events
    want = read_events([str(tmp_path / "plain.xml")], IngestOptions()).events
    users = got["user"].astype(object)
    cut = users[users.str.len() > 1000]
    assert len(cut) == 1 and cut.iloc[0] == "ü" * MAX_FIELD + "…"
    assert (users.where(users.str.len() <= 1000, "Administrator") == want["user"].astype(object)).all()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_firewall_log_takes_the_one_host_of_the_logs_beside_it(tmp_path, jobs):
    """pfirewall.log names no host: its events take the host that the other logs of the
    nearest folder up name, when they name exactly one (and the input says so); beside two
    hosts, or alone, they keep none."""
    import shutil
    import zipfile

    samples = Path(__file__).resolve().parent.parent / "samples"
    fw = samples / "windows-firewall-blocked-pfirewall" / "pfirewall.log"
    (tmp_path / "APP02" / "fw").mkdir(parents=True)
    (tmp_path / "DC01").mkdir()
    shutil.copy(samples / "windows-firewall-blocked" / "Security.evtx", tmp_path / "APP02")
    shutil.copy(fw, tmp_path / "APP02" / "fw")  # two folders down from the one host's log
    shutil.copy(samples / "windows-dc-probe" / "Security.evtx", tmp_path / "DC01")
    shutil.copy(fw, tmp_path)  # beside both hosts: no host
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as z:  # an archive's folders too
        z.write(samples / "windows-dc-probe" / "Security.evtx", "DC01/Security.evtx")
        z.write(fw, "DC01/pfirewall.log")
    res = read_events([str(tmp_path)], IngestOptions(jobs=jobs))
    ev = res.events.assign(source=res.events["source"].astype(str), host=res.events["host"].astype(object))
    hosts = ev.groupby("source")["host"].agg(lambda h: set(h.where(h.notna(), None)))
    assert hosts[str(tmp_path / "APP02" / "fw" / "pfirewall.log")] == {"APP02.corp.example"}
    assert hosts[f"{tmp_path / 't.zip'}!DC01/pfirewall.log"] == {"DC01.corp.example"}
    assert hosts[str(tmp_path / "pfirewall.log")] == {None}
    said = {r.name: r.assumptions.get("host") for r in res.inputs if r.format == "pfirewall"}
    assert said[str(tmp_path / "APP02" / "fw" / "pfirewall.log")].startswith("APP02.corp.example for pfirewall.log")
    assert said[str(tmp_path / "pfirewall.log")] is None
