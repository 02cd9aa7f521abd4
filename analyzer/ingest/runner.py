"""The read: inputs → events, with an account of every input (:func:`read_events`).

The paths are walked (:mod:`.sources`) and each stream's format is detected by content
(:mod:`.sniff`); a caller's own sources (:class:`Window`: the scheduler's resumed files)
come with theirs. Each is read by its format's reader (:data:`.readers.READERS`,
:func:`read_source`), under the same limits. With more than one job, plain files and
archive members of up to WHOLE_BYTES go to the worker processes whole, several at a
time; larger text logs are shared out among them in blocks by their reader. Results come
back in input order. A reader that fails on one input reports it there; the other inputs
carry on. Once every input is read, the Windows Firewall's logs get the host of the logs
beside them, and ``--since``/``--until`` cut the events.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from .._memory import release
from ..errors import InputError, LimitExceeded
from ..schema import Segment, concat_events, concat_segments, empty_events
from . import evtxbatch, textlog, workers
from .firewall import HOSTLESS_FORMATS, beside_plan
from .readers import READERS
from .sniff import sniff
from .sources import HEAD_BYTES, Budget, EventBudget, Limits, Prefixed, Skipped, Source, iter_sources, utf16_as_utf8
from .store import EventStore, give_hosts
from .textlog import file_size
from .types import IngestOptions, IngestResult, InputReport

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = [
    "SMALL_FRAMES",
    "SMALL_ROWS",
    "UNSPLIT_FORMATS",
    "WHOLE_BYTES",
    "Window",
    "assign_hosts",
    "read_events",
    "read_source",
]

# files and archive members up to this size go to a worker whole; larger text logs are split
# into blocks for the workers instead
WHOLE_BYTES = 32 * 1024 * 1024
SMALL_ROWS = 50_000  # inputs with fewer events than this are joined while reading, up to this many events
SMALL_FRAMES = 256
# plain files up to BATCH_FILE_BYTES go to a worker in batches (one task, one frame back) of up
# to BATCH_FILES files or BATCH_BYTES bytes: a collector's thousands of small host logs cost
# one round trip and one frame per batch, not per file
BATCH_FILE_BYTES = 1 << 20
BATCH_BYTES = 16 << 20
BATCH_FILES = 64


@dataclass(slots=True)
class Batch:
    """What one task made of a batch of small files: each file's report, and one frame of
    all their events in order (``rows``: how many of them are each file's)."""

    reports: list[InputReport]
    events: pd.DataFrame
    rows: list[int]


@dataclass(frozen=True, slots=True)
class Window:
    """A source its caller made rather than one found under a path: a scheduled run's
    window on a file, from where the last run stopped to the last complete line. Its own
    first bytes may lie anywhere in the file, so ``format`` says the file's format, known
    from the file's start (None: sniffed as any input is). A window is read in this
    process, through its stream (a path it names is not opened again)."""

    source: Source
    format: str | None = None


def read_events(
    inputs: Sequence[str | Window],
    options: IngestOptions | None = None,
    progress: Callable[[InputReport], None] | None = None,
    engine: Engine | None = None,
    store: EventStore | None = None,
) -> IngestResult:
    """Read every input: the files under each path (archives opened), and each window;
    never stops at a bad one. Both go through the same limits (:func:`_sources`).

    With ``jobs`` > 1, plain files on disk of up to WHOLE_BYTES are read in worker
    processes, several at a time; larger files are split into blocks for the workers
    instead (see :func:`.textlog.read_syslog`). Results come back in input order either way.
    ``engine``: what runs those reads (:mod:`analyzer.engine`; default: the local workers).
    ``store``: where the events wait (:class:`.store.EventStore`); when it spilled them to
    disk, the result's ``events`` is empty and its ``stored`` is the store, its host-less
    sources' hosts (``moves``) decided and the window not applied yet (the analysis
    applies it, share by share).
    A remote one (a Dask cluster) takes every plain file whole, by its absolute path, and
    archive members and streams of up to WHOLE_BYTES as bytes, whatever ``jobs`` says.
    """
    opts = options or IngestOptions()
    remote = engine is not None and engine.remote
    spread = remote or opts.jobs > 1
    ahead = engine.in_flight if engine is not None else 2 * opts.jobs

    def submit(*call) -> Future:
        return engine.submit(*call) if engine is not None else workers.pool(opts.jobs).submit(*call)

    opts.zone()  # fail early on a bad zone
    slots: deque[tuple[InputReport, pd.DataFrame] | Future] = deque()  # inputs not taken yet, in order
    in_flight: deque[Future] = deque()
    calls: dict[Future, tuple] = {}  # what each worker was asked: to ask again if it died
    sent_bytes = 0
    reports: list[InputReport] = []
    frames: list[pd.DataFrame] = []  # taken, in input order: small ones joined SMALL_FRAMES at a time
    keep = frames.append if store is None else store.add
    small: list[pd.DataFrame] = []
    small_rows = [0]  # the events of `small`: joined once they are SMALL_ROWS, however few the frames
    budget = EventBudget(opts.limits)  # events over all inputs

    def settle(limit: int) -> None:
        while len(in_flight) > limit:
            in_flight.popleft().exception()  # waits; a failure is the input's (see _settled)

    batch: list[tuple[str, str, float | None]] = []  # small files waiting to go as one task
    batch_bytes = 0

    def flush() -> None:
        """Send the small files gathered as one task (before any other input takes a slot)."""
        nonlocal batch_bytes
        if not batch:
            return
        call = (_read_batch, tuple(batch), opts) if len(batch) > 1 else (_read_file, *batch[0], opts)
        batch.clear()
        batch_bytes = 0
        fut = submit(*call)
        calls[fut] = call
        slots.append(fut)
        in_flight.append(fut)
        settle(ahead)

    def take(everything: bool) -> None:
        """The inputs read (all of them: ``everything``) from the front, in input order. A
        frame costs ~80 KB however few its rows: many small inputs (an archive of thousands
        of members) are joined as they come instead of all held to the end."""
        while slots and (everything or not isinstance(slots[0], Future) or slots[0].done()):
            slot = slots.popleft()
            got = _settled(slot, calls.pop(slot), opts.jobs) if isinstance(slot, Future) else slot
            if isinstance(got, Batch):
                frame = _admit_batch(budget, got)
                for rep in got.reports:
                    if progress:
                        progress(rep)
                    reports.append(rep)
            else:
                rep, frame = got
                frame = budget.admit(rep, frame)
                if isinstance(slot, Future) and progress:
                    progress(rep)
                reports.append(rep)
            if len(frame) >= SMALL_ROWS:
                if small:
                    small_rows[0] = 0
                    keep(concat_events(small, consume=True))
                keep(frame)
            elif len(frame):
                small.append(frame)
                small_rows[0] += len(frame)
                if len(small) == SMALL_FRAMES or small_rows[0] >= SMALL_ROWS:
                    small_rows[0] = 0
                    keep(concat_events(small, consume=True))
            del frame
        if everything and small:
            keep(concat_events(small, consume=True))

    for item in _sources(inputs, opts.limits):
        take(False)
        if (
            spread
            and isinstance(item, Source)
            and item.path is not None
            and not budget.full
            and (size := file_size(item.path)) <= min(BATCH_FILE_BYTES, WHOLE_BYTES)
            and sent_bytes + size <= opts.limits.max_total_bytes
        ):
            sent_bytes += size
            batch.append((os.path.abspath(item.path) if remote else item.path, item.name, item.mtime))
            batch_bytes += size
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                flush()
            continue
        flush()
        if budget.full:  # no input after the one that reached the events limit is read
            name = item.source.name if isinstance(item, Window) else item.name
            slots.append((InputReport.skipped_input(budget.refusal(name)), empty_events()))
            break
        if isinstance(item, Skipped):
            slots.append((InputReport.skipped_input(item), empty_events()))
        elif isinstance(item, Window):
            rep = InputReport(name=item.source.name)
            slots.append((rep, read_source(item.source, opts, rep, item.format)))
        elif (
            spread
            and item.path is not None
            and ((size := file_size(item.path)) <= WHOLE_BYTES or remote or _unsplit(item.path))
        ):
            sent_bytes += size
            if sent_bytes > opts.limits.max_total_bytes:
                rep = InputReport(
                    name=item.name, error=f"total uncompressed input exceeds {opts.limits.max_total_bytes} bytes"
                )
                slots.append((rep, empty_events()))
            else:
                call = (_read_file, os.path.abspath(item.path) if remote else item.path, item.name, item.mtime, opts)
                fut = submit(*call)
                calls[fut] = call
                slots.append(fut)
                in_flight.append(fut)
                settle(ahead)
                continue
        elif spread and item.path is None:
            # an archive member or stream: small ones go to a worker as bytes
            rep = InputReport(name=item.name)
            data, fault = _prefetch(item, WHOLE_BYTES + 1)
            if fault is None and len(data) <= WHOLE_BYTES:
                call = (_read_bytes, item.name, data, item.mtime, opts)
                fut = submit(*call)
                calls[fut] = call
                slots.append(fut)
                in_flight.append(fut)
                settle(ahead)
                continue
            if fault is None:
                # the rest of the stream after what was read ahead, without a copy of it: the
                # read-ahead (WHOLE_BYTES) goes once it has been read again
                ahead = Prefixed(memoryview(data)[HEAD_BYTES:], item.stream)
                rest = Source(name=item.name, stream=ahead, mtime=item.mtime)
                rest.head = data[:HEAD_BYTES]
                del data
                slots.append((rep, read_source(rest, opts, rep)))
            else:  # what was read before the fault, then the fault: read as --jobs 1 reads it
                replay = Source(name=item.name, stream=Prefixed(memoryview(data)[HEAD_BYTES:], _Failing(fault)))
                replay.head, replay.mtime = data[:HEAD_BYTES], item.mtime
                del data
                slots.append((rep, read_source(replay, opts, rep)))
        else:
            rep = InputReport(name=item.name)
            slots.append((rep, read_source(item, opts, rep)))
        if progress:
            progress(slots[-1][0])
    flush()
    take(True)
    workers.close_pools()  # idle workers hold memory; the next read forks new ones (cheap)
    in_flight.clear()  # the frames live on only in `frames`, which the concatenation empties
    if store is not None and store.spilled:
        store.moves = host_moves(store.pairs, store.hostless, reports)
        span = (store.first, store.last) if opts.since is not None or opts.until is not None else (None, None)
        return IngestResult(events=empty_events(), inputs=reports, read_span=span, stored=store)
    if store is not None:
        frames = store.frames()
    events = concat_events(frames, consume=True)
    assign_hosts(events, reports)
    read = len(events)
    span = _span(events) if opts.since is not None or opts.until is not None else (None, None)
    events = in_window(events, opts)
    release()
    return IngestResult(events=events, inputs=reports, outside=read - len(events), read_span=span)


def _split(name: str) -> tuple[str, str]:
    """An input's folder and its last part: ``root/vm1/pfirewall.log`` → ``root/vm1``, ``pfirewall.log``."""
    cut = max(name.rfind("/"), name.rfind("!"))
    return (name[:cut], name[cut + 1 :]) if cut > 0 else ("", name)


def _named_after(folder: str, host: str) -> bool:
    """Whether a folder is named after a host (``vm0001`` for ``VM0001.corp.example`` too)."""
    folder, host = folder.lower(), host.lower()
    return folder in (host, host.split(".", 1)[0])


def folders_plan(pairs: dict[str, set[str]], hostless: set[str], reports: list[InputReport]) -> dict[str, str]:
    """A collector's tree (``<root>/<host>/…``): a log that names no host (pfirewall.log)
    and has no log beside it that names one takes its folder's name, when the folders beside
    its folder are named after the hosts of their logs (each that names one host, and at
    least one). The input's assumptions say so. ``pairs``, ``hostless``: as
    :func:`.firewall.beside_plan` takes them; returns per source the host it takes."""
    folders: dict[str, set[str]] = {}  # folder → the hosts its logs name
    for source, hs in pairs.items():
        folders.setdefault(_split(source)[0], set()).update(hs)
    by_parent: dict[str, list[tuple[str, str, set[str]]]] = {}  # parent → (folder, its name, hosts)
    for f, hs in folders.items():
        up, fname = _split(f)
        by_parent.setdefault(up, []).append((f, fname, hs))
    moves: dict[str, str] = {}
    for rep in reports:
        if rep.format not in HOSTLESS_FORMATS or not rep.events or "host" in rep.assumptions:
            continue
        folder, file = _split(rep.name)
        parent, name = _split(folder)
        if not name or folder in folders or (rep.name not in hostless and rep.name not in pairs):
            continue  # no folder, or logs beside it name hosts (several: beside_plan took none)
        beside = [(fname, hs) for f, fname, hs in by_parent.get(parent, []) if f != folder]
        agree = sum(1 for f, hs in beside if len(hs) == 1 and _named_after(f, next(iter(hs))))
        if not agree or agree < sum(1 for _, hs in beside if len(hs) == 1):
            continue
        if rep.name in hostless:
            moves[rep.name] = name
        rep.assumptions["host"] = (
            f"{name} for {file}, which names none: the name of its folder, as the {agree:,} folder(s) beside it "
            "are named after the hosts of their logs"
        )
    return moves


def host_moves(pairs: dict[str, set[str]], hostless: set[str], reports: list[InputReport]) -> dict[str, str]:
    """Per source whose events name no host, the host they take: that of the logs beside it
    (:func:`.firewall.beside_plan`), else its folder's (:func:`folders_plan`)."""
    moves = beside_plan(pairs, hostless, reports)
    if not any(r.format in HOSTLESS_FORMATS and r.events and "host" not in r.assumptions for r in reports):
        return moves
    pairs = {s: set(hs) for s, hs in pairs.items()}
    for source, host in moves.items():
        pairs.setdefault(source, set()).add(host)
    return moves | folders_plan(pairs, hostless - moves.keys(), reports)


def assign_hosts(events: pd.DataFrame, reports: list[InputReport]) -> None:
    """Events of logs that name no host take one (:func:`host_moves`), in place."""
    if events.empty or not any(r.format in HOSTLESS_FORMATS and r.events for r in reports):
        return
    source, host = events["source"], events["host"]
    s_codes, h_codes = source.cat.codes.to_numpy(), host.cat.codes.to_numpy()
    named = h_codes >= 0
    width = len(host.cat.categories) + 1
    pairs: dict[str, set[str]] = {}
    for p in np.unique(s_codes[named].astype(np.int64) * width + h_codes[named]).tolist():
        s, h = divmod(p, width)
        if s >= 0:
            pairs.setdefault(str(source.cat.categories[s]), set()).add(str(host.cat.categories[h]))
    unnamed = np.unique(s_codes[~named])
    hostless = {str(source.cat.categories[s]) for s in unnamed.tolist() if s >= 0}
    moves = host_moves(pairs, hostless, reports)
    if moves:
        give_hosts(events, moves)


def _sources(inputs: Sequence[str | Window], limits: Limits) -> Iterator[Source | Skipped | Window]:
    """The sources of ``inputs`` in order. The paths go through :func:`iter_sources` (a run
    of them at a time, under one budget of ``limits``). A window is one input more: past
    ``max_inputs`` it is skipped, and its bytes count against ``max_total_bytes`` as they
    are read, the windows of one read together (iter_sources keeps its own count for the
    paths; the scheduler reads either, not both at once)."""
    budget = Budget(limits)
    found = 0
    run: list[str] = []
    for item in [*inputs, None]:
        if isinstance(item, str):
            run.append(item)
            continue
        if run:
            yield from iter_sources(run, limits)
            run = []
        if item is None:
            return
        src = item.source
        found += 1
        if found > limits.max_inputs:
            why = f"more than {limits.max_inputs:,} inputs: not read (raise --max-inputs to read more)"
            yield Skipped(src.name, why)
            continue
        try:
            budget.spend(len(src.head), src.name)
        except LimitExceeded as exc:
            yield Skipped(src.name, exc.message)
            continue
        spent = Source(name=src.name, stream=_Spending(src.stream, src.name, budget), head=src.head, mtime=src.mtime)
        yield Window(spent, item.format)


class _Spending(io.RawIOBase):
    """A window's stream, its bytes spent from the read's budget as they are read (as
    :func:`iter_sources` guards the streams it opens)."""

    def __init__(self, inner: BinaryIO, name: str, budget: Budget) -> None:
        self.inner = inner
        self.name = name
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.inner.read(len(b))
        n = len(data)
        b[:n] = data
        self.budget.spend(n, self.name)
        return n


def _settled(fut: Future, call: tuple, jobs: int) -> tuple[InputReport, pd.DataFrame] | Batch:
    """A worker's result. When a worker died, every read in flight in its pool fails:
    each is asked once more, alone, of a new pool; failing again, it is that input's
    error (the others are read; of a batch, each of its files says so)."""
    from ..engine import EngineError

    fault: BaseException
    try:
        return fut.result()
    except EngineError:  # the cluster is gone or unusable: the whole run fails, in one line
        raise
    except BrokenProcessPool:
        if call[0] is _read_batch:  # each of its files alone: the one that kills its worker costs itself only
            return _batch_alone(call[1], call[2], jobs)
        try:
            return workers.pool(jobs).submit(*call).result()
        except Exception as exc:  # noqa: BLE001
            fault = exc
    except Exception as exc:  # noqa: BLE001
        fault = exc
    if call[0] is _read_batch:
        names = [name for _, name, _ in call[1]]
        return Batch([InputReport(name=n, error=_unforeseen(fault)) for n in names], empty_events(), [0] * len(names))
    name = call[2] if call[0] is _read_file else call[1]  # (function, path, name, …) or (function, name, …)
    return InputReport(name=name, error=_unforeseen(fault)), empty_events()


def _batch_alone(files: tuple[tuple[str, str, float | None], ...], opts: IngestOptions, jobs: int) -> Batch:
    """A batch whose worker died, read again file by file, each alone of a (new) pool; a file
    that fails again is that file's error."""
    reports: list[InputReport] = []
    frames: list[pd.DataFrame] = []
    for path, name, mtime in files:
        try:
            rep, events = workers.pool(jobs).submit(_read_file, path, name, mtime, opts).result()
        except Exception as exc:  # noqa: BLE001
            rep, events = InputReport(name=name, error=_unforeseen(exc)), empty_events()
        reports.append(rep)
        frames.append(events)
    rows = [len(f) for f in frames]
    return Batch(reports, concat_events(frames, consume=True), rows)


def _read_batch(files: tuple[tuple[str, str, float | None], ...], opts: IngestOptions) -> Batch:
    """Small plain files (path, name, mtime), read in one task; their events joined into one
    frame (one to send back and one to join, not one per file). The text logs among them
    are read together as one block (:func:`.textlog.read_syslog_batch`: a file's fixed
    costs, some hundred Arrow and pandas calls, paid once per batch), and its EVTX files'
    records mapped together (:func:`.evtxbatch.read_evtx_batch`); the others, and those
    that need a read of their own, one after the other."""
    reports: list[InputReport | None] = [None] * len(files)
    segments: list[Segment] = [(empty_events(), 0, 0, False)] * len(files)
    texts: list[tuple[int, Source, bytes]] = []
    logs: list[tuple[int, Source]] = []  # EVTX files
    for i, (path, name, mtime) in enumerate(files):
        try:
            with open(path, "rb") as fh:
                data = fh.read(BATCH_FILE_BYTES + 1)
        except OSError:
            continue  # (read alone: its report says why)
        fmt = sniff(data[:HEAD_BYTES])[0] if len(data) <= BATCH_FILE_BYTES else None
        src = Source(name=name, stream=io.BytesIO(b""), mtime=mtime, path=path)
        if fmt == "syslog" and textlog.batchable(data):
            texts.append((i, src, data))
        elif fmt == "evtx":
            logs.append((i, src))
    single = dataclasses.replace(opts, jobs=1)
    if len(logs) > 1:
        reps = [InputReport(name=src.name, format="evtx") for _, src in logs]
        try:
            read = evtxbatch.read_evtx_batch([(src, reps[j]) for j, (_, src) in enumerate(logs)], single)
        except Exception:  # noqa: BLE001  (as below)
            read = None
        if read is not None:
            records, spans, done = read
            for (i, _), rep, (a, b, cats), ok in zip(logs, reps, spans, done, strict=True):
                if ok:
                    reports[i], segments[i] = rep, (records, a, b, cats)
        del read
    if len(texts) > 1:
        reps = [InputReport(name=src.name, format="syslog") for _, src, _ in texts]
        try:
            got = textlog.read_syslog_batch([(src, data, reps[j]) for j, (_, src, data) in enumerate(texts)], single)
        except Exception:  # noqa: BLE001  (a fault no reader foresaw: each file alone, each its own report)
            got = None
        if got is not None:
            joined, counts = got
            start = 0
            for (i, _, _), rep, n in zip(texts, reps, counts, strict=True):
                reports[i], segments[i] = rep, (joined, start, start + n, True)
                start += n
        del got
    for i, (path, name, mtime) in enumerate(files):
        if reports[i] is None:
            rep, events = _read_file(path, name, mtime, opts)
            reports[i], segments[i] = rep, (events, 0, len(events), False)
    rows = [b - a for _, a, b, _ in segments]
    out = Batch(reports, concat_segments(segments), rows)  # type: ignore[arg-type]
    del segments
    release()  # as in _read_file
    return out


def _admit_batch(budget: EventBudget, batch: Batch) -> pd.DataFrame:
    """A batch's events through the events budget, file by file as if read one at a time
    (all at once while the budget has room for them all)."""
    frame = batch.events
    if not budget.full and budget.used + len(frame) <= budget.limits.max_events:
        budget.used += len(frame)
        return frame
    kept: list[pd.DataFrame] = []
    start = 0
    for rep, n in zip(batch.reports, batch.rows, strict=True):
        kept.append(budget.admit(rep, frame.iloc[start : start + n].reset_index(drop=True)))
        start += n
    out = concat_events(kept, consume=True)
    for name, col in out.items():  # (the batch's other files' values: no category of their own survives)
        if isinstance(col.dtype, pd.CategoricalDtype):
            out[name] = col.cat.remove_unused_categories()
    return out


# formats that are never split into parts: a worker reads such a file whole whatever its size,
# instead of this process alone while the workers wait (docs/performance.md: journal files)
UNSPLIT_FORMATS = frozenset(
    {"journal-file", "journal-export", "journal-json", "windows-xml", "windows-json", "pfirewall"}
)


def _unsplit(path: str) -> bool:
    """Whether a large plain file is of a format read whole (by its first bytes)."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(HEAD_BYTES))[0] in UNSPLIT_FORMATS
    except OSError:
        return False  # the reading says why


def _read_file(path: str, name: str, mtime: float | None, opts: IngestOptions) -> tuple[InputReport, pd.DataFrame]:
    """One plain file, in a worker process (which does not start workers of its own)."""
    single = dataclasses.replace(opts, jobs=1)
    rep = InputReport(name=name)
    try:
        with open(path, "rb") as fh:
            src = Source(name=name, stream=fh, mtime=mtime, path=path)
            src.head = fh.read(HEAD_BYTES)
            events = read_source(src, single, rep)
    except OSError as exc:
        rep.error = f"cannot open: {exc.strerror or exc}"
        return rep, empty_events()
    release()  # an idle worker should not hold the transients of its last file
    return rep, events


def _read_bytes(name: str, data: bytes, mtime: float | None, opts: IngestOptions) -> tuple[InputReport, pd.DataFrame]:
    """One archive member (or stream) read into memory, in a worker process."""
    rep = InputReport(name=name)
    events = read_source(Source.from_bytes(name, data, mtime), dataclasses.replace(opts, jobs=1), rep)
    release()  # as in _read_file
    return rep, events


class _Failing(io.RawIOBase):
    """A stream that fails as the one it stands for did, at its first read."""

    def __init__(self, fault: InputError) -> None:
        self.fault = fault

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        raise self.fault


def _prefetch(src: Source, n: int) -> tuple[bytes, InputError | None]:
    """Up to ``n`` bytes from the start of ``src``, and the fault that stopped it early, if any."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < n:
            chunk = src.read(min(textlog.READ_BYTES, n - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except InputError as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


def _span(events: pd.DataFrame) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last event time (None for none)."""
    ts = events["timestamp"]
    first, last = ts.min(), ts.max()
    return (None if pd.isna(first) else first, None if pd.isna(last) else last)


def in_window(events: pd.DataFrame, opts: IngestOptions) -> pd.DataFrame:
    """The events within ``--since``/``--until`` (all of them without either)."""
    if opts.since is None and opts.until is None:
        return events
    keep = pd.Series(True, index=events.index)
    if opts.since is not None:
        keep &= events["timestamp"] >= opts.since
    if opts.until is not None:
        keep &= events["timestamp"] < opts.until
    return events.loc[keep.fillna(False)].reset_index(drop=True)


def read_source(src: Source, opts: IngestOptions, rep: InputReport, fmt: str | None = None) -> pd.DataFrame:
    """Sniff and read one stream (``fmt``: its format when the caller knows it: not sniffed
    then); errors land in ``rep``, never escape."""
    why = ""
    if fmt is None:
        fmt, why = sniff(src.head)
        if fmt is None and (text := utf16_as_utf8(src)) is not None:  # (Windows readers decode UTF-16 themselves)
            src, (fmt, why) = text, sniff(text.head)
            rep.assumptions["encoding"] = "UTF-16 (it starts with a byte order mark), read as text"
            # its lines are quoted as read: the evidence step re-reads lines by their bytes
            opts = dataclasses.replace(opts, lazy_raw=False)
    rep.format = fmt
    reader = READERS.get(fmt) if fmt else None
    if reader is None:
        rep.skipped = True
        if fmt is None:
            rep.skip_reason = why
        else:
            rep.skip_reason = f"{fmt} input recognized, but this version has no reader for it yet"
        return empty_events()
    try:
        return reader(src, opts, rep)
    except InputError as exc:
        rep.error = exc.message
        return empty_events()
    except Exception as exc:  # noqa: BLE001  (a fault no reader foresaw: this input only)
        rep.error = _unforeseen(exc)
        return empty_events()


def _unforeseen(exc: BaseException) -> str:
    if isinstance(exc, BrokenProcessPool) or type(exc).__name__ == "KilledWorker":  # (Dask's, after its retries)
        return "a worker process reading it stopped (out of memory?); the other inputs were read"
    text = " ".join(str(exc).split())[:300]  # one line, however many the exception has
    return f"could not be read ({type(exc).__name__}: {text}); this is an authtriage bug, please report it"
