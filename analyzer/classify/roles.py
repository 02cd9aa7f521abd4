"""What tells a host's role: the signs of a domain controller, from the ``domain_controller``
section of ``data/windows_events.yaml`` (Windows event semantics live there)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .._yaml import line_of, load_yaml
from ..errors import RuleError
from ._sections import only

__all__ = ["DomainControllerSigns", "domain_controller_signs", "windows_events_path"]

SECTION = "domain_controller"


@dataclass(frozen=True, slots=True)
class DomainControllerSigns:
    event_ids: tuple[int, ...]  # KDC events: only a DC logs them in its own Security log
    channels: tuple[str, ...]  # directory-service channels


def windows_events_path() -> Path:
    return Path(str(resources.files("analyzer") / "data" / "windows_events.yaml"))


@cache
def domain_controller_signs(path: str | None = None) -> DomainControllerSigns:
    """Read (once) and check the signs; a problem is a RuleError at ``file:line``."""
    p = Path(path) if path else windows_events_path()
    block = only(p.read_text(encoding="utf-8"), SECTION)  # a fraction of a millisecond; the whole table ~40 ms
    if block is None:
        raise RuleError(f"no '{SECTION}:' section (event_ids, channels)", source=f"{p}:1")
    doc = load_yaml(p, block)
    spec = doc.get(SECTION) if isinstance(doc, dict) else None
    line = line_of(doc, 1)  # the section's own
    if not isinstance(spec, dict) or set(spec) - {"__line__"} != {"event_ids", "channels"}:
        raise RuleError(f"'{SECTION}' takes event_ids and channels (two lists)", source=f"{p}:{line}")
    ids, channels = spec["event_ids"], spec["channels"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise RuleError(f"'{SECTION}' event_ids is a list of event ids, not {ids!r}", source=f"{p}:{line}")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise RuleError(f"'{SECTION}' channels is a list of channel names, not {channels!r}", source=f"{p}:{line}")
    return DomainControllerSigns(tuple(ids), tuple(channels))
