"""Make the journal file fixtures: systemd's own tools write and read them.

    apt-get install systemd-journal-remote   # (journalctl comes with systemd)
    python tests/files/journal/make.py

An export stream of assorted records (sshd and PAM lines of two hosts, a message longer
than journald's compression threshold, bytes that are not UTF-8, a long field nobody reads,
lines of other programs) goes through ``systemd-journal-remote`` once per layout (compact or
not). systemd 252 (Debian 12) compresses with zstd, the only compression it writes (older
systemd wrote lz4 or xz, which the tests build apart). Each file is cut after its last object
(the rest is preallocated zeros) and gzipped: ``zstd-<compact>.journal.gz``. Beside each,
``journalctl --file … -o export`` of it, gzipped: what systemd reads in the file, the
tests' oracle.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REMOTE = "/lib/systemd/systemd-journal-remote"


def _field(key: str, value: bytes) -> bytes:
    if b"\n" in value or any(b > 0x7F for b in value):  # the binary-safe form
        return key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return key.encode() + b"=" + value + b"\n"


def records(seed: int = 7) -> bytes:
    rng = random.Random(seed)
    t = 1_762_178_400_000_000  # 2025-11-03T14:00:00Z, in µs
    out = []
    for i in range(240):
        t += rng.randrange(1_000_000, 90_000_000)
        host = rng.choice(["web01", "web02"])
        pid = rng.randrange(1000, 60000)
        ip = f"203.0.113.{rng.randrange(1, 255)}"
        kind = i % 8
        fields: list[tuple[str, bytes]] = [("_HOSTNAME", host.encode())]
        if kind in (0, 1, 2):
            user = rng.choice(["root", "admin", "oracle", "deploy"])
            msg = f"Failed password for {user} from {ip} port {rng.randrange(1024, 65535)} ssh2".encode()
            fields += [("SYSLOG_IDENTIFIER", b"sshd"), ("_PID", str(pid).encode()), ("MESSAGE", msg)]
        elif kind == 3:
            msg = f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"
            fields += [("SYSLOG_IDENTIFIER", b"sshd"), ("SYSLOG_PID", str(pid).encode()), ("MESSAGE", msg.encode())]
        elif kind == 4:
            user = "x" * rng.randrange(600, 900)  # past the compression threshold
            msg = f"Invalid user {user} from {ip} port {rng.randrange(1024, 65535)}".encode()
            fields += [("SYSLOG_IDENTIFIER", b"sshd-session"), ("_PID", str(pid).encode()), ("MESSAGE", msg)]
        elif kind == 5:
            msg = b"Failed password for \xff\xfeodd from " + ip.encode() + b" port 2222 ssh2"  # not UTF-8
            fields += [("SYSLOG_IDENTIFIER", b"sshd"), ("_PID", str(pid).encode()), ("MESSAGE", msg)]
        elif kind == 6:
            fields += [("SYSLOG_IDENTIFIER", b"CRON"), ("_PID", str(pid).encode()),
                       ("MESSAGE", b"pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")]
        else:
            cmdline = ("/usr/bin/python3 " + "--flag " * rng.randrange(100, 200)).encode()  # compressed, not read
            fields += [("SYSLOG_IDENTIFIER", b"systemd"), ("_PID", b"1"), ("_CMDLINE", cmdline),
                       ("MESSAGE", f"Started session {i} of user root.".encode())]
        if i % 50 == 17:
            fields = [(k, v) for k, v in fields if k != "_HOSTNAME"]  # a record without a host
        entry = _field("__CURSOR", f"s=0;i={i}".encode()) + _field("__REALTIME_TIMESTAMP", str(t).encode())
        entry += _field("__MONOTONIC_TIMESTAMP", str(t - 1_762_000_000_000_000).encode())
        entry += _field("_BOOT_ID", b"0123456789abcdef0123456789abcdef")
        out.append(entry + b"".join(_field(k, v) for k, v in fields) + b"\n")
    return b"".join(out)


def _cut(path: Path) -> bytes:
    """The file up to the end of its last object (journald preallocates the rest as zeros)."""
    data = path.read_bytes()
    tail = struct.unpack_from("<Q", data, 136)[0]
    size = struct.unpack_from("<Q", data, tail + 8)[0]
    return data[: tail + ((size + 7) & ~7)]


def main() -> None:
    stream = records()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.export"
        src.write_bytes(stream)
        for compact in (0, 1):
            out = Path(tmp) / f"zstd-{compact}.journal"
            env = dict(os.environ, SYSTEMD_JOURNAL_COMPACT=str(compact))
            subprocess.run([REMOTE, f"--output={out}", str(src)], check=True, env=env, capture_output=True)
            (HERE / f"{out.name}.gz").write_bytes(gzip.compress(_cut(out), mtime=0))
            oracle = subprocess.run(["journalctl", f"--file={out}", "-o", "export"], check=True, capture_output=True)
            (HERE / f"{out.name}.export.gz").write_bytes(gzip.compress(oracle.stdout, mtime=0))


if __name__ == "__main__":
    main()
