"""`authtriage serve`: the API against the app, the real server over HTTP, and the upload
page in headless Chromium."""

from __future__ import annotations

import json
import os
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
from analyzer.serve.uploads import safe_name

ROOT = Path(__file__).resolve().parent.parent
TICKET = ROOT / "samples" / "ticket-bundle" / "ticket.zip"
EXPECTED = json.loads((ROOT / "samples" / "ticket-bundle" / "expected.json").read_text())
sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_targets  # noqa: E402

BASE = "http://127.0.0.1:8080"  # a host the server answers to (Settings' default port)
TOKEN = "s3cret-s3cret-s3cret"  # 16 characters or more: the server is bound to 0.0.0.0


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), base_url=BASE)


def _wait(client, id: str, until=("done", "failed"), timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/analyses/{id}").json()
        if body["status"] in until:
            return body
        time.sleep(0.1)
    raise AssertionError(f"analysis {id} still {body['status']} after {timeout} s")


def _upload(client, files: list[tuple[str, bytes]], **fields):
    return client.post(
        "/api/analyses", files=[("files", (name, data, "application/octet-stream")) for name, data in files], data=fields
    )


def _findings(report: dict) -> set[tuple[str, str, str]]:
    return {(f["cause"], f["host"], f["verdict"]) for f in report["findings"]}


WANT = {(f["cause"], f["host"], f["verdict"]) for f in EXPECTED["findings"]}


@pytest.fixture
def client(tmp_path):
    with _client(Settings(data_dir=tmp_path / "data", workers=2)) as c:
        yield c


def test_upload_analyze_read_and_delete(client, tmp_path):
    res = _upload(client, [("ticket.zip", TICKET.read_bytes())], platform_net="", tz="UTC")
    assert res.status_code == 202, res.text
    id = res.json()["id"]
    body = _wait(client, id)
    assert body["status"] == "done", body
    assert _findings(body["report"]) >= WANT
    assert body["files"] == [{"name": "ticket.zip", "bytes": TICKET.stat().st_size}]
    # inputs are named as uploaded, never by their place on the server
    names = [i["name"] for i in body["report"]["inputs"]]
    assert "ticket.zip!DC01/Security.evtx" in names and not any(str(tmp_path) in n for n in names)
    assert all(e["text"] for f in body["report"]["findings"] for e in f["examples"])  # quoted lines fetched
    html = client.get(f"/analyses/{id}")
    assert html.status_code == 200 and "DC01.corp.example" in html.text
    assert "script-src" not in html.headers["content-security-policy"]
    md = client.get(f"/api/analyses/{id}/report.md")
    assert md.status_code == 200 and md.text.startswith("# Why logins fail")
    js = client.get(f"/api/analyses/{id}/report.json").json()
    assert _findings(js) == _findings(body["report"])
    listed = client.get("/api/analyses").json()
    assert [a["id"] for a in listed] == [id]
    assert listed[0].get("report") is None  # the list carries no reports
    # the uploads are gone once analyzed; the reports stay
    folder = tmp_path / "data" / "analyses" / id
    assert not (folder / "uploads").exists() and (folder / "out" / "report.html").exists()
    assert client.delete(f"/api/analyses/{id}").status_code == 204
    assert client.get(f"/api/analyses/{id}").status_code == 404
    assert not folder.exists()
    assert client.delete(f"/api/analyses/{id}").status_code == 404


def test_platform_network_and_several_files(client):
    log = b"".join(
        f"Nov  3 14:{m:02d}:00 web9 sshd[{100 + m}]: Failed password for root from 198.51.100.7 port 5{m:04d} ssh2\n".encode()
        for m in range(0, 60, 5)
    )
    res = _upload(client, [("a.log", log), ("b.log", log.replace(b"web9", b"web8"))], platform_net="198.51.100.0/24")
    body = _wait(client, res.json()["id"])
    assert body["status"] == "done"
    assert body["platform_net"] == ["198.51.100.0/24"]
    assert body["report"]["platform"]["networks"] == ["198.51.100.0/24"]
    assert {i["name"] for i in body["report"]["inputs"]} == {"a.log", "b.log"}


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.zip", b"PK\x03\x04" + b"\x00" * 40 + b"not really a zip", "broken.zip"),
        ("mystery.bin", bytes(range(256)) * 64, "unknown format"),
    ],
)
def test_unreadable_uploads_fail_with_the_reason(client, name, data, reason):
    body = _wait(client, _upload(client, [(name, data)]).json()["id"])
    assert body["status"] == "failed"
    assert "nothing readable" in body["error"] and reason in body["error"]
    page = client.get(f"/analyses/{body['id']}")
    assert reason in page.text


def test_bad_requests_are_answered(client):
    assert client.post("/api/analyses", content=b"x", headers={"content-type": "text/plain"}).status_code == 400
    res = _upload(client, [("a.log", b"x\n")], platform_net="not-a-net")
    assert res.status_code == 400 and "platform_net" in res.json()["detail"]
    res = _upload(client, [("a.log", b"x\n")], tz="Mars/Olympus")
    assert res.status_code == 400 and "Mars/Olympus" in res.json()["detail"]
    res = client.post("/api/analyses", data={"tz": "UTC"}, files=[("other", ("a.log", b"x", "text/plain"))])
    assert res.status_code == 400 and "files" in res.json()["detail"]
    assert client.get("/api/analyses/../../etc").status_code == 404
    assert client.get("/api/analyses/AAAAAAAAAAAAAAAA").status_code == 404
    # a form from another site is refused
    res = client.post("/analyses", files=[("files", ("a.log", b"x"))], headers={"origin": "http://evil.example"})
    assert res.status_code == 403


def test_size_limit(tmp_path):
    with _client(Settings(data_dir=tmp_path / "d", max_upload=10_000)) as c:
        res = _upload(c, [("big.log", b"x" * 20_000)])
        assert res.status_code == 413 and "10000 bytes" in res.json()["detail"]
        assert not any((tmp_path / "d" / "analyses").glob("*/uploads/*"))  # nothing left behind
        assert _upload(c, [("small.log", b"x" * 100)]).status_code == 202


def test_time_limit(tmp_path):
    with _client(Settings(data_dir=tmp_path / "d", time_limit=0.05)) as c:
        body = _wait(c, _upload(c, [("ticket.zip", TICKET.read_bytes())]).json()["id"])
        assert body["status"] == "failed" and body["error"].startswith("timed out")


def test_full_queue_answers_503_and_restart_marks_interrupted(tmp_path):
    data = tmp_path / "d"
    settings = Settings(data_dir=data, workers=1, queue_size=1, target=serve_targets.block_until_released)
    with _client(settings) as c:
        first = _upload(c, [("a.log", b"a\n")]).json()["id"]
        _wait(c, first, until=("running",))
        second = _upload(c, [("b.log", b"b\n")])
        assert second.status_code == 202  # waits in the queue
        third = _upload(c, [("c.log", b"c\n")])
        assert third.status_code == 503 and third.headers["retry-after"] == "30"
        assert "queue is full" in third.json()["detail"]
        page = c.post("/analyses", files=[("files", ("d.log", b"d\n"))])
        assert page.status_code == 503 and "queue is full" in page.text
        # the server stops with one running and one queued
    with _client(Settings(data_dir=data, workers=1)) as c:
        for id in (first, second.json()["id"]):
            body = c.get(f"/api/analyses/{id}").json()
            assert body["status"] == "failed" and body["error"].startswith("interrupted")
        assert not any(data.glob("analyses/*/uploads/*"))
        # and a new upload is analyzed as usual
        body = _wait(c, _upload(c, [("ticket.zip", TICKET.read_bytes())]).json()["id"])
        assert body["status"] == "done"
    with _client(Settings(data_dir=data, workers=1)) as c:
        done = [a for a in c.get("/api/analyses").json() if a["status"] == "done"]
        assert len(done) == 1 and c.get(f"/analyses/{done[0]['id']}").status_code == 200  # nothing finished lost


def test_deleting_a_running_analysis_stops_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", workers=1, target=serve_targets.block_until_released)
    with _client(settings) as c:
        id = _upload(c, [("a.log", b"a\n")]).json()["id"]
        _wait(c, id, until=("running",))
        page = c.get(f"/analyses/{id}")
        assert page.status_code == 200 and "reading the logs" in page.text and 'http-equiv="refresh"' in page.text
        assert c.get(f"/api/analyses/{id}/report.md").status_code == 409
        assert c.delete(f"/api/analyses/{id}").status_code == 204
        deadline = time.monotonic() + 10
        while (tmp_path / "d" / "analyses" / id).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (tmp_path / "d" / "analyses" / id).exists()


def test_hostile_names_are_contained_and_escaped(client, tmp_path):
    evil = "../../<img src=x onerror=alert(1)>.log"
    res = _upload(client, [(evil, b"Nov  3 14:00:00 h sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2\n")])
    id = res.json()["id"]
    body = _wait(client, id)
    assert body["files"][0]["name"] == evil  # shown as uploaded …
    assert safe_name(evil, set()) == "img_src=x_onerror=alert_1_.log"  # … stored under a harmless name
    assert safe_name("..", set()) == "upload" and safe_name("a.log", {"a.log"}) == "a-2.log"
    assert body["report"]["inputs"][0]["name"] == "img_src=x_onerror=alert_1_.log"
    page = client.get("/").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_token_is_required_off_loopback_and_enforced(tmp_path):
    with pytest.raises(ValueError, match="token"):
        create_app(Settings(data_dir=tmp_path / "d", host="0.0.0.0"))
    res = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")], env={"AUTHTRIAGE_TOKEN": ""})
    assert res.exit_code == 2 and "token" in res.stderr
    with _client(Settings(data_dir=tmp_path / "d", host="0.0.0.0", token=TOKEN)) as c:
        assert c.get("/api/analyses").status_code == 401
        assert c.get("/api/analyses").headers["www-authenticate"] == "Bearer"
        assert c.get("/api/analyses", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/analyses", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert _upload(c, [("a.log", b"x\n")]).status_code == 401
        assert c.get("/openapi.json").status_code == 401
        page = c.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert c.post("/login", data={"token": "nope"}).status_code == 401
        ok = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert c.get("/").status_code == 200  # the cookie now opens the page (and the API)
        assert c.get("/api/analyses").status_code == 200


def test_openapi_document_is_committed(tmp_path):
    """docs/openapi.json is the app's own; regenerate with `python -m analyzer.serve.openapi > docs/openapi.json`."""
    live = create_app(Settings(data_dir=tmp_path / "d")).openapi()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert live == committed
    assert {"/api/analyses", "/api/analyses/{id}", "/api/analyses/{id}/report.md", "/api/analyses/{id}/report.json"} <= set(live["paths"])


# ---------------------------------------------------------------------------------------
# the real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer", "serve", "--port", str(port), "--data-dir", str(tmp_path / "srv"), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AUTHTRIAGE_TOKEN": ""},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read().decode())
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_end_to_end_over_http(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        res = c.post("/api/analyses", files=[("files", ("ticket.zip", TICKET.read_bytes()))])
        assert res.status_code == 202
        body = _wait(c, res.json()["id"])
        assert body["status"] == "done" and _findings(body["report"]) >= WANT
        assert c.get(f"/analyses/{body['id']}").status_code == 200


def test_upload_page_in_chromium(server, chromium):
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        assert not page.locator("#progress").is_visible()  # until an upload starts (it showed an empty bar)
        page.set_input_files("#files", str(TICKET))
        assert "ticket.zip" in page.inner_text("#chosen")
        page.fill("input[name=tz]", "UTC")
        page.click("#go")
        page.wait_for_url("**/analyses/*", timeout=90_000)
        page.wait_for_selector(".headline", timeout=90_000)
        headlines = page.locator(".headline").all_inner_texts()
        assert any("domain controller" in h for h in headlines), headlines
        page.goto(server + "/")
        assert page.locator("#recent tbody tr").count() == 1
        assert "done" in page.inner_text("#recent") and "3 findings" in page.inner_text("#recent")
        # the time, the status and the delete button on one line each ("don/e", "del/ete" took two)
        for what in ("td:nth-child(1)", "span.status", "button"):
            height = page.locator(f"#recent tbody tr {what}").evaluate(
                "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getBoundingClientRect().height; }"
            )
            assert 0 < height < 30, (what, height)  # a line is ~22 px
        # delete through the page's button
        page.click("#recent button")
        page.wait_for_url(server + "/")
        assert page.locator("#recent").count() == 0
        browser.close()
    assert not errors, errors


def test_form_post_without_javascript_and_keep_uploads(tmp_path):
    with _client(Settings(data_dir=tmp_path / "d", keep_uploads=True)) as c:
        res = c.post("/analyses", files=[("files", ("ticket.zip", TICKET.read_bytes()))], follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/analyses/")
        id = res.headers["location"].rsplit("/", 1)[1]
        status = c.get(f"/analyses/{id}")
        assert status.status_code == 200
        assert _wait(c, id)["status"] == "done"
        assert (tmp_path / "d" / "analyses" / id / "uploads" / "ticket.zip").read_bytes() == TICKET.read_bytes()
        gone = c.post(f"/analyses/{id}/delete", follow_redirects=False)
        assert gone.status_code == 303 and c.get(f"/api/analyses/{id}").status_code == 404


def test_no_waiting_room_still_takes_work_for_an_idle_worker(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", workers=1, queue_size=0, target=serve_targets.block_until_released)
    with _client(settings) as c:
        first = _upload(c, [("a.log", b"a\n")])
        assert first.status_code == 202  # the worker is idle
        _wait(c, first.json()["id"], until=("running",))
        assert _upload(c, [("b.log", b"b\n")]).status_code == 503  # busy, and no room to wait
        (tmp_path / "d" / "release").write_text("go")
        assert _wait(c, first.json()["id"])["status"] == "failed"  # the stand-in analysis ends
        assert _upload(c, [("c.log", b"c\n")]).status_code == 202


def test_a_full_disk_is_an_answer(client, monkeypatch):
    import errno

    import analyzer.serve.uploads as uploads

    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads, "open", no_space, raising=False)
    res = _upload(client, [("a.log", b"x\n")])
    assert res.status_code == 507 and "No space left on device" in res.json()["detail"]
    monkeypatch.undo()
    assert _upload(client, [("a.log", b"x\n")]).status_code == 202


def test_a_client_that_goes_away_mid_upload_leaves_nothing(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "d"))
    body = b'--B\r\nContent-Disposition: form-data; name="files"; filename="a.log"\r\n\r\npartial line'
    messages = [{"type": "http.request", "body": body, "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/analyses", "raw_path": b"/api/analyses", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=B"), (b"host", b"127.0.0.1:8080")],
        "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 1),
    }  # fmt: skip
    with TestClient(app, base_url=BASE) as c:
        c.portal.call(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 400 and b"interrupted" in payload
    assert not list((tmp_path / "d").glob("analyses/*"))


def test_a_data_directory_that_cannot_be_used_is_one_line(tmp_path):
    """Checked before the server starts: it was a traceback from the server's startup."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = CliRunner().invoke(cli, ["serve", "--data-dir", str(blocker / "data")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"cannot use {blocker / 'data'} as the data directory" in res.stderr
