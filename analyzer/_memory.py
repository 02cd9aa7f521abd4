"""Give freed memory back to the operating system between the big steps.

glibc keeps the memory of freed arrays in its heap, fragmented, so a process that built
and dropped several large frames stays as large as its largest moment. ``malloc_trim``
hands the free pages back; elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["release"]


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


_TRIM = _malloc_trim()


def release() -> None:
    """Return free heap pages to the system (cheap: a walk over the free lists), glibc's
    and those of pyarrow's own allocator (jemalloc or mimalloc keep freed pages for reuse)."""
    if _TRIM is not None:
        _TRIM(0)
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
