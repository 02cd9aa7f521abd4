"""authtriage: explain failed logins in Windows and Linux logs."""

from __future__ import annotations

import os

# numpy marks every array of 4 MiB or more MADV_HUGEPAGE. Where the kernel's THP defrag
# setting is `madvise` and no huge pages are free, each first touch of such memory stalls
# in synchronous compaction before falling back to 4 KiB pages (numpy/numpy#31590): on the
# 2-core bench machine a fresh 400 MB array took 0.88 s instead of 0.22 s, and a 1 M-line
# `analyze` ~10 % longer. The analyzer's big arrays are short-lived, so huge pages gain it
# little; an explicit setting by the user still wins. Read by numpy when it is imported.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
# numpy's OpenBLAS starts a thread per core at import, which then polls for work it never
# gets here (the analyzer does no linear algebra): 1.5 % of an EVTX read's CPU on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

__all__ = ["__version__", "read_events", "IngestOptions", "IngestResult", "InputReport"]


def __getattr__(name: str):  # lazy: keep `import analyzer` cheap for the CLI
    if name in {"read_events", "IngestOptions", "IngestResult", "InputReport"}:
        from . import ingest

        return getattr(ingest, name)
    raise AttributeError(name)
