"""What tells a host's role: the signs of a domain controller, from the ``domain_controller``
section of ``data/windows_events.yaml`` (Windows event semantics live there)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._yaml import line_of, load_yaml
from ..errors import RuleError
from ..schema import UNKNOWN_HOST
from ._sections import only

__all__ = ["DomainControllerSigns", "domain_controller_signs", "host_roles", "windows_events_path"]

WINDOWS_LOGS = ("evtx", "windows-xml", "windows-json", "pfirewall")
LINUX_LOGS = ("syslog", "journal")

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


def host_roles(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Each host's role, with the evidence that decided it."""
    out: list[dict[str, Any]] = []
    if events.empty:
        return out
    hosts = events["host"]
    if isinstance(hosts.dtype, pd.CategoricalDtype):  # the schema's: codes, no copy of the column
        codes = hosts.cat.codes.to_numpy()
        host_idx = np.where(codes < 0, len(hosts.cat.categories), codes)  # no host: a host too
        labels = [*hosts.cat.categories, np.nan]
    else:
        host_idx, labels = pd.factorize(hosts, use_na_sentinel=False)
    every = [(UNKNOWN_HOST if pd.isna(h) else str(h)) for h in labels]
    present = np.zeros(len(every), dtype=bool)
    present[host_idx] = True  # (marked in place: np.bincount would copy the codes as int64)
    names = [every[i] for i in np.flatnonzero(present)]

    def distinct(col: str) -> dict[str, set]:
        """Per host the distinct values of ``col`` (as text): a table of hosts by values
        marked from the rows' codes (no array of (host, value) pairs as long as the column)."""
        values = events[col]
        where = host_idx
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes, texts = values.cat.codes.to_numpy(), [str(v) for v in values.cat.categories]
        else:  # only the rows with a value (an event id column is empty on Linux hosts)
            have = values.notna().to_numpy()
            codes, uniques = pd.factorize(values[have])
            texts, where = [str(v) for v in uniques], host_idx[have]
        seen = np.zeros((len(every), len(texts)), dtype=bool)
        known = codes >= 0
        if known.all():
            seen[where, codes] = True
        else:
            seen[where[known], codes[known]] = True
        out: dict[str, set] = {}
        for h, c in zip(*(a.tolist() for a in np.nonzero(seen)), strict=True):
            out.setdefault(every[h], set()).add(texts[c])
        return out

    ids_by, channels_by, logs_by = distinct("event_id"), distinct("channel"), distinct("log")
    dc = domain_controller_signs()  # data/windows_events.yaml
    for name in sorted(set(names)):
        evidence: list[str] = []
        dc_ids = sorted(int(i) for i in ids_by.get(name, ()) if int(i) in dc.event_ids)
        channels = {str(c) for c in channels_by.get(name, ())}
        logs = {str(x) for x in logs_by.get(name, ())}
        if dc_ids:
            evidence.append(
                f"Kerberos KDC events {', '.join(map(str, dc_ids))} in its own Security log (only DCs log them)"
            )
        ds = sorted(channels & set(dc.channels))
        if ds:
            evidence.append(f"directory-service channels: {', '.join(ds)}")
        if evidence:
            role = "domain-controller"
        elif logs & set(WINDOWS_LOGS) or channels:
            role = "windows"
            evidence.append(f"Windows event logs ({', '.join(sorted(logs & set(WINDOWS_LOGS)))}), no KDC events")
        elif logs & set(LINUX_LOGS):
            role = "linux"
            evidence.append(f"Linux logs ({', '.join(sorted(logs & set(LINUX_LOGS)))})")
        else:
            role = "unknown"
            evidence.append("no log kind that tells")
        out.append({"name": name, "role": role, "role_evidence": evidence})
    return out
