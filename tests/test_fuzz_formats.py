"""Property tests of the structured formats: journal files, ``journalctl -o export`` and
``-o json``, Windows XML and Get-WinEvent JSON exports, pfirewall.log. A valid input of each
is damaged the ways copies and crashes damage files (cut, bytes changed, inserted, removed,
repeated, a NUL hole) and read: no fault escapes, and what is counted stays consistent.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from fuzzing import crash_files, fuzz_settings, kept_if_it_fails, read_checked
from hypothesis import given
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
NS = "http://schemas.microsoft.com/win/2004/08/events/event"


def _journal_json() -> bytes:
    recs = []
    for i in range(12):
        recs.append({
            "__REALTIME_TIMESTAMP": str(1_741_079_702_000_000 + i * 1_000_000), "_HOSTNAME": "web1",
            "SYSLOG_IDENTIFIER": "sshd", "_PID": str(800 + i), "PRIORITY": "6",
            "MESSAGE": f"Failed password for root from 203.0.113.{i} port {51000 + i} ssh2" if i % 3 else [70, 111, 111],
        })  # fmt: skip
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


def _windows_xml(encoding: str) -> bytes:
    events = []
    for i in range(8):
        events.append(
            f'<Event xmlns="{NS}"><System><Provider Name="Microsoft-Windows-Security-Auditing"/>'
            f"<EventID>{4625 if i % 2 else 4624}</EventID><TimeCreated SystemTime=\"2025-03-04T09:15:0{i}.1234567Z\"/>"
            f"<EventRecordID>{100 + i}</EventRecordID><Channel>Security</Channel><Computer>DC01.corp.example</Computer>"
            f'</System><EventData><Data Name="TargetUserName">Administrator</Data><Data Name="TargetDomainName">CORP'
            f'</Data><Data Name="Status">0xc000006d</Data><Data Name="SubStatus">0xc000006a</Data>'
            f'<Data Name="LogonType">3</Data><Data Name="IpAddress">198.51.100.{i}</Data>'
            f'<Data Name="IpPort">{50000 + i}</Data></EventData></Event>'
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Events>' + "\n".join(events) + "</Events>").encode(encoding)


def _windows_json() -> bytes:
    recs = [
        {"Id": 4625, "LogName": "Security", "ProviderName": "Microsoft-Windows-Security-Auditing", "RecordId": 200 + i,
         "MachineName": "DC01", "TimeCreated": f"/Date({1741079702000 + i * 1000})/",
         "Properties": [{"Value": v} for v in ["S-1-0-0", "-", "-", "0x0", "S-1-0-0", "Administrator", "CORP",
                                               "0xc000006d", "%%2313", "0xc000006a", 3, "NtLmSsp", "NTLM", "WS1",
                                               "-", "-", 0, "0x0", "-", f"198.51.100.{i}", 50000 + i]],
         "Message": "An account failed to log on."}
        for i in range(6)
    ]  # fmt: skip
    return json.dumps(recs, indent=2).encode()


PFIREWALL = b"""#Version: 1.5
#Software: Microsoft Windows Firewall
#Time Format: Local
#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid

2025-03-04 09:15:02 DROP TCP 198.51.100.10 192.0.2.20 51022 5985 52 S 1234567 0 64240 - - - RECEIVE 4
2025-03-04 09:15:05 ALLOW TCP 192.0.2.20 192.0.2.1 50000 443 0 - - - - - - - SEND 880
2025-03-04 09:15:06 DROP UDP 198.51.100.99 192.0.2.20 5353 5353 60 - - - - - - - RECEIVE 4
2025-03-04 09:30:02 DROP TCP 198.51.100.10 192.0.2.20 51030 5985 52 S 1234568 0 64240 - - - RECEIVE 4
"""


def _journal_export() -> bytes:
    data = gzip.decompress((HERE / "files" / "journal" / "zstd-0.journal.export.gz").read_bytes())
    return b"\n\n".join(data.split(b"\n\n")[:25]) + b"\n\n"


def _journal_file() -> bytes:
    return gzip.decompress((HERE / "files" / "journal" / "zstd-0.journal.gz").read_bytes())


SEEDS = {
    "journal-json": _journal_json,
    "journal-export": _journal_export,
    "windows-xml": lambda: _windows_xml("utf-8"),
    "windows-xml-utf16": lambda: _windows_xml("utf-16"),
    "windows-json": _windows_json,
    "pfirewall": lambda: PFIREWALL,
}


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.integers(0, 6))
        if how == 0:  # cut
            del data[at:]
        elif how == 1:  # bytes changed
            data[at] = draw(st.integers(0, 255))
        elif how == 2:  # bytes inserted: the ones parsers care about
            data[at:at] = draw(st.sampled_from([b"\x00", b'"', b"{", b"}", b"<", b">", b"\n", b"\n\n", b"=", b"\xff",
                                                b"\\u0000", b"]]>", b"&#0;", b"9" * 30, b"-", b"\r"]))  # fmt: skip
        elif how == 3:  # a slice removed
            del data[at : at + draw(st.integers(1, 200))]
        elif how == 4:  # a slice repeated
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        elif how == 5:  # a NUL hole
            n = draw(st.integers(1, 4096))
            data[at : at + n] = b"\x00" * n
        else:  # a value made huge
            data[at:at] = b"A" * draw(st.sampled_from([1000, 70_000]))
    return bytes(data)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
@fuzz_settings(6)
@given(data=st.data())
def test_damaged_exports_and_firewall_logs_are_read_without_fault(tmp_path_factory, fmt, data):
    seed = SEEDS[fmt]()
    blob = data.draw(mutated(seed))
    path = tmp_path_factory.mktemp("fmt") / "input"
    path.write_bytes(blob)
    with kept_if_it_fails("text", blob):
        read_checked(path)


def test_the_intact_seeds_are_read_as_their_formats(tmp_path):
    """The seeds the damage starts from are what they say (else the fuzzing tests nothing)."""
    for fmt, make in SEEDS.items():
        path = tmp_path / fmt
        path.write_bytes(make())
        rep = read_checked(path).inputs[0]
        assert rep.format == fmt.removesuffix("-utf16") and rep.error is None and rep.events > 0, (fmt, rep)


@fuzz_settings(8)
@given(data=st.data())
def test_damaged_journal_files_are_read_without_fault(tmp_path_factory, data):
    blob = data.draw(mutated(_JOURNAL))
    path = tmp_path_factory.mktemp("journal") / "system.journal"
    path.write_bytes(blob)
    with kept_if_it_fails("journal", blob):
        read_checked(path)


_JOURNAL = _journal_file()


@pytest.mark.parametrize("path", crash_files("journal"), ids=lambda p: p.name)
def test_kept_journal_files_are_read_without_fault(path):
    read_checked(path)
