"""Deterministic scenario logs: the README demo, end-to-end tests and benchmark inputs.

Everything here is generated (no one's real logs are copied): host names, documentation
address ranges (RFC 5737), realistic sshd pids and the message wordings of current and
older OpenSSH versions. The same seed gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import random
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from .samples_windows import TICKET_DC_BEATS, large_security_evtx, ticket_windows_parts, windows_scenarios

__all__ = ["generate", "large_auth_log"]

PLATFORM_IP = "198.51.100.10"  # the cloud platform's probe
EPOCH = dt.datetime(2025, 11, 3, 14, 0, 0)  # naive: the logs' local time
_FIXED_MTIME = (2025, 11, 10, 0, 0, 0)


def _bsd(ts: dt.datetime) -> str:
    return f"{ts:%b} {ts.day:2d} {ts:%H:%M:%S}"


def _iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


class _Log:
    """Lines of one host's auth log, kept in time order."""

    def __init__(self, host: str, rng: random.Random, style: str = "rfc3164"):
        self.host = host
        self.rng = rng
        self.style = style
        self.items: list[tuple[dt.datetime, int, str]] = []
        self._seq = 0

    def add(self, ts: dt.datetime, prog: str, pid: int | None, msg: str) -> None:
        tag = f"{prog}[{pid}]" if pid is not None else prog
        stamp = _bsd(ts) if self.style == "rfc3164" else _iso(ts)
        self._seq += 1
        self.items.append((ts, self._seq, f"{stamp} {self.host} {tag}: {msg}"))

    def pid(self) -> int:
        return self.rng.randint(1000, 65000)

    def text(self) -> str:
        return "".join(line + "\n" for _, _, line in sorted(self.items))

    def noise(self, start: dt.datetime, hours: int) -> None:
        for h in range(hours):
            ts = start + dt.timedelta(hours=h, minutes=17)
            pid = self.pid()
            self.add(ts, "CRON", pid, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
            self.add(ts + dt.timedelta(seconds=1), "CRON", pid, "pam_unix(cron:session): session closed for user root")
            if h % 6 == 0:
                self.add(ts + dt.timedelta(minutes=3), "systemd-logind", 612, "New session 42 of user admin.")


def _probe(log: _Log, ts: dt.datetime, ok: bool, method: str = "password") -> None:
    pid = log.pid()
    port = log.rng.randint(32768, 60999)
    log.add(ts, "sshd", pid, f'Connection from {PLATFORM_IP} port {port} on 192.0.2.21 port 22 rdomain ""')
    if ok:
        log.add(ts, "sshd", pid, f"Accepted {method} for root from {PLATFORM_IP} port {port} ssh2")
        log.add(ts, "sshd", pid, "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)")
        log.add(
            ts + dt.timedelta(seconds=2),
            "sshd",
            pid,
            f"Received disconnect from {PLATFORM_IP} port {port}:11: disconnected by user",
        )
        log.add(ts + dt.timedelta(seconds=2), "sshd", pid, f"Disconnected from user root {PLATFORM_IP} port {port}")
        log.add(ts + dt.timedelta(seconds=2), "sshd", pid, "pam_unix(sshd:session): session closed for user root")
    else:
        log.add(
            ts,
            "sshd",
            pid,
            f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={PLATFORM_IP}  user=root",
        )
        log.add(
            ts + dt.timedelta(seconds=2), "sshd", pid, f"Failed password for root from {PLATFORM_IP} port {port} ssh2"
        )
        log.add(
            ts + dt.timedelta(seconds=3),
            "sshd",
            pid,
            f"Connection closed by authenticating user root {PLATFORM_IP} port {port} [preauth]",
        )


def _password_mismatch(rng: random.Random) -> tuple[str, dict]:
    """Probe succeeds, the root password is changed on the server, then the probe fails."""
    log = _Log("web01", rng)
    log.noise(EPOCH, 24)
    change = EPOCH + dt.timedelta(hours=6, minutes=5)
    for i in range(96):
        ts = EPOCH + dt.timedelta(minutes=15 * i, seconds=rng.randint(0, 3))
        _probe(log, ts, ok=ts < change)
    log.add(change, "passwd", 30211, "pam_unix(passwd:chauthtok): password changed for root")
    failures = sum(1 for i in range(96) if EPOCH + dt.timedelta(minutes=15 * i) >= change)
    # one attempt per probe (the PAM line, `Failed password` and the pre-auth close of one connection)
    findings = [
        {"host": "web01", "cause": "probe-password-mismatch", "verdict": "misconfiguration", "attempts": failures},
        {"host": "web01", "cause": "probe-ok", "verdict": "expected", "attempts": 96 - failures},
    ]
    return log.text(), {
        "host": "web01",
        "failed_logons": failures,
        "password_changes": 1,
        "successes": 96 - failures,
        "findings": findings,
    }


def _root_refused(rng: random.Random) -> tuple[str, dict]:
    log = _Log("db02", rng, style="rfc3339")
    log.noise(EPOCH, 12)
    for i in range(48):
        ts = EPOCH + dt.timedelta(minutes=15 * i)
        pid, port = log.pid(), rng.randint(32768, 60999)
        log.add(ts, "sshd", pid, f"ROOT LOGIN REFUSED FROM {PLATFORM_IP} port {port}")
        log.add(ts, "sshd", pid, f"Failed password for root from {PLATFORM_IP} port {port} ssh2")
        log.add(
            ts + dt.timedelta(seconds=1),
            "sshd",
            pid,
            f"Connection closed by authenticating user root {PLATFORM_IP} port {port} [preauth]",
        )
    findings = [{"host": "db02", "cause": "probe-root-refused", "verdict": "misconfiguration", "attempts": 48}]
    return log.text(), {"host": "db02", "failed_logons": 48, "root_refused": 48, "findings": findings}


def _firewall(rng: random.Random) -> tuple[str, dict]:
    log = _Log("app03", rng)
    for i in range(48):
        ts = EPOCH + dt.timedelta(minutes=15 * i)
        sport = rng.randint(32768, 60999)
        for retry in range(3):
            log.add(
                ts + dt.timedelta(seconds=retry * 2),
                "kernel",
                None,
                f"[{4321.5 + i * 900:.6f}] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:11:22:33:00:16:3e:44:55:66:08:00 "
                f"SRC={PLATFORM_IP} DST=192.0.2.23 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID={rng.randint(1, 65535)} DF "
                f"PROTO=TCP SPT={sport} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
            )
    # a plain iptables LOG rule in front of a DROP, as older setups have it
    for i in range(4):
        ts = EPOCH + dt.timedelta(hours=12, minutes=15 * i)
        log.add(
            ts,
            "kernel",
            None,
            f"IPTables-Dropped: IN=eth0 OUT= MAC=00:16:3e:11:22:33:00:16:3e:44:55:66:08:00 SRC={PLATFORM_IP} DST=192.0.2.23 "
            f"LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID={rng.randint(1, 65535)} DF PROTO=TCP SPT={rng.randint(32768, 60999)} DPT=22 "
            "WINDOW=64240 RES=0x00 SYN URGP=0",
        )
    # a SYN and two retransmissions from one source port: one connection, not a login attempt
    findings = [
        {"host": "app03", "cause": "probe-firewall-blocked", "verdict": "misconfiguration", "attempts": 0,
         "connections": 48 + 4}
    ]  # fmt: skip
    return log.text(), {"host": "app03", "firewall_drops": 148, "findings": findings}


def _brute_force(rng: random.Random) -> tuple[str, dict]:
    log = _Log("bastion", rng)
    users = ["admin", "oracle", "test", "ubuntu", "git", "postgres", "user", "guest"]
    attacker = "203.0.113.66"
    start = EPOCH + dt.timedelta(hours=2)
    invalid = root = 0
    for i in range(200):
        ts = start + dt.timedelta(seconds=3 * i)
        pid, port = log.pid(), rng.randint(32768, 60999)
        user = rng.choice(users + ["root"])
        if user == "root":
            root += 1
            log.add(ts, "sshd", pid, f"Failed password for root from {attacker} port {port} ssh2")
        else:
            invalid += 1
            log.add(ts, "sshd", pid, f"Invalid user {user} from {attacker} port {port}")
            log.add(ts, "sshd", pid, f"Failed password for invalid user {user} from {attacker} port {port} ssh2")
        log.add(ts + dt.timedelta(seconds=1), "sshd", pid, f"Connection closed by {attacker} port {port} [preauth]")
    log.add(
        start, "sshd", 777, f"message repeated 3 times: [ Failed password for root from {attacker} port 40000 ssh2]"
    )
    # the same scanners as older and newer OpenSSH versions log them
    scanner = "203.0.113.67"
    log.add(
        start + dt.timedelta(minutes=11), "sshd", 4101, f"Did not receive identification string from {scanner}"
    )  # <= 7.9
    log.add(
        start + dt.timedelta(minutes=11, seconds=5),
        "sshd",
        4102,
        f"Received disconnect from {scanner}: 11: Bye Bye [preauth]",
    )  # < 7.2
    log.add(
        start + dt.timedelta(minutes=12),
        "sshd-session",
        4103,
        "error: kex_exchange_identification: Connection closed by remote host",
    )  # >= 8.0
    log.add(start + dt.timedelta(minutes=12), "sshd-session", 4103, f"Connection closed by {scanner} port 50022")
    log.add(
        start + dt.timedelta(minutes=13),
        "sshd-auth",
        4104,
        f"Connection closed by invalid user support {scanner} port 50023 [preauth]",
    )  # >= 10.0
    # one source: its user-name guessing and brute force are one campaign. One attempt per
    # invalid user's connection; root: one per connection, and the three of the `message
    # repeated` line's connection; the scanners' connections sent no name: no attempt
    findings = [
        {"host": "bastion", "cause": "brute-force", "verdict": "attack", "attempts": invalid + root + 3,
         "connections": invalid + root + 1},
    ]
    return log.text(), {"host": "bastion", "failed_logons": 203, "invalid_users": invalid, "findings": findings}


def _journal(rng: random.Random) -> tuple[str, dict]:
    lines = []
    for i in range(20):
        ts = EPOCH + dt.timedelta(minutes=15 * i)
        micros = int(ts.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
        pid = rng.randint(1000, 65000)
        rec = {
            "__REALTIME_TIMESTAMP": str(micros),
            "_HOSTNAME": "deb12",
            "SYSLOG_IDENTIFIER": "sshd-session",
            "_PID": str(pid),
            "_SYSTEMD_UNIT": "ssh.service",
            "MESSAGE": f"Failed password for root from {PLATFORM_IP} port {40000 + i} ssh2",
        }
        lines.append(json.dumps(rec, sort_keys=True))
    findings = [{"host": "deb12", "cause": "probe-password-mismatch", "verdict": "misconfiguration", "attempts": 20}]
    return "\n".join(lines) + "\n", {"host": "deb12", "failed_logons": 20, "findings": findings}


def _attacks(rng: random.Random) -> tuple[str, dict]:
    """Spraying, a distributed attack, user-name guessing, a typo, a success after an attack."""
    log = _Log("gw01", rng, style="rfc3339")
    log.noise(EPOCH, 6)
    t = EPOCH + dt.timedelta(hours=1)
    for i, user in enumerate(["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]):
        pid, port = log.pid(), rng.randint(32768, 60999)
        log.add(
            t + dt.timedelta(seconds=20 * i),
            "sshd",
            pid,
            f"Failed password for {user} from 203.0.113.20 port {port} ssh2",
        )
    t = EPOCH + dt.timedelta(hours=2)
    for i in range(14):
        pid, port = log.pid(), rng.randint(32768, 60999)
        log.add(
            t + dt.timedelta(minutes=3 * i),
            "sshd",
            pid,
            f"Failed password for admin from 198.18.{i}.{rng.randint(2, 250)} port {port} ssh2",
        )
    t = EPOCH + dt.timedelta(hours=3)
    for i in range(9):
        pid, port = log.pid(), rng.randint(32768, 60999)
        user = f"scan{i}"
        log.add(t + dt.timedelta(seconds=7 * i), "sshd", pid, f"Invalid user {user} from 203.0.113.30 port {port}")
        log.add(
            t + dt.timedelta(seconds=7 * i + 1),
            "sshd",
            pid,
            f"Failed password for invalid user {user} from 203.0.113.30 port {port} ssh2",
        )
    t = EPOCH + dt.timedelta(hours=4)
    pid, port = log.pid(), rng.randint(32768, 60999)
    log.add(t, "sshd", pid, f"Failed password for alice from 10.0.0.5 port {port} ssh2")
    log.add(t + dt.timedelta(seconds=9), "sshd", pid, f"Accepted password for alice from 10.0.0.5 port {port} ssh2")
    t = EPOCH + dt.timedelta(hours=5)
    for i in range(12):
        pid, port = log.pid(), rng.randint(32768, 60999)
        log.add(
            t + dt.timedelta(seconds=4 * i),
            "sshd",
            pid,
            f"Failed password for deploy from 203.0.113.40 port {port} ssh2",
        )
    log.add(
        t + dt.timedelta(seconds=60),
        "sshd",
        log.pid(),
        f"Accepted password for deploy from 203.0.113.40 port {port + 1} ssh2",
    )
    host = "gw01"
    findings = [
        {"host": host, "cause": c, "verdict": v, "attempts": n}
        for c, v, n in (
            ("password-spray", "attack", 8),
            ("distributed-attack", "attack", 14),
            ("user-enumeration", "attack", 9),  # `Invalid user` and `Failed password` of one connection
            ("user-typo", "user-error", 1),
            ("success-after-attack", "attack", 1 + 12),  # deploy's brute force (12), which got in: one campaign
        )
    ]
    return log.text(), {"host": host, "findings": findings}


def _journal_export(rng: random.Random) -> tuple[bytes, dict]:
    """`journalctl -o export`: a backup job keeps failing with an old password every 5 min;
    one field is binary-safe encoded, as journald does for text with control bytes."""
    out = bytearray()
    for i in range(24):
        ts = EPOCH + dt.timedelta(minutes=5 * i, seconds=rng.randint(0, 2))
        micros = int(ts.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
        pid = rng.randint(1000, 65000)
        msg = f"Failed password for backup from 10.0.0.40 port {40000 + i} ssh2"
        fields = [
            f"__CURSOR=s=0;i={i}",
            f"__REALTIME_TIMESTAMP={micros}",
            "_HOSTNAME=nas01",
            "SYSLOG_IDENTIFIER=sshd",
            f"_PID={pid}",
            "_SYSTEMD_UNIT=ssh.service",
        ]
        out += "\n".join(fields).encode() + b"\n"
        if i % 6 == 0:  # binary-safe form: name, newline, little-endian length, bytes
            raw = msg.encode()
            out += b"MESSAGE\n" + len(raw).to_bytes(8, "little") + raw + b"\n\n"
        else:
            out += f"MESSAGE={msg}\n\n".encode()
    return bytes(out), {
        "host": "nas01",
        "findings": [{"host": "nas01", "cause": "stale-credentials", "verdict": "misconfiguration", "attempts": 24}],
    }


def _internet_mismatch(rng: random.Random) -> tuple[str, dict]:
    """The platform's root password stops matching on an internet-facing host, under the SSH
    noise every such host has: hundreds of attacking sources (root guesses, invalid users,
    preauth disconnects) and scanners that never log in."""
    log = _Log("edge01", rng)
    log.noise(EPOCH, 24)
    change = EPOCH + dt.timedelta(hours=8, minutes=5)
    for i in range(96):
        ts = EPOCH + dt.timedelta(minutes=15 * i, seconds=rng.randint(0, 3))
        _probe(log, ts, ok=ts < change)
    log.add(change, "passwd", 30877, "pam_unix(passwd:chauthtok): password changed for root")
    names = ["admin", "ubuntu", "test", "oracle", "postgres", "git", "user", "ftpuser", "pi", "deploy", "support"]
    sources = 0
    for n in range(300):  # documentation and benchmark space, a source per address
        ip = f"203.0.{113 - n // 100}.{n % 100 + 1}" if n < 200 else f"198.18.{n - 199}.{rng.randint(2, 250)}"
        sources += 1
        start = EPOCH + dt.timedelta(minutes=rng.randint(0, 24 * 60 - 10), seconds=rng.randint(0, 59))
        guessing = n % 5 < 2  # two in five guess user names, the others try root a few times
        tries = rng.sample(names, rng.randint(5, 8)) if guessing else ["root"] * rng.randint(1, 3)
        for k, user in enumerate(tries):
            ts, pid, port = start + dt.timedelta(seconds=7 * k), log.pid(), rng.randint(32768, 60999)
            if user == "root":
                log.add(ts, "sshd", pid, f"Failed password for root from {ip} port {port} ssh2")
            else:
                log.add(ts, "sshd", pid, f"Invalid user {user} from {ip} port {port}")
                log.add(ts, "sshd", pid, f"Failed password for invalid user {user} from {ip} port {port} ssh2")
            log.add(ts + dt.timedelta(seconds=1), "sshd", pid, f"Connection closed by {ip} port {port} [preauth]")
    scanners = 40
    for i in range(scanners):  # scanners: a banner grab, no login
        ts, pid = EPOCH + dt.timedelta(minutes=rng.randint(0, 24 * 60 - 1)), log.pid()
        ip = f"192.0.2.{100 + i}"
        log.add(ts, "sshd", pid, "error: kex_exchange_identification: Connection closed by remote host")
        log.add(ts, "sshd", pid, f"Connection closed by {ip} port {rng.randint(32768, 60999)}")
    failures = sum(1 for i in range(96) if EPOCH + dt.timedelta(minutes=15 * i) >= change)
    findings = [  # one attempt per beat of the platform
        {"host": "edge01", "cause": "probe-password-mismatch", "verdict": "misconfiguration", "attempts": failures},
        {"host": "edge01", "cause": "probe-ok", "verdict": "expected", "attempts": 96 - failures},
    ]
    return log.text(), {
        "host": "edge01",
        "platform": {"status": "failing", "cause": "probe-password-mismatch"},
        "platform_failures": failures,
        "attacking_sources": sources,
        "scanning_sources": scanners,
        "password_changes": 1,
        "findings": findings,
    }


def _gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def _ticket_zip(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, date_time=_FIXED_MTIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def generate(out: Path, seed: int = 1, scale: int = 0) -> list[Path]:
    """Write the scenario files under ``out``; return their paths."""
    out = Path(out)
    rng = random.Random(seed)
    written: list[Path] = []

    def put(rel: str, data: bytes | str, expected: dict | None = None) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        written.append(path)
        if expected is not None:
            exp = path.parent / "expected.json"
            exp.write_text(json.dumps({"file": path.name, **expected}, indent=2, sort_keys=True) + "\n")
            written.append(exp)

    text, exp = _password_mismatch(rng)
    put("linux-password-mismatch/auth.log", text, exp)
    mismatch_findings = exp["findings"]
    text, exp = _root_refused(rng)
    put("linux-root-refused/auth.log", text, exp)
    text, exp = _firewall(rng)
    put("linux-firewall-blocked/kern.log", text, exp)
    text, exp = _brute_force(rng)
    put("linux-brute-force/secure", text, exp)
    text, exp = _journal(rng)
    put("linux-journal/journal.json", text, exp)

    text, exp = _attacks(rng)
    put("linux-attacks/auth.log", text, exp)
    data, exp = _journal_export(rng)
    put("linux-journal-export/journal.export", data, exp)
    with tempfile.TemporaryDirectory() as tmp:
        for rel, content, exp in windows_scenarios(rng, Path(tmp)):
            put(rel, content, exp)
        windows_parts = ticket_windows_parts(rng, Path(tmp))

    # A support-ticket bundle: a DC's Security and System logs and a Linux host's rotated
    # auth logs, in one zip.
    mismatch = (out / "linux-password-mismatch/auth.log").read_bytes().splitlines(keepends=True)
    third = len(mismatch) // 3
    bundle = {
        **windows_parts,
        "web01/var/log/auth.log.2.gz": _gz(b"".join(mismatch[:third])),
        "web01/var/log/auth.log.1": b"".join(mismatch[third : 2 * third]),
        "web01/var/log/auth.log": b"".join(mismatch[2 * third :]),
    }
    put(
        "ticket-bundle/ticket.zip",
        _ticket_zip(bundle),
        {
            "members": sorted(bundle),
            "findings": [
                {"host": "DC01.corp.example", "cause": "probe-dc-account", "verdict": "misconfiguration",
                 "attempts": TICKET_DC_BEATS},
                *mismatch_findings,
            ],
        },
    )
    # its own random numbers: the scenarios above keep their bytes
    text, exp = _internet_mismatch(random.Random(seed * 7919 + 26))
    put("linux-internet-mismatch/auth.log", text, exp)
    if scale:
        path = out / "large" / "auth.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            for chunk in large_auth_log(scale, seed):
                fh.write(chunk)
        written.append(path)
        evtx = out / "large" / "Security.evtx"
        large_security_evtx(evtx, max(scale // 2, 1000), seed)
        written.append(evtx)
    return written


def large_auth_log(lines: int, seed: int = 1) -> Iterator[str]:
    """About ``lines`` lines of a busy server's auth log, in blocks of text.

    The mix (by share of lines): sshd attack traffic (failed passwords, invalid users,
    preauth disconnects, scanners), PAM lines, the platform's periodic probe, successful
    admin sessions, sudo, cron sessions, systemd and kernel firewall lines, in both
    RFC 3164 and RFC 3339 timestamps.
    """
    rng = random.Random(seed)
    users = ["admin", "oracle", "test", "ubuntu", "git", "postgres", "user", "guest", "pi", "support"]
    attackers = [f"203.0.113.{i}" for i in range(1, 255)] + [f"2001:db8::{i:x}" for i in range(1, 60)]
    ts = EPOCH
    written = 0
    block: list[str] = []
    hosts = ["web01", "web02", "db01"]
    while written < lines:
        ts += dt.timedelta(milliseconds=rng.randint(50, 400))
        host = hosts[rng.randrange(3)]
        stamp = _bsd(ts) if rng.random() < 0.7 else _iso(ts)
        pid = rng.randint(1000, 999999)
        port = rng.randint(1024, 65535)
        ip = attackers[rng.randrange(len(attackers))]
        k = rng.random()
        if k < 0.22:
            u = users[rng.randrange(len(users))]
            msgs = [
                ("sshd", f"Invalid user {u} from {ip} port {port}"),
                ("sshd", "pam_unix(sshd:auth): check pass; user unknown"),
                ("sshd", f"Failed password for invalid user {u} from {ip} port {port} ssh2"),
                ("sshd", f"Connection closed by invalid user {u} {ip} port {port} [preauth]"),
            ]
        elif k < 0.40:
            msgs = [
                (
                    "sshd",
                    f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root",
                ),
                ("sshd", f"Failed password for root from {ip} port {port} ssh2"),
                (
                    "sshd",
                    f"Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]",
                ),
            ]
        elif k < 0.50:
            msgs = [
                ("sshd-session", "error: kex_exchange_identification: Connection closed by remote host"),
                ("sshd-session", f"Connection closed by {ip} port {port}"),
            ]
        elif k < 0.55:
            msgs = [
                (
                    "sshd",
                    f"Unable to negotiate with {ip} port {port}: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
                )
            ]
        elif k < 0.60:
            msgs = [
                (
                    "sshd",
                    f"Accepted publickey for admin from 192.0.2.50 port {port} ssh2: ED25519 SHA256:Qm9vYmFyYmF6cXV4",
                ),
                ("sshd", "pam_unix(sshd:session): session opened for user admin(uid=1000) by (uid=0)"),
            ]
        elif k < 0.64:
            msgs = [
                ("sudo", "   admin : TTY=pts/0 ; PWD=/home/admin ; USER=root ; COMMAND=/usr/bin/systemctl status nginx")
            ]
        elif k < 0.82:
            msgs = [
                ("CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
                ("CRON", "pam_unix(cron:session): session closed for user root"),
            ]
        elif k < 0.90:
            msgs = [
                ("systemd", "Started session-4242.scope - Session 4242 of User admin."),
                ("systemd-logind", "New session 4242 of user admin."),
            ]
        elif k < 0.96:
            msgs = [
                (
                    "kernel",
                    f"[UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:11:22:33:00:16:3e:44:55:66:08:00 SRC={ip} DST=192.0.2.21 "
                    f"LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={pid & 0xFFFF} DF PROTO=TCP SPT={port} DPT={rng.choice((22, 23, 3389, 5985))} "
                    "WINDOW=64240 RES=0x00 SYN URGP=0",
                )
            ]
        else:
            msgs = [("sshd", f"Failed password for root from {PLATFORM_IP} port {port} ssh2")]
        for prog, msg in msgs:
            tag = prog if prog == "kernel" else f"{prog}[{pid}]"
            block.append(f"{stamp} {host} {tag}: {msg}\n")
        written += len(msgs)
        if len(block) >= 50000:
            yield "".join(block)
            block = []
    if block:
        yield "".join(block)
