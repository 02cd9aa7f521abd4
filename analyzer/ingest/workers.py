"""Worker processes: how many to start (:func:`usable_cpus`), the pools of a read
(:func:`pool`, :func:`in_workers`, :func:`close_pools`), and pools let go without waiting
for their workers to exit (:func:`let_go`).

A read's workers fork from the reading process with the message catalog loaded, one pool
per size for the rest of the read; they keep their heaps from call to call, and exit when
the read is done (idle, they would hold their memory through the analysis).

``ProcessPoolExecutor.shutdown(wait=False)`` returns at once and the workers free their
memory and exit in the background, while the caller goes on. At interpreter exit,
``concurrent.futures`` wakes every pool's manager thread that is still alive; on Python
3.11 that wake-up is not locked against the manager thread closing its pipe at the same
moment, and now and then the run ends with "Exception ignored … OSError: [Errno 9] Bad
file descriptor" on stderr (fixed in CPython 3.12.8/3.13.1, gh-125451). Pools let go
through :func:`let_go` have their manager threads joined first, by a hook that runs
before that wake-up; ``concurrent.futures`` would join them at that point anyway, so the
exit waits no longer than before.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .._lifeline import die_with_parent
from .._memory import keep_heap, thaw
from .catalog import load_catalog

__all__ = ["close_pools", "in_worker", "in_workers", "join_let_go", "let_go", "pool", "usable_cpus"]

_LEAVING: list[threading.Thread] = []
_HOOKED = False


def let_go(pool: ProcessPoolExecutor) -> None:
    """Shut ``pool`` down without waiting; its manager thread is joined at exit."""
    global _HOOKED
    thread = getattr(pool, "_executor_manager_thread", None)  # None before the first submit
    pool.shutdown(wait=False)
    if not isinstance(thread, threading.Thread):
        return
    _LEAVING[:] = [t for t in _LEAVING if t.is_alive()]
    _LEAVING.append(thread)
    register = getattr(threading, "_register_atexit", None)
    if not _HOOKED and register is not None:
        # hooks run newest first, so this one runs before concurrent.futures' own
        register(join_let_go)
        _HOOKED = True


def join_let_go() -> None:
    """Wait for the manager threads of the pools let go (their workers have exited then)."""
    while _LEAVING:
        _LEAVING.pop().join()


def usable_cpus(root: str = "/sys/fs/cgroup", cgroup_file: str = "/proc/self/cgroup") -> int:
    """How many CPUs this process can use (the default number of workers): the CPUs it
    may run on (taskset, cpusets), capped by a cgroup CPU quota (``docker --cpus``, a
    Kubernetes limit, systemd's CPUQuota=). ``os.cpu_count()`` counts the host's CPUs: in a
    container limited to 2 of 64 it would start 64 workers, each with its own memory."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, cgroup_file)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup", cgroup_file: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota (in CPUs) of this process's cgroup and its ancestors, the smallest
    one set; None without one. cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``)."""
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        lines = []
    found: list[float] = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: "0::/path"
            base, name = Path(root), "cpu.max"
        elif "cpu" in controllers.split(","):  # v1: "4:cpu,cpuacct:/path"
            base, name = Path(root) / controllers, "cpu.cfs_quota_us"
            if not base.is_dir():
                base = Path(root) / "cpu"
        else:
            continue
        here = base / path.strip("/")
        while True:
            quota = _quota_at(here, name)
            if quota is not None:
                found.append(quota)
            if here == base or base not in here.parents:
                break
            here = here.parent
    return min(found) if found else None


def _quota_at(folder: Path, name: str) -> float | None:
    try:
        if name == "cpu.max":  # "max 100000" (none) or "200000 100000"
            limit, period = (folder / name).read_text().split()[:2]
            return None if limit == "max" else int(limit) / int(period)
        limit = int((folder / name).read_text())  # -1: none
        period = int((folder / "cpu.cfs_period_us").read_text())
        return limit / period if limit > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


_POOLS: dict[int, ProcessPoolExecutor] = {}


def close_pools() -> None:
    """Let the workers of this read exit (in the background: their results are in)."""
    while _POOLS:
        let_go(_POOLS.popitem()[1])
        thaw()


def pool(jobs: int) -> ProcessPoolExecutor:
    """One pool per size for the rest of a read (workers fork with the catalog loaded)."""
    running = _POOLS.get(jobs)
    if running is not None and getattr(running, "_broken", False):  # a worker died: start afresh
        let_go(_POOLS.pop(jobs))
        running = None
    if running is None:
        load_catalog().auth_filter()
        # what exists now is shared with the workers, which fork from here: kept out of
        # the collector's scans, its pages are not copied by them (a worker's collector
        # would otherwise touch every object it inherited); thawed when the pool closes
        gc.freeze()
        running = _POOLS[jobs] = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_start,
            initargs=(os.getpid(),),
        )
    return running


_IN_WORKER = False


def _worker_start(parent: int) -> None:
    global _IN_WORKER
    _IN_WORKER = True
    die_with_parent(parent)  # not left blocked on a pipe after a kill -9 of the read
    keep_heap()


def in_worker() -> bool:
    """Whether this is one of the read's worker processes (which then use no thread pools
    of their own: the workers are the parallelism)."""
    return _IN_WORKER


def in_workers(fn: Callable, calls: Iterable[tuple], jobs: int) -> Iterator:
    """``fn(*call)`` for each call, in the read's worker processes, the results in order; at
    most two calls per worker in flight (bounded memory). Workers keep their heaps from call
    to call (see _worker_start); when the calls are done or abandoned, they exit before this
    process joins what they gave (its largest moment)."""
    running = pool(jobs)
    pending: deque = deque()
    try:
        for call in calls:
            pending.append(running.submit(fn, *call))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        close_pools()
