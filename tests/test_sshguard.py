"""SSHGuard's parser cases: every sshd attack line yields a failure (or blocked probe)
event with the expected address."""

from __future__ import annotations

import re

from analyzer.ingest import IngestOptions, read_events

_HAS_HEADER = re.compile(r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ |\d{4}-\d\d-\d\dT)")


def _ssh_cases(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    end = lines.index("# }}}")  # the SSH section closes here
    cases, i = [], 0
    body = [x for x in lines[:end] if x and not x.startswith("#")]
    while i + 2 < len(body) + 1 and i < len(body):
        log, expect = body[i], body[i + 1]
        assert body[i + 2] == "M", f"unexpected layout near {log!r}"
        cases.append((log, None if expect == "*" else expect.split()[1]))
        i += 3
    return cases


def test_sshguard_ssh_attacks(shared, tmp_path, capsys):
    path = shared("linux", "SSHGuard__sshguard", "src", "parser", "tests.txt")
    cases = _ssh_cases(path)
    text = []
    for n, (log, _) in enumerate(cases):
        text.append(log if _HAS_HEADER.match(log) else f"Jan  1 00:00:00 test sshd[{90000 + n}]: {log}")
    log_file = tmp_path / "sshguard.log"
    log_file.write_text("\n".join(text) + "\n", encoding="utf-8")
    ev = read_events([str(log_file)], IngestOptions(year=2020)).events
    bad = ev[ev["outcome"].isin(["failure", "blocked"])]
    got: dict[int, set[str]] = {}
    for loc, ip in zip(bad["locator"], bad["src_ip"], strict=True):
        got.setdefault(int(loc), set()).add(str(ip))
    attacks = [(n, log, ip) for n, (log, ip) in enumerate(cases) if ip]
    missed = [
        f"{log!r}: expected a failure from {ip}, got {sorted(got.get(n + 1, set()))}"
        for n, log, ip in attacks
        if ip not in got.get(n + 1, set())
    ]
    with capsys.disabled():
        print(
            f"\nSSHGuard sshd attack lines: {len(attacks) - len(missed)}/{len(attacks)} yield a failure with the address"
        )
    assert len(attacks) > 40
    assert not missed, "\n".join(missed)
