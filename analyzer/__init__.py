"""authtriage: explain failed logins in Windows and Linux logs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "read_events", "IngestOptions", "IngestResult", "InputReport"]


def __getattr__(name: str):  # lazy: keep `import analyzer` cheap for the CLI
    if name in {"read_events", "IngestOptions", "IngestResult", "InputReport"}:
        from . import ingest

        return getattr(ingest, name)
    raise AttributeError(name)
