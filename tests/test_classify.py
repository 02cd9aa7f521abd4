"""The cause catalog: every cause has a positive case and a near miss."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyzer.analysis import analyze_events, host_roles
from analyzer.classify import load_rules
from analyzer.config import Profile, load_profile
from analyzer.errors import UsageError
from analyzer.ingest import read_events
from analyzer.schema import conform

T0 = pd.Timestamp("2025-11-03 14:00:00", tz="UTC")
PLATFORM = "198.51.100.10"
RULES = load_rules()


def ev(rows: list[dict], **common) -> pd.DataFrame:
    """Events from short dicts: `t` is minutes after T0; defaults fill the rest."""
    out = []
    for i, r in enumerate(rows):
        r = {**common, **r}
        minutes = r.pop("t", i)
        out.append(
            {
                "timestamp": T0 + pd.Timedelta(minutes=minutes),
                "host": r.pop("host", "web01"),
                "source": "test",
                "locator": i + 1,
                "log": r.pop("log", "syslog"),
                "action": r.pop("action", "logon"),
                "outcome": r.pop("outcome", "failure"),
                "raw": f"line {i + 1}",
                **r,
            }
        )
    frame = pd.DataFrame(out)
    for col in frame.columns:
        if frame[col].dtype == object and col not in ("raw",):
            frame[col] = frame[col].astype("category")
    frame["timestamp"] = frame["timestamp"].dt.as_unit("us")
    return conform(frame)


def causes(events: pd.DataFrame, profile: Profile | None = None) -> dict:
    res = analyze_events(events, RULES, profile or Profile())
    by_event = [None if pd.isna(c) else c for c in res["classification"].cause.astype(object)]
    return {"by_event": by_event, "findings": res["findings"], "res": res}


def classify_events(events: pd.DataFrame) -> pd.Series:
    from analyzer.classify.engine import classify

    roles = {h["name"]: h["role"] for h in host_roles(events)}
    return classify(events, RULES, Profile(), roles).cause.astype(object)


def probe(n=12, every=15, reason="bad-password", user="root", src=PLATFORM, **kw) -> list[dict]:
    return [{"t": i * every, "user": user, "src_ip": src, "reason": reason, "service": "ssh", **kw} for i in range(n)]


NETS = Profile(networks=("198.51.100.0/24",))


def only(result) -> set:
    return {c for c in result["by_event"] if c is not None}


# ---- platform probe ------------------------------------------------------------------


def test_password_mismatch_by_cadence_then_by_network():
    events = ev(probe())
    r = causes(events)
    assert only(r) == {"probe-password-mismatch"}
    f = r["findings"][0]
    assert (f["confidence"], f["cadence_seconds"], f["beats"]) == ("medium", 900.0, {"expected": 12, "observed": 12})
    assert "platform's network" in f["notes"][0]
    r = causes(events, NETS)
    assert (
        only(r) == {"probe-password-mismatch"}
        and r["findings"][0]["confidence"] == "high"
        and not r["findings"][0]["notes"]
    )


def test_random_times_or_foreign_network_is_not_the_probe():
    scattered = ev(
        [{"t": t, "user": "root", "src_ip": PLATFORM, "reason": "bad-password"} for t in (0, 3, 47, 52, 200, 201, 390)]
    )
    assert "probe-password-mismatch" not in only(causes(scattered))
    foreign = ev(probe(src="203.0.113.9"))
    assert "probe-password-mismatch" not in only(causes(foreign, NETS))


def test_periodic_but_many_accounts_is_not_the_probe():
    rows = probe(src="203.0.113.5") + [
        {"t": 1 + i, "user": f"user{i}", "src_ip": "203.0.113.5", "reason": "bad-password"} for i in range(6)
    ]
    r = causes(ev(rows))
    assert "probe-password-mismatch" not in only(r)
    assert "password-spray" in only(r)


def test_password_change_transition():
    rows = [{"t": i * 15, "outcome": "success", "user": "root", "src_ip": PLATFORM} for i in range(8)]
    rows += [{"t": 115, "action": "password-change", "outcome": "success", "user": "root"}]
    rows += [{**p, "t": 120 + i * 15} for i, p in enumerate(probe(n=8))]
    r = causes(ev(rows))
    f = next(f for f in r["findings"] if f["cause"] == "probe-password-mismatch")
    tr = f["transition"]
    assert tr["last_success"] == "2025-11-03T15:45:00Z" and tr["first_failure"] == "2025-11-03T16:00:00Z"
    assert [c["time"] for c in tr["password_changes"]] == ["2025-11-03T15:55:00Z"]
    assert any(x["cause"] == "probe-ok" for x in r["findings"])


def _dc(rows: list[dict]) -> pd.DataFrame:
    marker = {
        "t": -600,
        "event_id": 4768,
        "action": "kerberos-ticket",
        "outcome": "success",
        "user": "alice",
        "log": "evtx",
        "channel": "Security",
    }
    return ev([marker, *rows], host="DC01", log="evtx", channel="Security")


def _ntlm_failure(i: int, **extra) -> dict:
    """The platform's NTLM network logon as Administrator every 15 minutes, failing."""
    return {
        "t": i * 15,
        "event_id": 4625,
        "user": "Administrator",
        "logon_type": 3,
        "auth_method": "NTLM",
        "reason": "bad-password",
        **extra,
    }


def test_domain_controller_probe_without_source_address():
    rows = []
    for i in range(12):
        rows.append(_ntlm_failure(i, service="network"))
        rows.append(
            {
                "t": i * 15,
                "event_id": 4776,
                "action": "credential-validation",
                "user": "Administrator",
                "reason": "bad-password",
            }
        )
    events = _dc(rows)
    hosts = host_roles(events)
    assert hosts[0]["role"] == "domain-controller" and "4768" in hosts[0]["role_evidence"][0]
    r = causes(events)
    assert only(r) == {"probe-dc-account"}
    f = r["findings"][0]
    assert f["cadence_seconds"] == 900.0 and f["src_ips"] == [] and f["beats"]["observed"] == 12


def test_same_failures_on_a_member_server_are_a_password_mismatch():
    rows = [_ntlm_failure(i) for i in range(12)]
    r = causes(ev(rows, host="APP01", log="evtx", channel="Security"))
    assert only(r) == {"probe-password-mismatch"}


def test_account_unusable_and_root_refused():
    assert only(causes(ev(probe(reason="account-disabled", user="Administrator")))) == {"probe-account-unusable"}
    assert only(causes(ev(probe(reason="root-login-refused")))) == {"probe-root-refused"}
    # a root refused by policy for another account than the platform's is not the probe
    assert "probe-root-refused" not in only(causes(ev(probe(reason="not-allowed-by-policy", user="deploy"))))


def test_firewall_blocked_probe():
    drops = [
        {"t": i * 15, "action": "firewall-drop", "outcome": "blocked", "src_ip": PLATFORM, "dst_port": 22}
        for i in range(10)
    ]
    assert only(causes(ev(drops))) == {"probe-firewall-blocked"}
    web = [{**d, "dst_port": 80} for d in drops]
    assert "probe-firewall-blocked" not in only(causes(ev(web)))


def test_service_down():
    stopped = ev([{"action": "service-state", "outcome": "info", "reason": "service-stopped", "service": "winrm"}])
    assert only(causes(stopped)) == {"probe-service-down"}
    started = ev([{"action": "service-state", "outcome": "info", "reason": "service-started", "service": "winrm"}])
    assert only(causes(started)) == set()


def test_probe_ok():
    ok = ev([{"t": i * 15, "outcome": "success", "user": "root", "src_ip": PLATFORM} for i in range(10)])
    assert only(causes(ok)) == {"probe-ok"}
    assert causes(ok)["findings"][0]["verdict"] == "expected"


# ---- not the platform --------------------------------------------------------------------


def test_brute_force_and_near_miss():
    burst = ev([{"t": i * 0.1, "user": "admin", "src_ip": "203.0.113.66", "reason": "bad-password"} for i in range(20)])
    assert only(causes(burst)) == {"brute-force"}
    few = ev([{"t": i, "user": "admin", "src_ip": "203.0.113.66", "reason": "bad-password"} for i in range(4)])
    assert "brute-force" not in only(causes(few))


def test_spray_enumeration_distributed():
    spray = ev([{"t": i, "user": f"user{i}", "src_ip": "203.0.113.7", "reason": "bad-password"} for i in range(8)])
    assert only(causes(spray)) == {"password-spray"}
    enum = ev([{"t": i, "user": f"nobody{i}", "src_ip": "203.0.113.7", "reason": "unknown-user"} for i in range(8)])
    assert only(causes(enum)) == {"user-enumeration"}
    three = ev([{"t": i, "user": f"user{i}", "src_ip": "203.0.113.7", "reason": "bad-password"} for i in range(3)])
    assert not only(causes(three)) & {"password-spray", "user-enumeration"}
    dist = ev([{"t": i, "user": "admin", "src_ip": f"203.0.113.{i}", "reason": "bad-password"} for i in range(12)])
    assert only(causes(dist)) == {"distributed-attack"}
    five = ev([{"t": i * 20, "user": "admin", "src_ip": f"203.0.113.{i}", "reason": "bad-password"} for i in range(5)])
    assert "distributed-attack" not in only(causes(five))


def test_stale_credentials():
    svc = ev(
        [{"t": i * 5, "user": "svc_backup", "logon_type": 5, "reason": "bad-password", "log": "evtx"} for i in range(3)]
    )
    assert only(causes(svc)) == {"stale-credentials"}
    periodic = ev([{"t": i * 5, "user": "jdoe", "src_ip": "10.0.0.40", "reason": "bad-password"} for i in range(10)])
    assert only(causes(periodic)) == {"stale-credentials"}
    scattered = ev(
        [{"t": t, "user": "jdoe", "src_ip": "10.0.0.40", "reason": "bad-password"} for t in (0, 7, 61, 62, 300)]
    )
    assert "stale-credentials" not in only(causes(scattered))


def test_user_typo():
    typo = ev(
        [
            {"t": 0, "user": "alice", "src_ip": "10.0.0.5", "reason": "bad-password"},
            {"t": 1, "user": "alice", "src_ip": "10.0.0.5", "outcome": "success"},
        ]
    )
    assert causes(typo)["by_event"][0] == "user-typo"
    no_success = ev([{"t": 0, "user": "alice", "src_ip": "10.0.0.5", "reason": "bad-password"}])
    assert causes(no_success)["by_event"] == ["unclassified"]


def test_success_after_attack():
    rows = [{"t": i * 0.1, "user": "admin", "src_ip": "203.0.113.66", "reason": "bad-password"} for i in range(15)]
    rows.append({"t": 3, "user": "admin", "src_ip": "203.0.113.66", "outcome": "success"})
    rows.append({"t": 4, "user": "admin", "src_ip": "10.0.0.8", "outcome": "success"})
    r = causes(ev(rows))
    assert r["by_event"][15] == "success-after-attack" and r["by_event"][16] is None
    assert r["findings"][0]["cause"] == "success-after-attack"  # ranked first


def test_unclassified_is_kept():
    r = causes(ev([{"user": "bob", "src_ip": "10.0.0.9", "reason": "other"}]))
    assert (
        r["by_event"] == ["unclassified"] and r["res"]["unclassified"] == 1 and r["findings"][0]["verdict"] == "unknown"
    )


def test_what_no_rule_explains_is_one_finding_per_host_and_reason():
    rows = [{"t": i * 7, "user": f"u{i}", "src_ip": f"10.0.{i}.9", "reason": "other"} for i in range(5)]
    rows += [{"t": 2, "user": "u9", "src_ip": "10.0.9.9", "reason": "expired", "host": "web02"}]
    rows += [{"t": 3, "user": "u8", "src_ip": "10.0.8.9", "reason": "bad-password"}]
    r = causes(ev(rows))
    assert r["by_event"] == ["unclassified"] * 7
    got = sorted(
        (f["host"], tuple(f["reasons"]), f["count"], len(f["users"]), len(f["src_ips"])) for f in r["findings"]
    )
    assert got == [
        ("web01", ("bad-password",), 1, 1, 1),
        ("web01", ("other",), 5, 5, 5),
        ("web02", ("expired",), 1, 1, 1),
    ]


# ---- profile -----------------------------------------------------------------------------


def test_profile_file_and_overrides(tmp_path, monkeypatch):
    cfg = tmp_path / "authtriage.toml"
    cfg.write_text(
        '[platform]\nnetworks = ["198.51.100.0/24"]\naccounts = ["Administrator", "root", "svcplat"]\n[thresholds]\nperiodic_min_beats = 6\n'
    )
    p = load_profile(cfg)
    assert p.networks == ("198.51.100.0/24",) and "svcplat" in p.accounts and p.thresholds["periodic_min_beats"] == 6
    monkeypatch.setenv("AUTHTRIAGE_CONFIG", str(cfg))
    assert load_profile().path == str(cfg)
    assert load_profile(cfg).with_overrides(["203.0.113.0/25"]).networks == ("203.0.113.0/25",)
    (tmp_path / "bad.toml").write_text("[platform]\nnetworks = ['not-a-net']\n")
    with pytest.raises(UsageError, match="not a network"):
        load_profile(tmp_path / "bad.toml")


# ---- the shared real logs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("ID 4776,4625-AccountRestore local bruteforce.evtx", "brute-force"),
        ("ID4771-Kerberos brutforce with valid user.evtx", "brute-force"),
    ],
)
def test_real_brute_force_files(shared, name, cause):
    path = next(shared("evtx").rglob(name))
    events = read_events([str(path)]).events
    r = causes(events)
    failures = [c for c, o in zip(r["by_event"], events["outcome"], strict=True) if o == "failure"]
    assert failures and set(failures) == {cause}


def test_no_real_file_is_a_high_confidence_platform_probe(shared):
    root = shared("evtx")
    for path in sorted(root.rglob("*.evtx")):
        events = read_events([str(path)]).events
        for profile in (Profile(), Profile(networks=("198.51.100.0/24",))):
            for f in causes(events, profile)["findings"]:
                assert not (f["cause"].startswith("probe-") and f["confidence"] == "high"), (path.name, f)


def test_analyze_json_has_hosts_findings_and_unclassified(tmp_path):
    from typer.testing import CliRunner

    from analyzer.cli import app

    res = CliRunner().invoke(
        app, ["analyze", "samples/linux-root-refused/auth.log", "--year", "2025", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    host = doc["hosts"][0]
    assert (host["name"], host["role"], host["role_evidence"]) == ("db02", "linux", ["Linux logs (syslog)"])
    f = doc["findings"][0]
    for key in (
        "cause",
        "verdict",
        "confidence",
        "host",
        "service",
        "src_ips",
        "users",
        "reasons",
        "count",
        "first_seen",
        "last_seen",
        "cadence_seconds",
        "transition",
        "examples",
    ):
        assert key in f
    assert f["cause"] == "probe-root-refused" and f["cadence_seconds"] == 900.0
    assert f["examples"][0]["where"].startswith("samples/linux-root-refused/auth.log:")
    assert "unclassified" in doc
    res = CliRunner().invoke(
        app, ["analyze", "samples/linux-root-refused/auth.log", "--year", "2025", "--platform-net", "198.51.100.0/24"]
    )
    assert json.loads(res.stdout)["findings"][0]["confidence"] == "high"


def test_without_an_address_only_network_ntlm_logons_carry_the_probe():
    interactive = [
        {"t": i * 15, "event_id": 4625, "user": "Administrator", "logon_type": 2, "reason": "bad-password"}
        for i in range(12)
    ]
    r = causes(ev(interactive, host="APP01", log="evtx", channel="Security"))
    assert not any(c and c.startswith("probe-") for c in r["by_event"])


def test_successes_at_random_times_are_not_the_probe():
    rows = [{"t": t, "outcome": "success", "user": "root", "src_ip": PLATFORM} for t in (0, 4, 50, 51, 170, 400)]
    assert "probe-ok" not in only(causes(ev(rows)))


def test_disabled_account_that_is_not_the_platforms_is_not_the_probe():
    rows = probe(reason="account-disabled", user="jsmith")
    assert "probe-account-unusable" not in only(causes(ev(rows)))


def test_group_numbers_from_category_codes_match_pandas_groupby():
    """Groups numbered from the categoricals' codes are pandas' own groups, in the same
    order of first appearance, missing values a group of their own; other keys fall back."""
    import numpy as np

    from analyzer.classify.engine import _distinct_keys, group_ids

    rng = np.random.default_rng(7)
    n = 5_000
    users = rng.choice(["root", "admin", None, "bob", "é"], n)
    frame = pd.DataFrame(
        {
            "host": pd.Categorical(rng.choice(["a", "b", "c"], n), categories=["c", "b", "a", "unused"]),
            "user": pd.Categorical(users),
            "src_ip": pd.Categorical(rng.choice([f"10.0.0.{i}" for i in range(300)] + [None], n)),
            "port": rng.integers(0, 5, n),
        }
    )
    for by in (["host"], ["user"], ["host", "user"], ["user", "src_ip", "host"], ["host", "port"]):
        want = frame.groupby(by, observed=True, dropna=False, sort=False).ngroup().to_numpy()
        assert (group_ids(frame, by) == want).all(), by
    keys = _distinct_keys(frame["user"])
    assert pd.Series(keys).nunique() == pd.Series(users).nunique() and np.isnan(keys[pd.isna(users)]).all()


@pytest.mark.parametrize(
    "modifiers, values",
    [
        ((), ("root", "admin")),
        (("i",), ("ROOT", None)),
        (("contains",), ("o", "d")),
        (("contains", "all"), ("o", "t")),
        (("startswith", "i", "all"), ("R", None)),
        (("endswith",), ("n",)),
        (("re",), (r"^ad",)),
        ((), (None,)),
        (("all",), ("root", None)),
    ],
)
def test_a_categorical_column_matches_as_its_strings_do(modifiers, values):
    # categoricals are tested per category, all values at once; plain strings row by row
    from analyzer.classify.match import _item_mask
    from analyzer.classify.model import Item

    users = ["root", "admin", None, "Root", "guest", "admin", None, "toor"]
    for rows in (users, [None, None]):  # the second: a column without categories
        frame = pd.DataFrame({"user": pd.Series(rows, dtype="category"), "plain": pd.Series(rows, dtype=object)})
        got = _item_mask(frame, Item("user", modifiers, values))
        want = _item_mask(frame, Item("plain", modifiers, values))
        assert got.dtype == bool and got.tolist() == want.tolist()


def test_host_roles_per_event_from_host_codes():
    from analyzer.classify.engine import _roles_of

    roles = {"dc1": "domain-controller", "web": "server"}
    for hosts in (["dc1", None, "db", "web", "dc1"], [None, None], []):
        cat = _roles_of(pd.Series(hosts, dtype="category"), roles)
        plain = _roles_of(pd.Series(hosts, dtype=object), roles)  # the per-value lookup
        assert cat.astype(object).tolist() == plain.tolist()
    assert _roles_of(pd.Series(["dc1", None, "db"], dtype="category"), roles).tolist() == [
        "domain-controller",
        "unknown",
        "unknown",
    ]


def test_finding_examples_are_its_first_events_in_time_order_timeless_last():
    # a few typos by one user: one finding; its examples are its three earliest lines, and an
    # event without a time (a damaged line) sorts after every timed one
    rows = [
        {"t": t, "user": "alice", "src_ip": "192.0.2.7", "reason": "bad-password", "service": "ssh"}
        for t in (9, 3, 6, 1)
    ]
    frame = ev(rows)
    frame.loc[2, "timestamp"] = pd.NaT  # the line at t=6
    res = causes(frame)
    (f,) = [f for f in res["findings"] if "alice" in f["users"]]
    assert f["count"] == 4
    assert [x["text"] for x in f["examples"]] == ["line 4", "line 2", "line 1"]  # t = 1, 3, 9
    assert f["first_seen"].startswith("2025-11-03T14:01") and f["last_seen"].startswith("2025-11-03T14:09")


def _periodicity_by_pandas(gid, t, max_cv, min_beats, min_interval, burst):
    """The definition, spelled with pandas' groupby (the oracle for the array version)."""
    import numpy as np

    ngroups = int(gid.max()) + 1 if gid.size else 0
    order = np.lexsort((t, gid))
    g, s = gid[order], t[order].astype("float64")
    same = np.concatenate([[False], g[1:] == g[:-1]])
    d = np.where(same, np.diff(s, prepend=s[:1]), np.nan)
    d = np.where(d < burst, np.nan, d)
    frame = pd.DataFrame({"g": g, "d": d})
    med = frame.groupby("g")["d"].median().reindex(range(ngroups)).to_numpy()
    counts = frame.groupby("g")["d"].count().reindex(range(ngroups)).fillna(0).to_numpy() + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        r = d / med[g]
        close = np.abs(r - np.maximum(np.rint(r), 1)) <= max_cv
    frame["close"] = np.where(np.isnan(d), np.nan, close)
    share = frame.groupby("g")["close"].mean().reindex(range(ngroups)).to_numpy()
    periodic = (counts >= min_beats) & (share >= 0.8) & (med >= min_interval)
    return np.nan_to_num(periodic, nan=0).astype(bool), med


def test_periodicity_matches_its_definition_by_pandas_groupby():
    """Cadence per group by sorting and counting arrays: the same verdicts and medians
    (bit for bit) as pandas' per-group median, count and mean, on steady, jittered and
    random timings, bursts, single-event and empty groups."""
    import numpy as np

    from analyzer.classify.engine import periodicity

    rng = np.random.default_rng(11)
    seen_periodic = seen_not = 0
    for trial in range(200):
        n = int(rng.integers(0, 300))
        gid = pd.factorize(rng.integers(0, int(rng.integers(1, 25)), n))[0].astype(np.int64)
        if trial % 2:
            t = rng.integers(0, 100_000, n)
        else:  # a steady beat with jitter and missed beats
            t = np.arange(n) * int(rng.integers(1, 900)) * rng.integers(1, 3, n) + rng.integers(0, 40, n)
        for args in ((0.1, 3, 60.0, 30.0), (0.25, 1, 0.0, 0.0)):
            got = periodicity(gid, t, *args)
            want = _periodicity_by_pandas(gid, t, *args)
            assert got[0].tolist() == want[0].tolist(), (trial, args)
            assert np.array_equal(got[1], want[1], equal_nan=True), (trial, args)
            seen_periodic += int(got[0].sum())
            seen_not += int((~got[0]).sum())
    assert seen_periodic and seen_not  # both verdicts were exercised
    empty = periodicity(np.empty(0, np.int64), np.empty(0, np.int64), 0.1, 3)
    assert empty[0].size == 0 and empty[1].size == 0


def test_distinct_values_per_group_match_pandas_nunique():
    import numpy as np

    from analyzer.classify.engine import _distinct_keys, _distinct_per_group

    rng = np.random.default_rng(5)
    n = 4_000
    gid = rng.integers(0, 60, n)
    col = pd.Series(
        pd.Categorical(rng.choice(["root", "admin", None, "x", "é"], n), categories=["é", "x", "root", "admin", "zz"])
    )
    want = col.groupby(gid).nunique().reindex(range(63)).fillna(0).to_numpy()
    assert _distinct_per_group(gid, _distinct_keys(col), 63).tolist() == want.tolist()
    plain = pd.Series(rng.choice(["a", "b", None], n), dtype=object)
    want = plain.groupby(gid).nunique().reindex(range(60)).fillna(0).to_numpy()
    assert _distinct_per_group(gid, _distinct_keys(plain), 60).tolist() == want.tolist()
    nothing = pd.Series(pd.Categorical([None] * 5, categories=["a"]))
    assert _distinct_per_group(np.zeros(5, np.int64), _distinct_keys(nothing), 2).tolist() == [0, 0]


def test_category_in_matches_isin():
    import numpy as np

    from analyzer.schema import category_in

    rng = np.random.default_rng(2)
    values = rng.choice(["bad-password", "unknown-user", None, "other"], 1000)
    for col in (pd.Series(pd.Categorical(values)), pd.Series(values, dtype=object)):
        for wanted in (("bad-password", "unknown-user"), ("missing",), ()):
            assert category_in(col, wanted).tolist() == col.isin(wanted).to_numpy(dtype=bool).tolist()


def test_group_value_pairs_match_a_sort_of_every_row():
    """(group, value) pairs found by hashing: the distinct pairs of the non-null values in
    sorted order and their counts, as sorting every row's pair gives them."""
    import numpy as np

    from analyzer.analysis import _coded, _pairs

    rng = np.random.default_rng(9)
    n = 6_000
    gid = rng.integers(0, 40, n)
    for col in (
        pd.Series(pd.Categorical(rng.choice(["a", "b", None, "c"], n), categories=["c", "b", "a", "unused"])),
        pd.Series(rng.choice([22, 5985, None], n), dtype="Int32"),
        pd.Series(pd.Categorical([None] * n, categories=["x"])),
    ):
        codes, values = _coded(col)
        known = codes >= 0
        width = len(values) + 1
        keys, counts = np.unique(gid[known] * width + codes[known], return_counts=True)
        g, c, got_values, got_counts = _pairs(gid, col)
        assert g.tolist() == (keys // width).tolist() and c.tolist() == (keys % width).tolist()
        assert got_counts.tolist() == counts.tolist() and list(got_values) == list(values)
        g2, c2, _, none = _pairs(gid, col, counts=False)
        assert none is None and g2.tolist() == g.tolist() and c2.tolist() == c.tolist()


def test_group_conditions_by_category_codes_match_the_general_path():
    """Group conditions over categorical keys (integer keys, other events restricted to the
    candidates' groups) classify as the general path over plain object columns does: the
    probe whose address tries one account, not the address that tries two; rows without an
    address, whose group has no other event to count (a steady retry: stale credentials);
    success after an attack."""
    import numpy as np

    rows = probe(12, src=PLATFORM)  # one account from the platform's address: the probe
    rows += [{**r, "src_ip": "203.0.113.7"} for r in probe(12)]  # a periodic root from another address ...
    rows += [
        {"t": 5 + i * 15, "user": "admin", "src_ip": "203.0.113.7", "reason": "bad-password"} for i in range(3)
    ]  # ... that tries a second account too
    rows += [{"t": 7 + i * 15, "user": "root", "reason": "bad-password"} for i in range(12)]  # no address
    rows += [
        {"t": i, "user": f"u{i}", "src_ip": f"192.0.2.{i}", "reason": "unknown-user"} for i in range(40)
    ]  # unrelated failures (other groups: filtered out)
    rows += [{"t": 200 + i / 10, "user": "root", "src_ip": "203.0.113.50", "reason": "bad-password"} for i in range(30)]
    rows += [{"t": 205, "user": "root", "src_ip": "203.0.113.50", "outcome": "success"}]  # in after an attack
    frame = ev(rows, service="ssh")
    plain = frame.copy()
    for col in ("host", "src_ip", "user"):
        plain[col] = plain[col].astype(object)
    by_codes = classify_events(frame)
    by_objects = classify_events(plain)
    assert by_codes.tolist() == by_objects.tolist()
    got = dict(zip(frame["src_ip"].astype(object).where(frame["src_ip"].notna(), None), by_codes, strict=True))
    assert got[PLATFORM] == "probe-password-mismatch" and got["203.0.113.7"] != "probe-password-mismatch"
    assert got[None] == "stale-credentials"
    assert np.isin(by_codes, ["probe-password-mismatch"]).sum() == 12
    assert by_codes.iloc[-1] == "success-after-attack"


def test_window_counts_by_hashing_match_pandas_groupby():
    """Largest count (or number of distinct values) in a window per group: hashed cells
    give what pandas' groupby gives, for several spans, negative and zero times, values
    missing in part or in whole."""
    import numpy as np

    from analyzer.classify.engine import _window_max, _window_max_by_groupby

    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(1, 1500))
        gid = pd.factorize(rng.integers(0, int(rng.integers(1, 50)), n))[0].astype(np.int64)
        t = rng.integers(-1000, 200_000, n) if trial % 3 else np.zeros(n, np.int64)
        span = [None, 60, 3600, 7][trial % 4]
        values = rng.integers(0, 8, n).astype(float)
        values[rng.random(n) < 0.2] = np.nan
        if trial % 5 == 0:
            values[:] = np.nan
        for per_row in (None, values):
            assert _window_max(gid, t, span, per_row).tolist() == _window_max_by_groupby(gid, t, span, per_row).tolist()


def test_the_first_rows_of_each_group_a_slice_at_a_time():
    """A finding's examples are its group's first rows: counted slice by slice with each
    group's count carried over, they are the rows pandas' cumcount picks."""
    import numpy as np
    import pandas as pd

    from analyzer.analysis import _first_of_groups

    rng = np.random.default_rng(7)
    for n, groups, k, step in [(1, 1, 3, 4), (10, 3, 1, 4), (1000, 7, 3, 16), (5000, 4000, 2, 64), (3000, 40, 3, 7)]:
        gid = pd.factorize(rng.integers(0, groups, n))[0]
        want = np.flatnonzero(pd.Series(gid).groupby(gid).cumcount().to_numpy() < k)
        assert np.array_equal(_first_of_groups(gid, k, step), want), (n, groups, k, step)
    assert _first_of_groups(np.empty(0, dtype=np.int64), 3).size == 0


def test_the_signs_of_a_domain_controller_come_from_the_windows_event_table():
    from analyzer.classify.roles import domain_controller_signs
    from analyzer.ingest.windows import load_semantics

    signs = domain_controller_signs()
    assert signs.event_ids == (4768, 4769, 4771) and "Directory Service" in signs.channels
    assert set(signs.event_ids) <= load_semantics().event_ids  # each is read, or it could never tell
    rows = [{"host": "dc01", "event_id": signs.event_ids[-1], "log": "evtx", "action": "kerberos-preauth"}]
    rows.append({"host": "srv01", "channel": signs.channels[0], "log": "evtx"})
    assert [h["role"] for h in host_roles(ev(rows))] == ["domain-controller", "domain-controller"]


@pytest.mark.parametrize(
    ("section", "message", "line"),
    [
        ("domain_controller:\n  event_ids: [4768]\n", "'domain_controller' takes event_ids and channels", 3),
        ("domain_controller:\n  event_ids: [x]\n  channels: []\n", "'domain_controller' event_ids is a list of event ids", 3),
        ("domain_controller:\n  event_ids: [1]\n  channels: 7\n", "'domain_controller' channels is a list of channel names", 3),
        ("domain_controller:\n  event_ids: [1, 1\n", "did not find expected", 6),  # where YAML finds it
        ("", "no 'domain_controller:' section", 1),
    ],
)
def test_bad_domain_controller_signs_are_errors_at_their_line(tmp_path, section, message, line):
    from analyzer.classify.roles import domain_controller_signs
    from analyzer.errors import RuleError

    path = tmp_path / "windows_events.yaml"
    path.write_text("# signs\n\n" + section.replace("domain_controller:\n", "domain_controller:\n  # x\n") + "tables: {}\n")
    with pytest.raises(RuleError) as exc:
        domain_controller_signs(str(path))
    assert str(exc.value).startswith(f"{path}:{line}: {message}")
