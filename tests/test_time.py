"""Timestamps: year inference and rollover, --tz, formats, repeated messages, bad bytes."""

from __future__ import annotations

import os

import pandas as pd

from analyzer.ingest import IngestOptions, messages, read_events, syslog, textlog

FAILED = "sshd[812]: Failed password for root from 203.0.113.7 port 51022 ssh2"


def _events(tmp_path, text: str | bytes, name="auth.log", mtime=None, **opts):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if mtime is not None:
        ts = pd.Timestamp(mtime).timestamp()
        os.utime(path, (ts, ts))
    return read_events([str(path)], IngestOptions(**opts))


def test_year_rollover_within_a_file(tmp_path):
    text = f"Dec 31 23:59:58 h {FAILED}\nJan  1 00:00:02 h {FAILED}\nFeb  3 10:00:00 h {FAILED}\n"
    res = _events(tmp_path, text, year=2024)
    assert [str(t) for t in res.events["timestamp"]] == [
        "2024-12-31 23:59:58+00:00",
        "2025-01-01 00:00:02+00:00",
        "2025-02-03 10:00:00+00:00",
    ]
    assert "2024" in res.inputs[0].assumptions["year"]


def test_year_from_mtime_anchors_the_last_line(tmp_path):
    text = f"Dec 30 10:00:00 h {FAILED}\nJan  2 10:00:00 h {FAILED}\n"
    res = _events(tmp_path, text, mtime="2025-01-03T00:00:00")
    assert [t.year for t in res.events["timestamp"]] == [2024, 2025]
    assert "modification time" in res.inputs[0].assumptions["year"]


def test_mtime_before_last_line_date_means_previous_year(tmp_path):
    res = _events(tmp_path, f"Nov 20 10:00:00 h {FAILED}\n", mtime="2025-02-01T00:00:00")
    assert res.events["timestamp"].iloc[0].year == 2024


def test_out_of_order_by_one_month_is_not_a_new_year(tmp_path):
    text = f"Apr  1 00:00:01 h {FAILED}\nMar 31 23:59:59 h {FAILED}\n"
    res = _events(tmp_path, text, year=2025)
    assert [t.year for t in res.events["timestamp"]] == [2025, 2025]


def test_tz_applies_to_zoneless_lines_only(tmp_path):
    text = f"Jul  4 12:00:00 h {FAILED}\n2025-07-04T12:00:00+02:00 h {FAILED}\n"
    res = _events(tmp_path, text, year=2025, tz="America/New_York")
    assert [str(t) for t in res.events["timestamp"]] == ["2025-07-04 16:00:00+00:00", "2025-07-04 10:00:00+00:00"]
    assert "America/New_York" in res.inputs[0].assumptions["timezone"]


def test_utc_is_assumed_and_said(tmp_path):
    res = _events(tmp_path, f"Jul  4 12:00:00 h {FAILED}\n", year=2025)
    assert str(res.events["timestamp"].iloc[0]) == "2025-07-04 12:00:00+00:00"
    assert "assumed" in res.inputs[0].assumptions["timezone"]


def test_dst_gap_and_overlap_do_not_lose_events(tmp_path):
    text = f"Mar 30 02:30:00 h {FAILED}\nOct 26 02:30:00 h {FAILED}\n"
    res = _events(tmp_path, text, year=2025, tz="Europe/Berlin")
    assert res.events["timestamp"].notna().all() and len(res.events) == 2


def test_header_formats(tmp_path):
    text = (
        f"2025-03-04T09:15:02.123456+01:00 web1 {FAILED}\n"
        f"2025-03-04T09:15:03+0100 web1 sshd-session[9]: Failed password for root from 203.0.113.8 port 1 ssh2\n"
        "<38>1 2025-03-04T09:15:04.1+01:00 web1 sshd 812 - - Failed password for root from 203.0.113.9 port 2 ssh2\n"
        f"<38>Mar  4 08:15:05 web1 {FAILED}\n"
        "1741076106 [sshd] Invalid user duck from 212.41.96.185\n"
    )
    res = _events(tmp_path, text, year=2025)
    ev = res.events
    assert list(ev["timestamp"]) == [
        pd.Timestamp(t, tz="UTC")
        for t in (
            "2025-03-04 08:15:02.123456",
            "2025-03-04 08:15:03",
            "2025-03-04 08:15:04.1",
            "2025-03-04 08:15:05",
            "2025-03-04 08:15:06",
        )
    ]
    assert list(ev["host"].astype(object).fillna("-")) == ["web1", "web1", "web1", "web1", "-"]
    assert list(ev["process"]) == ["sshd", "sshd-session", "sshd", "sshd", "sshd"]
    assert res.inputs[0].unparsed == 0


def test_message_repeated_becomes_n_events(tmp_path):
    text = "Mar  4 09:15:02 h sshd[7]: message repeated 5 times: [ Failed password for root from 203.0.113.7 port 1 ssh2]\n"
    res = _events(tmp_path, text, year=2025)
    assert len(res.events) == 5
    assert set(res.events["locator"]) == {1}
    assert res.inputs[0].lines == 1 and res.inputs[0].used == 1


def test_invalid_utf8_never_crashes(shared, tmp_path):
    path = shared("linux", "fail2ban__fail2ban", "fail2ban", "tests", "files", "testcase-wrong-char.log")
    res = read_events([str(path)], IngestOptions(year=2025))
    rep = res.inputs[0]
    assert rep.error is None and rep.lines == rep.used + rep.irrelevant + rep.unparsed
    assert any("UTF-8" in w for w in rep.warnings)
    assert len(res.events) > 0


def test_epoch_lines(shared):
    path = shared("linux", "fail2ban__fail2ban", "fail2ban", "tests", "files", "testcase04.log")
    res = read_events([str(path)], IngestOptions(year=2005))
    ev = res.events
    epoch = ev[ev["raw"].str.startswith("1124012400")]
    assert len(epoch) >= 1
    assert str(epoch["timestamp"].iloc[0]) == "2005-08-14 09:40:00+00:00"
    assert (ev["user"] == "duck").any() and (ev["src_ip"] == "212.41.96.185").all()


def test_every_line_is_accounted_for_in_all_shared_linux_logs(shared):
    root = shared("linux")
    res = read_events([str(root)], IngestOptions(year=2005))
    read = [r for r in res.inputs if not r.skipped]
    assert len(read) >= 10
    for rep in read:
        assert rep.lines == rep.used + rep.irrelevant + rep.unparsed, rep.name
        assert len(rep.unparsed_samples) <= 20


def test_year_from_a_dated_line_after_the_ones_without(tmp_path):
    # rsyslog switched to RFC 3339 (an upgrade to Debian 12): the first dated line gives the year
    text = (
        f"Dec 30 10:00:00 h {FAILED}\nJan  2 10:00:00 h {FAILED}\n"
        f"2024-01-05T08:00:00.000000+00:00 h {FAILED}\n"
    )
    res = _events(tmp_path, text, mtime="2026-06-01T00:00:00")
    assert [str(t.date()) for t in res.events["timestamp"]] == ["2023-12-30", "2024-01-02", "2024-01-05"]
    assert "full date nearby" in res.inputs[0].assumptions["year"]


def test_year_from_a_dated_line_before_the_ones_without(tmp_path):
    text = f"2024-12-30T08:00:00+00:00 h {FAILED}\nDec 31 10:00:00 h {FAILED}\nJan  1 10:00:00 h {FAILED}\n"
    res = _events(tmp_path, text, mtime="2026-06-01T00:00:00")
    assert [str(t.date()) for t in res.events["timestamp"]] == ["2024-12-30", "2024-12-31", "2025-01-01"]
    assert "full date nearby" in res.inputs[0].assumptions["year"]


def test_year_from_interleaved_formats_ending_without_a_year(tmp_path):
    text = f"Dec 31 23:00:00 h {FAILED}\n2025-01-01T00:30:00+00:00 h {FAILED}\nJan  1 01:00:00 h {FAILED}\n"
    res = _events(tmp_path, text, mtime="2026-06-01T00:00:00")
    assert [str(t.date()) for t in res.events["timestamp"]] == ["2024-12-31", "2025-01-01", "2025-01-01"]


def test_year_option_still_wins_over_dated_lines(tmp_path):
    text = f"Dec 30 10:00:00 h {FAILED}\n2024-01-05T08:00:00+00:00 h {FAILED}\n"
    res = _events(tmp_path, text, year=2020)
    assert res.events["timestamp"].iloc[0].year == 2020


def test_rfc3339_times_read_by_arrow_or_pandas_alike():
    """RFC 3339 times are cast by Arrow when it reads a whole group (zoned or not), else
    parsed by pandas: the same instants either way, NaT for what is not a time."""
    import pandas as pd
    import pyarrow as pa

    from analyzer.ingest.syslog import iso_micros

    good = ["2025-11-03T14:00:00.123456+01:00", "2025-11-03T14:00:00Z", "2025-11-03T14:00:00.1+0100",
            "2025-11-03T14:00:00-05:30", "2025-11-03T14:00:00.123456", "2025-11-03 14:00:00,5", "2025-11-03T14:00"]  # fmt: skip
    odd = ["2025-11-03T14:00:00.123456789Z", "2025-12-31T23:59:60Z", "2025-11-03T14:00:00.1234567", "garbage"]
    for values in (good, good + odd, [None, *good]):
        micros, zoned = iso_micros(pa.array(values, pa.string()))
        times = pd.Series(micros.view("datetime64[us]"))  # UTC for the zoned ones, wall time for the others
        texts = pd.Series([None if v is None else v.replace(",", ".") for v in values], dtype=object)
        aware = pd.to_datetime(texts[zoned], format="ISO8601", utc=True, errors="coerce").dt.as_unit("us")
        naive = pd.to_datetime(texts[~zoned], format="ISO8601", errors="coerce").dt.as_unit("us")
        assert times[zoned].tolist() == aware.dt.tz_localize(None).tolist()
        assert times[~zoned].tolist() == naive.tolist()


def test_times_resolved_a_slice_at_a_time_are_the_same(tmp_path, monkeypatch):
    """Large sources have their times resolved slice by slice (the year from the nearest
    dated line, the zone, repeats past the budget): slices of a few rows give what one
    slice gives."""

    head = [f"Dec 3{i % 2} 1{i % 10}:00:00 h {FAILED}\n" for i in range(9)]
    head += [f"Jan  {1 + i % 9} 0{i % 10}:30:00 h {FAILED}\n" for i in range(9)]  # the year turns
    # repeats that pass the budget only summed over more rows than a slice holds
    head += [f"Jan  9 10:00:00 h sshd[5]: message repeated {n} times: [ {FAILED[11:]}]\n" for n in [5] * 9]
    head += [f"Feb 30 10:00:00 h {FAILED}\n", f"Mar 31 02:30:00 h {FAILED}\n"]  # no such date; a DST gap
    # the first dated line after the last one without a date gives its year (a later one, a year on, must not)
    after = "".join(head) + f"2025-04-01T08:00:00+00:00 h {FAILED}\n" + f"2026-04-02T08:00:00+00:00 h {FAILED}\n" * 9
    # the last dated line before them does (an earlier one, a year before, must not)
    before = f"2023-12-30T08:00:00+00:00 h {FAILED}\n" * 5 + f"2024-12-29T08:00:00+00:00 h {FAILED}\n" + "".join(head)
    for text, first in ((after, "2024-12-30"), (before, "2024-12-30")):
        for opts in ({}, {"tz": "Europe/Berlin"}):
            monkeypatch.setattr(messages, "REPEAT_BUDGET", 30)
            whole = _events(tmp_path, text, mtime="2030-06-01T00:00:00", **opts)
            monkeypatch.setattr(syslog, "SLICE_ROWS", 4)
            sliced = _events(tmp_path, text, mtime="2030-06-01T00:00:00", **opts)
            monkeypatch.undo()
            assert "full date nearby" in whole.inputs[0].assumptions["year"]
            assert str(whole.events["timestamp"].dropna().sort_values().iloc[0 if text is after else 6].date()) == first
            assert any("lines add more than 30 events" in w for w in whole.inputs[0].warnings)
            assert whole.events["timestamp"].isna().sum() == 1  # Feb 30
            pd.testing.assert_frame_equal(whole.events, sliced.events)
            assert whole.inputs[0].as_dict() == sliced.inputs[0].as_dict()


def test_rfc3164_stamps_with_a_fraction_of_a_second(tmp_path, monkeypatch):
    """`journalctl -o short-precise`: `Dec 31 23:59:59.250000 host …` keeps its microseconds,
    with the year turning to January as ever (across blocks too), with or without a priority,
    beside lines without a fraction."""

    monkeypatch.setattr(textlog, "BLOCK_BYTES", 256)
    lines = [
        f"Dec 31 23:59:59.25 web1 {FAILED}",
        f"<38>Dec 31 23:59:59.999999 web1 {FAILED}",
        f"Dec 31 23:59:59 web1 {FAILED}",
        f"Jan 01 00:00:00.000001 web1 {FAILED}",
        f"Jan  1 00:00:01.5 web1 {FAILED}",
    ]
    for jobs in (1, 2):
        res = _events(tmp_path, "\n".join(lines) + "\n", year=2024, jobs=jobs)
        assert res.inputs[0].unparsed == 0 and res.inputs[0].format == "syslog"
        assert [str(t) for t in res.events["timestamp"]] == [
            "2024-12-31 23:59:59.250000+00:00",
            "2024-12-31 23:59:59.999999+00:00",
            "2024-12-31 23:59:59+00:00",
            "2025-01-01 00:00:00.000001+00:00",
            "2025-01-01 00:00:01.500000+00:00",
        ]
