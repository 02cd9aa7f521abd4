"""The ``authtriage`` command: thin wrappers that parse options and call the library."""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import math
import os
import re
import shutil
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from . import __version__
from ._files import atomic_write
from ._memory import one_run
from .errors import AuthtriageError, UsageError
from .export import write_events
from .ingest import IngestOptions, InputReport, read_events
from .ingest.sources import Limits
from .ingest.workers import usable_cpus

app = typer.Typer(
    name="authtriage",
    help="Explain failed logins in Windows and Linux logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
samples_app = typer.Typer(help="Scenario logs for demos, tests and benchmarks.", no_args_is_help=True)
app.add_typer(samples_app, name="samples")
rules_app = typer.Typer(help="List and check the classification rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
schedule_app = typer.Typer(
    help="Scheduled reports: run the jobs of authtriage.toml, list past runs, print systemd/cron units.",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")


def _literal(text: str) -> str:
    """Help text shown as written: the help renderer (Rich, when typer uses it) takes
    ``[word]`` for a style and drops it, so "[[job]]" read "[]"."""
    if typer.core.HAS_RICH and typer.core.DEFAULT_MARKUP_MODE == "rich":
        return re.sub(r"(\[[a-z#/@][^[]*?])", r"\\\1", text)  # rich.markup.escape's rule
    return text


ConfigOpt = Annotated[
    Path | None, typer.Option(help=_literal("The configuration with [[job]] tables; also AUTHTRIAGE_CONFIG."))
]
JobOpt = Annotated[str | None, typer.Option("--job", help="Only this job.")]
RulesDir = Annotated[
    list[Path] | None, typer.Option("--rules", help="A directory of rule files; its rules replace shipped ones by id.")
]

_DEFAULT_LIMITS = Limits()
_REL = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | None, now: dt.datetime | None = None) -> pd.Timestamp | None:
    """``24h``/``7d`` (before now) or an ISO 8601 time (UTC when it has no zone)."""
    if text is None:
        return None
    m = _REL.match(text.strip())
    if m:
        now = now or dt.datetime.now(dt.UTC)
        try:
            return pd.Timestamp(now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}))
        except (OverflowError, ValueError):  # before year 1, or before pandas' 1677
            raise UsageError(f"{text!r} reaches back too far: times start in 1677 here") from None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"cannot read the time {text!r}: use ISO 8601 (2025-03-04T09:00) or 24h / 7d") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class EventFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class AnalyzeFormat(StrEnum):
    json = "json"
    html = "html"
    md = "md"
    text = "text"
    txt = "txt"  # the same as text, as the extension reads
    ticket = "ticket"  # each host's paragraph for the customer's ticket


class FailOn(StrEnum):
    attack = "attack"
    misconfiguration = "misconfiguration"
    any = "any"


Paths = Annotated[
    list[str],
    typer.Argument(
        help="Files, directories, archives; - for stdin; URLs: file:///path, or s3://bucket/dir (needs s3fs) and "
        "other fsspec filesystems.",
        show_default=False,
    ),
]
Since = Annotated[str | None, typer.Option(help="Only events at or after this time (ISO 8601, or 24h / 7d ago).")]
Until = Annotated[str | None, typer.Option(help="Only events before this time (ISO 8601, or 24h / 7d ago).")]


def _check_tz(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise typer.BadParameter("give an IANA zone name such as Europe/Berlin (or leave the option out for UTC)")
    return value


Tz = Annotated[
    str | None, typer.Option(help="IANA zone of timestamps that carry none (default UTC).", callback=_check_tz)
]
Year = Annotated[int | None, typer.Option(help="Year of the first line of year-less (RFC 3164) logs.")]


def _dash_is_stdout(value: Path | None) -> Path | None:
    return None if value is not None and str(value) == "-" else value


Output = Annotated[
    Path | None,
    typer.Option("-o", "--output", help="Write here instead of standard output (also: -).", callback=_dash_is_stdout),
]


def _positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{value} is not a positive number")
    return value


MaxTotal = Annotated[
    int, typer.Option(help="Refuse to read more uncompressed bytes than this in all.", callback=_positive)
]
MaxRatio = Annotated[
    float, typer.Option(help="Refuse compressed members that expand more than this.", callback=_positive)
]
MaxInputs = Annotated[
    int, typer.Option(help="Read at most this many files and archive members in all.", callback=_positive)
]
MaxEvents = Annotated[
    int, typer.Option(help="Keep at most this many events in all (each costs ~150 B at the peak).", callback=_positive)
]


class EvtxBackend(StrEnum):
    rust = "rust"
    python = "python"


Backend = Annotated[EvtxBackend, typer.Option("--evtx-backend", help="EVTX parser: rust (evtx, fast) or python.")]
_CPUS = usable_cpus()  # the default --jobs, read once (affinity and cgroup files)


def _check_jobs(value: int) -> int:
    if not 1 <= value <= _CPUS:
        raise typer.BadParameter(f"give 1 to {_CPUS} (the CPUs this process may use, quotas included)")
    return value


Jobs = Annotated[
    int,
    typer.Option(
        help="Worker processes for large inputs (default: the CPUs this process may use, quotas included).",
        callback=_check_jobs,
    ),
]


Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help=_literal(
            "Run on the Dask scheduler at this address (tcp://HOST:8786; also AUTHTRIAGE_CLUSTER, "
            "[cluster] address); its workers must see the inputs at the same paths. Default: local processes."
        ),
        show_default=False,
    ),
]


def _options(
    since, until, tz, year, limits: Limits, jobs, backend, keep_raw=True, lazy_raw=False
) -> IngestOptions:
    opts = IngestOptions(
        keep_raw=keep_raw,
        lazy_raw=lazy_raw,
        evtx_backend=str(backend),
        jobs=max(1, jobs),
        tz=tz,
        year=year,
        since=(start := parse_when(since)),
        until=(end := parse_when(until)),
        limits=limits,
    )
    opts.zone()
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since} is not before --until {until}: no event could be in that window")
    return opts


class _Progress:
    """One self-rewriting line on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()
        self.n = 0

    def __call__(self, rep: InputReport) -> None:
        self.n += 1
        if self.on:
            name = rep.name if len(rep.name) < 60 else "…" + rep.name[-59:]
            sys.stderr.write(f"\r\x1b[Kread {self.n} input(s): {name}")
            sys.stderr.flush()

    def done(self) -> None:
        if self.on and self.n:
            sys.stderr.write("\r\x1b[K")


def _fail(exc: AuthtriageError) -> typer.Exit:
    typer.echo(f"authtriage: {exc}", err=True)
    return typer.Exit(2)


_WARNINGS_SHOWN = 5  # per input on stderr; the report lists them all


def _report_problems(result, skips: bool = False, warnings: bool = False) -> None:
    """One line per input that failed (and, with ``skips``, per input skipped; with
    ``warnings``, per warning of an input, the first few), in input order."""
    for rep in result.inputs:
        if rep.error:
            typer.echo(f"authtriage: {rep.name}: {rep.error}", err=True)
        elif skips and rep.skipped:
            typer.echo(f"authtriage: {rep.name}: skipped: {rep.skip_reason}", err=True)
        if warnings and rep.warnings:
            for text in rep.warnings[:_WARNINGS_SHOWN]:
                typer.echo(f"authtriage: {rep.name}: warning: {text}", err=True)
            if len(rep.warnings) > _WARNINGS_SHOWN:
                typer.echo(f"authtriage: {rep.name}: {len(rep.warnings) - _WARNINGS_SHOWN:,} more warnings", err=True)


def _check_output(output: Path | None) -> None:
    """Fail before any reading when ``output`` cannot be written (a missing or read-only
    directory, a directory given as the file): else the whole run's work was lost at the end."""
    if output is None:
        return
    where = output.parent  # ("report.html": ".")
    problem = None
    if output.is_dir():
        problem = "it is a directory"
    elif not where.is_dir():
        problem = f"no directory {where}"
    elif output.exists() and not os.access(output, os.W_OK):
        problem = "not writable"
    elif not output.exists() and not os.access(where, os.W_OK | os.X_OK):
        problem = f"directory {where} is not writable"
    if problem:
        raise _cannot_write(output, problem)


def _cannot_write(output: Path | str, why: str | OSError) -> typer.Exit:
    """Say that ``output`` cannot be written, and why; the exit (2) to raise."""
    if isinstance(why, OSError):
        why = why.strerror or str(why)
    typer.echo(f"authtriage: cannot write {output}: {why}", err=True)
    return typer.Exit(2)


def _to_stdout(write: Callable[[], object]) -> None:
    """Run ``write`` (to standard output), then flush it. A reader that went away (``| head``)
    ends the run quietly with 1, as for any Python tool; a full disk is one line and 2."""
    try:
        write()
        sys.stdout.flush()
    except OSError as exc:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        if isinstance(exc, BrokenPipeError):
            raise typer.Exit(1) from None
        raise _cannot_write("standard output", exc) from None


def _write(text: str, output: Path | None) -> None:
    """The report to standard output, or to ``output``: a regular file is replaced whole (a
    reader, or a failed write, never leaves half a report in place of the last one)."""
    if output is None:
        _to_stdout(lambda: sys.stdout.write(text))
        return
    try:
        if output.exists() and not output.is_file():  # /dev/null, a pipe: written as it is
            output.write_text(text, encoding="utf-8")
        else:
            atomic_write(output, text)
    except OSError as exc:
        raise _cannot_write(output, exc) from None


def _read(paths, since, until, tz, year, limits: Limits, jobs, backend, keep_raw=True, lazy_raw=False, warnings=False):
    # one run over possibly large inputs, then the process exits: arrays of a few million
    # events come from the heap and go back to it instead of being mapped afresh each time
    # (on a large log ~10 % faster for ~50 MB more at the peak; docs/performance.md), and what
    # was frozen out of the collector's way before forking stays frozen
    one_run()
    try:
        opts = _options(since, until, tz, year, limits, jobs, backend, keep_raw, lazy_raw)
        progress = _Progress()
        result = read_events(paths, opts, progress=progress)
        progress.done()
    except AuthtriageError as exc:
        raise _fail(exc) from None
    # with nothing readable no report is written: the skipped inputs' reasons go to stderr too
    _report_problems(result, skips=not result.readable, warnings=warnings)
    if not result.readable:
        typer.echo("authtriage: nothing readable in the inputs given", err=True)
        raise typer.Exit(2)
    return opts, result


@app.command()
def events(
    paths: Paths,
    format: Annotated[EventFormat, typer.Option("--format", help="Output format.")] = EventFormat.jsonl,
    output: Output = None,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    year: Year = None,
    max_total_bytes: MaxTotal = _DEFAULT_LIMITS.max_total_bytes,
    max_ratio: MaxRatio = _DEFAULT_LIMITS.max_ratio,
    max_inputs: MaxInputs = _DEFAULT_LIMITS.max_inputs,
    max_events: MaxEvents = _DEFAULT_LIMITS.max_events,
    jobs: Jobs = _CPUS,
    evtx_backend: Backend = EvtxBackend.rust,
) -> None:
    """Print the normalized events, one per login attempt or observation.

    Example: authtriage events /var/log/auth.log --since 24h --format csv -o events.csv
    """
    _check_output(output)
    limits = Limits(
        max_total_bytes=max_total_bytes, max_ratio=max_ratio, max_inputs=max_inputs, max_events=max_events
    )
    # the events carry no report: an input's warnings (cut lines, damaged parts) go to stderr
    _, result = _read(paths, since, until, tz, year, limits, jobs, evtx_backend, warnings=True)
    if result.outside and not len(result.events):  # else an empty output reads as "no events"
        from .analysis import iso_utc

        first, last = (iso_utc(t) for t in result.read_span)
        span = f" (the events read run from {first} to {last})" if first else " (none has a time)"
        typer.echo(f"authtriage: all {result.outside:,} events read lie outside --since/--until{span}", err=True)
    if output is None:
        _to_stdout(lambda: write_events(result.events, sys.stdout, format.value))
        return
    try:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            write_events(result.events, fh, format.value)
    except OSError as exc:  # a full disk: not a traceback
        raise _cannot_write(output, exc) from None


@app.command()
def analyze(
    paths: Paths,
    format: Annotated[
        AnalyzeFormat | None,
        typer.Option(
            "--format",
            help="json, html, md, text (txt: text) or ticket (each host's paragraph to paste into the customer's "
            "ticket). Default: by -o's extension (.json, .html, .md, .txt, .ticket; none: json); without -o, text "
            "on a terminal, else json. Text is as wide as the terminal (COLUMNS), else 80 columns; in a file (-o), 80.",
        ),
    ] = None,
    output: Output = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Report on this host only (as the report names it); an unknown name lists them."),
    ] = None,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    year: Year = None,
    max_total_bytes: MaxTotal = _DEFAULT_LIMITS.max_total_bytes,
    max_ratio: MaxRatio = _DEFAULT_LIMITS.max_ratio,
    max_inputs: MaxInputs = _DEFAULT_LIMITS.max_inputs,
    max_events: MaxEvents = _DEFAULT_LIMITS.max_events,
    jobs: Jobs = _CPUS,
    evtx_backend: Backend = EvtxBackend.rust,
    config: Annotated[
        Path | None, typer.Option(help="Platform profile (authtriage.toml); also AUTHTRIAGE_CONFIG.")
    ] = None,
    platform_net: Annotated[
        list[str] | None, typer.Option("--platform-net", help="The platform's network (CIDR); repeatable.")
    ] = None,
    platform_account: Annotated[
        list[str] | None, typer.Option("--platform-account", help="An account the platform logs in with; repeatable.")
    ] = None,
    rules: RulesDir = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on", help="Exit 1 when a finding is an attack, a misconfiguration, or anything not expected."
        ),
    ] = None,
    cluster: Cluster = None,
) -> None:
    """Read the logs, classify every failed login, and report why logins fail.

    Example: authtriage analyze ticket-1234.zip --platform-net 198.51.100.0/24 -o report.html
    """
    from .classify import load_rules
    from .config import load_profile
    from .engine import cluster_address
    from .ingest import IngestResult
    from .pipeline import TriageOptions, triage  # here: `events` and the rest need none of these
    from .report import for_host, format_for, render

    try:
        profile = load_profile(config).with_overrides(platform_net, platform_account)
        ruleset = load_rules(rules or [])
    except AuthtriageError as exc:
        raise _fail(exc) from None
    tz = tz or profile.timezone
    try:  # before the reading: an extension that names no format is a usage error, not JSON
        fmt = format_for(str(output) if output else None, format.value if format else None, sys.stdout.isatty())
    except AuthtriageError as exc:
        raise _fail(exc) from None
    _check_output(output)
    limits = Limits(
        max_total_bytes=max_total_bytes, max_ratio=max_ratio, max_inputs=max_inputs, max_events=max_events
    )
    one_run()  # (as for `events`: see _read)
    progress = _Progress()

    def read(result: IngestResult) -> None:  # before the analysis: what could not be read, at once
        progress.done()
        # with nothing readable no report is written: the skipped inputs' reasons go to stderr too
        _report_problems(result, skips=not result.readable)

    try:
        # quoted lines of text logs and EVTX records are read again at the end instead of kept
        # for every event (not those of standard input, which cannot be read twice)
        opts = _options(since, until, tz, year, limits, jobs, evtx_backend, lazy_raw=True)
        report = triage(
            paths,
            profile=profile,
            rules=ruleset,
            options=TriageOptions(
                ingest=opts, progress=progress, on_read=read, cluster=cluster_address(cluster, profile.cluster)
            ),
        )
    except AuthtriageError as exc:  # nothing readable, too
        raise _fail(exc) from None
    if host is not None:
        try:
            report.data = for_host(report.data, host)
        except AuthtriageError as exc:
            raise _fail(exc) from None
    _write(render(report.data, fmt, width=text_width(output)), output)
    code = report.exit_code(fail_on.value if fail_on else None)
    if code:
        raise typer.Exit(code)


def text_width(output: Path | None) -> int:
    """The text report's width: a file's is 80 columns (whoever reads it later has a terminal
    of their own); standard output's is the terminal's, or COLUMNS, else (a pipe) 80."""
    from .report import TEXT_WIDTH

    if output is not None:
        return TEXT_WIDTH
    return shutil.get_terminal_size((TEXT_WIDTH, 24)).columns or TEXT_WIDTH


@samples_app.command("generate")
def samples_generate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the scenario logs into (made if missing).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 1,
    scale: Annotated[int, typer.Option(help="Lines of a large auth log (and half as many EVTX records); 0: none.")] = 0,
) -> None:
    """Write deterministic scenario logs (and, with --scale, a large auth log for benchmarks)."""
    from .samples import generate

    if out.exists() and not out.is_dir():
        raise _cannot_write(out, "it is not a directory (--out names the directory to write the logs into)")
    try:
        for path in generate(out, seed=seed, scale=scale):
            typer.echo(str(path))
    except OSError as exc:  # a read-only or full file system: one line, not a traceback
        raise _cannot_write(exc.filename or out, exc) from None


@rules_app.command("list")
def rules_list(rules: RulesDir = None) -> None:
    """List the rules in force: priority, id, cause, verdict, confidence, file.

    Example: authtriage rules list --rules ./my-rules
    """
    from .classify import load_rules

    try:
        ruleset = load_rules(rules or [])
    except AuthtriageError as exc:
        raise _fail(exc) from None
    for r in ruleset.rules:
        typer.echo(f"{r.priority:>5}  {r.id:<36} {r.cause:<26} {r.verdict:<17} {r.confidence:<7} {r.location}")


@rules_app.command("check")
def rules_check(paths: Annotated[list[Path] | None, typer.Argument(help="Rule files or directories.")] = None) -> None:
    """Check rule files (default: the shipped rules); print every problem as file:line: message.

    Exit status 2 when there are problems.
    """
    from .classify import check_rules
    from .resources import rules_dir

    found, errors = check_rules(paths or [rules_dir()])
    for e in errors:
        typer.echo(str(e), err=True)
    typer.echo(f"{len(found)} rule(s) valid, {len(errors)} problem(s)")
    if errors:
        raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where uploads, reports and the index are kept.")
    ] = Path("authtriage-data"),
    token: Annotated[
        str | None, typer.Option(envvar="AUTHTRIAGE_TOKEN", help="Require this token (Bearer header or sign-in).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Analyses run at once (default: the CPUs this process may use).")] = (
        _CPUS
    ),
    queue: Annotated[int, typer.Option(help="Analyses that may wait for a worker; beyond that: 503.")] = 32,
    max_upload: Annotated[int, typer.Option(help="Largest upload in bytes (all its files).")] = 2 * 1024**3,
    time_limit: Annotated[float, typer.Option(help="Seconds an analysis may take before it is stopped.")] = 900.0,
    max_memory: Annotated[
        int | None,
        typer.Option(
            metavar="MIB",
            help="Memory (MiB of address space) each analysis may add to the loaded analyzer; beyond it the "
            "analysis fails with a message that says so. Default: half the memory of the machine (or its "
            "cgroup); 0: no limit.",
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Another name the server answers to (repeatable): NAME, NAME:PORT, or the origin a reverse "
            "proxy serves it at, https://NAME. Requests for any other Host are refused (DNS rebinding).",
        ),
    ] = None,
    keep_uploads: Annotated[bool, typer.Option(help="Keep uploaded files after their analysis.")] = False,
    max_total_bytes: MaxTotal = _DEFAULT_LIMITS.max_total_bytes,
    max_ratio: MaxRatio = _DEFAULT_LIMITS.max_ratio,
    max_inputs: MaxInputs = _DEFAULT_LIMITS.max_inputs,
    max_events: MaxEvents = _DEFAULT_LIMITS.max_events,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help=_literal(
                "Run each analysis on the Dask scheduler at this address (tcp://HOST:8786; also "
                "AUTHTRIAGE_CLUSTER, [cluster] address of --config): its workers must see the data directory "
                "at the same path. Default: local processes."
            ),
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help=_literal("A configuration: only its [cluster] address is used here; also AUTHTRIAGE_CONFIG.")
        ),
    ] = None,
) -> None:
    """Serve the upload page and the API: upload logs, read the report a minute later.

    Anything but loopback needs a token of 16 characters or more.
    Example: AUTHTRIAGE_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    authtriage serve --host 0.0.0.0 --allowed-host triage.example.com --data-dir /var/lib/authtriage
    """
    import uvicorn

    from .config import load_profile
    from .engine import DaskEngine, cluster_address
    from .serve import Settings, create_app

    try:
        address = cluster_address(cluster, load_profile(config).cluster)
    except AuthtriageError as exc:
        raise _fail(exc) from None
    settings = Settings(
        data_dir=data_dir.resolve(),
        host=host,
        port=port,
        allowed_hosts=tuple(allowed_host or ()),
        token=token if token != "" else None,
        workers=workers,
        queue_size=queue,
        max_upload=max_upload,
        time_limit=time_limit,
        keep_uploads=keep_uploads,
        max_total_bytes=max_total_bytes,
        max_ratio=max_ratio,
        max_inputs=max_inputs,
        max_events=max_events,
        cluster=address,
    )
    if max_memory is not None:
        settings.max_memory = max_memory << 20 if max_memory else None  # a negative one is refused
    try:
        application = create_app(settings)
    except ValueError as exc:
        typer.echo(f"authtriage: {exc}", err=True)
        raise typer.Exit(2) from None
    try:  # here, not in the server's startup, where it was a traceback
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        probe = settings.data_dir / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        typer.echo(f"authtriage: cannot use {settings.data_dir} as the data directory: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    if address:  # reachable, with workers running this authtriage, now rather than at the first upload
        try:
            DaskEngine(address).close()
        except AuthtriageError as exc:
            raise _fail(exc) from None
    limit = f"{settings.max_memory >> 20} MiB" if settings.max_memory else "no limit"
    typer.echo(
        f"authtriage: serving http://{host}:{port}/ (data in {settings.data_dir}; each analysis: "
        f"{settings.time_limit:g} s, memory {limit}{'; on the Dask cluster at ' + address if address else ''})",
        err=True,
    )
    uvicorn.run(application, host=host, port=port, log_level="info", proxy_headers=False, timeout_graceful_shutdown=5)


EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the lock; try again later


@schedule_app.command("run")
def schedule_run(
    config: ConfigOpt = None,
    job: JobOpt = None,
    jobs: Jobs = _CPUS,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help=_literal(
                "Analyze on the Dask scheduler at this address (tcp://HOST:8786; also AUTHTRIAGE_CLUSTER, "
                "[cluster] address): the logs are read here and their events sent to the workers. "
                "Default: local processes."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the jobs once: read what is new, write the reports, remember where it stopped.

    Exit 0 when every job ran, 1 when one failed (the others still ran), 75 when another
    run is still going, 2 for configuration errors and a Dask cluster that cannot be reached
    or is lost.
    Example: authtriage schedule run --config /etc/authtriage/authtriage.toml
    """
    from .engine import cluster_address
    from .schedule import Busy, load_schedule, run_jobs
    from .schedule.trends import KINDS

    try:
        sched = load_schedule(config)
        if job:
            sched.job(job)
        address = cluster_address(cluster, sched.cluster)
        outcomes = run_jobs(sched, only=job, progress=_Progress(), jobs=jobs, cluster=address)
    except Busy as exc:
        typer.echo(f"authtriage: {exc}", err=True)
        raise typer.Exit(EXIT_BUSY) from None
    except AuthtriageError as exc:
        raise _fail(exc) from None
    for o in outcomes:
        if o.ok:
            counts = ", ".join(f"{len(o.trends.get(kind, []))} {kind}" for kind in KINDS)
            typer.echo(f"{o.job}: run {o.run_id}: {counts}; wrote {', '.join(o.reports)}")
        else:
            typer.echo(f"authtriage: job {o.job} failed: {o.error}", err=True)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


class HistoryFormat(StrEnum):
    text = "text"
    json = "json"


@schedule_app.command("history")
def schedule_history(
    config: ConfigOpt = None,
    job: JobOpt = None,
    format: Annotated[HistoryFormat, typer.Option("--format", help="text or json.")] = HistoryFormat.text,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
) -> None:
    """List past runs, newest first: what they read, what they found, what changed."""
    import json

    from .report import text_escape
    from .schedule import State, load_schedule
    from .schedule.trends import KINDS

    try:
        sched = load_schedule(config)
        if job:
            sched.job(job)
    except AuthtriageError as exc:
        raise _fail(exc) from None
    if not sched.state.exists():
        runs: list[dict] = []
    else:
        state = State(sched.state)
        runs = state.runs(job, limit=limit)
        state.close()
    if format == HistoryFormat.json:
        typer.echo(json.dumps(runs, indent=2, ensure_ascii=False))
        return
    if not runs:
        typer.echo("no runs yet")
        return
    for r in runs:
        if r["status"] != "ok":
            first = (r["error"] or "").splitlines()[0] if r["error"] else ""
            typer.echo(f"{r['started']}  {text_escape(r['job'])}  FAILED: {text_escape(first)}")
            continue
        t = r["trends"] or {}
        typer.echo(
            f"{r['started']}  {text_escape(r['job'])}  run {r['id']}: read {r['lines']} lines, {r['records']} records; "
            f"{r['events']} new events; {r['findings']} findings over {r['window_events']} events; "
            + ", ".join(f"{len(t.get(kind, []))} {kind}" for kind in KINDS)
        )
        for kind in KINDS:  # (a run of an earlier version has no "quiet")
            for item in t.get(kind, []):
                typer.echo(f"    {kind:<10} {text_escape(item['text'])}")


@schedule_app.command("units")
def schedule_units(config: ConfigOpt = None) -> None:
    """Print a systemd service and timer, and a crontab line, for this configuration.

    Install: save the first two under /etc/systemd/system/ and run
    `systemctl enable --now authtriage.timer`; or add the crontab line with `crontab -e`.
    """
    from .schedule import load_schedule, units

    try:
        sched = load_schedule(config)
    except AuthtriageError as exc:
        raise _fail(exc) from None
    for name, text in units(sched).items():
        typer.echo(f"# ---- {name} ----")
        typer.echo(text.rstrip("\n"))
        typer.echo("")


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"authtriage {__version__}")
        raise typer.Exit(0)


def main() -> None:
    # The interpreter's last collection at exit scans every object still alive (pandas,
    # pyarrow, the events): ~0.1 s of a 2.8 s `events` run. Frozen, they just go with
    # the process; registered first, this runs after every other exit handler.
    atexit.register(gc.freeze)
    _exit_on_sigterm()
    app()


def _exit_on_sigterm() -> None:
    """SIGTERM (``timeout``, systemd, Kubernetes) ends this process as an exception would: its
    clean-up runs (the spilled events' directory is removed). Its forked workers keep the
    default (they die at once, as before)."""
    import signal

    me = os.getpid()

    def stop(signum: int, _frame) -> None:
        if os.getpid() != me:  # a forked worker: die as the default does
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
