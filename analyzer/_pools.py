"""Process pools let go without waiting for their workers to exit.

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

import threading
from concurrent.futures import ProcessPoolExecutor

__all__ = ["let_go", "join_let_go"]

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
