"""Evidence on demand: the original text of the few lines a report quotes.

``analyze`` reads syslog-framed logs and EVTX files (Rust backend) without keeping each
event's original text (on a large log those texts are most of the memory); once the
findings are known, what their examples cite is read again from the inputs: lines by
line number (a scan for newlines, no parsing), EVTX records by record id (only the
chunks whose headers hold those ids are parsed). Other formats keep their ``raw`` text
as they are read.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from ._lifeline import die_with_parent
from .errors import InputError
from .ingest.sources import Limits, Skipped, Source, iter_sources
from .ingest.workers import let_go

__all__ = ["LAZY_FORMATS", "fill_examples", "lines_at"]

LAZY_FORMATS = {"syslog", "evtx"}  # formats whose raw text is fetched here (line number, record id)
_CHUNK = 4 << 20


def _text(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    line = line[line.rfind(b"\x00") + 1 :]  # a line after a crash hole: read from the text after it (ingest.holes)
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


def _lines_of_file(path: str, wanted: list[int]) -> dict[int, str]:
    """:func:`lines_at` of a plain file, opened here (in a worker process)."""
    with open(path, "rb") as fh:
        return lines_at(Source(name=path, stream=fh, path=path), wanted)


def fill_examples(
    findings: list[dict[str, Any]],
    paths: list[str],
    formats: dict[str, str | None],
    limits: Limits,
    jobs: int = 1,
) -> int:
    """Give the findings' examples from lazily read sources their text; returns how many.
    With ``jobs`` > 1, plain files on disk are read again by worker processes."""
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
    from .ingest.winreaders import evtx_texts

    filled = 0
    # workers only for more than one file: for one, forking this process (large by now) costs
    # more than it saves
    jobs = jobs if len(wanted) > 1 else 1
    pool: ProcessPoolExecutor | None = None
    pending: list[tuple[Future, dict[int, list[dict]]]] = []

    def fill(texts: dict[int, str], by_line: dict[int, list[dict]]) -> None:
        nonlocal filled
        for number, text in texts.items():
            for ex in by_line[number]:
                ex["text"] = text
                filled += 1

    try:
        for item in iter_sources(paths, limits):
            if isinstance(item, Skipped) or item.name not in wanted:
                continue
            by_line = wanted.pop(item.name)
            evtx = formats.get(item.name) == "evtx"
            if jobs > 1 and item.path is not None:  # a plain file: a worker opens it itself
                if pool is None:
                    pool = ProcessPoolExecutor(
                        jobs,
                        mp_context=multiprocessing.get_context("fork"),
                        initializer=die_with_parent,
                        initargs=(os.getpid(),),
                    )
                if evtx:
                    future = pool.submit(evtx_texts, item.path, item.name, sorted(by_line))
                else:
                    future = pool.submit(_lines_of_file, item.path, sorted(by_line))
                pending.append((future, by_line))
                if not wanted:
                    break
                continue
            try:
                if evtx:
                    texts = evtx_texts(item.on_disk() or io.BytesIO(item.read()), item.name, sorted(by_line))
                else:
                    texts = lines_at(item, sorted(by_line))
            except (InputError, OSError):
                continue  # the reading already reported it; the examples stay without text
            fill(texts, by_line)
            if not wanted:
                break
        for future, by_line in pending:
            try:
                fill(future.result(), by_line)
            except (InputError, OSError):
                continue  # as above
    finally:
        if pool is not None:
            let_go(pool)
    return filled
