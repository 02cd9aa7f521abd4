"""Line framing, first words and per-pattern values: the fast, vectorized forms against
one value per line."""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pytest

from analyzer.ingest import syslog
from analyzer.ingest.linux import _FIRST_WORD, _first_words

# The fast paths as one regex each (the whole header captured, Solaris' message id
# included): what `frame_lines` must agree with, line by line.
_ONE_REGEX_TAIL = r" (?P<host>[^ \[\]:]+) (?P<tag>[^ :\[\]]+(?:\[[0-9]+\])?): (?:\[ID [0-9]+ [a-zA-Z0-9.]+\] )?)"
_REFERENCE = [
    ("rfc3164", r"^(?P<hdr>(?P<ts>[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2})" + _ONE_REGEX_TAIL),
    ("rfc3339", r"^(?P<hdr>(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:?[0-9]{2}))" + _ONE_REGEX_TAIL),
    *syslog.HEADERS[2:],
]
_TAG_SPLIT = re.compile(syslog._TAG_SPLIT)


def _reference(line: str) -> tuple | None:
    """(format, ts, host, program, pid, message) of one line, or None if no form frames it."""
    for name, regex in _REFERENCE:
        m = re.match(regex, line)
        if not m:
            continue
        groups = m.groupdict()
        t = _TAG_SPLIT.match(groups["tag"])
        prog = t["prog"] if t else ""
        pid = (t["pid"] or t["pid5424"]) if t else None
        pid = pid if pid and pid.isdigit() and pid.isascii() else None
        return name, groups["ts"], groups.get("host") or None, prog, pid, line[len(groups["hdr"]) :]
    return None


_TIMES = ["Nov  3 14:00:01", "Nov 13 14:00:01", "Jan 1 00:00:00", "2025-11-03T14:00:01.123+01:00",
          "2025-11-03T14:00:01Z", "2025-11-03 14:00:01", "<38>Nov  3 14:00:01", "1700000000.5", "nov  3 14:00:01"]
_HOSTS = ["web01", "", "db-2.example.com", "h:1", "h[1]", "ünï", "10.0.0.1"]
_TAGS = ["sshd[812]", "sshd", "[sshd]", "sshd[0012]", "CRON[99999999999]", "sshd-session[7]", "a:b", "prog[x]",
         "sshd[812]:", "sudo", "kernel", "systemd[1]", "sshd(pam_unix)[5]", "[sshd][3]"]
_SEPS = [": ", " ", ":  ", ":", ": [ID 800047 auth.info] ", ": [ID x] ", ": <auth.info> ", ": [ID 1 a.b]"]
_MSGS = ["Failed password for root from 10.0.0.1 port 22 ssh2", "", "error: kex_exchange_identification: x",
         "[ID 5 auth.notice] Accepted password for a from 1.2.3.4 port 5 ssh2", "pam_unix(sshd:auth): x", "  two"]


def _lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        host = rng.choice(_HOSTS)
        line = rng.choice(_TIMES) + (" " + host if host else "") + " " + rng.choice(_TAGS)
        out.append(line + rng.choice(_SEPS) + rng.choice(_MSGS))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_fast_header_paths_frame_lines_as_one_regex_per_line_does(seed):
    lines = _lines(3000, seed)
    block = ("\n".join(lines) + "\n").encode()
    arr, starts, ends = syslog.split_lines(block)
    fr = syslog.frame_lines(block, arr, starts, ends, ".")
    got = {
        int(row): (syslog.FORMATS[fmt], ts, host, prog, pid, msg)
        for row, fmt, ts, host, prog, pid, msg in zip(
            fr.rows, fr.fmt, fr.ts.to_pylist(), fr.host.to_pylist(), fr.prog.to_pylist(), fr.pid.to_pylist(),
            fr.msg.to_pylist(), strict=True,
        )
    }
    want = {i: ref for i, line in enumerate(lines) if (ref := _reference(line)) is not None}
    assert got == want
    assert sorted(fr.unframed.tolist()) == [i for i in range(len(lines)) if i not in want]
    # the fast paths took most lines, and Solaris' ids were stripped where they were whole
    assert sum(syslog.FORMATS[f] == "rfc3164" for f in fr.fmt) > len(lines) // 4
    assert any(ref[5].startswith("Failed") and "[ID 800047" in lines[i] for i, ref in want.items())


def test_first_words_match_the_regex_per_row():
    rng = random.Random(7)
    words = ["error:", "fatal:", "error", "Failed", "", " ", "error:x", "fatal: ", "pam_unix(sshd:auth):", "é"]
    msgs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 4))) for _ in range(4000)]
    msgs += ["error: ", "fatal:  two", "error: fatal: x", None]
    arr = pa.array(msgs, pa.string())
    want = [m.group("k") if (m := re.match(_FIRST_WORD, s or "")) else None for s in msgs]
    assert _first_words(arr).to_pylist() == want
    assert _first_words(pa.chunked_array([arr[:10], arr[10:]])).to_pylist() == want


def test_per_pattern_values_are_the_categorical_of_the_rows_values():
    """Roles and families per matched row, from codes: the categorical pandas would build
    from one value per row (categories: those that occur, sorted)."""
    import numpy as np
    import pandas as pd

    from analyzer.ingest.linux import _per_pattern

    rng = np.random.default_rng(3)
    values = ["enrich", "attempt", "ignore", "attempt", "zeta", "enrich"]
    for _ in range(300):
        pid = rng.integers(0, len(values), rng.integers(0, 40))
        got, want = _per_pattern(values, pid), pd.Categorical(np.array(values, dtype=object)[pid])
        assert list(got.categories) == list(want.categories)
        assert got.codes.tolist() == want.codes.tolist()
