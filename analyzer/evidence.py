"""Evidence on demand: the original text of the few lines a report quotes.

``analyze`` reads syslog-framed logs without keeping each event's original line (on a
large log those lines are most of the memory); once the findings are known, the lines
their examples cite are read again from the inputs by line number — a scan for
newlines, no parsing. Other formats keep their ``raw`` text as they are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError
from .ingest.sources import Limits, Skipped, Source, iter_sources

__all__ = ["LAZY_FORMATS", "fill_examples", "lines_at"]

LAZY_FORMATS = {"syslog"}  # formats whose raw text is fetched here by line number
_CHUNK = 4 << 20


def _text(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", "replace")


def lines_at(src: Source, wanted: list[int]) -> dict[int, str]:
    """The text of the 1-based line numbers ``wanted`` (sorted) of a source."""
    out: dict[int, str] = {}
    i, done, carry = 0, 0, b""  # done: lines complete before `carry`
    for chunk in src.chunks(_CHUNK):
        data = carry + chunk
        nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        while i < len(wanted) and wanted[i] <= done + nl.size:
            k = wanted[i] - done - 1
            start = 0 if k == 0 else int(nl[k - 1]) + 1
            out[wanted[i]] = _text(data[start : int(nl[k])])
            i += 1
        if i == len(wanted):
            return out
        cut = int(nl[-1]) + 1 if nl.size else 0
        carry = data[cut:]
        done += int(nl.size)
    if carry and i < len(wanted) and wanted[i] == done + 1:
        out[wanted[i]] = _text(carry)
    return out


def fill_examples(
    findings: list[dict[str, Any]], paths: list[str], formats: dict[str, str | None], limits: Limits
) -> int:
    """Give the findings' examples from lazily read sources their text; returns how many."""
    wanted: dict[str, dict[int, list[dict]]] = {}
    for f in findings:
        for ex in f.get("examples", []):
            if ex.get("text") is not None:
                continue
            source, _, loc = ex["where"].rpartition(":")
            if formats.get(source) in LAZY_FORMATS and loc.isdigit():
                wanted.setdefault(source, {}).setdefault(int(loc), []).append(ex)
    if not wanted:
        return 0
    filled = 0
    for item in iter_sources(paths, limits):
        if isinstance(item, Skipped) or item.name not in wanted:
            continue
        by_line = wanted.pop(item.name)
        try:
            texts = lines_at(item, sorted(by_line))
        except InputError:
            continue  # the reading already reported it; the examples stay without text
        for number, text in texts.items():
            for ex in by_line[number]:
                ex["text"] = text
                filled += 1
        if not wanted:
            break
    return filled
