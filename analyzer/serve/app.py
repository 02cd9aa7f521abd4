"""``authtriage serve``: an upload page and a JSON API over the analyzer.

Uploads stream to the data directory; a bounded queue feeds a fixed number of workers,
each analysis in a process of its own (killed at the time limit); the index is SQLite
and the reports are files, so a restart loses nothing finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import multiprocessing
import shutil
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
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from .. import __version__
from ..ingest.workers import usable_cpus
from .store import Store, new_id, now_iso, valid_id
from .uploads import TooLarge, UploadError, receive
from .worker import child_main

__all__ = ["Settings", "create_app"]

HERE = Path(__file__).resolve().parent
COOKIE = "authtriage_session"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"
_PUBLIC = ("/login", "/static/", "/healthz", "/favicon.ico")
IdParam = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{16}$", description="The analysis id.")]


@dataclass
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    token: str | None = None
    workers: int = field(default_factory=usable_cpus)
    queue_size: int = 32  # analyses waiting for a worker, beyond those running
    max_upload: int = 2 * 1024**3  # bytes per upload (all its files)
    time_limit: float = 900.0  # seconds per analysis
    keep_uploads: bool = False
    max_total_bytes: int = 64 * 1024**3  # uncompressed, per analysis
    max_ratio: float = 1000.0
    max_inputs: int = 10_000  # files and archive members per analysis
    target: Callable[..., None] = child_main  # what a worker process runs (tests give their own)

    def check(self) -> None:
        """Refuse an unsafe setup: anything but loopback needs a token."""
        if not self.token and not _loopback(self.host):
            raise ValueError(
                f"binding to {self.host} exposes uploaded logs to the network: set a token "
                "(--token or AUTHTRIAGE_TOKEN), or bind to 127.0.0.1"
            )
        if self.workers < 1 or self.queue_size < 0:
            raise ValueError("--workers must be at least 1 and --queue at least 0")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


@cache
def _pages() -> jinja2.Environment:
    from ..report import plural

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
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
        self.ctx.set_forkserver_preload(["analyzer.serve.worker"])
        self.session = hmac.new((settings.token or "").encode(), b"authtriage-session", hashlib.sha256).hexdigest()

    def folder(self, id: str) -> Path:
        return self.root / "analyses" / id

    async def start(self) -> None:
        for id in self.store.interrupted():
            self._drop_uploads(id)
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for p in list(self.procs.values()):
            p.kill()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.store.close()

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
        limits = {"max_total_bytes": s.max_total_bytes, "max_ratio": s.max_ratio, "max_inputs": s.max_inputs}
        proc = self.ctx.Process(
            target=s.target,
            args=(str(folder / "uploads"), str(out), row["platform_net"], row["tz"], limits),
            daemon=True,
        )
        self.store.update(id, status="running", started=now_iso())
        proc.start()
        self.procs[id] = proc
        try:
            await asyncio.to_thread(proc.join, s.time_limit)
            if proc.is_alive():
                proc.kill()
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
            code = proc.exitcode
            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            self.store.update(id, status="failed", finished=now_iso(), error=f"the analysis process died ({why})")
            return
        if result.get("ok"):
            self.store.update(
                id, status="done", finished=now_iso(), findings=result.get("findings"), headline=result.get("headline")
            )
        else:
            self.store.update(id, status="failed", finished=now_iso(), error=result.get("error") or "failed")

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
                problem = f"platform_net: {n!r} is not a network (CIDR such as 198.51.100.0/24)"
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                problem = f"tz: unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)"
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
            proc.kill()  # its worker notices and removes the folder
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
            row["report"] = json.loads((out / "report.json").read_text())
        return row


def create_app(settings: Settings) -> FastAPI:
    """The ASGI application (``uvicorn`` serves it; tests call it directly)."""
    settings.check()
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
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
                return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
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
        response.headers["Referrer-Policy"] = "no-referrer"
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

    errors = {400: {"model": Problem}, 401: {"model": Problem}, 413: {"model": Problem}, 503: {"model": Problem}}

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

    @app.get("/api/analyses", response_model=list[AnalysisStatus])
    async def list_analyses(limit: int = 50):
        """Recent analyses, newest first (without their reports)."""
        return svc().store.recent(max(1, min(limit, 500)))

    @app.get("/api/analyses/{id}", response_model=AnalysisStatus, responses={404: {"model": Problem}})
    async def get_analysis(id: IdParam):
        """Status, and the JSON report once done."""
        _get(id)
        return svc().status(id)

    @app.get("/api/analyses/{id}/report.json", responses={404: {"model": Problem}, 409: {"model": Problem}})
    async def report_json(id: IdParam):
        """The report as JSON."""
        return _report_file(id, "json", "application/json")

    @app.get(
        "/api/analyses/{id}/report.md",
        response_class=PlainTextResponse,
        responses={404: {"model": Problem}, 409: {"model": Problem}},
    )
    async def report_md(id: IdParam):
        """The report as Markdown."""
        return _report_file(id, "md", "text/markdown; charset=utf-8")

    @app.delete("/api/analyses/{id}", status_code=204, responses={404: {"model": Problem}})
    async def delete_analysis(id: IdParam):
        """Delete an analysis, its uploads and its reports (stops it if it is running)."""
        if not svc().delete(id):
            raise HTTPException(404, "no such analysis")
        return Response(status_code=204)

    def _report_file(id: str, fmt: str, media: str) -> Response:
        row = _get(id)
        if row["status"] != "done":
            raise HTTPException(409, f"the analysis is {row['status']}" + (f": {row['error']}" if row["error"] else ""))
        return FileResponse(svc().folder(id) / "out" / f"report.{fmt}", media_type=media)

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
            resp = FileResponse(svc().folder(id) / "out" / "report.html", media_type="text/html; charset=utf-8")
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
        body = (await request.body())[:4096].decode("utf-8", "replace")
        from urllib.parse import parse_qs

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
