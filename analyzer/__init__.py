"""authtriage: explain failed logins in Windows and Linux logs.

The front door is :func:`triage`: ``triage(["ticket.zip"]).render("html")``. Every name
of ``__all__`` is imported on first use, so that ``import analyzer`` (and the command line's
start) stays cheap.
"""

import os as _os

# numpy marks every array of 4 MiB or more MADV_HUGEPAGE. Where the kernel's THP defrag
# setting is `madvise` and no huge pages are free, each first touch of such memory stalls
# in synchronous compaction before falling back to 4 KiB pages (numpy/numpy#31590): on the
# 2-core bench machine a fresh 400 MB array took 0.88 s instead of 0.22 s, and a 1 M-line
# `analyze` ~10 % longer. The analyzer's big arrays are short-lived, so huge pages gain it
# little; an explicit setting by the user still wins. Read by numpy when it is imported.
_os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
# numpy's OpenBLAS starts a thread per core at import, which then polls for work it never
# gets here (the analyzer does no linear algebra): 1.5 % of an EVTX read's CPU on 2 cores.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

# each name exported, and the module it comes from (imported when the name is first used)
_LAZY = {
    "triage": "pipeline",
    "triage_events": "pipeline",
    "Report": "pipeline",
    "TriageOptions": "pipeline",
    "NothingReadable": "pipeline",
    "read_events": "ingest",
    "IngestOptions": "ingest",
    "IngestResult": "ingest",
    "InputReport": "ingest",
    "Profile": "config",
    "load_profile": "config",
    "RuleSet": "classify",
    "load_rules": "classify",
    "AuthtriageError": "errors",
}

__all__ = [
    "__version__",
    "triage",
    "triage_events",
    "Report",
    "TriageOptions",
    "NothingReadable",
    "read_events",
    "IngestOptions",
    "IngestResult",
    "InputReport",
    "Profile",
    "load_profile",
    "RuleSet",
    "load_rules",
    "AuthtriageError",
]


def __getattr__(name: str):  # lazy: keep `import analyzer` cheap for the CLI
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
