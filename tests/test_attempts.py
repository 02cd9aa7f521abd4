"""The attempts layer: the records of one login attempt count once (issue #25, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer.analysis import analyze_events
from analyzer.attempts import fold, load_table
from analyzer.classify import load_rules
from analyzer.config import Profile
from analyzer.ingest import IngestOptions, read_events
from analyzer.prose import explain
from analyzer.schema import conform

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
H = "Dec  7 10:00:01 web01"


def _read(tmp_path: Path, lines: list[str], name: str = "auth.log") -> pd.DataFrame:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    res = read_events([str(path)], IngestOptions(year=2026))
    assert all(r.unparsed == 0 for r in res.inputs), [r.as_dict() for r in res.inputs]
    return res.events


def _at(sec: int) -> str:
    return f"Dec  7 10:{sec // 60:02d}:{sec % 60:02d} web01"


def _groups(attempt: np.ndarray) -> list[int]:
    """Attempt numbers renumbered in order of first appearance (which rows share one)."""
    return pd.factorize(attempt)[0].tolist()


def _summary(events: pd.DataFrame):
    f = fold(events)
    return f, int(f.login.sum()), int((~f.login).sum()), len(np.unique(f.connection))


def test_invalid_user_connection_debian_is_one_attempt(tmp_path):
    """OpenSSH 8.x/9.x on Debian: four records (and a PAM line without a user) for one guess."""
    ev = _read(
        tmp_path,
        [
            f"{H} sshd[1001]: Invalid user test from 203.0.113.5 port 40001",
            f"{H} sshd[1001]: pam_unix(sshd:auth): check pass; user unknown",
            f"{H} sshd[1001]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=203.0.113.5",
            f"{H} sshd[1001]: Failed password for invalid user test from 203.0.113.5 port 40001 ssh2",
            f"{H} sshd[1001]: Connection closed by invalid user test 203.0.113.5 port 40001 [preauth]",
        ],
    )
    f, logins, only, conns = _summary(ev)
    assert (logins, only, conns) == (1, 0, 1)
    assert (f.attempt == 0).all()  # every record points to it
    row = f.frame.iloc[0]
    assert (row["user"], row["src_ip"], row["src_port"], row["reason"]) == (
        "test",
        "203.0.113.5",
        40001,
        "unknown-user",
    )
    assert row["action"] == "logon"  # the `Failed …` line stands for it


def test_three_passwords_in_one_rhel_connection_are_three_attempts(tmp_path):
    """RHEL: PAM's line with user=, three `Failed password`, the limit, the disconnect and
    PAM's summary: three attempts, one connection (the limit is not a fourth)."""
    ev = _read(
        tmp_path,
        [
            f"{_at(1)} sshd[1002]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=203.0.113.6  user=root",
            f"{_at(3)} sshd[1002]: Failed password for root from 203.0.113.6 port 40002 ssh2",
            f"{_at(6)} sshd[1002]: Failed password for root from 203.0.113.6 port 40002 ssh2",
            f"{_at(9)} sshd[1002]: Failed password for root from 203.0.113.6 port 40002 ssh2",
            f"{_at(9)} sshd[1002]: error: maximum authentication attempts exceeded for root from 203.0.113.6 port "
            "40002 ssh2 [preauth]",
            f"{_at(9)} sshd[1002]: Disconnecting authenticating user root 203.0.113.6 port 40002: Too many "
            "authentication failures [preauth]",
            f"{_at(9)} sshd[1002]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=203.0.113.6  user=root",
        ],
    )
    f, logins, only, conns = _summary(ev)
    assert (logins, only, conns) == (3, 0, 1)
    assert list(f.frame["reason"]) == ["bad-password"] * 3
    # each attempt's time is its failure's: 3 s apart
    assert list(f.frame["timestamp"].diff().dt.total_seconds().iloc[1:]) == [3.0, 3.0]


def test_message_repeated_counts_each_repetition(tmp_path):
    ev = _read(
        tmp_path,
        [
            f"{_at(0)} sshd[1008]: Failed password for root from 203.0.113.9 port 40005 ssh2",
            f"{_at(5)} sshd[1008]: message repeated 2 times: [ Failed password for root from 203.0.113.9 port 40005 ssh2]",
            f"{_at(6)} sshd[1008]: Connection closed by authenticating user root 203.0.113.9 port 40005 [preauth]",
        ],
    )
    assert _summary(ev)[1:] == (3, 0, 1)


def test_policy_refusal_beats_unknown_user(tmp_path):
    """OpenSSH 7.x: `User root from … not allowed because …` then `Failed password for invalid
    user root`: one attempt, refused by policy (not an unknown user, not a second attempt)."""
    ev = _read(
        tmp_path,
        [
            f"{_at(0)} sshd[1006]: User root from 203.0.113.7 not allowed because not listed in AllowUsers",
            f"{_at(2)} sshd[1006]: Failed password for invalid user root from 203.0.113.7 port 40003 ssh2",
            f"{_at(2)} sshd[1006]: Received disconnect from 203.0.113.7 port 40003:11: Bye Bye [preauth]",
            f"{_at(2)} sshd[1006]: Disconnected from invalid user root 203.0.113.7 port 40003 [preauth]",
        ],
    )
    f, logins, only, conns = _summary(ev)
    assert (logins, only, conns) == (1, 0, 1)
    assert f.frame.iloc[0]["reason"] == "not-allowed-by-policy"
    assert f.frame.iloc[0]["src_port"] == 40003


def test_root_login_refused_holds_for_the_connection(tmp_path):
    ev = _read(
        tmp_path,
        [
            f"{_at(0)} sshd[1010]: ROOT LOGIN REFUSED FROM 203.0.113.10 port 40010",
            f"{_at(1)} sshd[1010]: Failed password for root from 203.0.113.10 port 40010 ssh2",
            f"{_at(3)} sshd[1010]: Failed password for root from 203.0.113.10 port 40010 ssh2",
        ],
    )
    f, logins, _, conns = _summary(ev)
    assert (logins, conns) == (2, 1)
    assert set(f.frame["reason"]) == {"root-login-refused"}


def test_an_invalid_user_alone_is_one_attempt(tmp_path):
    ev = _read(
        tmp_path,
        [
            f"{_at(0)} sshd[1007]: Invalid user admin from 203.0.113.8 port 40004",
            f"{_at(1)} sshd[1007]: Received disconnect from 203.0.113.8 port 40004:11: Bye Bye [preauth]",
            f"{_at(1)} sshd[1007]: Disconnected from invalid user admin 203.0.113.8 port 40004 [preauth]",
            f"{_at(5)} sshd-session[1011]: Connection closed by invalid user support 203.0.113.8 port 40011 [preauth]",
        ],
    )
    f, logins, only, conns = _summary(ev)
    assert (logins, only, conns) == (2, 0, 2)  # a name sent, even with no password tried
    assert list(f.frame["user"]) == ["admin", "support"]


def test_connections_without_authentication_are_not_attempts(tmp_path):
    """Scanners, as OpenSSH 7.x–9.x log them: no name, no password; connections only."""
    ev = _read(
        tmp_path,
        [
            f"{_at(0)} sshd[1003]: Did not receive identification string from 198.51.100.9 port 50000",
            f"{_at(10)} sshd[1004]: Connection closed by 198.51.100.9 port 50001 [preauth]",
            f"{_at(20)} sshd[1005]: error: kex_exchange_identification: banner line contains invalid characters",
            f"{_at(20)} sshd[1005]: banner exchange: Connection from 198.51.100.9 port 50002: invalid format",
            f"{_at(30)} sshd[1012]: Received disconnect from 198.51.100.9 port 50003:11: Bye Bye [preauth]",
            f"{_at(30)} sshd[1012]: Disconnected from 198.51.100.9 port 50003 [preauth]",
        ],
    )
    f, logins, only, conns = _summary(ev)
    assert (logins, only, conns) == (0, 4, 4)
    assert (f.attempt >= 0).all()  # each record belongs to its connection


def test_a_reused_pid_after_a_close_is_a_new_connection(tmp_path):
    ev = _read(
        tmp_path,
        [
            f"{_at(0)} sshd[2000]: Failed password for root from 203.0.113.20 port 40020 ssh2",
            f"{_at(1)} sshd[2000]: Connection closed by authenticating user root 203.0.113.20 port 40020 [preauth]",
            f"{_at(30)} sshd[2000]: Failed password for root from 203.0.113.21 port 40021 ssh2",
        ],
    )
    f, logins, _, conns = _summary(ev)
    assert (logins, conns) == (2, 2)
    assert list(f.frame["src_ip"]) == ["203.0.113.20", "203.0.113.21"]


def test_forty_connections_of_three_passwords_are_120_attempts(tmp_path):
    """The issue's example: 40 connections × 3 passwords read "160 attempts"; there were 120."""
    lines = []
    for c in range(40):
        pid, port, t = 3000 + c, 41000 + c, c * 10
        lines.append(
            f"{_at(t)} sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
            f"tty=ssh ruser= rhost=203.0.113.66  user=admin"
        )
        for k in range(3):
            lines.append(f"{_at(t + k + 1)} sshd[{pid}]: Failed password for admin from 203.0.113.66 port {port} ssh2")
        lines.append(
            f"{_at(t + 4)} sshd[{pid}]: error: maximum authentication attempts exceeded for admin from "
            f"203.0.113.66 port {port} ssh2 [preauth]"
        )
        lines.append(
            f"{_at(t + 4)} sshd[{pid}]: Disconnecting authenticating user admin 203.0.113.66 port {port}: "
            "Too many authentication failures [preauth]"
        )
    ev = _read(tmp_path, lines)
    assert _summary(ev)[1:] == (120, 0, 40)
    found = analyze_events(ev, load_rules(), Profile())["findings"]
    brute = [f for f in found if f["cause"] == "brute-force"]
    assert len(brute) == 1
    assert (brute[0]["attempts"], brute[0]["connections"]) == (120, 40)
    assert brute[0]["events"] == brute[0]["count"] == len(ev) > 120


def _windows(rows: list[dict]) -> pd.DataFrame:
    base = {"host": "DC01", "log": "evtx", "channel": "Security", "provider": "Microsoft-Windows-Security-Auditing"}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    for col in ("host", "log", "channel", "provider", "action", "outcome", "user", "reason", "src_ip", "service"):
        if col in frame:
            frame[col] = frame[col].astype("category")
    return conform(frame)


def test_windows_records_of_one_logon_are_one_attempt():
    t0 = "2026-12-07T10:00:00.100Z"
    rows = [
        # NTLM: 4776 then 4625, milliseconds apart (the account's name in another case)
        {
            "timestamp": t0,
            "event_id": 4776,
            "action": "credential-validation",
            "outcome": "failure",
            "user": "ADMINISTRATOR",
            "reason": "bad-password",
        },
        {
            "timestamp": "2026-12-07T10:00:00.120Z",
            "event_id": 4625,
            "action": "logon",
            "outcome": "failure",
            "user": "Administrator",
            "reason": "bad-password",
            "logon_type": 3,
        },
        # Kerberos: 4771 then 4625, then the lockout it caused (4740)
        {
            "timestamp": "2026-12-07T10:05:00Z",
            "event_id": 4771,
            "action": "kerberos-preauth",
            "outcome": "failure",
            "user": "alice",
            "reason": "bad-password",
            "src_ip": "10.0.0.5",
        },
        {
            "timestamp": "2026-12-07T10:05:00.010Z",
            "event_id": 4625,
            "action": "logon",
            "outcome": "failure",
            "user": "alice",
            "reason": "bad-password",
        },
        {
            "timestamp": "2026-12-07T10:05:00.020Z",
            "event_id": 4740,
            "action": "lockout",
            "outcome": "failure",
            "user": "alice",
            "reason": "account-locked",
        },
        # two logons of one account in the same second: two attempts, not one
        {
            "timestamp": "2026-12-07T10:10:00Z",
            "event_id": 4776,
            "action": "credential-validation",
            "outcome": "failure",
            "user": "bob",
            "reason": "bad-password",
        },
        {
            "timestamp": "2026-12-07T10:10:00Z",
            "event_id": 4625,
            "action": "logon",
            "outcome": "failure",
            "user": "bob",
            "reason": "bad-password",
        },
        {
            "timestamp": "2026-12-07T10:10:00.500Z",
            "event_id": 4776,
            "action": "credential-validation",
            "outcome": "failure",
            "user": "bob",
            "reason": "bad-password",
        },
        {
            "timestamp": "2026-12-07T10:10:00.500Z",
            "event_id": 4625,
            "action": "logon",
            "outcome": "failure",
            "user": "bob",
            "reason": "bad-password",
        },
    ]
    f = fold(_windows(rows))
    assert _groups(f.attempt) == [0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert f.login.all()
    assert list(f.frame["event_id"]) == [4625, 4625, 4625, 4625]  # the logon stands for it
    alice, admin = f.frame.iloc[f.attempt[2]], f.frame.iloc[f.attempt[0]]
    assert alice["src_ip"] == "10.0.0.5"  # filled from the 4771
    assert alice["reason"] == "account-locked"  # an account state beats a wrong password
    assert str(admin["timestamp"]) == "2026-12-07 10:00:00.100000+00:00"  # its first record's


def test_dc_probe_of_96_beats_is_96_attempts():
    """The issue's "192 attempts … 96 of 96 beats": 4776 + 4625 per logon are one attempt."""
    res = read_events([str(SAMPLES / "windows-dc-probe")], IngestOptions(year=2025))
    found = analyze_events(res.events, load_rules(), Profile())["findings"]
    dc = [f for f in found if f["cause"] == "probe-dc-account"]
    assert len(dc) == 1
    assert (dc[0]["attempts"], dc[0]["events"]) == (96, 192)
    assert dc[0]["beats"] == {"expected": 96, "observed": 96}
    assert "connections" not in dc[0]  # one logon, one attempt: nothing more to say


def test_ufw_retransmissions_are_one_connection(tmp_path):
    def drop(sec: int, spt: int, dpt: int = 22) -> str:
        return (
            f"{_at(sec)} kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00:00 SRC=198.51.100.10 DST=192.0.2.10 LEN=60 "
            f"TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT={spt} DPT={dpt} WINDOW=64240 RES=0x00 SYN URGP=0"
        )

    # a SYN and its retransmissions 1, 3 and 7 s later; a new source port; another port; much later
    ev = _read(
        tmp_path,
        [
            drop(0, 51000),
            drop(1, 51000),
            drop(3, 51000),
            drop(7, 51000),
            drop(8, 51001),
            drop(8, 51000, 5985),
            drop(100, 51000),
        ],
    )
    f, logins, only, conns = _summary(ev)
    assert (logins, only, conns) == (0, 4, 4)
    assert _groups(f.attempt) == [0, 0, 0, 0, 1, 2, 3]


def test_wfp_5152_retransmissions_are_one_connection():
    base = {
        "action": "firewall-drop",
        "outcome": "blocked",
        "event_id": 5152,
        "src_ip": "198.51.100.10",
        "dst_port": 5985,
    }
    rows = [
        {**base, "timestamp": f"2026-12-07T10:00:{s:02d}Z", "src_port": p}
        for s, p in ((0, 62000), (3, 62000), (9, 62000), (0, 62001), (40, 62000))
    ]
    f = fold(_windows(rows))
    assert _groups(f.attempt) == [0, 0, 0, 1, 2]  # by source port, a silence of 30 s ends it
    assert not f.login.any()


def test_serial_and_forked_analysis_agree_on_attempts(monkeypatch):
    import analyzer.analysis as analysis

    res = read_events([str(SAMPLES)], IngestOptions(year=2025))
    monkeypatch.setattr(analysis, "PARALLEL_MIN_EVENTS", 0)
    one = analyze_events(res.events, load_rules(), Profile(), jobs=1)
    two = analyze_events(res.events, load_rules(), Profile(), jobs=2)
    explain(one["findings"])  # the forked shares explain their findings as they go
    assert one["findings"] and one["findings"] == two["findings"]
    assert (one["counted"] == two["counted"]).all()
    assert one["attempts"] == two["attempts"] and one["attempts"]["attempts"] > 0
    for name in ("cause", "verdict", "rule"):
        assert (
            getattr(one["classification"], name).astype(object).fillna("")
            == getattr(two["classification"], name).astype(object).fillna("")
        ).all()


def test_each_event_takes_its_attempts_cause(tmp_path):
    lines = []
    for c in range(8):
        pid, port = 5000 + c, 42000 + c
        lines += [
            f"{_at(c * 5)} sshd[{pid}]: Invalid user guest{c} from 203.0.113.77 port {port}",
            f"{_at(c * 5)} sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
            "ruser= rhost=203.0.113.77",
            f"{_at(c * 5 + 1)} sshd[{pid}]: Failed password for invalid user guest{c} from 203.0.113.77 port {port} ssh2",
            f"{_at(c * 5 + 2)} sshd[{pid}]: Connection closed by invalid user guest{c} 203.0.113.77 port {port} [preauth]",
        ]
    ev = _read(tmp_path, lines)
    out = analyze_events(ev, load_rules(), Profile())
    assert set(out["classification"].cause.astype(object)) == {"user-enumeration"}  # the PAM lines too
    (enum,) = out["findings"]
    assert (enum["attempts"], enum["events"]) == (8, len(ev))
    assert enum["reasons"] == {"unknown-user": 8}
    assert enum["users"] == [f"guest{c}" for c in range(8)]
    assert int(out["counted"].sum()) == 8  # the timeline counts each attempt once
    assert out["attempts"] == {"attempts": 8, "connections": 0}


def test_the_table_names_known_roles_and_reasons():
    from analyzer.schema import Action, Reason

    table = load_table()
    assert {k.name for k in table.kinds} == {"sshd", "windows", "firewall"}
    assert set(table.reasons) <= {r.value for r in Reason}
    assert set(table.representative) <= {a.value for a in Action}
    for kind in table.kinds:
        for spec in kind.roles:
            acts = spec["action"] if isinstance(spec["action"], list) else [spec["action"]]
            assert set(acts) <= {a.value for a in Action}, spec


def test_fold_of_nothing():
    f = fold(conform(pd.DataFrame()))
    assert f.attempt.size == 0 and f.frame.empty and f.login.size == 0


@pytest.mark.parametrize("path", ["GreyNoise-Intelligence__greynoise-fluentbit-lua/examples/auth.log"])
def test_real_scanners_are_connections_not_attempts(shared, path):
    """A real internet-facing server's log: the connections that never sent a name are no
    login attempt, and no finding counts them as one."""
    ev = read_events([str(shared("linux", path))], IngestOptions(year=2021)).events
    f = fold(ev)
    only = ~f.login
    assert only.sum() > 100  # the scanners are there …
    assert f.frame["user"][only].isna().all()  # … none of them sent a name
    found = analyze_events(ev, load_rules(), Profile())["findings"]
    counted = sum(x["attempts"] for x in found)
    assert counted <= int(f.login.sum())
    for x in found:
        assert x["attempts"] <= x["events"]
        if not x["users"]:
            assert x["attempts"] == 0, x["cause"]  # what sent no name counts as connections only
    json.dumps(found)


@pytest.mark.parametrize(
    ("counts", "text"),
    [
        ({"attempts": 120, "failures": 120, "connections": 40}, "120 attempts (120 failed) in 40 connections"),
        ({"attempts": 0, "failures": 0, "connections": 48}, "48 connections, no login attempt"),
        ({"attempts": 1, "failures": 1}, "1 attempt (1 failed)"),
        ({"failures": 3}, "5 attempts (3 failed)"),  # a finding of report_version 1: its records
    ],
)
def test_a_findings_size_line_counts_attempts(counts, text):
    from analyzer.report import attempts_text

    f = {"count": 5, "first_seen": "2026-12-07T10:00:00Z", "last_seen": "2026-12-07T10:00:00Z", **counts}
    assert attempts_text(f) == f"{text}, 2026-12-07T10:00:00Z"


def test_batches_of_hosts_give_the_same_attempts(monkeypatch):
    """Above BATCH_EVENTS the rules and findings run a batch of whole hosts at a time; the
    attempts classified in batches are those classified at once."""
    import analyzer.analysis as analysis

    res = read_events([str(SAMPLES)], IngestOptions(year=2025))
    whole = analyze_events(res.events, load_rules(), Profile())
    monkeypatch.setattr(analysis, "BATCH_EVENTS", 500)
    used, original = [], analysis._shares
    monkeypatch.setattr(analysis, "_shares", lambda ev, n: used.append(n) or original(ev, n))
    batched = analyze_events(res.events, load_rules(), Profile())
    assert used and used[0] > 1  # it did run in batches
    key = lambda f: (f["host"] or "", f["cause"], f["first_seen"] or "")  # noqa: E731
    assert sorted(whole["findings"], key=key) == sorted(batched["findings"], key=key)
    assert (whole["counted"] == batched["counted"]).all()


def test_every_rule_example_does_as_it_expects_on_attempts():
    """The rules' conditions see attempts: each shipped rule's examples, folded as the
    analysis folds events, still match (or not) as they say."""
    from analyzer.attempts import with_outside
    from analyzer.classify import RuleSet
    from analyzer.classify.check import check_rules
    from analyzer.classify.engine import classify, spread
    from analyzer.classify.examples import example_events
    from analyzer.classify.roles import host_roles

    rules, errors = check_rules([Path(__file__).resolve().parent.parent / "rules"])
    assert not errors
    ran = 0
    for rule in rules:
        for ex in rule.examples:
            ev = example_events(ex)
            roles = {h["name"]: h["role"] for h in host_roles(ev)}
            frame, where = with_outside(ev, fold(ev))
            taken = (
                spread(classify(frame, RuleSet((rule,)), ex.profile, roles), where, ev.index).rule == rule.id
            ).sum()
            assert bool(taken) == bool(ex.expect), (rule.id, ex.name)
            ran += 1
    assert ran >= 2 * len(rules)


def test_a_bad_table_names_its_file_and_line(tmp_path):
    text = (Path(__file__).resolve().parent.parent / "analyzer" / "data" / "attempts.yaml").read_text()
    bad = tmp_path / "attempts.yaml"
    bad.write_text(text.replace("role: join}", "role: joins}", 1))
    line = next(i for i, x in enumerate(bad.read_text().splitlines(), 1) if "role: joins" in x)
    with pytest.raises(ValueError, match=rf"attempts\.yaml:{line}: kind sshd: unknown role 'joins'"):
        load_table(bad)


def test_windows_logons_chained_in_time_lend_each_other_no_address_and_no_lockout():
    """Ten failures for one account from ten addresses 2 s apart, then its lockout: the chain
    of records is not one session, so no attempt takes another's address, and the lockout
    is not every earlier attempt's reason (it is only the one it joins)."""
    rows = [
        {"timestamp": f"2026-12-07T10:00:{2 * i:02d}Z", "event_id": 4625, "action": "logon", "outcome": "failure",
         "user": "Administrator", "reason": "bad-password", "logon_type": 3,
         **({"src_ip": f"203.0.113.{i}"} if i else {})}
        for i in range(10)
    ]  # fmt: skip
    rows.append({"timestamp": "2026-12-07T10:00:19Z", "event_id": 4740, "action": "lockout", "outcome": "failure",
                 "user": "Administrator", "reason": "account-locked"})  # fmt: skip
    folded = fold(_windows(rows))
    frame = folded.frame
    assert len(frame) == 10
    reasons = frame["reason"].astype(str).tolist()
    assert reasons.count("account-locked") <= 1 and reasons.count("bad-password") >= 9
    assert pd.isna(frame["src_ip"].iloc[0])  # the first logged no address: it takes none of the others'
