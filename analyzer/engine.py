"""Where a triage's tasks run: the engine seam.

A triage has two kinds of task, the same functions whichever engine runs them: reading one
input (:func:`analyzer.ingest.runner._read_file`, ``_read_bytes``) and analyzing one share of
the hosts (:func:`analyze_share`). An engine takes them:

- :class:`LocalEngine` (the default, nothing to install): the read's worker processes of
  :mod:`analyzer.ingest.workers`, ``--jobs`` of them, forked on this machine.
- :class:`DaskEngine` (``--cluster tcp://HOST:8786``, ``[cluster] address``,
  ``AUTHTRIAGE_CLUSTER``; the ``cluster`` extra): a Dask distributed cluster. Dask places the
  tasks, moves their data and runs a task again elsewhere when its worker dies; the workers
  must see the inputs at the same paths (inputs are sent to them as absolute paths) and run
  the same authtriage (checked when connecting).

Every way a cluster can fail ends in one line (:class:`EngineError`, exit 2 on the command
line) or a complete report, never a hang: the connection has a timeout, the workers' versions
are compared on connecting, and a watchdog fails the run when the scheduler goes away or no
worker is left for :data:`NO_WORKERS_SECONDS`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .errors import InputError

__all__ = [
    "CONNECT_SECONDS",
    "DaskEngine",
    "Engine",
    "EngineError",
    "LocalEngine",
    "NO_WORKERS_SECONDS",
    "analyze_on_cluster",
    "analyze_share",
    "fingerprint",
    "open_engine",
]

CONNECT_SECONDS = 5.0  # to reach the scheduler (and a first worker) before the run fails
NO_WORKERS_SECONDS = 30.0  # a run with tasks pending and no worker for this long fails
RETRIES = 2  # a task whose own code raised runs again this many times (a dead worker's tasks always do)


class EngineError(InputError):
    """The engine cannot run the triage: the cluster is unreachable, incompatible or gone."""


class Engine:
    """What runs a triage's tasks, and the account of them the report gives (:meth:`describe`)."""

    name = "engine"
    remote = False  # tasks run in other processes that share nothing with this one but the files

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.tasks = 0

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        """Run ``fn(*args)`` as one task; its result (or exception) in the future returned."""
        raise NotImplementedError

    def count(self, n: int = 1) -> None:
        """Note ``n`` tasks run by the engine's workers outside :meth:`submit`."""
        self.tasks += n

    @property
    def in_flight(self) -> int:
        """How many reads may be out at once (bounded memory: their results wait in order)."""
        return 2 * self.workers

    def analyze(self, events: pd.DataFrame, ruleset, profile, examples=None) -> dict[str, Any]:
        """:func:`analyzer.analysis.analyze_events` with the host shares as this engine's tasks
        (a remote engine's; the local one forks its own, sharing the events)."""
        return analyze_on_cluster(self, events, ruleset, profile, examples)

    def describe(self) -> dict[str, Any]:
        """The report's ``engine``: its name, its workers, the tasks it ran."""
        return {"name": self.name, "workers": self.workers, "tasks": self.tasks}

    def sees(self, path: str) -> bool:
        """Whether every worker sees the directory ``path`` of this machine at that path."""
        return True

    def close(self) -> None:
        """Let go of what the engine holds."""


class LocalEngine(Engine):
    """The read's forked worker processes on this machine (``--jobs``)."""

    name = "local"

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        from .ingest import workers

        self.tasks += 1
        return workers.pool(self.workers).submit(fn, *args)


class DaskEngine(Engine):
    """A Dask distributed cluster, reached at ``address`` (``tcp://HOST:8786``)."""

    name = "dask"
    remote = True

    def __init__(self, address: str, connect_seconds: float = CONNECT_SECONDS) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise EngineError(
                f"--cluster {address}: the cluster extra is not installed (pip install 'authtriage[cluster]')"
            ) from None
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # its failures are told in one line here
        self.address = address
        try:
            self.client = Client(address, timeout=connect_seconds, set_as_default=False)
        except Exception as exc:  # noqa: BLE001  (no scheduler, a bad address, something else answering)
            raise EngineError(f"cannot reach the Dask scheduler at {address}: {_first_line(exc)}") from None
        try:
            try:
                self.client.wait_for_workers(1, timeout=connect_seconds)
            except (TimeoutError, OSError):
                raise EngineError(
                    f"the Dask scheduler at {address} has no workers (none joined in {connect_seconds:g} s)"
                ) from None
            self._check_workers()
        except BaseException:
            self.close()
            raise
        super().__init__(max(1, sum(self.client.nthreads().values())))
        self._pending: dict[cf.Future, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="authtriage-dask-watchdog", daemon=True)
        self._watchdog.start()

    def _check_workers(self) -> None:
        """The scheduler and every worker run this authtriage (same version and code) on the
        same Python (the scheduler unpickles the tasks, so it needs the same code too)."""
        mine = _identity()
        try:
            theirs = {"the scheduler": self.client.run_on_scheduler(_identity)}
            theirs.update(self.client.run(_identity, wait=True))
        except Exception as exc:  # noqa: BLE001  (an import error, or one raised while unpickling there)
            raise EngineError(
                f"the workers of {self.address} cannot run authtriage ({_first_line(exc)}): install the same "
                "authtriage on every worker (pip install 'authtriage[cluster]')"
            ) from None
        for where, ident in theirs.items():
            if tuple(ident) != mine:
                who = where if where == "the scheduler" else f"worker {where}"
                raise EngineError(
                    f"{who} runs {_told(ident)}, this client {_told(mine)}: install the same authtriage "
                    "and Python on the scheduler and every worker, and restart them after an upgrade"
                )

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        """``fn(*args)`` on the cluster; data frames among the arguments are scattered first."""
        try:
            args = tuple(self.client.scatter(a, hash=False) if isinstance(a, pd.DataFrame) else a for a in args)
        except TimeoutError:  # Dask's "No valid workers found": every worker gone before the data left
            raise EngineError(f"the Dask cluster at {self.address} has no worker left to send the events to") from None
        task = self.client.submit(fn, *args, pure=False, retries=RETRIES)
        out: cf.Future = cf.Future()
        out.set_running_or_notify_cancel()
        with self._lock:
            self._pending[out] = task
            self.tasks += 1
        task.add_done_callback(functools.partial(self._settle, out))
        return out

    def _settle(self, out: cf.Future, task: Any) -> None:
        with self._lock:
            self._pending.pop(out, None)
        if out.done():  # failed by the watchdog already
            return
        try:
            result = task.result()
        except BaseException as exc:  # noqa: BLE001  (the task's own exception: the caller's to judge)
            with contextlib.suppress(cf.InvalidStateError):
                out.set_exception(exc)
            return
        with contextlib.suppress(cf.InvalidStateError):
            out.set_result(result)

    def _fail_pending(self, why: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for out, task in pending.items():
            with contextlib.suppress(Exception):
                task.cancel()
            with contextlib.suppress(cf.InvalidStateError):
                out.set_exception(EngineError(why))

    def _watch(self) -> None:
        """Fail the pending tasks when the scheduler is gone or no worker has been left for a while."""
        alone_since: float | None = None
        while not self._stop.wait(1.0):
            with self._lock:
                idle = not self._pending
            if idle:
                alone_since = None
                continue
            if self.client.status not in ("running", "connecting", "newly-created"):
                self._fail_pending(f"lost the Dask scheduler at {self.address} (client {self.client.status})")
                continue
            try:
                workers = len(self.client.nthreads())
            except Exception:  # noqa: BLE001  (a scheduler that does not answer is one gone)
                workers = 0
            if workers:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > NO_WORKERS_SECONDS:
                self._fail_pending(
                    f"the Dask cluster at {self.address} has had no worker for {NO_WORKERS_SECONDS:g} s: run stopped"
                )
                alone_since = None

    @property
    def in_flight(self) -> int:
        return 4 * self.workers  # a task's round trip through the scheduler costs more than a fork's pipe

    def sees(self, path: str) -> bool:
        """Whether each worker now in the cluster finds the directory ``path`` there (a cluster on
        this machine, or a work directory on a filesystem they share)."""
        try:
            found = self.client.run(os.path.isdir, path)
        except Exception:  # noqa: BLE001  (a cluster that cannot say: it does not)
            return False
        return bool(found) and all(found.values())

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        client = getattr(self, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=CONNECT_SECONDS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _told(ident: tuple) -> str:
    version, code, python = ident
    return f"authtriage {version} (code {code}) on Python {python}"


@functools.cache
def fingerprint() -> str:
    """A digest of this authtriage's code, rules and templates: equal on client and workers
    when they run the same authtriage, whatever its version string says."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    # named as the wheel lays them out (rules and templates inside the package), so that an
    # editable install and a wheel of the same code agree
    roots = [(package, "")]
    if not (package / "rules").is_dir():
        roots += [(package.parent / "rules", "rules/")]
        roots += [(package.parent / "reports" / "templates", "reports/templates/")]
    files = {}
    for root, prefix in roots:
        for path in root.rglob("*"):
            if path.suffix in (".py", ".yaml", ".yml", ".j2") and path.is_file():
                files[prefix + path.relative_to(root).as_posix()] = path
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes())
    return digest.hexdigest()[:12]


def _identity() -> tuple[str, str, str]:
    """What must be equal on client and workers (run on each worker when connecting)."""
    return (__version__, fingerprint(), "{}.{}".format(*sys.version_info[:2]))


@contextlib.contextmanager
def open_engine(cluster: str | None, jobs: int) -> Iterator[Engine]:
    """The engine of one triage: Dask at ``cluster`` when given, else ``jobs`` local processes."""
    engine: Engine = DaskEngine(cluster) if cluster else LocalEngine(jobs)
    try:
        yield engine
    finally:
        engine.close()


def analyze_share(events: pd.DataFrame, ruleset, profile) -> dict[str, Any]:
    """One task of the analysis: the hosts of ``events``, classified, their findings explained;
    sent back compact (findings as JSON text, classification columns as categoricals)."""
    from .analysis import analyze_serial, pack_share
    from .prose import explain

    out = analyze_serial(events, ruleset, profile)
    explain(out["findings"])
    return pack_share(out)


def analyze_on_cluster(engine: Engine, events: pd.DataFrame, ruleset, profile, examples=None) -> dict[str, Any]:
    """:func:`analyzer.analysis.analyze_events` on a remote engine: shares of whole hosts, each
    one task; the examples' lines read again here (the workers need not see relative paths)."""
    from .analysis import analyze_serial, host_shares, keeps_hosts_apart, merge_parts

    nhosts = events["host"].nunique(dropna=False) if len(events) else 0
    if nhosts == 0 or not keeps_hosts_apart(ruleset):
        out = analyze_serial(events, ruleset, profile)
    else:
        parts = [p for p in host_shares(events, min(nhosts, 2 * engine.workers)) if p.size]
        futures = [
            engine.submit(analyze_share, events.iloc[rows].reset_index(drop=True), ruleset, profile) for rows in parts
        ]
        out = merge_parts(events, parts, [f.result() for f in futures])
    if examples is not None:
        examples(out["findings"], 1)
    return out


def cluster_address(flag: str | None, configured: str | None) -> str | None:
    """The cluster to use: ``--cluster``, else ``AUTHTRIAGE_CLUSTER``, else the profile's
    ``[cluster] address``; an empty one means the local engine."""
    for value in (flag, os.environ.get("AUTHTRIAGE_CLUSTER"), configured):
        if value is not None:
            return value.strip() or None
    return None
