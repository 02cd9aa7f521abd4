"""Give freed memory back to the operating system between the big steps.

glibc keeps the memory of freed arrays in its heap, fragmented, so a process that built
and dropped several large frames stays as large as its largest moment. ``malloc_trim``
hands the free pages back; elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable

__all__ = ["release", "keep_heap", "large_arrays_from_heap", "one_run", "thaw"]


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


_TRIM = _malloc_trim()
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


_KEEP = False  # set by keep_heap: this process keeps its free memory


def keep_heap(limit: int = 256 << 20) -> None:
    """Serve allocations below ``limit`` from the heap and keep freed memory there (for a
    worker that parses one batch after another): by default glibc maps each large
    array afresh and unmaps it when freed, so every batch faults in zeroed pages again.
    :func:`release` then keeps up to KEEP_FREE of free heap: trimming after each file cost a
    worker more in faulting the pages in again for the next one than the memory was worth
    (the worker exits when its pool closes, and that hands everything back)."""
    global _KEEP
    _KEEP = True
    large_arrays_from_heap(limit)


def large_arrays_from_heap(limit: int = 256 << 20) -> None:
    """Serve allocations below ``limit`` from the heap, and keep up to twice that free at
    its top: glibc otherwise maps every array above 32 MB afresh (faulting in zeroed
    pages, ~0.25 ms per MB) and unmaps it when freed. :func:`release` still trims."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, limit)
    mallopt(_M_TRIM_THRESHOLD, 2 * limit)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd")
        + ("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc 2.33+
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def _free_heap() -> int | None:
    """Bytes free in glibc's main heap, or None when unknown."""
    return int(_MALLINFO2().fordblks) if _MALLINFO2 is not None else None


KEEP_FREE = 256 << 20  # a worker keeps up to this much free heap for its next task


def release(keep: bool = True) -> None:
    """Return free heap pages to the system (cheap: a walk over the free lists), glibc's
    and those of pyarrow's own allocator (jemalloc or mimalloc keep freed pages for reuse).
    In a worker that keeps its heap (:func:`keep_heap`), only when more than KEEP_FREE is
    free (what a large file left behind), unless ``keep`` is false."""
    if keep and _KEEP and (free := _free_heap()) is not None and free <= KEEP_FREE:
        return
    if _TRIM is not None:
        _TRIM(0)
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()


_THAW = True  # frozen objects go back to the collector when the work that froze them ends


def thaw() -> None:
    """Undo a ``gc.freeze()`` made before forking workers (or while python-evtx allocates),
    unless this process is one run that ends soon (see :func:`one_run`)."""
    if _THAW:
        gc.unfreeze()


def one_run() -> None:
    """Tune this process for one large run that ends with it (the CLI's ``events`` and
    ``analyze``): large arrays served from the heap (:func:`large_arrays_from_heap`), and
    objects frozen out of the collector's way stay frozen. Thawing puts them all back in the
    oldest generation, whose next (full) collection then walks every one of them: ~0.1 s of
    a 3.7 s bundle run with two jobs. Staying frozen costs only the cyclic garbage among them,
    which is not collected before the process exits (refcounting still frees the rest)."""
    global _THAW
    _THAW = False
    large_arrays_from_heap()
