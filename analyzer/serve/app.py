"""``authtriage serve``: an upload page and a JSON API over the analyzer.

Uploads stream to the data directory; a bounded queue feeds a fixed number of workers,
each analysis in a process of its own (killed at the time limit, limited in memory, gone
with the server: see :mod:`.child`); the index is SQLite and the reports are files, so a
restart loses nothing finished. Every request must name a host the server answers to, and
every request that changes something must come from its own pages (:mod:`.hosts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import multiprocessing
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from .. import __version__
from ..ingest.sources import Limits
from ..ingest.workers import usable_cpus
from . import child
from .hosts import HostPolicy, is_loopback
from .store import Store, new_id, now_iso, valid_id
from .uploads import TooLarge, UploadError, receive
from .worker import REPORT_FORMATS, child_main

__all__ = ["Settings", "create_app"]

HERE = Path(__file__).resolve().parent
COOKIE = "authtriage_session"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"
_PUBLIC = ("/login", "/static/", "/healthz", "/favicon.ico")
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,3}")  # an IANA zone's shape
MIN_REMOTE_TOKEN = 16  # characters of a token on anything but loopback
LOGIN_LIMIT = 4096  # bytes of a sign-in form
# signals an allocation that fails can end a process with (an abort, a bad pointer)
_CRASH_SIGNALS = frozenset({signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS})
IdParam = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{16}$", description="The analysis id.")]


@dataclass
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    allowed_hosts: tuple[str, ...] = ()  # more names (NAME, NAME:PORT, https://NAME) the server answers to
    token: str | None = None
    workers: int = field(default_factory=usable_cpus)
    queue_size: int = 32  # analyses waiting for a worker, beyond those running
    max_upload: int = 2 * 1024**3  # bytes per upload (all its files)
    time_limit: float = 900.0  # seconds per analysis
    max_memory: int | None = field(default_factory=child.default_max_memory)  # bytes per analysis; None: no limit
    keep_uploads: bool = False
    max_total_bytes: int = 64 * 1024**3  # uncompressed, per analysis
    max_ratio: float = 1000.0
    max_inputs: int = 10_000  # files and archive members per analysis
    max_events: int = Limits().max_events  # events per analysis
    # a Dask scheduler (tcp://HOST:8786) each analysis runs on; its workers must see the data
    # directory at the same path (the uploads are sent to them as absolute paths). None: local
    cluster: str | None = None
    target: Callable[..., None] = child_main  # what a worker process runs (tests give their own)

    def check(self) -> None:
        """Refuse an unsafe setup: anything but loopback needs a token of 16 characters or more;
        a token is printable ASCII without spaces (it travels in a header)."""
        if self.token is not None:
            if not self.token.strip():
                raise ValueError("the token is blank: give one (--token or AUTHTRIAGE_TOKEN), or none on loopback")
            if not all("!" <= c <= "~" for c in self.token):
                raise ValueError("the token must be printable ASCII without spaces (it travels in an HTTP header)")
        if not is_loopback(self.host):
            if not self.token:
                raise ValueError(
                    f"binding to {self.host} exposes uploaded logs to the network: set a token "
                    "(--token or AUTHTRIAGE_TOKEN), or bind to 127.0.0.1"
                )
            if len(self.token) < MIN_REMOTE_TOKEN:
                raise ValueError(
                    f"binding to {self.host} needs a token of at least {MIN_REMOTE_TOKEN} characters "
                    f"(this one has {len(self.token)}); make one with: "
                    "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
                )
        if self.workers < 1 or self.queue_size < 0:
            raise ValueError("--workers must be at least 1 and --queue at least 0")
        if self.max_memory is not None and self.max_memory <= 0:
            raise ValueError("--max-memory must be more than 0 MiB")
        if not self.time_limit > 0:
            raise ValueError("--time-limit must be more than 0 seconds")
        HostPolicy(self.host, self.port, self.allowed_hosts)  # a bad --allowed-host says why


class AnalysisCreated(BaseModel):
    id: str
    status: str
    url: str


class AnalysisStatus(BaseModel):
    id: str
    status: str  # queued | running | done | failed
    error: str | None = None
    created: str
    started: str | None = None
    finished: str | None = None
    files: list[dict[str, Any]]
    bytes: int
    platform_net: list[str]
    tz: str | None = None
    findings: int | None = None
    headline: str | None = None
    progress: dict[str, Any] | None = None
    report: dict[str, Any] | None = None


class Problem(BaseModel):
    detail: str


class MarkdownResponse(PlainTextResponse):
    media_type = "text/markdown"


_PROBLEMS = {
    400: "A bad request: a Host this server does not answer to (see --allowed-host), or a bad form.",
    401: "A token is required (Authorization: Bearer TOKEN) when the server was started with one.",
    403: "Refused: the request comes from another site's page (its Origin or Referer is not this server's).",
    404: "No such analysis.",
    409: "The analysis has no report (yet): it is queued, running or failed.",
    413: "The upload is larger than --max-upload.",
    503: "The queue is full (see Retry-After).",
    507: "The upload cannot be stored (the data directory is full or unwritable).",
}


def _shown(value: Any) -> Any:
    """Every string a page shows, control characters and the marks that reorder a line (U+202E)
    as escapes, as in the reports (file names and errors come from uploads)."""
    from ..report import text_escape

    return text_escape(value) if isinstance(value, str) and not isinstance(value, Markup) else value


@cache
def _pages() -> jinja2.Environment:
    from ..report import plural

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    env.filters["plural"] = plural
    return env


class Service:
    """The queue, the workers and the files of every analysis."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.data_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.root / "index.sqlite")
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.queue_size + settings.workers)
        self.busy = 0  # workers with an analysis in hand
        self.tasks: list[asyncio.Task] = []
        self.procs: dict[str, multiprocessing.Process] = {}
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["analyzer.serve.worker", "analyzer.serve.child"])
        # every analysis holds the read end; the write end never leaves this process, so its
        # death (even by SIGKILL) is end of file there, and the analyses end themselves
        self.lifeline, self._lifeline_w = self.ctx.Pipe(duplex=False)
        self.session = hmac.new((settings.token or "").encode(), b"authtriage-session", hashlib.sha256).hexdigest()

    def folder(self, id: str) -> Path:
        return self.root / "analyses" / id

    async def start(self) -> None:
        for id in self.store.interrupted():
            self._drop_uploads(id)
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]
        self.tasks.append(asyncio.create_task(self._warm()))

    async def _warm(self) -> None:
        """Start the fork server now, in a thread: it imports the analyzer (seconds), which held up
        the event loop (and every request) when the first upload started it. If it cannot start,
        each analysis says why."""
        from multiprocessing import forkserver

        with contextlib.suppress(Exception):
            await asyncio.to_thread(forkserver.ensure_running)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for p in list(self.procs.values()):
            _kill(p)
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.store.close()
        self.lifeline.close()
        self._lifeline_w.close()

    def full(self) -> bool:
        """No idle worker and ``queue_size`` analyses already waiting."""
        idle = max(0, self.settings.workers - self.busy)
        return self.queue.qsize() >= self.settings.queue_size + idle

    def _drop_uploads(self, id: str) -> None:
        if not self.settings.keep_uploads:
            shutil.rmtree(self.folder(id) / "uploads", ignore_errors=True)

    async def _work(self) -> None:
        while True:
            id = await self.queue.get()
            self.busy += 1
            try:
                await self._run(id)
            except Exception as exc:  # noqa: BLE001 - a worker never dies of one analysis
                self.store.update(id, status="failed", finished=now_iso(), error=f"internal error: {exc}")
            finally:
                self.busy -= 1
                self.queue.task_done()

    async def _run(self, id: str) -> None:
        row = self.store.get(id)
        if row is None or row["status"] != "queued":
            return  # deleted while it waited
        folder = self.folder(id)
        out = folder / "out"
        out.mkdir(parents=True, exist_ok=True)
        s = self.settings
        limits = {
            "max_total_bytes": s.max_total_bytes,
            "max_ratio": s.max_ratio,
            "max_inputs": s.max_inputs,
            "max_events": s.max_events,
        }
        args = (str(folder / "uploads"), str(out), row["platform_net"], row["tz"], limits, s.cluster)
        proc = self.ctx.Process(
            target=child.run, args=(self.lifeline, s.max_memory, str(out), s.target, args), daemon=True
        )
        self.store.update(id, status="running", started=now_iso())
        await asyncio.to_thread(proc.start)
        self.procs[id] = proc
        if self.store.get(id) is None:
            _kill(proc)  # deleted while it started
        try:
            await asyncio.to_thread(proc.join, s.time_limit)
            if proc.is_alive():
                _kill(proc)
                await asyncio.to_thread(proc.join)
                self.store.update(
                    id,
                    status="failed",
                    finished=now_iso(),
                    error=f"timed out: the analysis took longer than {s.time_limit:g} s",
                )
                return
        finally:
            self.procs.pop(id, None)
            self._drop_uploads(id)
        if self.store.get(id) is None:
            shutil.rmtree(folder, ignore_errors=True)  # deleted while it ran
            return
        try:
            result = json.loads((out / "result.json").read_text())
        except (OSError, ValueError):
            self.store.update(id, status="failed", finished=now_iso(), error=self._death(proc.exitcode))
            return
        missing = [f"report.{fmt}" for fmt in REPORT_FORMATS if not (out / f"report.{fmt}").is_file()]
        if result.get("ok") and missing:
            self.store.update(id, status="failed", finished=now_iso(), error=f"the analysis wrote no {missing[0]}")
        elif result.get("ok"):
            self.store.update(
                id, status="done", finished=now_iso(), findings=result.get("findings"), headline=result.get("headline")
            )
        else:
            self.store.update(id, status="failed", finished=now_iso(), error=result.get("error") or "failed")

    def _death(self, code: int | None) -> str:
        """Why an analysis left no result, for people."""
        if code is None or code >= 0:
            return f"the analysis process died (exit status {code})"
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = f"the analysis process died (killed by {name})"
        limit = self.settings.max_memory
        if limit and -code in _CRASH_SIGNALS:
            why += f"; it may have run into the memory limit of {limit >> 20} MiB (--max-memory)"
        elif -code == signal.SIGKILL:
            why += "; the system may have run out of memory (the kernel's OOM killer)"
        return why

    async def submit(self, request: Request) -> tuple[str | None, str | None, int]:
        """Take an upload; (id, None, 202) or (None, reason, HTTP status)."""
        s = self.settings
        if self.full():
            return None, "the queue is full; try again in a minute", 503
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > s.max_upload + 64 * 1024:
            return None, f"the upload is larger than the limit of {s.max_upload} bytes", 413
        id = new_id()
        folder = self.folder(id)
        try:
            up = await receive(
                request.headers.get("content-type", ""), request.stream(), folder / "uploads", s.max_upload
            )
        except TooLarge as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return None, str(exc), 413
        except UploadError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return None, str(exc), 400
        except ClientDisconnect:
            shutil.rmtree(folder, ignore_errors=True)
            return None, "the upload was interrupted before it finished", 400
        except OSError as exc:  # the data directory is full or unwritable
            shutil.rmtree(folder, ignore_errors=True)
            return None, f"cannot store the upload: {exc.strerror or exc}", 507
        problem = None
        if not up.files or not any(f["bytes"] for f in up.files):
            problem = "no files in the upload (form field 'files')"
        nets = [n.strip() for v in up.fields.get("platform_net", []) for n in v.replace(",", " ").split() if n.strip()]
        tz = (up.fields.get("tz") or [""])[-1].strip() or None
        for n in nets:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                problem = f"platform_net: {_cut(n)!r} is not a network (CIDR such as 198.51.100.0/24)"
        if tz:
            try:
                if not _ZONE_NAME.fullmatch(tz):
                    raise ValueError(tz)
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
                problem = f"tz: unknown time zone {_cut(tz)!r} (use an IANA name such as Europe/Berlin)"
        if problem:
            shutil.rmtree(folder, ignore_errors=True)
            return None, problem, 400
        files = [{"name": f["name"], "bytes": f["bytes"]} for f in up.files]
        self.store.add(id, files, up.total, nets, tz)
        try:
            if self.full():
                raise asyncio.QueueFull
            self.queue.put_nowait(id)
        except asyncio.QueueFull:
            self.store.delete(id)
            shutil.rmtree(folder, ignore_errors=True)
            return None, "the queue is full; try again in a minute", 503
        return id, None, 202

    def delete(self, id: str) -> bool:
        if not self.store.delete(id):
            return False
        proc = self.procs.get(id)
        if proc is not None:
            _kill(proc)  # its worker notices and removes the folder
        else:
            shutil.rmtree(self.folder(id), ignore_errors=True)
        return True

    def status(self, id: str, with_report: bool = True) -> dict[str, Any] | None:
        row = self.store.get(id)
        if row is None:
            return None
        out = self.folder(id) / "out"
        if row["status"] == "running":
            with contextlib.suppress(OSError, ValueError):
                row["progress"] = json.loads((out / "progress.json").read_text())
        if row["status"] == "done" and with_report:
            with contextlib.suppress(OSError, ValueError):  # removed from the data directory by hand
                row["report"] = json.loads((out / "report.json").read_text())
        return row


def _cut(value: str, limit: int = 100) -> str:
    """A value from a form, short enough for a message."""
    return value if len(value) <= limit else value[:limit] + "…"


def _kill(proc: multiprocessing.Process) -> None:
    """SIGKILL an analysis and whatever it started (it leads its own process group once running)."""
    pid = proc.pid
    if pid is not None and proc.exitcode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
    proc.kill()


def create_app(settings: Settings) -> FastAPI:
    """The ASGI application (``uvicorn`` serves it; tests call it directly)."""
    settings.check()
    hosts = HostPolicy(settings.host, settings.port, settings.allowed_hosts)
    service_box: dict[str, Service] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service = Service(settings)
        service_box["s"] = service
        await service.start()
        yield
        await service.stop()

    app = FastAPI(
        title="authtriage",
        version=__version__,
        summary="Upload logs; read why logins fail.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def svc() -> Service:
        return service_box["s"]

    def authorized(request: Request) -> bool:
        if not settings.token:
            return True
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(
            auth[7:].strip().encode(), settings.token.encode()
        ):
            return True
        cookie = request.cookies.get(COOKIE)
        return bool(cookie) and hmac.compare_digest(cookie.encode(), svc().session.encode())

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        refused = hosts.refusal(request.method, request.headers)
        if refused is not None:
            return JSONResponse({"detail": refused[1]}, status_code=refused[0], headers={"Cache-Control": "no-store"})
        if not path.startswith(_PUBLIC) and not authorized(request):
            if path.startswith("/api/") or path == "/openapi.json" or request.method != "GET":
                return JSONResponse(
                    {"detail": "a token is required (Authorization: Bearer …)"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return RedirectResponse("/login", status_code=303)
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin: "no-referrer" makes a browser send "Origin: null" with the page's own posts
        response.headers["Referrer-Policy"] = "same-origin"
        if path.startswith(("/api/", "/analyses")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _pages().get_template(name).render(version=__version__, token=bool(settings.token), **context)
        return HTMLResponse(html, status_code=status)

    def _get(id: str) -> dict[str, Any]:
        row = svc().status(id, with_report=False) if valid_id(id) else None
        if row is None:
            raise HTTPException(404, "no such analysis")
        return row

    def problems(*codes: int, text: bool = False) -> dict[int | str, dict[str, Any]]:
        """Documented answers: every request may meet the host check (400) and the token (401);
        every one that changes something, the origin check (403). Always JSON, also from a route
        whose own answer is text (``text``: a model would be documented as text there)."""
        if text:
            json_problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            return {c: {"description": _PROBLEMS[c], "content": json_problem} for c in sorted({400, 401, *codes})}
        return {code: {"model": Problem, "description": _PROBLEMS[code]} for code in sorted({400, 401, *codes})}

    errors = problems(403, 413, 503, 507)

    # ---- API ------------------------------------------------------------------------
    @app.post(
        "/api/analyses",
        status_code=202,
        response_model=AnalysisCreated,
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["files"],
                            "properties": {
                                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                "platform_net": {"type": "string", "description": "CIDRs, comma or space separated"},
                                "tz": {"type": "string", "description": "IANA zone for logs without one"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def create_analysis(request: Request):
        """Upload one or more files or archives (field ``files``, repeatable) to analyze."""
        id, problem, code = await svc().submit(request)
        if id is None:
            headers = {"Retry-After": "30"} if code == 503 else None
            return JSONResponse({"detail": problem}, status_code=code, headers=headers)
        return JSONResponse({"id": id, "status": "queued", "url": f"/analyses/{id}"}, status_code=202)

    @app.get("/api/analyses", response_model=list[AnalysisStatus], responses=problems())
    async def list_analyses(limit: int = 50):
        """Recent analyses, newest first (without their reports)."""
        return svc().store.recent(max(1, min(limit, 500)))

    @app.get("/api/analyses/{id}", response_model=AnalysisStatus, responses=problems(404))
    async def get_analysis(id: IdParam):
        """Status, and the JSON report once done."""
        _get(id)
        return svc().status(id)

    @app.get("/api/analyses/{id}/report.json", responses=problems(404, 409))
    async def report_json(id: IdParam):
        """The report as JSON."""
        return _report_file(id, "json", "application/json")

    @app.get(
        "/api/analyses/{id}/report.md",
        response_class=MarkdownResponse,
        responses=problems(404, 409, text=True),
    )
    async def report_md(id: IdParam):
        """The report as Markdown."""
        return _report_file(id, "md", "text/markdown; charset=utf-8")

    @app.delete("/api/analyses/{id}", status_code=204, responses=problems(403, 404))
    async def delete_analysis(id: IdParam):
        """Delete an analysis, its uploads and its reports (stops it if it is running)."""
        if not svc().delete(id):
            raise HTTPException(404, "no such analysis")
        return Response(status_code=204)

    def _report_file(id: str, fmt: str, media: str) -> Response:
        row = _get(id)
        if row["status"] != "done":
            raise HTTPException(409, f"the analysis is {row['status']}" + (f": {row['error']}" if row["error"] else ""))
        return FileResponse(_existing(id, fmt), media_type=media)

    def _existing(id: str, fmt: str) -> Path:
        path = svc().folder(id) / "out" / f"report.{fmt}"
        if not path.is_file():
            raise HTTPException(404, f"the report.{fmt} of this analysis is missing from the data directory")
        return path

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"ok": True, "queued": svc().queue.qsize(), "running": len(svc().procs)}

    # ---- pages ----------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request):
        return page("index.html.j2", analyses=svc().store.recent(50), max_upload=settings.max_upload)

    @app.post("/analyses", include_in_schema=False)
    async def create_from_form(request: Request):
        id, problem, code = await svc().submit(request)
        if id is None:
            resp = page("problem.html.j2", status=code, problem=problem)
            if code == 503:
                resp.headers["Retry-After"] = "30"
            return resp
        return RedirectResponse(f"/analyses/{id}", status_code=303)

    @app.get("/analyses/{id}", response_class=HTMLResponse, include_in_schema=False)
    async def show(id: str):
        if not valid_id(id):
            raise HTTPException(404, "no such analysis")
        row = _get(id)
        if row["status"] == "done":
            resp = FileResponse(_existing(id, "html"), media_type="text/html; charset=utf-8")
            resp.headers["Content-Security-Policy"] = REPORT_CSP
            return resp
        return page("status.html.j2", a=svc().status(id, with_report=False))

    @app.post("/analyses/{id}/delete", include_in_schema=False)
    async def delete_from_form(id: str):
        if valid_id(id):
            svc().delete(id)
        return RedirectResponse("/", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page():
        return page("login.html.j2", failed=False)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        from urllib.parse import parse_qs

        raw = b""
        async for chunk in request.stream():  # a sign-in form is short: never a whole large body in memory
            raw += chunk
            if len(raw) > LOGIN_LIMIT:
                return page("problem.html.j2", status=413, problem=f"a sign-in is at most {LOGIN_LIMIT} bytes")
        body = raw.decode("utf-8", "replace")

        given = (parse_qs(body).get("token") or [""])[0]
        if settings.token and hmac.compare_digest(given.encode(), settings.token.encode()):
            resp = RedirectResponse("/", status_code=303)
            secure = request.url.scheme == "https"
            resp.set_cookie(COOKIE, svc().session, httponly=True, samesite="strict", secure=secure, max_age=86400 * 7)
            return resp
        return page("login.html.j2", status=401, failed=True)

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return page("problem.html.j2", status=exc.status_code, problem=str(exc.detail))

    return app
