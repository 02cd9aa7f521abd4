"""The Linux message catalog: each message family yields the normalized fields."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from analyzer.ingest import IngestOptions, read_events
from analyzer.ingest.catalog import default_catalog_path, load_catalog, parse_catalog

H = "Mar  4 09:15:02 web1"

# (line, expected fields of the single event it yields; None: no event)
CASES = [
    (
        f"{H} sshd[1]: Failed password for root from 203.0.113.7 port 51022 ssh2",
        {
            "action": "logon",
            "outcome": "failure",
            "service": "ssh",
            "reason": "bad-password",
            "user": "root",
            "src_ip": "203.0.113.7",
            "src_port": 51022,
            "auth_method": "password",
            "pid": 1,
        },
    ),
    (
        f"{H} sshd-auth[2]: Failed keyboard-interactive/pam for invalid user admin from 2001:db8::1 port 1 ssh2 [preauth]",
        {"reason": "unknown-user", "user": "admin", "src_ip": "2001:db8::1", "auth_method": "keyboard-interactive/pam"},
    ),
    (
        f"{H} sshd[3]: Failed none for invalid user oracle from 203.0.113.7 port 2 ssh2",
        {"auth_method": "none", "reason": "unknown-user"},
    ),
    (
        f"{H} sshd[4]: Failed publickey for deploy from 203.0.113.7 port 3 ssh2: ED25519 SHA256:abc",
        {"reason": "key-rejected"},
    ),
    (
        f"{H} sshd[5]: Accepted publickey for root from 198.51.100.10 port 4 ssh2: RSA SHA256:x",
        {"outcome": "success", "user": "root", "auth_method": "publickey"},
    ),
    (f"{H} sshd[6]: Accepted keyboard-interactive/pam for bob from 198.51.100.10 port 5 ssh2", {"outcome": "success"}),
    (f"{H} sshd[7]: Invalid user  from 192.0.2.68 port 34916", {"action": "invalid-user", "user": None}),
    (
        f"{H} sshd[8]: User root from 198.51.100.4 not allowed because listed in DenyUsers",
        {"reason": "not-allowed-by-policy", "user": "root"},
    ),
    (f"{H} sshd[9]: User bob not allowed because shell /bin/false does not exist", {"reason": "not-allowed-by-policy"}),
    (
        f"{H} sshd[10]: ROOT LOGIN REFUSED FROM 198.51.100.4 port 40112",
        {"reason": "root-login-refused", "user": "root"},
    ),
    (
        f"{H} sshd[11]: error: maximum authentication attempts exceeded for invalid user x from 198.51.100.4 port 1 ssh2 [preauth]",
        {"action": "auth-limit", "reason": "too-many-failures", "user": "x"},
    ),
    (f"{H} sshd[12]: Disconnecting: Too many authentication failures for root [preauth]", {"action": "auth-limit"}),
    (
        f"{H} sshd[13]: Connection closed by authenticating user root 198.51.100.4 port 40112 [preauth]",
        {"action": "connection", "outcome": "failure", "reason": "preauth-disconnect", "user": "root"},
    ),
    (
        f"{H} sshd[14]: Connection reset by invalid user x 198.51.100.4 port 1 [preauth]",
        {"reason": "preauth-disconnect"},
    ),
    (
        f"{H} sshd[15]: Received disconnect from 198.51.100.4 port 40112:14: No supported authentication methods available [preauth]",
        {"reason": "no-auth-methods", "status": "14"},
    ),
    (
        f"{H} sshd[16]: Timeout before authentication for connection from 198.51.100.4 to 192.0.2.10, pid = 4242",
        {"reason": "timeout", "src_ip": "198.51.100.4", "dst_ip": "192.0.2.10"},
    ),
    (
        f"{H} sshd[17]: fatal: Timeout before authentication for 198.51.100.4 port 40112",
        {"reason": "timeout", "src_ip": "198.51.100.4"},
    ),
    (
        f"{H} sshd[18]: banner exchange: Connection from 198.51.100.4 port 40112: invalid format",
        {"reason": "protocol-error"},
    ),
    (
        f"{H} sshd[19]: Unable to negotiate with 198.51.100.4 port 1: no matching host key type found. Their offer: ssh-dss [preauth]",
        {"reason": "negotiation-failed"},
    ),
    (f"{H} sshd[20]: Did not receive identification string from 198.51.100.4", {"reason": "protocol-error"}),
    (
        f"{H} sshd[21]: error: PAM: Authentication failure for root from 203.0.113.7",
        {"reason": "bad-password", "user": "root"},
    ),
    (
        f"{H} sshd[22]: drop connection #3 from [198.51.100.4]:40112 on [192.0.2.10]:22 penalty: exceeded LoginGraceTime",
        {"outcome": "blocked", "dst_port": 22},
    ),
    (f"{H} sshd[23]: Server listening on 0.0.0.0 port 22.", {"action": "service-state", "reason": "service-started"}),
    (f"{H} sshd[24]: Received signal 15; terminating.", {"action": "service-state", "reason": "service-stopped"}),
    (
        f"{H} sshd[25]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7  user=root",
        {"action": "logon", "outcome": "failure", "service": "ssh", "user": "root"},
    ),
    (
        f"{H} sshd[26]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7  user=root",
        {"action": "auth-limit", "outcome": "info"},
    ),
    (
        f"{H} sshd[27]: pam_unix(sshd:account): account bob has expired (account expired)",
        {"reason": "account-expired", "user": "bob"},
    ),
    (
        f"{H} sshd[28]: pam_faillock(sshd:auth): Consecutive login failures for user root account temporarily locked",
        {"action": "lockout", "reason": "account-locked"},
    ),
    (
        f'{H} sshd[29]: pam_succeed_if(sshd:auth): requirement "uid >= 1000" not met by user "root"',
        {"reason": "not-allowed-by-policy"},
    ),
    (
        f"{H} sshd[30]: pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)",
        {"action": "session", "user": "root"},
    ),
    (
        f"{H} sudo[31]:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/lsblk",
        {"service": "sudo", "outcome": "failure", "user": "alice", "reason": "bad-password"},
    ),
    (
        f"{H} sudo[32]:    alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
        {"reason": "not-allowed-by-policy"},
    ),
    (
        f"{H} sudo[33]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/lsblk",
        {"outcome": "success", "service": "sudo"},
    ),
    (f"{H} su[34]: FAILED SU (to root) alice on pts/1", {"service": "su", "outcome": "failure", "user": "root"}),
    (f"{H} su[35]: (to root) alice on pts/1", {"service": "su", "outcome": "success"}),
    (f"{H} su[36]: FAILED su for root by alice", {"service": "su", "outcome": "failure"}),
    (
        f"{H} su[37]: pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/1 ruser=alice rhost=  user=root",
        {"service": "su", "user": "root"},
    ),
    (
        f"{H} login[38]: FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure",
        {"service": "console", "user": "root"},
    ),
    (f"{H} login[39]: FAILED LOGIN (1) on '/dev/tty1' FOR 'root', Authentication failure", {"service": "console"}),
    (f"{H} login[40]: ROOT LOGIN ON tty1", {"outcome": "success", "user": "root"}),
    (
        f"{H} passwd[41]: pam_unix(passwd:chauthtok): password changed for root",
        {"action": "password-change", "user": "root"},
    ),
    (
        f"{H} chpasswd[42]: pam_unix(chpasswd:chauthtok): password changed for bob",
        {"action": "password-change", "user": "bob"},
    ),
    (f"{H} usermod[43]: change user 'bob' password", {"action": "password-change", "user": "bob"}),
    (f"{H} usermod[44]: lock user 'bob' password", {"action": "account-change"}),
    (
        f"{H} kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00:00 SRC=198.51.100.10 DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF "
        "PROTO=TCP SPT=51022 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
        {"action": "firewall-drop", "outcome": "blocked", "src_ip": "198.51.100.10", "dst_port": 22, "src_port": 51022},
    ),
    (
        f"{H} kernel: [1234.5678] IPTables-Dropped: IN=eth0 OUT= MAC=00:00 SRC=198.51.100.10 DST=192.0.2.10 LEN=52 PROTO=TCP "
        "SPT=4 DPT=5985 WINDOW=1 SYN URGP=0",
        {"action": "firewall-drop", "dst_port": 5985},
    ),
    (
        f"{H} kernel: filter_IN_public_REJECT: IN=eth0 OUT= MAC=00:00 SRC=198.51.100.10 DST=192.0.2.10 LEN=60 PROTO=TCP "
        "SPT=4 DPT=22 SYN",
        {"action": "firewall-drop", "dst_port": 22},
    ),
    (
        f"{H} kernel: [UFW ALLOW] IN=eth0 OUT= MAC=00:00 SRC=198.51.100.10 DST=192.0.2.10 LEN=60 PROTO=TCP SPT=4 DPT=22 SYN",
        {"action": "firewall-allow"},
    ),
    (
        f"{H} systemd[1]: Stopped ssh.service - OpenBSD Secure Shell server.",
        {"action": "service-state", "reason": "service-stopped"},
    ),
    (f"{H} systemd[1]: Started OpenBSD Secure Shell server.", {"reason": "service-started"}),
    (f"{H} sshd[45]: Postponed publickey for git from 192.0.2.1 port 57904 ssh2 [preauth]", None),
    (f"{H} CRON[46]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", None),
    (f"{H} systemd[1]: Started Session 4 of User root.", None),
]


@pytest.mark.parametrize(("line", "want"), CASES, ids=[c[0][len(H) + 1 : len(H) + 50] for c in CASES])
def test_message(tmp_path, line, want):
    path = tmp_path / "auth.log"
    path.write_text(line + "\n")
    res = read_events([str(path)], IngestOptions(year=2025))
    rep = res.inputs[0]
    assert rep.unparsed == 0, rep.unparsed_samples
    if want is None:
        assert res.events.empty and rep.irrelevant == 1
        return
    assert len(res.events) == 1
    ev = res.events.iloc[0].to_dict()
    for key, value in want.items():
        got = ev[key]
        got = None if pd.isna(got) else got
        assert got == value, f"{key}: {got!r} != {value!r}"


def test_pam_line_enriches_the_sshd_attempt_and_is_not_counted_again(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text(
        f"{H} sshd[77]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=h.example  user=root\n"
        f"{H} sshd[77]: Failed password for root from 203.0.113.7 port 1 ssh2\n"
        f"{H} sshd[77]: pam_unix(sshd:account): account root has expired (account expired)\n"
        f"{H} sshd[78]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=bob\n"
    )
    res = read_events([str(path)], IngestOptions(year=2025))
    ev = res.events
    assert len(ev) == 2  # pid 77: one attempt; pid 78: the PAM line stands alone
    first = ev.iloc[0]
    assert (first["pid"], first["src_ip"], first["reason"]) == (77, "203.0.113.7", "account-expired")
    assert ev.iloc[1]["user"] == "bob"
    assert res.inputs[0].used == 4


def test_folding_a_slice_of_connections_at_a_time_gives_the_same_events(tmp_path, monkeypatch):
    from analyzer.ingest import linux
    from analyzer.samples import large_auth_log

    lines = list(large_auth_log(4_000, seed=5))
    for pid in range(300, 340):  # connections whose PAM line replaces the reason, some long
        lines.append(f"{H} sshd[{pid}]: pam_unix(sshd:auth): authentication failure; rhost=203.0.113.7  user=root\n")
        lines.extend([f"{H} sshd[{pid}]: Failed password for root from 203.0.113.7 port 1 ssh2\n"] * (1 + pid % 5))
        lines.append(f"{H} sshd[{pid}]: pam_unix(sshd:account): account root has expired (account expired)\n")
    path = tmp_path / "auth.log"
    path.write_text("".join(lines))
    whole = read_events([str(path)], IngestOptions(year=2025))
    monkeypatch.setattr(linux, "_SLICE_ROWS", 3)  # shorter than some connections: slice numbers skipped
    sliced = read_events([str(path)], IngestOptions(year=2025))
    assert (whole.events["reason"] == "account-expired").sum() >= 40
    pd.testing.assert_frame_equal(whole.events, sliced.events)
    assert whole.inputs[0].as_dict() == sliced.inputs[0].as_dict()


def test_address_is_carried_within_a_connection(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text(
        f"{H} sshd[90]: error: kex_exchange_identification: Connection closed by remote host\n"
        f"{H} sshd[90]: Connection closed by 198.51.100.4 port 40112\n"
    )
    ev = read_events([str(path)], IngestOptions(year=2025)).events
    assert list(ev["src_ip"]) == ["198.51.100.4", "198.51.100.4"]
    assert list(ev["outcome"]) == ["failure", "info"]


def test_new_wording_is_counted_as_unparsed_with_a_sample(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text(f"{H} sshd[91]: Authentication refused: bad ownership or modes for directory /root\n" * 25)
    rep = read_events([str(path)], IngestOptions(year=2025)).inputs[0]
    assert rep.unparsed == 25 and len(rep.unparsed_samples) == 20
    assert "bad ownership" in rep.unparsed_samples[0]


def test_every_catalog_pattern_matches_its_sample():
    cat, errors = parse_catalog(default_catalog_path(), check_samples=True)
    assert not errors, "\n".join(map(str, errors))
    assert cat == load_catalog()
    assert len(cat.patterns) > 60
    assert len({p.id for p in cat.patterns}) == len(cat.patterns)


def test_broken_catalog_reports_file_and_line(tmp_path):
    bad = tmp_path / "cat.yaml"
    bad.write_text(
        "families:\n  sshd: {programs: [sshd], line_filter: sshd}\n"
        "patterns:\n"
        "  - id: a\n    family: sshd\n    first: [Failed]\n    regex: '^Failed (?P<user>\\S+'\n"
        "    sample: {message: 'Failed x', yields: {}}\n"
        "  - id: b\n    family: nope\n    first: [X]\n    regex: '^X'\n    set: {outcome: maybe}\n"
        "    sample: {message: 'X', yields: {}}\n"
        "  - id: b\n    family: sshd\n    first: [Y]\n    regex: '^Y'\n    sample: {message: 'Z', yields: {}}\n"
    )
    cat, errors = parse_catalog(bad)
    assert cat is None
    text = "\n".join(str(e) for e in errors)
    assert f"{bad}:4: pattern 'a': regex does not compile" in text
    assert f"{bad}:9: pattern 'b': unknown family 'nope'" in text
    assert "outcome value 'maybe'" in text
    assert f"{bad}:15: duplicate pattern id 'b'" in text
    assert "does not match its sample 'Z'" in text


def test_duplicate_yaml_keys_are_errors(tmp_path):
    bad = tmp_path / "cat.yaml"
    bad.write_text("families: {}\nfamilies: {}\npatterns: []\n")
    _, errors = parse_catalog(bad)
    assert "duplicate key 'families'" in str(errors[0]) and f"{bad}:2" in str(errors[0])


def test_running_count_per_group_matches_pandas():
    import numpy as np

    from analyzer.ingest.linux import _running_count

    rng = np.random.default_rng(7)
    groups = rng.integers(0, 50, 5000)
    flags = rng.random(5000) < 0.3
    want = np.where(flags, pd.Series(flags.astype("int64")).groupby(groups).cumsum().to_numpy(), 0)
    assert _running_count(groups, flags).tolist() == want.tolist()
    assert _running_count(np.array([3, 3, 1, 3]), np.array([True, False, True, True])).tolist() == [1, 0, 1, 2]
    assert _running_count(np.array([1, 2]), np.array([False, False])).tolist() == [0, 0]


def _fill_addresses_by_groupby(ev: pd.DataFrame, key, has_pid) -> None:
    """The definition, in pandas: per connection, the address of the nearest line before
    (else after) that has one, if that line's time is within ten minutes."""
    sshd = has_pid & (ev["family"] == "sshd").to_numpy(dtype=bool, na_value=False)
    sub = ev.loc[sshd, ["timestamp", "src_ip"]].copy()
    sub["k"] = key[sshd]
    known_ts = sub["timestamp"].where(sub["src_ip"].notna())
    g = sub.groupby("k", sort=False)
    fwd_ip, fwd_ts = g["src_ip"].ffill(), known_ts.groupby(sub["k"]).ffill()
    bwd_ip, bwd_ts = g["src_ip"].bfill(), known_ts.groupby(sub["k"]).bfill()
    window = pd.Timedelta(minutes=10)
    fwd_ok = (sub["timestamp"] - fwd_ts).abs() <= window
    bwd_ok = (bwd_ts - sub["timestamp"]).abs() <= window
    fill = fwd_ip.where(fwd_ok.fillna(False)).fillna(bwd_ip.where(bwd_ok.fillna(False)))
    missing = sub["src_ip"].isna()
    ev.loc[sub.index[missing], "src_ip"] = fill[missing].to_numpy()


def test_addresses_carried_by_arrays_as_by_groupby():
    import numpy as np

    from analyzer.ingest.linux import _fill_addresses

    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        minutes = rng.integers(0, 40, n).astype("int64") * 60 * 10**6  # lines out of order too
        stamps = pd.Series(pd.to_datetime(minutes, unit="us", utc=True))
        stamps[rng.random(n) < 0.15] = pd.NaT
        ips = rng.choice(np.array(["10.0.0.1", "10.0.0.2", "10.0.0.3", None], dtype=object), n, p=[0.2, 0.2, 0.1, 0.5])
        ev = pd.DataFrame({
            "timestamp": stamps,
            "src_ip": pd.Categorical(ips, categories=["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.9.9"]),
            "family": pd.Categorical(rng.choice(["sshd", "pam"], n, p=[0.85, 0.15])),
        })  # fmt: skip
        key = rng.integers(0, 4, n).astype(np.int32)
        has_pid = rng.random(n) < 0.9
        want, got = ev.copy(), ev.copy()
        _fill_addresses_by_groupby(want, key, has_pid)
        _fill_addresses(got, key, has_pid)
        assert got["src_ip"].tolist() == want["src_ip"].tolist()
        assert list(got["src_ip"].cat.categories) == list(want["src_ip"].cat.categories)


# users that no fast regex may read as the general regex would not: spaces, tabs, the
# regexes' own words, an empty name, non-ASCII
_AWKWARD_USERS = ["root", "a b", "a\tb", "from", "invalid user x", "user", "", " ", "é", "x from y", "port", "[preauth]"]
_FAST_SHAPES = [
    "Failed password for {u} from 203.0.113.7 port 22 ssh2",
    "Failed password for invalid user {u} from 203.0.113.7 port 22 ssh2",
    "Failed publickey for {u} from 2001:db8::1 port 22 ssh2: RSA SHA256:x",
    "Failed none for invalid user {u} from 203.0.113.7 port 22 ssh2 [preauth]",
    "Invalid user {u} from 203.0.113.7 port 22",
    "Invalid user {u} from 203.0.113.7",
    "Disconnecting invalid user {u} 203.0.113.7 port 22: Too many authentication failures [preauth]",
    "Disconnecting authenticating user {u} 203.0.113.7 port 22: Too many authentication failures",
    "Connection closed by authenticating user {u} 203.0.113.7 port 22 [preauth]",
    "Disconnected from invalid user {u} 203.0.113.7 port 22 [preauth]",
    "Connection reset by invalid user {u} 203.0.113.7 port 22: x [preauth]",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7  user={u}",
    "pam_unix(sshd:auth): authentication failure; logname={u} uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser={u} rhost= rhost=1.2.3.4",
]


def _corpus_messages(shared) -> list[str]:
    """Messages from other projects' test logs, the generated samples and awkward forms."""
    from analyzer.samples import large_auth_log

    lines = "".join(large_auth_log(20_000, seed=3)).splitlines()
    logs = shared("linux", "fail2ban__fail2ban", "fail2ban", "tests", "files", "logs")
    for path in sorted(logs.iterdir()):
        lines += path.read_bytes().decode("utf-8", "replace").splitlines()
    tests = shared("linux", "SSHGuard__sshguard", "src", "parser", "tests.txt")
    lines += tests.read_bytes().decode("utf-8", "replace").splitlines()
    messages = [m for line in lines for m in (line, line.split(": ", 1)[-1], line.split("]: ", 1)[-1])]
    return messages + [shape.format(u=u) for shape in _FAST_SHAPES for u in _AWKWARD_USERS]


def test_fast_regexes_capture_what_their_patterns_do(shared):
    """Where a pattern's fast regex matches, it captures what the pattern's own regex does:
    checked on every message of fail2ban's and SSHGuard's test logs, a generated log and
    awkward user names, and the fast regexes must take many of them."""
    from analyzer.ingest.catalog import fast_disagreement

    messages = _corpus_messages(shared)
    fast = [p for p in load_catalog().patterns if p.fast]
    assert {p.id for p in fast} >= {"sshd-failed", "sshd-invalid-user", "pam-unix-auth-failure"}
    for pat in fast:
        assert fast_disagreement(pat, messages) is None, pat.id
        for fv in pat.fast:
            taken = pc.extract_regex(pa.array(messages), fv.regex).is_valid()
            assert pc.sum(taken).as_py() >= 10, (pat.id, fv.regex)


def test_matching_with_fast_regexes_gives_what_matching_without_does(shared):
    """The whole matching step, with the fast regexes and with them removed, row for row."""
    import dataclasses

    from analyzer.ingest.linux import match_messages

    messages = _corpus_messages(shared)
    cat = load_catalog()
    slow = dataclasses.replace(cat, patterns=tuple(dataclasses.replace(p, fast=()) for p in cat.patterns))
    progs = pa.array(["sshd" if i % 3 else "sshd-session" for i in range(len(messages))])
    with_fast = match_messages(progs, pa.array(messages), cat)
    without = match_messages(progs, pa.array(messages), slow)
    assert len(with_fast) > 10_000
    # the same values row for row (a category's number follows the order values were met in)
    pd.testing.assert_frame_equal(with_fast, without, check_categorical=False)


def test_a_fast_regex_that_reads_otherwise_is_refused(tmp_path):
    """The loader runs fast regexes on the sample (and its ``also`` messages): one that
    captures other than the pattern's regex, or has too many groups, is an error."""
    bad = tmp_path / "cat.yaml"
    head = "families:\n  sshd: {programs: [sshd], line_filter: sshd}\npatterns:\n"
    pattern = (
        "  - id: f\n    family: sshd\n    first: [Failed]\n"
        "    regex: '^Failed (?P<m>\\S+) for (?P<user>.*?) from (?P<src_ip>\\S+)'\n"
        "    fast: [{fast}]\n"
        "    sample: {{message: 'Failed password for root from 1.2.3.4', yields: {{user: root}}, also: [{also}]}}\n"
    )
    ok = "'^Failed (?P<m>\\S+) for (?P<user>\\S+) from (?P<src_ip>\\S+)'"
    bad.write_text(head + pattern.format(fast=ok, also="'Failed x for a b from 1.2.3.4'"))
    cat, errors = parse_catalog(bad)
    assert not errors and cat.patterns[0].fast[0].groups == ("m", "user", "src_ip")
    greedy = "'^Failed (?P<m>\\S+) for (?P<user>.*) from (?P<src_ip>\\S+)'"  # takes the last " from "
    bad.write_text(head + pattern.format(fast=greedy, also="'Failed x for a from b from 1.2.3.4'"))
    _, errors = parse_catalog(bad)
    assert "captures {'m': 'x', 'user': 'a from b'" in str(errors[0]) and f"{bad}:4" in str(errors[0])
    wide = "'^Failed (?P<m>\\S+) for (?P<user>\\S+) from (?P<src_ip>\\S+) port (?P<port>\\d+)'"
    bad.write_text(head + pattern.format(fast=wide, also="'x'"))
    assert "all of them groups of the pattern's regex" in str(parse_catalog(bad)[1][0])
    other = "{regex: '^Failed (?P<m>\\S+) for (?P<user>\\S+) from (?P<src_ip>\\S+)', fixed: {port: '1'}}"
    bad.write_text(head + pattern.format(fast=other, also="'x'"))
    assert "fixed names groups" in str(parse_catalog(bad)[1][0])
