"""Worker processes that die with their parent.

A worker forked by authtriage must not outlive it: after a ``kill -9`` of ``analyze`` or of a
scheduled run, a worker blocked writing to a pipe nobody reads would wait forever and keep
the files and locks it inherited. Linux's ``PR_SET_PDEATHSIG`` has the kernel send it SIGKILL
when its parent goes; elsewhere this is a no-op.
"""

from __future__ import annotations

import os
import signal

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel to kill this process when its parent exits; exit at once if ``parent``
    (the pid that forked this process) is already gone."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux (no prctl)
        return
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
