"""The start of every analysis process: a memory limit, and death with the server.

The server forks each analysis from a fork server. Killed with SIGKILL, the server cleans up
nothing, so each analysis ends itself when the server is gone:

- it holds the read end of a pipe whose only write end is the server's (the *lifeline*): end of
  file there means the server died, and a thread then kills the analysis's process group;
- it gives up its copy of the fork server's "alive" pipe (multiprocessing hands one to every child
  so that the fork server lives as long as any of them), so the fork server exits as soon as the
  server does, and the kernel then kills the analysis (``PR_SET_PDEATHSIG``) even while its thread
  cannot run (a C call that holds the GIL);
- it leads a process group of its own, which the server kills at the time limit, on a delete and
  when it stops: whatever the analysis started goes with it (and when it ends by itself, it kills
  what is left of its group).

The resource tracker exits by itself once the last of these processes has.

The memory limit is ``RLIMIT_AS``: the address space an analysis may add to what the process
maps when it starts (the loaded analyzer maps ~1.4 GiB, mostly pyarrow's reserved and untouched
arena). An analysis that hits it fails with a message that says so, also when the pipeline caught
the allocation failure and carried on without an input.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .._files import atomic_write

__all__ = ["run", "memory_message", "looks_like_memory", "vm_size", "machine_memory", "default_max_memory"]

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# what an allocation that failed under RLIMIT_AS looks like once caught and written down (by type
# name or errno, not by words a file name could hold): Python's and numpy's MemoryError, pyarrow's
# ArrowMemoryError, C++ and Rust allocation failures, mmap (ENOMEM) or dlopen refused, a thread
# whose stack cannot be mapped (Python's, Arrow's thread pool's)
_MEMORY_SIGNS = re.compile(
    r"\w*MemoryError\b|std::bad_alloc|\[Errno 12\]|failed to map segment from shared object"
    r"|can't start new thread|Failed to launch worker thread|memory allocation of \d+ bytes failed"
)


def looks_like_memory(text: str | None) -> bool:
    """Whether an error message is that of an allocation that failed."""
    return bool(text) and bool(_MEMORY_SIGNS.search(text))


def memory_message(limit: int, where: str | None = None) -> str:
    """What an analysis that hit the memory limit reports."""
    at = f" while reading {where}" if where else ""
    return (
        f"the analysis exceeded the memory limit of {limit >> 20} MiB (--max-memory){at}: "
        "upload fewer or smaller files, or start the server with a higher --max-memory"
    )


def vm_size() -> int:
    """The address space this process maps, in bytes (0 where /proc does not tell)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def machine_memory(root: str = "/sys/fs/cgroup", cgroup_file: str = "/proc/self/cgroup") -> int:
    """The memory this process may use, in bytes: the machine's, or less where a cgroup limits
    it (cgroup v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, this cgroup's or an ancestor's)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            base, name = Path(root), "memory.max"
        elif "memory" in controllers.split(","):
            base, name = Path(root) / "memory", "memory.limit_in_bytes"
        else:
            continue
        here = base / path.strip("/")
        while base == here or base in here.parents:
            try:
                value = (here / name).read_text().strip()
                if value.isdigit() and 0 < int(value) < (total or 1 << 62):
                    total = int(value)
            except OSError:
                pass
            here = here.parent
    return total


def default_max_memory() -> int:
    """``--max-memory`` when not given: half the memory this process may use, at least 512 MiB."""
    return max(machine_memory() // 2, 512 << 20)


def _die() -> None:
    """Kill this process and everything it started, at once."""
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _end_the_rest() -> None:
    """Kill what the analysis started and left behind (the rest of its process group)."""
    me = os.getpid()
    if os.getpgid(0) != me:
        return
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                group = int(fh.read().rsplit(b")", 1)[1].split()[2])  # after pid (comm): state ppid pgrp
        except (OSError, ValueError, IndexError):
            continue
        if group == me and pid != me:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _watch(lifeline: Connection) -> None:
    """End the process when the server's end of the lifeline closes (the server never writes)."""

    def wait() -> None:
        with contextlib.suppress(OSError, EOFError, ValueError):
            lifeline.poll(None)
        _die()

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def _die_with_parent() -> None:
    """SIGKILL from the kernel when the parent (the fork server) exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _let_fork_server_go() -> None:
    """Close this process's copy of the fork server's "alive" pipe (it would keep the fork server,
    and so this process, alive after the server died); a fork server this process needs is then
    one of its own."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.close(fd)
    server._forkserver_alive_fd = None
    server._forkserver_address = None
    server._forkserver_pid = None


def _limit_memory(extra: int) -> int | None:
    """Allow ``extra`` bytes of address space beyond what is mapped now; the limit in bytes (None
    where the system does not say what is mapped: no /proc)."""
    mapped = vm_size()
    if not mapped:
        return None
    limit = mapped + extra
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def _memory_hit(out: Path) -> tuple[bool, str | None]:
    """Whether the analysis in ``out`` ran into the memory limit, and the input it was reading."""
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return False, None
    if not result.get("ok"):
        return looks_like_memory(result.get("error")), None
    try:
        raw = (out / "report.json").read_text()
        if not _MEMORY_SIGNS.search(raw):
            return False, None  # the common case, without parsing a large report
        inputs = json.loads(raw).get("inputs") or []
    except MemoryError:
        return True, None
    except (OSError, ValueError, AttributeError):
        return False, None
    hit = [i for i in inputs if isinstance(i, dict) and looks_like_memory(i.get("error"))]
    return bool(hit), (str(hit[0].get("name")) if hit else None)


def run(lifeline: Connection, max_memory: int | None, out_dir: str, target: Callable[..., None], args: tuple) -> None:
    """Process entry point: limits and the lifeline in place, then ``target(*args)``; an analysis
    that ran into the memory limit leaves a result that says so (``out_dir/result.json``)."""
    os.setsid()
    _die_with_parent()
    _let_fork_server_go()
    _watch(lifeline)  # at end of file already if the server died before this process started
    try:
        if max_memory:
            _run_limited(max_memory, out_dir, target, args)
        else:
            target(*args)
    finally:
        _end_the_rest()


def _run_limited(max_memory: int, out_dir: str, target: Callable[..., None], args: tuple) -> None:
    try:
        _limit_memory(max_memory)
        target(*args)
        hit, where = _memory_hit(Path(out_dir))
    except MemoryError:
        hit, where = True, None
    if hit:
        outcome: dict[str, Any] = {"ok": False, "error": memory_message(max_memory, where)}
        atomic_write(Path(out_dir) / "result.json", json.dumps(outcome))
