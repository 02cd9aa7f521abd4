"""`authtriage serve` hardened: analyses die with the server and run with a memory and a time
limit; the server answers only to its own host names and takes changes only from its own pages;
a token off loopback is a real one; the upload page shows hostile file names escaped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analyzer.cli import app as cli
from analyzer.serve import Settings, create_app
from analyzer.serve.child import default_max_memory, machine_memory
from analyzer.serve.hosts import HostPolicy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TICKET = ROOT / "samples" / "ticket-bundle" / "ticket.zip"
BASE = "http://127.0.0.1:8080"
ORIGIN = BASE  # the origin of the server's own pages
TOKEN = "a-token-of-24-characters"
sys.path.insert(0, str(HERE))
import serve_targets  # noqa: E402


def _client(settings: Settings, base_url: str = BASE) -> TestClient:
    return TestClient(create_app(settings), base_url=base_url)


def _wait(client, id: str, until=("done", "failed"), timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/analyses/{id}").json()
        if body["status"] in until:
            return body
        time.sleep(0.1)
    raise AssertionError(f"analysis {id} still {body['status']} after {timeout} s")


def _upload(client, files: list[tuple[str, bytes]], headers: dict | None = None, **fields):
    return client.post(
        "/api/analyses",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=fields,
        headers=headers,
    )


# ---------------------------------------------------------------------------------------
# processes: gone with the server, the time limit, what an analysis leaves behind


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def _descendants(pid: int) -> list[int]:
    seen: list[int] = []
    todo = [pid]
    while todo:
        for c in _children(todo.pop()):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_killed_server_leaves_no_analysis_process(tmp_path):
    """SIGKILL of the server took nothing with it: the fork server, the resource tracker and the
    analyses (with no time limit left) ran on. Now all of them go within seconds: an analysis
    that started a process of its own, and one stuck in a C call that never lets its threads run."""
    port, data = _free_port(), tmp_path / "srv"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "serve_targets.py"), str(data), str(port), "by_name"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.2)
        for target in ("start_a_child_and_block", "hold_the_gil"):  # the server runs two at once
            res = httpx.post(base + "/api/analyses", files=[("files", (f"{target}.log", b"a\n"))], timeout=30)
            assert res.status_code == 202, res.text
            _wait_for(data / "analyses" / res.json()["id"] / "out" / "started")
        _wait_for(next(data.glob("analyses/*/out/grandchild")))
        pids = _descendants(server.pid)
        assert len(pids) >= 5, pids  # the resource tracker, the fork server, two analyses, a grandchild
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        assert _wait_gone(pids) == [], "processes of the killed server still run"
    finally:
        if server.poll() is None:
            server.kill()
        for p in pids:  # whatever a failure left behind: these are this test's processes
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_time_limit_kills_what_the_analysis_started(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", workers=1, time_limit=2, target=serve_targets.start_a_child_and_block)
    with _client(settings) as c:
        id = _upload(c, [("a.log", b"a\n")]).json()["id"]
        _wait_for(tmp_path / "d" / "analyses" / id / "out" / "grandchild")
        grandchild = int((tmp_path / "d" / "analyses" / id / "out" / "grandchild").read_text())
        body = _wait(c, id)
        assert body["status"] == "failed" and body["error"] == "timed out: the analysis took longer than 2 s"
        assert _wait_gone([grandchild]) == []


def test_an_analysis_that_ends_leaves_no_process_behind(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", workers=1, target=serve_targets.start_a_child_and_block)
    with _client(settings) as c:
        id = _upload(c, [("a.log", b"a\n")]).json()["id"]
        _wait_for(tmp_path / "d" / "analyses" / id / "out" / "grandchild")
        grandchild = int((tmp_path / "d" / "analyses" / id / "out" / "grandchild").read_text())
        assert _alive(grandchild)
        (tmp_path / "d" / "release").write_text("go")
        assert _wait(c, id)["error"] == "released"
        assert _wait_gone([grandchild]) == []


# ---------------------------------------------------------------------------------------
# memory


def test_default_memory_limit_is_half_the_machine():
    assert default_max_memory() == max(machine_memory() // 2, 512 << 20)
    assert Settings(data_dir=Path("unused")).max_memory == default_max_memory()


def test_memory_limit_is_a_clear_error_not_a_crash(tmp_path):
    """An analysis that asks for more than --max-memory fails with a message that names the
    limit; the server carries on, and the same analysis fits a higher limit."""
    settings = Settings(data_dir=tmp_path / "d", workers=1, max_memory=256 << 20, target=serve_targets.allocate)
    with _client(settings) as c:
        body = _wait(c, _upload(c, [("a.log", b"a\n")]).json()["id"])
        assert body["status"] == "failed"
        assert body["error"].startswith("the analysis exceeded the memory limit of 256 MiB (--max-memory)")
        page = c.get(f"/analyses/{body['id']}")
        assert "memory limit of 256 MiB" in page.text
        assert c.get("/healthz").json()["ok"]
    settings.max_memory = 1 << 30
    with _client(settings) as c:
        body = _wait(c, _upload(c, [("a.log", b"a\n")]).json()["id"])
        assert body["status"] == "done" and body["headline"] == "allocated"


def test_memory_limit_hit_by_the_real_analysis(tmp_path):
    """The pipeline catches an allocation that fails and carries on (an input "could not be
    read", a report that says "no logins found"): under the limit that is a failed analysis
    that says why, not a report that is missing what it could not read."""
    with _client(Settings(data_dir=tmp_path / "d", workers=1, max_memory=8 << 20)) as c:
        body = _wait(c, _upload(c, [("ticket.zip", TICKET.read_bytes())]).json()["id"])
        assert body["status"] == "failed", body
        assert body["error"].startswith("the analysis exceeded the memory limit of 8 MiB (--max-memory)")


@pytest.mark.parametrize("limit", [None, 1 << 30])
def test_a_normal_upload_fits_the_memory_limit(tmp_path, limit):
    settings = Settings(data_dir=tmp_path / "d", workers=1)
    if limit:
        settings.max_memory = limit
    with _client(settings) as c:
        body = _wait(c, _upload(c, [("ticket.zip", TICKET.read_bytes())]).json()["id"])
        assert body["status"] == "done", body
        assert body["findings"] == 3


def test_what_counts_as_running_out_of_memory():
    from analyzer.serve.child import looks_like_memory

    for error in (
        "internal error: MemoryError: ",
        "nothing readable in the upload — big.log: could not be read (MemoryError: Unable to allocate 6.00 MiB)",
        "internal error: ArrowMemoryError: malloc of size 64 failed",
        "internal error: OSError: [Errno 12] Cannot allocate memory",
        "could not be read (ImportError: /x/evtx.so: failed to map segment from shared object)",
        "internal error: RuntimeError: can't start new thread",
    ):
        assert looks_like_memory(error), error
    for error in ("nothing readable in the upload — out of memory.log: unknown format", "released", "", None):
        assert not looks_like_memory(error), error  # a file name is not a sign


def test_memory_option_on_the_command_line(tmp_path):
    res = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path / "d"), "--max-memory", "-1"])
    assert res.exit_code == 2 and "--max-memory must be more than 0 MiB" in res.stderr


# ---------------------------------------------------------------------------------------
# Host and Origin


@pytest.fixture
def client(tmp_path):
    with _client(Settings(data_dir=tmp_path / "data", workers=1, target=serve_targets.block_until_released)) as c:
        yield c


@pytest.mark.parametrize("path", ["/", "/api/analyses", "/openapi.json", "/healthz", "/static/app.css"])
def test_dns_rebinding_host_refused(client, path):
    """A page on attacker.example rebound to 127.0.0.1 could list and read every report."""
    for host in ("attacker.example:8080", "attacker.example", "127.0.0.1:9999", "localhost.attacker.example:8080"):
        res = client.get(path, headers={"host": host})
        assert res.status_code == 400, (host, res.status_code)
        assert "does not answer to the host" in res.json()["detail"] and "--allowed-host" in res.json()["detail"]
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST:8080"):
        assert client.get(path, headers={"host": host}).status_code == 200, host


def test_allowed_host_names_and_proxies(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "d",
        allowed_hosts=("triage.example", "https://proxy.example"),
        target=serve_targets.block_until_released,
    )
    with _client(settings, base_url="http://triage.example:8080") as c:
        assert c.get("/api/analyses").status_code == 200
        assert c.get("/api/analyses", headers={"host": "proxy.example"}).status_code == 200
        assert c.get("/api/analyses", headers={"host": "other.example:8080"}).status_code == 400
        ok = _upload(c, [("a.log", b"a\n")], headers={"origin": "https://proxy.example", "host": "proxy.example"})
        assert ok.status_code == 202
        refused = _upload(c, [("a.log", b"a\n")], headers={"origin": "http://proxy.example", "host": "proxy.example"})
        assert refused.status_code == 403  # the proxy's origin is https, not http


def test_wildcard_bind_answers_to_ip_addresses_only(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", host="0.0.0.0", token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _client(settings, base_url="http://192.0.2.10:8080") as c:
        assert c.get("/api/analyses", headers=auth).status_code == 200
        assert c.get("/api/analyses", headers={**auth, "host": "[2001:db8::1]:8080"}).status_code == 200
        assert c.get("/api/analyses", headers={**auth, "host": "attacker.example:8080"}).status_code == 400
        assert c.get("/api/analyses", headers={**auth, "host": "192.0.2.10:9999"}).status_code == 400


@pytest.mark.parametrize(
    "origin",
    ["null", "https://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1", "http://attacker.example:8080",
     "http://127.0.0.1:8080.attacker.example", "file://"],
)  # fmt: skip
def test_null_and_foreign_origins_refused(client, origin):
    """`Origin: null` and an origin with another scheme were accepted for form posts."""
    headers = {"origin": origin}
    assert _upload(client, [("a.log", b"a\n")], headers=headers).status_code == 403
    assert client.post("/analyses", files=[("files", ("a.log", b"a"))], headers=headers).status_code == 403
    assert client.post("/login", data={"token": "x"}, headers=headers).status_code == 403
    assert client.delete("/api/analyses/AAAAAAAAAAAAAAAA", headers=headers).status_code == 403
    assert client.post("/analyses/AAAAAAAAAAAAAAAA/delete", headers=headers).status_code == 403
    assert client.get("/api/analyses", headers=headers).status_code == 200  # reading changes nothing
    assert client.get("/api/analyses").json() == []  # nothing was taken


def test_own_origin_referer_and_plain_clients_accepted(client):
    assert _upload(client, [("a.log", b"a\n")], headers={"origin": ORIGIN}).status_code == 202
    assert _upload(client, [("b.log", b"b\n")], headers={"referer": ORIGIN + "/"}).status_code == 202
    res = _upload(client, [("c.log", b"c\n")], headers={"referer": "http://attacker.example:8080/"})
    assert res.status_code == 403  # without an Origin, the Referer's origin decides
    res = client.post("/api/analyses", files=[("files", ("d.log", b"d"))], headers={"origin": ORIGIN, "referer": "x"})
    assert res.status_code in (202, 503)  # the Origin decides when there is one
    assert len(client.get("/api/analyses").json()) >= 2  # curl-like (no Origin, no Referer) is fine too


def test_pages_send_their_origin(client):
    """"no-referrer" made a browser send `Origin: null` with the page's own posts."""
    assert client.get("/").headers["referrer-policy"] == "same-origin"


def test_host_policy_names():
    p = HostPolicy("::1", 80, ("Triage.Example:8443",))
    assert p.origins("[::1]") == {"http://[::1]"} and p.origins("[::1]:80") == {"http://[::1]"}
    assert p.origins("localhost") == {"http://localhost"}
    assert p.origins("triage.example:8443") == {"http://triage.example:8443"}
    assert p.origins("triage.example") is None and p.origins(None) is None
    assert p.refusal("POST", {"host": "localhost", "origin": "http://localhost"}) is None
    assert p.refusal("POST", {"host": "localhost", "referer": "http://localhost:80/x"}) is None
    for bad in ("a/b", "http://x/y", "*", "0.0.0.0", "x:99999", "ftp://x", "user@x", "http://u:p@x"):
        with pytest.raises(ValueError, match="--allowed-host"):
            HostPolicy("127.0.0.1", 8080, (bad,))
    res = CliRunner().invoke(cli, ["serve", "--data-dir", "unused", "--allowed-host", "http://x/path"])
    assert res.exit_code == 2 and "--allowed-host 'http://x/path'" in res.stderr


# ---------------------------------------------------------------------------------------
# tokens


@pytest.mark.parametrize(
    ("token", "message"),
    [(" ", "blank"), ("x", "at least 16 characters"), ("fifteen-chars-x", "at least 16 characters"),
     ("sixteen chars xx", "printable ASCII without spaces"), ("sixteen-chäärs-xx", "printable ASCII")],
)  # fmt: skip
def test_short_token_refused_off_loopback(tmp_path, token, message):
    """`--token " "` and one-character tokens were accepted on 0.0.0.0."""
    with pytest.raises(ValueError, match=message):
        Settings(data_dir=tmp_path / "d", host="0.0.0.0", token=token).check()
    res = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d"), "--token", token])
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.output


def test_token_lengths_that_are_fine(tmp_path):
    Settings(data_dir=tmp_path / "d", host="0.0.0.0", token="sixteen-chars-xx").check()
    Settings(data_dir=tmp_path / "d", host="127.0.0.1", token="short").check()  # loopback: the user's choice
    with pytest.raises(ValueError, match="blank"):
        Settings(data_dir=tmp_path / "d", token="   ").check()  # blank is a mistake anywhere


# ---------------------------------------------------------------------------------------
# the page shows hostile names escaped


def test_recent_list_escapes_bidi_and_nul(client):
    """The list of recent analyses showed raw U+202E and NUL from uploaded file names."""
    name = "inv\u202eoice\u2066\x00\x1b[31m.log"
    body = (
        b'--B\r\nContent-Disposition: form-data; name="files"; filename="' + name.encode() + b'"\r\n\r\n'
        b"Nov  3 14:00:00 h sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2\n\r\n--B--\r\n"
    )
    res = client.post("/api/analyses", content=body, headers={"content-type": "multipart/form-data; boundary=B"})
    assert res.status_code == 202
    id = res.json()["id"]
    assert client.get(f"/api/analyses/{id}").json()["files"][0]["name"] == name  # the API gives it as it came
    for page in (client.get("/").text, client.get(f"/analyses/{id}").text):
        assert "inv\\u202eoice\\u2066\\x00\\x1b[31m.log" in page
        assert not any(c in page for c in "\u202e\u2066\x00\x1b")


# ---------------------------------------------------------------------------------------
# found by the API fuzz, and other bodies


def test_a_long_or_odd_time_zone_is_a_bad_request(client):
    """A 300-character `tz` was a 500 (the zone's file name is too long for the file system)."""
    for tz in ("A" * 300, "../../etc/passwd", "Europe/Berlin\x00", "{}"):
        res = _upload(client, [("a.log", b"a\n")], tz=tz)
        assert res.status_code == 400, (tz, res.status_code)
        assert "unknown time zone" in res.json()["detail"] and len(res.json()["detail"]) < 300
    assert _upload(client, [("a.log", b"a\n")], tz="America/Argentina/Buenos_Aires").status_code == 202


def test_a_large_sign_in_body_is_not_read_whole(tmp_path):
    with _client(Settings(data_dir=tmp_path / "d", token=TOKEN)) as c:
        res = c.post("/login", content=b"token=" + b"x" * 1_000_000, headers={"content-type": "text/plain"})
        assert res.status_code == 413
        ok = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert ok.status_code == 303
