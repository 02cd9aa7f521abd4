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
import itertools
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ._lifeline import die_with_parent
from .errors import InputError
from .ingest.sources import Limits, Skipped, Source, is_url, iter_sources
from .ingest.workers import let_go

__all__ = ["LAZY_FORMATS", "fill_examples", "lines_at"]

LAZY_FORMATS = {"syslog", "evtx"}  # formats whose raw text is fetched here (line number, record id)
_CHUNK = 4 << 20
EVTX_GROUP = 64  # EVTX files whose quoted records are rendered together (one task)


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


def _found_by_walk(name: str, paths: list[str], base: str) -> bool:
    """Whether ``name`` is a regular file that walking ``paths`` names so: the path of one of
    them, or beneath one of them with no link on the way (a walk follows none) and no ``!``
    (an archive member's name, or a file named like one: the walk tells them apart).
    Relative names are taken from ``base``."""
    for p in paths:
        if p == "-" or is_url(p):
            continue
        top = str(Path(p))
        if name == top:
            return "!" not in name and os.path.isfile(os.path.join(base, name))
        if name.startswith(top.rstrip(os.sep) + os.sep):
            rest = name[len(top.rstrip(os.sep)) + 1 :]
            if "!" in rest:
                return False
            at = os.path.join(base, name)
            # every folder and the file itself as named: a link anywhere below `top` resolves elsewhere
            return os.path.isfile(at) and os.path.realpath(at) == os.path.join(
                os.path.realpath(os.path.join(base, top)), os.path.normpath(rest)
            )
    return False


def fill_examples(
    findings: list[dict[str, Any]],
    paths: list[str],
    formats: dict[str, str | None],
    limits: Limits,
    jobs: int = 1,
    base: str | None = None,
) -> int:
    """Give the findings' examples from lazily read sources their text; returns how many.
    With ``jobs`` > 1, plain files on disk are read again by worker processes. With ``base``
    (another process's working directory, on a cluster's worker), only the plain files the
    inputs name are read, from there; the rest is left to that process. EVTX files
    on disk are rendered EVTX_GROUP at a time (:func:`.ingest.winreaders.evtx_texts_of_files`)."""
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
    from .ingest.winreaders import evtx_texts, evtx_texts_of_files

    filled = 0
    # workers only for more than one file: for one, forking this process (large by now) costs
    # more than it saves
    jobs = jobs if len(wanted) > 1 else 1
    pool: ProcessPoolExecutor | None = None
    pending: list[tuple[Future, list[dict[int, list[dict]]]]] = []  # each a list of texts: one per file

    def fill(texts: dict[int, str] | None, by_line: dict[int, list[dict]]) -> None:
        nonlocal filled
        for number, text in (texts or {}).items():
            for ex in by_line[number]:
                ex["text"] = text
                filled += 1

    def submit(by_lines: list[dict[int, list[dict]]], call, *args) -> None:
        nonlocal pool
        if pool is None:
            pool = ProcessPoolExecutor(
                jobs,
                mp_context=multiprocessing.get_context("fork"),
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
        pending.append((pool.submit(call, *args), by_lines))

    # the files named in `wanted` that a walk of `paths` finds as plain files are opened by
    # name (a share's few files, not a walk of a fleet's tree each); the walk for the others
    here = base if base is not None else os.curdir
    named = {str(Path(base, n)) if base is not None else n: n for n in wanted if _found_by_walk(n, paths, here)}
    direct = list(named)
    rest = paths if len(direct) < len(wanted) and base is None else []
    evtx_files: list[tuple[str, dict[int, list[dict]]]] = []  # EVTX files on disk: rendered together, below
    try:
        for item in itertools.chain(iter_sources(direct, limits), iter_sources(rest, limits)):
            name = named.get(item.name, item.name)
            if isinstance(item, Skipped) or name not in wanted:
                continue
            if item.name in named and not _found_by_walk(name, paths, here):
                continue  # (changed since it was looked at: a link now; opened, it is not quoted)
            by_line = wanted.pop(name)
            evtx = formats.get(name) == "evtx"
            if evtx and item.path is not None:
                evtx_files.append((item.path, by_line))
            elif jobs > 1 and item.path is not None:  # a plain file: a worker opens it itself
                submit([by_line], _lines_of_file, item.path, sorted(by_line))
            else:
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
        groups = [evtx_files[k : k + EVTX_GROUP] for k in range(0, len(evtx_files), EVTX_GROUP)]
        for group in groups:
            args = [(path, sorted(by_line)) for path, by_line in group]
            by_lines = [by_line for _, by_line in group]
            if jobs > 1 and (len(groups) > 1 or pending):
                submit(by_lines, evtx_texts_of_files, args)
            else:
                for texts, by_line in zip(evtx_texts_of_files(args), by_lines, strict=True):
                    fill(texts, by_line)
        for future, by_lines in pending:
            try:
                got = future.result()
            except (InputError, OSError):
                continue  # as above
            for texts, by_line in zip(got if isinstance(got, list) else [got], by_lines, strict=True):
                fill(texts, by_line)
    finally:
        if pool is not None:
            let_go(pool)
    return filled
