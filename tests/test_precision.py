"""The false causes of issue #25 on real-looking logs, each a regression test: a restart is
not the service down, a policy refusal is probe-root-refused only, scanners' drops are
scanning, a Kerberos spray that works is success-after-attack, a fast root brute force is
no probe."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from analyzer.analysis import analyze_events
from analyzer.classify import load_rules
from analyzer.config import Profile
from analyzer.ingest import IngestOptions, read_events
from analyzer.prose import explain
from analyzer.schema import conform

RULES = load_rules()
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
T0 = dt.datetime(2025, 11, 3, 14, 0, 0)
PLATFORM = "198.51.100.10"
NETS = Profile(networks=("198.51.100.0/24",))


def syslog(lines: list[tuple[float, str]], host: str = "web01") -> str:
    """``(seconds after T0, "program[pid]: message")`` → RFC 3164 lines."""
    return "".join(f"{T0 + dt.timedelta(seconds=s):%b %e %H:%M:%S} {host} {msg}\n" for s, msg in lines)


def analyze_text(tmp_path: Path, text: str, profile: Profile | None = None, name: str = "auth.log") -> dict:
    path = tmp_path / name
    path.write_text(text)
    res = read_events([str(path)], IngestOptions(year=2025))
    assert all(r.error is None and r.unparsed == 0 for r in res.inputs)
    out = analyze_events(res.events, RULES, profile or Profile())
    explain(out["findings"])
    return out


def causes_of(out: dict) -> list[str]:
    return [f["cause"] for f in out["findings"]]


def attack_noise(start: float) -> list[tuple[float, str]]:
    """A scanner guessing passwords for root: eight failures in a minute."""
    return [(start + 7 * i, f"sshd[{700 + i}]: Failed password for root from 203.0.113.9 port {40000 + i} ssh2")
            for i in range(8)]  # fmt: skip


def test_an_sshd_restart_is_not_the_service_down(tmp_path):
    lines = [*attack_noise(0), (120, "sshd[1]: Received signal 15; terminating."),
             (121, "sshd[2]: Server listening on 0.0.0.0 port 22."), (122, "sshd[2]: Server listening on :: port 22.")]  # fmt: skip
    out = analyze_text(tmp_path, syslog(lines))
    assert causes_of(out) == ["brute-force"]


def test_sshd_stopped_and_not_started_again_is_down(tmp_path):
    lines = [(0, "sshd[2]: Server listening on 0.0.0.0 port 22."), (3600, "sshd[2]: Received signal 15; terminating."),
             (3600 + 2 * 3600, "sshd[3]: Server listening on 0.0.0.0 port 22.")]  # fmt: skip
    out = analyze_text(tmp_path, syslog(lines))
    assert causes_of(out) == ["probe-service-down"]


def test_a_policy_refusal_is_probe_root_refused_only(tmp_path):
    """``User root from X not allowed because not listed in AllowUsers`` and then sshd's
    ``Failed password for invalid user root``: one attempt, refused by policy (it also gave
    probe-account-unusable for the same connections, as an unknown user)."""
    lines = []
    for i in range(12):
        pid, port = 5000 + i, 41000 + i
        lines += [
            (900 * i, f"sshd[{pid}]: User root from {PLATFORM} not allowed because not listed in AllowUsers"),
            (900 * i + 1, f"sshd[{pid}]: Failed password for invalid user root from {PLATFORM} port {port} ssh2"),
            (900 * i + 2, f"sshd[{pid}]: Connection closed by invalid user root {PLATFORM} port {port} [preauth]"),
        ]
    for profile in (Profile(), NETS):
        out = analyze_text(tmp_path, syslog(lines), profile)
        assert causes_of(out) == ["probe-root-refused"], profile
        (f,) = out["findings"]
        assert f["reasons"] == {"not-allowed-by-policy": 12} and f["attempts"] == 12  # one per connection
    res = read_events([str(tmp_path / "auth.log")], IngestOptions(year=2025)).events
    assert res["reason"].astype(object).value_counts().to_dict() == {
        "not-allowed-by-policy": 12,
        "preauth-disconnect": 12,
    }


def test_a_refusal_without_a_failed_line_is_still_an_attempt(tmp_path):
    lines = [(900 * i, f"sshd[{6000 + i}]: User root from {PLATFORM} not allowed because listed in DenyUsers")
             for i in range(6)]  # fmt: skip
    out = analyze_text(tmp_path, syslog(lines))
    assert causes_of(out) == ["probe-root-refused"] and out["findings"][0]["count"] == 6


def _ufw(s: float, src: str, dst: str, proto: str, sport: int, dport: int) -> tuple[float, str]:
    return (s, f"kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00:00 SRC={src} DST={dst} LEN=60 TOS=0x00 PREC=0x00 TTL=52 "
               f"ID=1 DF PROTO={proto} SPT={sport} DPT={dport} WINDOW=64240 RES=0x00 SYN URGP=0")  # fmt: skip


def test_scanners_drops_and_multicast_are_scanning_not_needing_a_look(tmp_path):
    lines = [_ufw(60 * i, f"203.0.113.{i}", "192.0.2.10", "TCP", 50000 + i, port)
             for i, port in enumerate((23, 445, 3389, 6379, 8080, 5900))]  # fmt: skip
    lines.append(_ufw(400, "192.0.2.44", "239.255.255.250", "UDP", 1900, 1900))
    out = analyze_text(tmp_path, syslog(lines), name="kern.log")
    assert causes_of(out) == ["scanning"] and out["unclassified"] == 0
    (f,) = out["findings"]
    assert f["dst_ports"] == [23, 445, 1900, 3389, 5900, 6379, 8080] and len(f["src_ips"]) == 7
    assert f["title"] == "Blocked scanning, no action needed" and "not failed logins" in f["explanation"]


def test_a_wfp_5157_ssdp_drop_is_scanning():
    row = {"timestamp": pd.Timestamp(T0, tz="UTC"), "host": "APP02", "source": "Security.evtx", "locator": 1,
           "log": "evtx", "event_id": 5157, "action": "firewall-drop", "outcome": "blocked", "service": "network",
           "reason": "firewall", "src_ip": "192.0.2.44", "dst_ip": "239.255.255.250", "dst_port": 1900,
           "auth_method": "UDP", "raw": "Security/5157"}  # fmt: skip
    frame = pd.DataFrame([row])
    for col in frame.columns:
        if frame[col].dtype == object and col != "raw":
            frame[col] = frame[col].astype("category")
    frame["timestamp"] = frame["timestamp"].dt.as_unit("us")
    out = analyze_events(conform(frame), RULES, Profile())
    assert causes_of(out) == ["scanning"] and out["unclassified"] == 0


def test_the_platforms_own_drops_to_ssh_stay_probe_firewall_blocked(tmp_path):
    lines = [_ufw(900 * i, PLATFORM, "192.0.2.10", "TCP", 34000 + i, 22) for i in range(8)]
    for profile in (Profile(), NETS):
        out = analyze_text(tmp_path, syslog(lines), profile, name="kern.log")
        assert causes_of(out) == ["probe-firewall-blocked"], profile


def test_sshd_connections_that_never_name_a_user_are_scanning(tmp_path):
    lines = [
        (0, "sshd[100]: Did not receive identification string from 203.0.113.50 port 40000"),
        (5, "sshd[101]: error: kex_exchange_identification: Connection closed by remote host"),
        (5, "sshd[101]: Connection closed by 203.0.113.51 port 40001"),
        (9, "sshd[102]: Unable to negotiate with 203.0.113.52 port 40002: no matching key exchange method found. "
            "Their offer: diffie-hellman-group1-sha1 [preauth]"),
        (12, "sshd[103]: Connection closed by 203.0.113.53 port 40003 [preauth]"),
    ]  # fmt: skip
    out = analyze_text(tmp_path, syslog(lines))
    assert causes_of(out) == ["scanning"] and out["unclassified"] == 0


def test_the_kerberos_spray_that_works_is_success_after_attack():
    """The sample: 7 unknown names (4768 0x6), 2 wrong passwords (4771 0x18), then a 4768
    success for a third account 25 ms later; it was user enumeration plus unclassified."""
    folder = SAMPLES / "windows-kerberos-spray"
    res = read_events([str(folder)], IngestOptions(year=2025))
    out = analyze_events(res.events, RULES, Profile())
    explain(out["findings"])
    assert out["unclassified"] == 0
    (f,) = out["findings"]
    assert f["cause"] == "success-after-attack" and f["succeeded"] and f["succeeded_users"] == ["carol"]
    assert f["kinds"] == ["spraying", "enumeration"] and f["src_ips"] == ["10.0.0.199"]
    assert f["reasons"] == {"unknown-user": 7, "bad-password": 2} and f["count"] == 10
    assert f["explanation"].startswith("carol logged in from 10.0.0.199")
    expected = json.loads((folder / "expected.json").read_text())
    assert [(e["cause"], e["kinds"], e["succeeded"]) for e in expected["findings"]] == [
        (f["cause"], f["kinds"], f["succeeded"])
    ]


def _root_failures(every: int, n: int, src: str) -> list[tuple[float, str]]:
    return [
        (every * i, f"sshd[{900 + i}]: Failed password for root from {src} port {42000 + i} ssh2") for i in range(n)
    ]


def test_a_root_brute_force_at_one_attempt_a_minute_is_no_probe(tmp_path):
    out = analyze_text(tmp_path, syslog(_root_failures(60, 40, "203.0.113.77")))
    assert causes_of(out) == ["brute-force"]


def test_the_platforms_probe_every_few_minutes_is_still_the_probe(tmp_path):
    for every in (300, 900):
        out = analyze_text(tmp_path, syslog(_root_failures(every, 12, PLATFORM)))
        assert causes_of(out) == ["probe-password-mismatch"], every


def test_every_shipped_rule_keeps_hosts_apart():
    """Else analysis is never split among processes by host (``--jobs``)."""
    assert not [r.id for r in RULES.rules if r.group and not r.group.keeps_hosts_apart()]
