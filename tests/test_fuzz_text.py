"""Property tests of the text framing and the message catalog: any bytes in, no exception
out; every line accounted for (used, irrelevant or unparsed); every event on a line read.

The lines are built from the catalog's own sample messages under every header form the
framing knows, then damaged the ways logs are: cut, joined, bytes that are not text, NUL
holes, CR, invalid UTF-8, forged counts and numbers. See tests/fuzzing.py for the settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fuzzing import crash_files, fuzz_settings, kept_if_it_fails, read_checked
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


def _catalog_samples() -> list[tuple[str, str]]:
    """(program, message) of every sample in the catalog."""
    doc = yaml.safe_load((ROOT / "analyzer" / "data" / "linux_messages.yaml").read_text())
    out = []
    for pat in doc["patterns"]:
        sample = pat.get("sample") or {}
        family = doc["families"].get(pat.get("family"), {})
        if "message" in sample and family.get("programs"):
            out.append((family["programs"][0], sample["message"]))
    return out


SAMPLES = _catalog_samples()
HOSTS = ["web1", "dc01.corp.example", "-", "h\u00e9te", "a" * 300, ""]
USERS = ["root", "Administrator", "", " ", "bob smith", "\u202eevil", "x" * 5000, "ro\x00ot", "'; DROP"]
IPS = ["203.0.113.7", "2001:db8::1", "::ffff:10.0.0.1", "999.1.1.1", "fe80::1%eth0", "not-an-ip", "10.0.0.1:22"]


@st.composite
def headers(draw) -> str:
    prog = draw(st.sampled_from([p for p, _ in SAMPLES] + ["sudo", "su", "login", "kernel", "CRON", "sshd-session"]))
    pid = draw(st.sampled_from(["", "[812]", "[0]", "[99999999999999999999999]", "[-1]", "[]"]))
    host = draw(st.sampled_from(HOSTS))
    month = draw(st.sampled_from(["Jan", "Feb", "Mar", "Dec", "Foo", "jan"]))
    day = draw(st.integers(0, 32))
    hms = draw(st.sampled_from(["09:15:02", "23:59:60", "00:00:00", "25:61:61", "09:15:02.123456"]))
    year = draw(st.sampled_from(["2025", "1969", "9999", "0000"]))
    form = draw(st.integers(0, 5))
    if form == 0:
        return f"{month} {day:2d} {hms} {host} {prog}{pid}: "
    if form == 1:
        return f"{year}-03-{day:02d}T{hms}{draw(st.sampled_from(['Z', '+01:00', '-0530', '', '+99:99']))} {host} {prog}{pid}: "
    if form == 2:
        return f"<{draw(st.integers(0, 999))}>1 {year}-03-04T{hms}Z {host} {prog} {pid.strip('[]') or '-'} - - "
    if form == 3:
        return f"{draw(st.integers(0, 10**11))}.{draw(st.integers(0, 999999))} {host} {prog}{pid}: "
    if form == 4:
        return f"<{draw(st.integers(0, 191))}>{month} {day:2d} {hms} {host} {prog}{pid}: "
    return f"{month} {day:2d} {hms} {prog}{pid}: "  # no host


@st.composite
def messages(draw) -> str:
    _, msg = draw(st.sampled_from(SAMPLES))
    if draw(st.booleans()):
        msg = msg.replace("root", draw(st.sampled_from(USERS)), 1)
    if draw(st.booleans()):
        for ip in ("203.0.113.7", "198.51.100.4", "198.51.100.20"):
            msg = msg.replace(ip, draw(st.sampled_from(IPS)))
    if draw(st.integers(0, 9)) == 0:
        msg = msg.replace("port 51022", f"port {draw(st.sampled_from(['0', '70000', '9' * 30, '-1']))}")
    if draw(st.integers(0, 7)) == 0:
        n = draw(st.sampled_from(["2", "0", "100001", "9" * 25, "-3"]))
        msg = f"message repeated {n} times: [ {msg}]"
    return msg


@st.composite
def lines(draw) -> bytes:
    line = (draw(headers()) + draw(messages())).encode("utf-8", "surrogatepass")
    how = draw(st.integers(0, 12))
    if how == 0:  # cut anywhere (a character too)
        line = line[: draw(st.integers(0, len(line)))]
    elif how == 1:  # bytes that are not text, anywhere
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.binary(max_size=8)) + line[at:]
    elif how == 2:  # a NUL hole, on its own or cutting the line short
        at = draw(st.integers(0, len(line)))
        line = line[:at] + b"\x00" * draw(st.integers(1, 5000)) + draw(st.sampled_from([b"", line]))
    elif how == 3:
        line += b"\r"
    elif how == 4:
        line = draw(st.binary(max_size=200))
    elif how == 5:  # a long line (cut to 64 KiB when over it)
        line += b"x" * draw(st.sampled_from([100, 65_000, 66_000]))
    return line


@st.composite
def logs(draw) -> bytes:
    body = b"\n".join(draw(st.lists(lines(), min_size=0, max_size=40)))
    if draw(st.booleans()):
        body += b"\n"
    if draw(st.integers(0, 9)) == 0:  # a crash hole at the start
        body = b"\x00" * draw(st.integers(1, 9000)) + body
    return body


@fuzz_settings(40)
@given(data=logs())
def test_any_text_is_read_without_fault_and_every_line_is_accounted_for(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("text") / "auth.log"
    path.write_bytes(data)
    with kept_if_it_fails("text", data):
        _check_text(path)


def _check_text(path: Path) -> None:
    """read_checked, and a text log's lines are the file's (``wc -l``, and one without a newline)."""
    rep = read_checked(path).inputs[0]
    data = path.read_bytes()
    if rep.format == "syslog" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):  # (UTF-16 is read converted)
        assert rep.lines == data.count(b"\n") + (not data.endswith(b"\n")), rep


@fuzz_settings(15)
@given(data=st.binary(max_size=3000))
def test_any_bytes_are_read_without_fault(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "input"
    path.write_bytes(data)
    with kept_if_it_fails("text", data):
        read_checked(path)


@pytest.mark.parametrize("path", crash_files("text"), ids=lambda p: p.name)
def test_kept_text_inputs_are_read_without_fault(path):
    """Inputs a campaign (or a bug report) found: each stays a regression case."""
    _check_text(path)


def _cut_by_hand(block: bytes) -> tuple[bytes, list[list[int]]]:
    """What analyzer.ingest.holes.cut does, line by line."""
    out, found = [], []
    parts = block.split(b"\n")
    for i, line in enumerate(parts):
        if b"\x00" in line:
            first, last = line.index(b"\x00"), line.rindex(b"\x00")
            found.append([i, first, last + 1, line.count(b"\x00")])
            kept = line[last + 1 :]
            line = b"\x00" if not kept and i == len(parts) - 1 else kept  # a last line of NULs stays a line
        out.append(line)
    return b"\n".join(out), found


@fuzz_settings(300)
@given(block=st.lists(st.sampled_from([b"\x00", b"\x00" * 7, b"\n", b"a", b"bc", b"\r"]), max_size=40).map(b"".join))
def test_crash_holes_are_cut_as_said(block):
    from analyzer.ingest import holes

    got, found = holes.cut(block)
    assert (got, found.tolist()) == _cut_by_hand(block)
    assert got.count(b"\n") == block.count(b"\n")
