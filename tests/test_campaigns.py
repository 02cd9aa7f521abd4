"""Campaigns: one attack finding per host and source (analyzer/campaigns.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyzer.analysis import analyze_events
from analyzer.campaigns import merge
from analyzer.classify import load_rules
from analyzer.classify.causes import load_causes, parse_causes
from analyzer.config import Profile
from analyzer.ingest import IngestOptions, read_events
from analyzer.prose import explain
from analyzer.schema import conform

T0 = pd.Timestamp("2025-11-03 14:00:00", tz="UTC")
RULES = load_rules()
ATTACKS = {c.cause for c in load_causes().campaigns}
GREYNOISE = ("linux", "GreyNoise-Intelligence__greynoise-fluentbit-lua", "examples", "auth.log")


def ev(rows: list[dict], **common) -> pd.DataFrame:
    """Events from short dicts: ``s`` is seconds after T0 (default: the row's number × 10)."""
    out = []
    for i, r in enumerate(rows):
        r = {"host": "web01", "log": "syslog", "service": "ssh", "action": "logon", "outcome": "failure", **common, **r}
        out.append(
            {
                "timestamp": T0 + pd.Timedelta(seconds=r.pop("s", 10 * i)),
                "source": "test",
                "locator": i + 1,
                "raw": f"line {i + 1}",
                **r,
            }
        )
    frame = pd.DataFrame(out)
    for col in frame.columns:
        if frame[col].dtype == object and col != "raw":
            frame[col] = frame[col].astype("category")
    frame["timestamp"] = frame["timestamp"].dt.as_unit("us")
    return conform(frame)


def findings(events: pd.DataFrame) -> list[dict]:
    found = analyze_events(events, RULES, Profile())["findings"]
    explain(found)
    return found


def attack_sources_once(found: list[dict]) -> None:
    """Each host's source is in at most one campaign finding."""
    seen: dict[tuple, str] = {}
    for f in found:
        if f["cause"] in ATTACKS:
            for ip in f["src_ips"]:
                assert (f["host"], ip) not in seen, (ip, seen[(f["host"], ip)], f["cause"])
                seen[(f["host"], ip)] = f["cause"]


def test_one_source_guessing_names_then_passwords_is_one_finding():
    """The issue's defect: ten names from one source were a user enumeration and eight brute
    forces (an account an hour, so no spray)."""
    src = "203.0.113.7"
    names = [f"guest{i}" for i in range(10)]
    rows = [{"action": "invalid-user", "reason": "unknown-user", "user": u, "src_ip": src} for u in names]
    for k, user in enumerate(("pi", "postgres", "oracle", "admin", "ubuntu", "test", "git", "deploy")):
        rows += [{"reason": "bad-password", "user": user, "src_ip": src, "s": 3700 * (k + 1) + j} for j in range(5)]
    found = findings(ev(rows))
    assert len(found) == 1, [(f["cause"], f["users"]) for f in found]
    (f,) = found
    assert f["cause"] == "brute-force" and f["src_ips"] == [src]
    assert set(f["users"]) == {*names, "pi", "postgres", "oracle", "admin", "ubuntu", "test", "git", "deploy"}
    assert f["kinds"] == ["brute-force", "enumeration"] and f["succeeded"] is False
    assert f["count"] == f["failures"] == 50 and f["reasons"] == {"bad-password": 40, "unknown-user": 10}
    assert (
        "admin, deploy, git, guest0" in f["explanation"]
        and "from 203.0.113.7: brute-force, enumeration" in f["explanation"]
    )


def test_a_distributed_attack_is_one_finding_with_its_sources():
    """Twelve sources against admin, one of them also brute-forcing root on its own."""
    rows = [{"reason": "bad-password", "user": "admin", "src_ip": f"198.18.0.{i}", "s": 60 * i} for i in range(12)]
    rows += [{"reason": "bad-password", "user": "root", "src_ip": "198.18.0.3", "s": 5 + i} for i in range(6)]
    found = findings(ev(rows))
    assert [f["cause"] for f in found] == ["distributed-attack"]
    (f,) = found
    assert len(f["src_ips"]) == 12 and set(f["users"]) == {"admin", "root"} and f["count"] == 18
    assert f["kinds"] == ["guessing", "brute-force"] and "12 sources" in f["title"]


def test_sources_that_share_nothing_stay_apart():
    rows = [{"reason": "bad-password", "user": "root", "src_ip": "203.0.113.1", "s": i} for i in range(6)]
    rows += [{"reason": "bad-password", "user": "root", "src_ip": "203.0.113.2", "s": 100 + i} for i in range(6)]
    found = findings(ev(rows))
    assert sorted(f["src_ips"][0] for f in found) == ["203.0.113.1", "203.0.113.2"]
    assert all(f["cause"] == "brute-force" and f["count"] == 6 for f in found)


def test_a_success_from_the_attacking_source_marks_its_campaign():
    """Enumeration and guessing from one source, then it gets in with another account."""
    src = "203.0.113.40"
    rows = [{"action": "invalid-user", "reason": "unknown-user", "user": f"u{i}", "src_ip": src} for i in range(6)]
    rows += [{"reason": "bad-password", "user": "deploy", "src_ip": src} for _ in range(6)]
    rows += [{"outcome": "success", "user": "backup", "src_ip": src, "s": 200}]
    found = findings(ev(rows))
    assert [f["cause"] for f in found] == ["success-after-attack"]
    (f,) = found
    assert f["succeeded"] is True and f["kinds"] == ["brute-force", "enumeration"]
    assert set(f["users"]) == {"backup", "deploy", *(f"u{i}" for i in range(6))} and f["count"] == 13
    attack_sources_once(found)


def test_merge_sums_unions_and_keeps_other_findings_and_hosts_apart():
    def finding(cause: str, host: str, ips: list[str], users: list[str], n: int, reason: str, ex: str) -> dict:
        return {
            "cause": cause,
            "verdict": "attack",
            "confidence": "high",
            "rule": cause,
            "host": host,
            "service": ["ssh"],
            "src_ips": ips,
            "dst_ports": [],
            "users": users,
            "reasons": {reason: n},
            "actions": {"logon": n},
            "count": n,
            "failures": n,
            "attempts": n - 1,
            "first_seen": f"2025-11-03T14:0{n % 10}:00Z",
            "last_seen": f"2025-11-03T15:0{n % 10}:00Z",
            "cadence_seconds": None,
            "beats": None,
            "transition": None,
            "examples": [{"where": ex}],
            "notes": [],
        }

    typo = {
        **finding("user-typo", "web01", ["203.0.113.1"], ["alice"], 2, "bad-password", "t:1"),
        "verdict": "user-error",
    }
    given = [
        finding("user-enumeration", "web01", ["203.0.113.1"], ["x", "y"], 7, "unknown-user", "e:1"),
        typo,
        finding("brute-force", "web01", ["203.0.113.1"], ["root"], 9, "bad-password", "b:1"),
        finding("brute-force", "web02", ["203.0.113.1"], ["root"], 5, "bad-password", "b:2"),
    ]
    out = merge(given)
    assert out[1] is typo and len(out) == 3
    one = out[0]
    assert one["cause"] == "brute-force" and one["host"] == "web01" and one["users"] == ["root", "x", "y"]
    assert (one["count"], one["failures"], one["attempts"]) == (16, 16, 14)
    assert one["reasons"] == {"bad-password": 9, "unknown-user": 7}
    assert one["first_seen"] == "2025-11-03T14:07:00Z" and one["last_seen"] == "2025-11-03T15:09:00Z"
    assert {e["where"] for e in one["examples"]} == {"b:1", "e:1"} and one["examples"][0]["where"] == "b:1"
    assert out[2]["host"] == "web02" and out[2]["count"] == 5 and out[2]["kinds"] == ["brute-force"]


def test_a_campaign_cause_must_be_an_attack_cause(tmp_path):
    text = (
        (Path(load_causes().path))
        .read_text()
        .replace("  - {cause: user-enumeration, kind: enumeration}", "  - {cause: user-typo, kind: enumeration}")
    )
    path = tmp_path / "causes.yaml"
    path.write_text(text)
    _, errors = parse_causes(path)
    assert len(errors) == 1 and "campaign cause 'user-typo' is no attack (its verdict: user-error)" in str(errors[0])
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "cause: user-typo" in s)
    assert str(errors[0]).startswith(f"{path}:{line}:")


def test_greynoise_background_noise_is_a_handful_of_findings(shared):
    """A real internet-facing server's auth.log: 80 findings before campaigns (per account and
    source), now a distributed attack, the sources' own brute forces, and blocked scanning."""
    res = read_events([str(shared(*GREYNOISE))], IngestOptions(year=2026))
    found = analyze_events(res.events, RULES, Profile())["findings"]
    causes = [f["cause"] for f in found]
    assert len(found) <= 5, causes
    assert causes[0] == "distributed-attack" and causes[-1] == "scanning" and "unclassified" not in causes
    assert len(found[0]["src_ips"]) > 500 and set(found[0]["kinds"]) >= {"enumeration", "brute-force"}
    attack_sources_once(found)
    assert not any(f["succeeded"] for f in found if f["cause"] in ATTACKS)


def test_the_timeline_rows_are_the_findings_causes():
    """Events of a source's brute force gathered into its campaign's finding (another cause)
    are drawn under that finding's cause: no timeline row without a finding."""
    from analyzer import triage

    samples = Path(__file__).resolve().parent.parent / "samples"
    for name in ("linux-attacks", "windows-kerberos-spray", "linux-brute-force"):
        doc = triage([str(samples / name)]).data
        for host, rows in doc["timeline"]["hosts"].items():
            mine = {f["cause"] for f in doc["findings"] if (f["host"] or "(unknown host)") == host}
            assert set(rows) <= mine, (name, host, set(rows) - mine)
    # and without the relabelling there would have been such rows (the test can fail)
    res = read_events([str(samples / "linux-brute-force")], IngestOptions(year=2025))
    out = analyze_events(res.events, load_rules(), Profile())
    raw = set(out["classification"].cause.dropna().astype(str))
    assert raw - {f["cause"] for f in out["findings"]}


def _f(cause: str, ips: list[str], users: list[str], count: int) -> dict:
    """A finding as analysis gives it, enough for merging."""
    return {
        "cause": cause, "verdict": "attack", "confidence": "high", "rule": cause, "host": "web01",
        "service": ["ssh"], "src_ips": ips, "dst_ports": [], "users": users, "reasons": {"bad-password": count},
        "actions": {"logon": count}, "count": count, "failures": count, "attempts": count,
        "first_seen": "2025-11-03T14:00:00Z", "last_seen": "2025-11-03T15:00:00Z", "cadence_seconds": None,
        "beats": None, "transition": None, "examples": [], "notes": [],
    }  # fmt: skip


def test_a_success_never_gathers_a_distributed_attacks_other_sources():
    """Ten sources in one distributed attack, then one of them gets in: its success stays its
    own finding (with only its own source), not the success of every other attacker."""
    many = [f"198.51.100.{i}" for i in range(10)]
    hub = _f("distributed-attack", many, users=["a", "b"], count=10)
    alone = _f("brute-force", ["198.51.100.1"], users=["root"], count=30)
    got_in = _f("success-after-attack", ["198.51.100.0"], users=["alice"], count=7)
    out = merge([hub, alone, got_in])
    by_cause = {f["cause"]: f for f in out}
    assert by_cause["success-after-attack"]["src_ips"] == ["198.51.100.0"]
    assert by_cause["distributed-attack"]["src_ips"] == many  # the brute force of one of its sources joins it
    assert len(out) == 2
    # a success's own source's attack that touches no other source is gathered into it
    out = merge([_f("brute-force", ["198.51.100.0"], users=["alice"], count=6), got_in])
    assert [f["cause"] for f in out] == ["success-after-attack"] and out[0]["count"] == 13
