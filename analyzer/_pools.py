"""Worker processes: how many to start (:func:`usable_cpus`), and pools let go without
waiting for their workers to exit (:func:`let_go`).

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

import math
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

__all__ = ["let_go", "join_let_go", "usable_cpus"]

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
