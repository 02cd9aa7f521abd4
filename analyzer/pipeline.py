"""One front door: :func:`triage` runs the whole pipeline for every caller.

read the inputs (:mod:`analyzer.ingest`) → classify and analyze the events, the quoted lines
read again when the events kept none (:mod:`analyzer.analysis`, :mod:`analyzer.evidence`) →
the report's document, complete (:mod:`analyzer.summary`) → rendered on demand
(:mod:`analyzer.report`). The command line's ``analyze`` and the upload server call
:func:`triage`; scheduled runs call :func:`triage_events` over the events they have stored.
For example::

    from analyzer import triage

    report = triage(["ticket-1234.zip"])
    print(report.data["hosts"][0]["headline"])
    Path("report.html").write_text(report.render("html"), encoding="utf-8")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis import Examples, analyze_events
from .classify import RuleSet, load_rules
from .classify.engine import Classified
from .classify.model import VERDICTS
from .config import Profile
from .engine import Engine, LocalEngine, open_engine
from .errors import InputError
from .evidence import fill_examples
from .ingest import IngestOptions, IngestResult, InputReport, read_events
from .ingest.sources import read_once
from .ingest.store import SPILL_BYTES, SPILL_EVENTS, EventStore
from .report import FORMATS
from .report import render as _render
from .shares import run_shares, summarize_shares
from .summary import summarize

__all__ = ["triage", "triage_events", "Report", "TriageOptions", "NothingReadable", "FAIL_ON"]

FAIL_ON = ("any", *VERDICTS)  # what Report.exit_code takes: a verdict, or any but expected

PathLike = str | os.PathLike[str]


@dataclass
class TriageOptions:
    """How :func:`triage` reads its inputs, and what its caller sees on the way.

    ``ingest.lazy_raw`` (the default here): the events keep no original text; the few lines
    the report quotes are read again from the inputs at the end (not from standard input,
    which is read once and keeps its lines)."""

    ingest: IngestOptions = field(default_factory=lambda: IngestOptions(lazy_raw=True))
    # the directory the inputs are named in: relative names, as the report shows them. The
    # process's working directory is this directory while triage runs (not for threads)
    base: PathLike | None = None
    progress: Callable[[InputReport], None] | None = None  # after each input is read
    on_read: Callable[[IngestResult], None] | None = None  # once all are read, before the analysis
    # a Dask scheduler (tcp://HOST:8786) to run the reads and the analysis on; None: local processes
    cluster: str | None = None
    # the events read are held in memory up to this many bytes and events; past either they
    # are spilled to disk by host and analyzed a share of hosts at a time (analyzer.shares)
    spill_bytes: int = SPILL_BYTES
    spill_events: int = SPILL_EVENTS
    workdir: PathLike | None = None  # where they are spilled (default: the system's temporary directory)


class NothingReadable(InputError):
    """No input could be read (each one failed or is not a log); ``inputs`` says why, per input."""

    def __init__(self, inputs: list[InputReport]) -> None:
        super().__init__("nothing readable in the inputs given")
        self.inputs = inputs


@dataclass(eq=False)
class Report:
    """What a triage found: ``data``, the report's JSON document as a dict, and its renderings.

    ``classification``: per event of :func:`triage_events`'s events, its cause, verdict,
    confidence, rule and cadence (None from :func:`triage`, which keeps no events)."""

    data: dict[str, Any]
    classification: Classified | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"<Report: {len(self.data['hosts'])} host(s), {len(self.data['findings'])} finding(s)>"

    def render(self, fmt: str = "json") -> str:
        """The report as ``json``, ``html`` (self-contained), ``md`` or ``text``."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        return _render(self.data, fmt)

    def exit_code(self, fail_on: str | None) -> int:
        """1 when a finding has the verdict ``fail_on`` (``any``: any verdict but expected), else 0."""
        if not fail_on:
            return 0
        if fail_on not in FAIL_ON:
            raise ValueError(f"unknown verdict {fail_on!r}: one of {', '.join(FAIL_ON)}")
        verdicts = {f["verdict"] for f in self.data["findings"]}
        if fail_on == "any":
            return int(bool(verdicts - {"expected"}))
        return int(fail_on in verdicts)


def triage(
    inputs: Iterable[PathLike] | PathLike,
    *,
    profile: Profile | None = None,
    rules: RuleSet | Iterable[PathLike] | None = None,
    options: TriageOptions | IngestOptions | None = None,
) -> Report:
    """Read ``inputs`` (files, directories, archives; ``-`` for standard input), classify
    every login they record and say why logins fail.

    ``profile``: the platform's networks, accounts and ports (default: :class:`Profile`'s; see
    :func:`analyzer.load_profile`), its ``timezone`` for logs without one unless the options
    name a zone. ``rules``: a rule set, or directories of rule files whose rules replace the
    shipped ones by id. ``options``: :class:`TriageOptions`, or just the reading's
    :class:`IngestOptions` (as given: lazy raw text only if they ask for it).
    Raises :class:`NothingReadable` when no input could be read, an
    :class:`~analyzer.errors.AuthtriageError` for options that make no sense."""
    paths = [os.fspath(inputs)] if isinstance(inputs, str | os.PathLike) else [os.fspath(p) for p in inputs]
    opts = _triage_options(options)
    profile = profile if profile is not None else Profile()
    ruleset = _ruleset(rules)  # rule directories named relative to where the caller is
    ingest = opts.ingest
    lazy = ingest.lazy_raw and not any(read_once(p) for p in paths)  # a pipe cannot be read again
    if lazy != ingest.lazy_raw or (ingest.tz is None and profile.timezone):
        ingest = replace(ingest, lazy_raw=lazy, tz=ingest.tz or profile.timezone)
    workdir = os.path.abspath(opts.workdir) if opts.workdir is not None else None
    store = EventStore(opts.spill_bytes, workdir, opts.spill_events)
    with (
        contextlib.chdir(opts.base) if opts.base is not None else contextlib.nullcontext(),
        open_engine(opts.cluster, ingest.jobs) as engine,
        contextlib.closing(store),
    ):
        result = read_events(paths, ingest, progress=opts.progress, engine=engine, store=store)
        if opts.on_read is not None:
            opts.on_read(result)
        if not result.readable:
            raise NothingReadable(result.inputs)
        if result.stored is not None:  # spilled by host: analyzed a share of hosts at a time
            quoting = (paths, {r.name: r.format for r in result.inputs}, ingest.limits, None) if lazy else None
            parts = run_shares(store, ruleset, profile, ingest, engine, quoting)
            data = summarize_shares(result, ingest, profile, parts)
            data["engine"] = engine.describe()
            return Report(data)
        examples: Examples | None = None
        if lazy:
            formats = {r.name: r.format for r in result.inputs}

            def examples(findings: list[dict[str, Any]], jobs: int) -> None:  # in each share's process, if split
                fill_examples(findings, paths, formats, ingest.limits, jobs)

        return _report(result, ingest, profile, ruleset, examples, engine=engine)


def triage_events(
    events: pd.DataFrame,
    *,
    inputs: Iterable[InputReport] = (),
    profile: Profile | None = None,
    rules: RuleSet | Iterable[PathLike] | None = None,
    options: TriageOptions | IngestOptions | None = None,
    engine: Engine | None = None,
) -> Report:
    """:func:`triage` over events already read (normalized, as :func:`analyzer.read_events`
    gives them; a scheduled run's window of stored events). ``inputs``: what was read, as the
    report lists it; ``options``: their ``since``/``until`` are the window the report states,
    their ``jobs`` the processes the analysis may use, their ``cluster`` a Dask scheduler whose
    workers analyze shares of the hosts. ``engine``: one already open (the caller's to close),
    instead of one opened for this call. The report keeps the events' ``classification``."""
    opts = _triage_options(options)
    result = IngestResult(events=events, inputs=list(inputs))
    profile, ruleset = profile if profile is not None else Profile(), _ruleset(rules)
    with contextlib.nullcontext(engine) if engine is not None else open_engine(opts.cluster, opts.ingest.jobs) as used:
        return _report(result, opts.ingest, profile, ruleset, keep=True, engine=used)


def _report(
    result: IngestResult,
    options: IngestOptions,
    profile: Profile,
    ruleset: RuleSet,
    examples: Examples | None = None,
    keep: bool = False,
    engine: Engine | None = None,
) -> Report:
    """Analyze the events read, then the document (``keep``: with the events' classification;
    ``engine``: what ran the tasks, as the document's ``engine`` says)."""
    engine = engine if engine is not None else LocalEngine(options.jobs)
    analysis = analyze_events(result.events, ruleset, profile, jobs=options.jobs, examples=examples, engine=engine)
    data = summarize(result, options, profile, ruleset, analysis)
    data["engine"] = engine.describe()
    return Report(data, classification=analysis["classification"] if keep else None)


def _triage_options(options: TriageOptions | IngestOptions | None) -> TriageOptions:
    if options is None:
        return TriageOptions()
    if isinstance(options, IngestOptions):
        return TriageOptions(ingest=options)
    if isinstance(options, TriageOptions):
        return options
    raise TypeError(f"options: a TriageOptions or an IngestOptions, not {type(options).__name__}")


def _ruleset(rules: RuleSet | Iterable[PathLike] | None) -> RuleSet:
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str | os.PathLike):
        rules = [rules]
    return load_rules([Path(r) for r in rules or ()])
