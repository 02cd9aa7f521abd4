"""Numbers and counts that logs (forged lines, damaged records) can carry: no input stops
the read, nothing else is lost, and what could not be taken is said."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyzer.ingest import IngestOptions, journal, messages, read_events, runner, textlog
from analyzer.ingest import syslog as syslog_mod

H = "Mar  4 09:15:02 web1"


@pytest.mark.parametrize("jobs", [1, 2])
def test_huge_pids_and_ports_in_syslog_lines_become_null(tmp_path, jobs):
    path = tmp_path / "auth.log"
    path.write_text(
        f"{H} sshd[99999999999999999999999]: Failed password for root from 10.0.0.1 port 22 ssh2\n"
        f"{H} sshd[7]: Failed password for root from 10.0.0.2 port 99999999999999999999 ssh2\n"
        f"{H} sshd[8]: Failed password for root from 10.0.0.3 port 70000 ssh2\n"
        f"{H} sshd[4294967296]: Failed password for root from 10.0.0.4 port 65535 ssh2\n"
    )
    res = read_events([str(path)], IngestOptions(jobs=jobs, year=2025))
    assert res.inputs[0].error is None
    ev = res.events
    assert ev["src_ip"].tolist() == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert ev["pid"].tolist() == [pd.NA, 7, 8, pd.NA]
    assert ev["src_port"].tolist() == [22, pd.NA, pd.NA, 65535]


def test_huge_pid_in_a_journal_export(tmp_path):
    rec = {"__REALTIME_TIMESTAMP": "1700000000000000", "_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "sshd",
           "MESSAGE": "Failed password for root from 203.0.113.7 port 22 ssh2"}  # fmt: skip
    lines = [json.dumps({**rec, "_PID": pid}) for pid in ("99999999999999999999999", "5", "x1")]
    (tmp_path / "j.json").write_text("\n".join(lines) + "\n")
    res = read_events([str(tmp_path / "j.json")], IngestOptions(jobs=1))
    assert res.inputs[0].error is None
    assert res.events["pid"].tolist() == [pd.NA, 5, pd.NA]


def test_message_repeated_is_bounded_per_line_and_per_input(tmp_path, monkeypatch):
    """rsyslog's count is honoured up to MAX_REPEAT per line; past the input's budget
    further repeats count once; both are reported with their line numbers."""

    monkeypatch.setattr(syslog_mod, "MAX_REPEAT", 1000)
    monkeypatch.setattr(messages, "REPEAT_BUDGET", 2500)
    line = f"{H} sshd[5]: message repeated {{n}} times: [ Failed password for root from 10.0.0.9 port 22 ssh2]\n"
    path = tmp_path / "auth.log"
    ns = [3, 99999999999999999999999999, 2000, 1500, 7]
    path.write_text("".join(line.format(n=n) for n in ns) + f"{H} sshd[6]: Failed password for x from 10.0.0.8\n")
    res = read_events([str(path)], IngestOptions(jobs=1, year=2025))
    rep = res.inputs[0]
    assert rep.error is None
    # 3 + 1000 + 1000 (cut) = 2003 (1002 + 999 + 999 extra = 2000); 1500 would pass 2500: once; 7: once
    assert len(res.events) == 3 + 1000 + 1000 + 1 + 1 + 1
    assert any("at most 1,000 on line(s) 2, 3" in w for w in rep.warnings), rep.warnings
    assert any("counted once from line(s) 4, 5" in w for w in rep.warnings), rep.warnings


def test_huge_numbers_in_windows_records_become_null():
    from analyzer.ingest.evtx import Record
    from analyzer.ingest.windows import records_to_events

    def rec(rid: int, port: str, logon: str, pid: str) -> Record:
        data = {"TargetUserName": "u", "Status": "0xC000006D", "SubStatus": "0xC000006A", "IpAddress": "10.0.0.1",
                "IpPort": port, "LogonType": logon, "ProcessId": pid}  # fmt: skip
        return Record(rid, "2025-01-02T03:04:05.000000Z", 4625, "Security", "Microsoft-Windows-Security-Auditing",
                      "dc", data)  # fmt: skip

    events, n = records_to_events(
        [rec(1, "99999999999999999999", "70000", "0xffffffffffffffffff"), rec(2, "-5", "3", "0x10"), rec(3, "22", "10", "4")],
        "x.evtx",
        "evtx",
    )
    assert n == 3
    assert events["src_port"].tolist() == [pd.NA, pd.NA, 22]
    assert events["logon_type"].tolist() == [pd.NA, 3, 10]
    assert events["pid"].tolist() == [pd.NA, 16, 4]


def test_record_ids_beyond_int64_become_null_and_the_records_stay(monkeypatch):
    """A damaged or forged EVTX record id (2**64 - 1, text): that record's locator is null,
    the read goes on and the others keep theirs, for both backends' records."""
    import sys
    import types

    from analyzer.ingest.evtx import Record, read_rust_tables
    from analyzer.ingest.windows import events_from_tables, load_semantics, records_to_events

    def system(rid: object) -> dict:
        return {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}, "EventID": 4625,
                "EventRecordID": rid, "TimeCreated": {"#attributes": {"SystemTime": "2025-01-02T03:04:05.000000Z"}},
                "Channel": "Security", "Computer": "dc"}  # fmt: skip

    data = {"TargetUserName": "u", "IpAddress": "10.0.0.1", "Status": "0xc000006d", "LogonType": 3}
    for odd in (2**64 - 1, "12ab"):
        records = [(rid, json.dumps({"Event": {"System": system(rid), "EventData": data}}, separators=(",", ":")))
                   for rid in (1, odd, 3)]  # fmt: skip

        class Parser:
            items = records

            def __init__(self, *args, **kwargs) -> None:
                pass

            def records_json(self):
                for rid, text in self.items:
                    yield {"event_record_id": rid if isinstance(rid, int) else None, "timestamp": "", "data": text}

        monkeypatch.setitem(sys.modules, "evtx", types.SimpleNamespace(PyEvtxParser=Parser))
        sem = load_semantics()
        tables = [t for batch in read_rust_tables("x.evtx", sem, print, {"records": 0}) for t in batch]
        events, n = events_from_tables(sem, tables, "x.evtx", "evtx", False, set())
        assert n == 3 and events["locator"].tolist() == [1, 3, pd.NA], odd
    rec = Record(2**64 - 1, "2025-01-02T03:04:05.000000Z", 4625, "Security", "Microsoft-Windows-Security-Auditing",
                 "dc", {"TargetUserName": "u"})  # fmt: skip
    events, n = records_to_events([rec], "x.evtx", "evtx")
    assert n == 1 and events["locator"].tolist() == [pd.NA] and events["user"].tolist() == ["u"]


def test_huge_numbers_in_pfirewall_become_null(tmp_path):
    (tmp_path / "pfirewall.log").write_text(
        "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n"
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin "
        "icmptype icmpcode info path pid\n\n"
        "2025-03-04 09:15:02 DROP TCP 198.51.100.10 192.0.2.20 99999999999999999999 5985 52 S 1 0 1 - - - RECEIVE 4\n"
        "2025-03-04 09:15:03 DROP TCP 198.51.100.11 192.0.2.20 51022 70000 52 S 1 0 1 - - - RECEIVE 99999999999999\n"
    )
    res = read_events([str(tmp_path / "pfirewall.log")], IngestOptions(jobs=1))
    assert res.inputs[0].error is None
    ev = res.events
    assert ev["src_port"].tolist() == [pd.NA, 51022] and ev["dst_port"].tolist() == [5985, pd.NA]
    assert ev["pid"].tolist() == [4, pd.NA]


def test_conform_makes_numbers_its_dtypes_cannot_hold_null_instead_of_wrapping():
    """A frame from any reader: 70000 is no UInt16 port (pandas' cast would make it 4464)."""
    from analyzer.schema import COLUMNS, conform

    frame = conform(
        pd.DataFrame({"src_port": pd.array([70000, 22, -1, None], dtype="Int64"), "pid": [2.0**40, 7.0, -3.0, 1.0]})
    )
    assert frame["src_port"].tolist() == [pd.NA, 22, pd.NA, pd.NA]
    assert frame["pid"].tolist() == [pd.NA, 7, pd.NA, 1]
    assert str(frame["src_port"].dtype) == COLUMNS["src_port"] and str(frame["pid"].dtype) == COLUMNS["pid"]


def test_a_reader_fault_costs_its_input_only(tmp_path, monkeypatch):
    """An exception no reader foresaw becomes that input's error (named, with the fault);
    the other inputs are read as usual, in a worker or not."""
    from analyzer import ingest

    good = tmp_path / "a.log"
    good.write_text(f"{H} sshd[1]: Failed password for root from 10.0.0.1 port 22 ssh2\n")
    bad = tmp_path / "b.evtx"
    bad.write_bytes(b"ElfFile\x00" + b"\x00" * 8192)
    def broken(src, opts, rep):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setitem(ingest.READERS, "evtx", broken)
    for jobs in (1, 2):
        res = read_events([str(bad), str(good)], IngestOptions(jobs=jobs, year=2025))
        errors = {r.name.rsplit("/", 1)[-1]: r.error for r in res.inputs}
        assert errors["a.log"] is None and len(res.events) == 1
        assert "OverflowError" in errors["b.evtx"] and "authtriage bug" in errors["b.evtx"]


def test_a_worker_that_dies_costs_its_input_only(tmp_path, monkeypatch):
    """A worker process killed while reading (out of memory, say) breaks its pool: every
    read in flight there is asked again, alone, of a new pool; the one that kills its
    worker again is that input's error, every other input is read."""
    import os
    import signal


    paths = []
    for i in range(8):
        p = tmp_path / f"{i}.log"
        p.write_text(f"{H} sshd[1]: Failed password for root from 10.0.0.{i} port 22 ssh2\n")
        paths.append(str(p))
    real = runner._read_file

    def dying(path, name, mtime, opts):
        if path.endswith("1.log"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, name, mtime, opts)

    dying.__module__, dying.__qualname__ = runner.__name__, "_read_file"  # sent to workers by name
    monkeypatch.setattr(runner, "_read_file", dying)
    joined = textlog.read_syslog_batch

    def dying_joined(items, opts):  # the batch's text logs read as one block: 1.log among them
        if any(src.name.endswith("1.log") for src, _, _ in items):
            os.kill(os.getpid(), signal.SIGKILL)
        return joined(items, opts)

    monkeypatch.setattr(textlog, "read_syslog_batch", dying_joined)
    res = read_events(paths, IngestOptions(jobs=2, year=2025))
    errors = [r.error for r in res.inputs]
    assert "worker" in errors[1] and errors[:1] + errors[2:] == [None] * 7
    assert sorted(res.events["src_ip"]) == [f"10.0.0.{i}" for i in range(8) if i != 1]


def test_line_numbers_past_two_to_the_31_do_not_wrap():
    """Blocks hold line numbers as int32 while they wait; joined after 2**31 lines, they
    widen instead of wrapping."""
    import numpy as np

    from analyzer.ingest import InputReport
    from analyzer.ingest.textlog import _Block, _stitch

    def block(lines: int, locators: list[int]) -> _Block:
        piece = pd.DataFrame({"locator": np.array(locators, dtype=np.int32), "_t": np.zeros(len(locators), np.int64),
                              "_tkind": np.zeros(len(locators), np.int8)})  # fmt: skip
        return _Block(counts=InputReport(name="", lines=lines, used=len(locators)), piece=piece)

    pieces = _stitch([block(2**31 - 5, [1, 2]), block(10, [3, 10])], InputReport(name="x"))
    assert pieces[0]["locator"].tolist() == [1, 2]
    assert pieces[1]["locator"].tolist() == [2**31 - 5 + 3, 2**31 - 5 + 10]


@pytest.mark.parametrize("how", ["stream", "ranges", "gzip"])
def test_over_long_lines_are_cut_wherever_they_fall(tmp_path, monkeypatch, how):
    """A line past MAX_LINE_BYTES is cut to its first MAX_LINE_BYTES wherever it falls —
    inside a block, across blocks (read as a stream, by byte ranges in workers, gzipped),
    or last without a newline — so a forged line of many megabytes is never held whole; the
    other lines keep their events and line numbers, and the lines cut are named."""
    import gzip


    monkeypatch.setattr(syslog_mod, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(runner, "WHOLE_BYTES", 0 if how == "ranges" else 1 << 30)
    monkeypatch.setattr(textlog, "READ_BYTES", 512)

    def ok(i: int) -> str:
        return f"{H} sshd[{i}]: Failed password for u{i} from 10.0.0.{i % 250} port {i} ssh2\n"

    def forged(i: int, size: int) -> str:
        return f"{H} sshd[{i}]: Failed password for {'A' * size} from 10.9.9.9 port 1 ssh2\n"

    real_block = textlog._syslog_block

    def bounded(block: bytes, *args):  # never more than a block, a read and a line: in workers too
        assert len(block) <= 4096 + 512 + 1001, len(block)
        return real_block(block, *args)

    monkeypatch.setattr(textlog, "_syslog_block", bounded)
    lines = [ok(i) for i in range(1, 200)]
    lines[20] = forged(21, 1500)  # a little too long, inside a block
    lines[60] = forged(61, 20_000)  # five blocks long
    lines[61] = forged(62, 900)  # 977 bytes and a newline: read whole
    lines[100] = f"{H} sshd[101]: Invalid user {'é' * 900} from 10.7.7.7\n"  # cut inside no character
    lines[140] = f"{H} sshd[141]: Invalid user {'x' + 'é' * 6000} from 10.7.7.7\n"  # nor past a block
    lines.append(f"{H} sshd[7]: Invalid user {'B' * 9000} from 10.8.8.8")  # last, no newline
    text = "".join(lines)
    path = tmp_path / ("auth.log.gz" if how == "gzip" else "auth.log")
    path.write_bytes(gzip.compress(text.encode()) if how == "gzip" else text.encode())
    res = read_events([str(path)], IngestOptions(jobs=1 if how == "stream" else 2, year=2025))
    rep = res.inputs[0]
    assert rep.error is None and rep.lines == 200
    assert rep.warnings == ["line(s) longer than 1,000 bytes cut to their first 1,000 bytes: 21, 61, 101, 141, 200"]
    ev = res.events
    assert ev["locator"].tolist() == [i for i in range(1, 200) if i not in (21, 61, 101, 141)]
    assert ev["user"].tolist()[-1] == "u199" and ev.loc[ev["locator"] == 62, "user"].item() == "A" * 900
    assert rep.unparsed == 5  # the lines cut lost their ends: sshd lines no pattern reads


@pytest.mark.parametrize("where", ["inside", "across"])
def test_journal_json_lines_too_deep_or_too_long_are_unparsed_not_fatal(tmp_path, monkeypatch, where):
    """A JSON line nested thousands deep (Python's parser gives up) or past JSON_LINE_BYTES
    (inside a block or running on past one) is one unparsed line, named in the samples; the
    records around it are read (the deep one was "an authtriage bug" and lost the input)."""

    monkeypatch.setattr(journal, "JSON_LINE_BYTES", 9000)
    monkeypatch.setattr(syslog_mod, "MAX_LINE_BYTES", 500)  # a text log's bound: not a journal's
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 1 << 20 if where == "inside" else 4096)
    monkeypatch.setattr(textlog, "READ_BYTES", 256)
    rec = {"__REALTIME_TIMESTAMP": "1700000000000000", "_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "sshd",
           "_PID": "5", "MESSAGE": "Failed password for root from 203.0.113.7 port 22 ssh2", "X": "x" * 1000}  # fmt: skip
    long = {**rec, "MESSAGE": "Failed password for " + "A" * 10_000 + " from 10.0.0.1 port 1 ssh2"}
    lines = [json.dumps(rec)] * 30 + ['{"a":' * 1200 + "1" + "}" * 1200] + [json.dumps(long)] + [json.dumps(rec)] * 30
    (tmp_path / "j.json").write_text("\n".join(lines) + "\n")
    rep = read_events([str(tmp_path / "j.json")], IngestOptions(jobs=1)).inputs[0]
    assert rep.error is None and rep.lines == 62 and rep.events == 60 and rep.unparsed == 2
    assert rep.unparsed_samples[0].startswith('line 31: {"a":{"a":') and rep.unparsed_samples[0].endswith("(nested too deeply)")
    assert rep.unparsed_samples[1].startswith("line 32: {") and "longer than 9,000 bytes" in rep.unparsed_samples[1]


@pytest.mark.parametrize("jobs", [1, 2])
def test_december_and_january_lines_in_turn_do_not_count_a_year_each(tmp_path, monkeypatch, jobs):
    """Year-less lines alternating Dec and Jan (forged, or shuffled) would each start a new
    year — 600,000 such lines reached dates past any there are (printed as "out of range"
    garbage, and a timeline of 300,000 years took 2 GB). Past MAX_YEAR_STEPS turns in one file
    those lines have no time, and that is said."""

    monkeypatch.setattr(syslog_mod, "MAX_YEAR_STEPS", 10)
    monkeypatch.setattr(textlog, "BLOCK_BYTES", 2048)  # turns counted across blocks too
    monkeypatch.setattr(runner, "WHOLE_BYTES", 0)
    line = "{} 09:15:02 web1 sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2\n"
    text = "".join(line.format("Dec 31" if i % 2 == 0 else "Jan  1") for i in range(400))
    text += "2026-05-01T10:00:00+00:00 web1 sshd[2]: Failed password for x from 203.0.113.8 port 1 ssh2\n"
    (tmp_path / "auth.log").write_text(text)
    res = read_events([str(tmp_path / "auth.log")], IngestOptions(year=2025, jobs=jobs))
    ts = res.events["timestamp"]
    assert ts.iloc[0] == pd.Timestamp("2025-12-31 09:15:02", tz="UTC")
    assert ts.iloc[20] == pd.Timestamp("2035-12-31 09:15:02", tz="UTC")  # the 10th turn is the last
    assert ts.iloc[21:400].isna().all() and ts.iloc[400] == pd.Timestamp("2026-05-01 10:00", tz="UTC")
    assert res.inputs[0].warnings == [
        "more than 10 December→January turns (lines out of order, or forged): 379 lines from line 22 on "
        "that have no year of their own have no time"
    ]
