"""Text logs framed as syslog lines (RFC 3164, RFC 3339, RFC 5424, epoch-prefixed), read
block by block.

A log is read in blocks of about BLOCK_BYTES that end at a line boundary
(:func:`blocks`); each block is framed and matched on its own (:func:`_syslog_block`, a
pure function, so it runs the same in a worker process) and the blocks are stitched back
in order: line numbers and RFC 3164 year indexes continue across them. A large plain file
is shared out among the workers as byte ranges they read themselves; a stream (a
compressed log, an archive member) as blocks sent to them. The times are resolved once
the whole source is in (:func:`.syslog.resolve_times`), then the source-wide steps run
(:func:`.messages.finish`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._memory import release
from ..errors import InputError
from ..schema import COLUMNS, MAXIMA, concat_events, empty_events
from . import holes, syslog, workers
from .catalog import load_catalog
from .linux import match_messages, normalize_program
from .messages import account, account_files, categorical, finish, finish_batch, strings
from .sources import Source
from .types import MAX_SAMPLES, IngestOptions, InputReport

__all__ = ["BLOCK_BYTES", "READ_BYTES", "batchable", "blocks", "file_size", "read_syslog", "read_syslog_batch"]

BLOCK_BYTES = 8 * 1024 * 1024  # a text log is read in blocks this size (each costs ~12× in transient arrays)
READ_BYTES = 1 << 16  # read in pieces this size: a fault loses at most one piece


def blocks(src: Source, fault: list[InputError] | None = None, max_line: int | None = None) -> Iterator[bytes]:
    """Blocks of about BLOCK_BYTES that end at a line boundary. On a read fault, the
    complete lines read before it still come out; the fault goes into ``fault`` (or is
    raised when no list is given). A line that runs on past a block by more than
    ``max_line`` (default: syslog's MAX_LINE_BYTES) bytes comes out cut to ``max_line`` + 1
    bytes: never held whole."""
    max_line = syslog.MAX_LINE_BYTES if max_line is None else max_line
    carry = b""
    parts: list[bytes] = []
    size = 0
    dropping = False  # inside the part of an over-long line that is not kept
    try:
        for piece in src.chunks(READ_BYTES):
            if dropping:
                nl = piece.find(b"\n")
                if nl < 0:
                    continue
                piece, dropping = piece[nl:], False  # its newline ends the line cut short
            parts.append(piece)
            size += len(piece)
            if size < BLOCK_BYTES:
                continue
            data = carry + b"".join(parts)
            parts, size = [], 0
            cut = data.rfind(b"\n")
            carry = data[cut + 1 :]
            if cut >= 0:
                yield data[: cut + 1]
            if len(carry) > max_line:  # held whole, a forged line could be gigabytes
                # over the limit (the reader's own check then finds it, and says so), to the end
                # of a UTF-8 character (else its bytes cut apart would be "invalid UTF-8")
                carry, dropping = carry[: syslog.char_end(carry, max_line + 1)], True
    except InputError as exc:
        data = carry + b"".join(parts)
        cut = data.rfind(b"\n")
        if cut >= 0:
            yield data[: cut + 1]
        if fault is None:
            raise
        fault.append(exc)
        return
    data = carry + b"".join(parts)
    if data:
        yield data


@dataclass
class _Block:
    """What one block of lines gave: counts, samples, and its events (times unresolved)."""

    counts: InputReport = field(default_factory=lambda: InputReport(name=""))  # lines, used, irrelevant, unparsed
    bad_utf8: bool = False
    cut: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # lines cut (0-based, in the block)
    holes: np.ndarray = field(default_factory=lambda: holes.NONE)  # lines with NUL bytes (a crash hole), cut
    piece: pd.DataFrame | None = None
    year: syslog.YearState = field(default_factory=syslog.YearState)


def _syslog_block(block: bytes, keep_raw: bool, lean: bool = False) -> _Block:
    """Frame and match one block of complete lines. A pure function of its inputs, so it
    runs the same in a worker process; line numbers and year indexes are block-local.
    ``lean``: a worker gives its kept free heap back before and after (see LEAN_SHARE)."""
    if lean:
        release(keep=False)
    cat = load_catalog()
    out = _Block()
    block, out.holes = holes.cut(block)
    block, ok = syslog.ensure_utf8(block)
    lines, starts, ends = syslog.split_lines(block)
    if ends.size and int((ends - starts).max()) > syslog.MAX_LINE_BYTES:  # rare: forged or broken lines
        block, out.cut = syslog.cut_long_lines(block)
        lines, starts, ends = syslog.split_lines(block)
    out.bad_utf8 = not ok
    n = len(lines)
    fr = syslog.frame_lines(block, lines, starts, ends, cat.line_filter(), cat.skip_filter())
    counts = out.counts
    if fr.unframed.size:
        counts.unparsed += int(fr.unframed.size)
        first = fr.unframed[:MAX_SAMPLES]
        counts.sample_unparsed(syslog.slice_buffer(block, starts[first], ends[first]).to_pylist())
    msg, weight = syslog.expand_repeats(fr.msg)
    prog = normalize_program(fr.prog)
    matched = match_messages(prog, msg, cat)
    used_rows = account(counts, matched, fr.raw, cat.auth_filter(), n_framed=len(fr.msg))
    counts.lines = n
    counts.irrelevant += n - len(fr.msg) - int(fr.unframed.size)
    if used_rows.size:
        out.piece = _syslog_piece(fr, matched, prog, weight, 0, out.year, keep_raw)
    del fr, matched, msg, prog, lines, block
    release(keep=not lean)  # the block's transient arrays; else they stay interleaved with the events kept
    return out


def _stitch(results: list[_Block], rep: InputReport) -> list[pd.DataFrame]:
    """Blocks back in order: line numbers and RFC 3164 year indexes continue across them."""
    pieces = []
    base = year_offset = prev_month = 0
    cut: list[np.ndarray] = []
    holed: list[np.ndarray] = []
    for res in results:
        cut.append(res.cut + base + 1)
        holed.extend([res.holes + [[base + 1, 0, 0, 0]]] if len(res.holes) else [])
        rep.merge(res.counts)
        if res.bad_utf8 and "invalid UTF-8 bytes were replaced with U+FFFD" not in rep.warnings:
            rep.warnings.append("invalid UTF-8 bytes were replaced with U+FFFD")
        y = res.year
        if y.first_month and prev_month and prev_month - y.first_month >= 2:
            year_offset += 1  # December at the end of one block, January at the start of the next
        if res.piece is not None:
            piece = res.piece
            loc = piece["locator"].to_numpy()
            if base + res.counts.lines > np.iinfo(loc.dtype).max:  # past 2**31 lines: int64 from here on
                loc = loc.astype(np.int64)
            piece["locator"] = loc + base
            if year_offset:
                t = piece["_t"].to_numpy(copy=True)
                piece["_t"] = syslog.shift_years(t, piece["_tkind"].to_numpy(), year_offset)
            pieces.append(piece)
        year_offset += y.rollovers
        prev_month = y.last_month or prev_month
        base += res.counts.lines
    if (lines := np.concatenate(cut) if cut else np.empty(0, np.int64)).size:
        most = syslog.MAX_LINE_BYTES
        size = f"{most // 1024} KiB" if most % 1024 == 0 else f"{most:,} bytes"
        where = syslog.line_list(lines.tolist())
        rep.warnings.append(f"line(s) longer than {size} cut to their first {size}: {where}")
    if holed:
        rep.warnings.append(holes.warning(np.concatenate(holed)))
    return pieces


def read_syslog(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    results: list[_Block] = []
    fault: list[InputError] = []
    keep = dataclasses.replace(opts, keep_raw=opts.keep_raw and not opts.lazy_raw)
    ranges = _ranges(src, opts)
    for res in _run_ranges(*ranges, keep, fault) if ranges else _run_blocks(blocks(src, fault), keep):
        results.append(res)
        if len(results) % 8 == 0:
            release()  # what passed through here (blocks read and sent, results received) is free again
    if fault:  # keep what was read before the fault; say where it happened
        done = sum(r.counts.lines for r in results)
        rep.error = f"{fault[0].message} (after line {done}; the lines before it were read)"
    pieces = _stitch(results, rep)
    results.clear()
    if not pieces:
        return empty_events()
    ev = concat_events(pieces, consume=True)  # the blocks' frames go column by column
    release()
    ev["timestamp"] = syslog.resolve_times(ev, src, opts, rep)
    release()
    box = [ev]  # handed over: each column of the frame goes once finish has copied it
    del ev
    return finish(box, src, "syslog", rep)


def batchable(data: bytes) -> bool:
    """Whether a small text log's bytes can be read together with others' as one block
    (:func:`read_syslog_batch`): whole lines, no NUL byte, valid UTF-8 (what needs a
    warning of its own, a line cut or replaced bytes, is read alone)."""
    if not data.endswith(b"\n") or b"\x00" in data:
        return False
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_syslog_batch(
    items: list[tuple[Source, bytes, InputReport]], opts: IngestOptions
) -> tuple[pd.DataFrame, list[int]] | None:
    """Several small text logs (each whole in memory, :func:`batchable`), read as one
    block: the framing, matching and source-wide steps run once for all of them, not once
    per file, and each file's report and events come out as :func:`read_syslog` gives them
    for that file alone (line numbers, RFC 3164 years, PAM folding and counts per file).
    Returns their events, file after file, and how many are each file's (categories: see
    :func:`.messages.finish_batch`); None when they cannot be read so (a line too long,
    names not distinct): read each alone."""
    names = [src.name for src, _, _ in items]
    if len(set(names)) != len(names):
        return None
    block = b"".join(data for _, data, _ in items)
    counts = np.array([data.count(b"\n") for _, data, _ in items], dtype=np.int64)
    lines, starts, ends = syslog.split_lines(block)
    if len(lines) != int(counts.sum()) or (ends.size and int((ends - starts).max()) > syslog.MAX_LINE_BYTES):
        return None
    k = len(items)
    file_of = np.repeat(np.arange(k, dtype=np.int32), counts)  # per line of the block, its file
    first = np.concatenate([[0], np.cumsum(counts)])  # each file's first line in the block
    cat = load_catalog()
    parts = [InputReport(name="") for _ in items]  # each file's counts, as one block's
    fr = syslog.frame_lines(block, lines, starts, ends, cat.line_filter(), cat.skip_filter())
    unframed = np.bincount(file_of[fr.unframed], minlength=k)
    for i in np.flatnonzero(unframed):
        rows = fr.unframed[file_of[fr.unframed] == i]
        parts[i].unparsed += int(rows.size)
        head = rows[:MAX_SAMPLES]
        parts[i].sample_unparsed(syslog.slice_buffer(block, starts[head], ends[head]).to_pylist())
    msg, weight = syslog.expand_repeats(fr.msg)
    prog = normalize_program(fr.prog)
    matched = match_messages(prog, msg, cat)
    framed_file = file_of[fr.rows]
    used = account_files(parts, framed_file, matched, fr.raw, cat.auth_filter())
    framed = np.bincount(framed_file, minlength=k)
    for i, part in enumerate(parts):
        part.lines = int(counts[i])
        part.irrelevant += int(counts[i] - framed[i] - unframed[i])
    keep_raw = opts.keep_raw and not opts.lazy_raw
    piece = _syslog_piece(fr, matched, prog, weight, 0, syslog.YearState(), keep_raw, file_of) if used.size else None
    del fr, matched, msg, prog, lines, block
    for (_, _, rep), part in zip(items, parts, strict=True):
        rep.merge(part)
    if piece is None:
        return empty_events(), [0] * k
    loc = piece["locator"].to_numpy()
    mine = file_of[loc - 1]  # (the block's line numbers, from 1)
    piece["locator"] = (loc - first[mine]).astype(loc.dtype)  # each file's own
    bounds = np.searchsorted(mine, np.arange(k + 1))
    t = np.empty(len(piece), dtype=np.int64)
    for i in np.flatnonzero(np.diff(bounds)):
        a, b = bounds[i], bounds[i + 1]
        own = pd.DataFrame({c: piece[c].iloc[a:b].reset_index(drop=True) for c in ("_t", "_tkind", "locator")})
        src, _, rep = items[i]
        t[a:b] = syslog.resolve_times(own, src, opts, rep).array.asi8
    piece["timestamp"] = pd.Series(pd.Series(t.view("datetime64[us]"), copy=False).array.view(syslog.UTC_US))
    piece["source"] = pd.Categorical.from_codes(mine, categories=names)
    box = [piece]
    del piece
    return finish_batch(box, "syslog", [rep for _, _, rep in items])


def _ranges(src: Source, opts: IngestOptions) -> tuple[str, list[tuple[int, int | None]]] | None:
    """A large plain file read by several workers: its path and byte ranges of about
    BLOCK_BYTES, which the workers read themselves (this process then neither reads the
    file nor sends it through a pipe). None for anything else, read as a stream."""
    if opts.jobs <= 1 or src.path is None or (size := file_size(src.path)) <= BLOCK_BYTES:
        return None
    path = src.on_disk(within_budget=True)
    if path is None:
        return None
    starts = list(range(0, size, BLOCK_BYTES))
    return path, list(zip(starts, [*starts[1:], None], strict=True))  # the last one: to the end


LEAN_SHARE = 0.2  # the share of a large file's last ranges whose workers keep no free heap
LEAN_STREAM_BYTES = 512 << 20  # a stream's (a compressed log's, an archive member's) blocks past this: lean


def _syslog_range(path: str, start: int, end: int | None, keep_raw: bool, lean: bool = False) -> _Block:
    """The lines that begin in bytes ``start``…``end`` of a file (to its end when ``end``
    is None), as :func:`_syslog_block` frames and matches a block (``lean`` likewise); in a
    worker."""
    try:
        with open(path, "rb") as fh:
            begin = _line_start(fh, start, end) if start else 0
            if begin is None:
                data = b""  # one line spans the whole range
            elif end is None:
                fh.seek(begin)
                data = fh.read()
            else:
                fh.seek(begin)
                data = fh.read(end - begin)
                if data and not data.endswith(b"\n"):  # the last line that begins here, whole
                    # (or enough of it to be cut, to the end of a character)
                    tail = fh.readline(syslog.MAX_LINE_BYTES + 1)
                    if not tail.endswith(b"\n"):
                        tail += fh.read(3)
                        tail = tail[: syslog.char_end(tail, syslog.MAX_LINE_BYTES + 1)]
                    data += tail
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", source=path) from exc
    return _syslog_block(data, keep_raw, lean) if data else _Block()


def _line_start(fh, start: int, end: int | None) -> int | None:
    """Where the first line that begins in bytes ``start``…``end`` of ``fh`` begins (None:
    no line does; the file's end, when its last byte is the newline found). The search for
    the newline before it stops at the range's end, so a line longer than many ranges is not
    read again for each of them."""
    fh.seek(start - 1)
    pos = start - 1
    while end is None or pos < end - 1:
        chunk = fh.read(READ_BYTES)
        if not chunk:
            return None
        i = chunk.find(b"\n")
        if i >= 0:
            begin = pos + i + 1
            return begin if end is None or begin < end else None
        pos += len(chunk)
    return None


def _run_ranges(
    path: str, ranges: list[tuple[int, int | None]], opts: IngestOptions, fault: list[InputError]
) -> Iterator[_Block]:
    """A file's ranges in order, read and processed by the workers. A range that cannot be
    read ends the file there (into ``fault``): the lines before it are kept.

    The workers keep free heap from range to range (faulting pages in again costs more
    time), except over the file's last LEAN_SHARE of ranges: by then this process holds
    most of the file's events, and the workers' kept memory on top of that would be the
    read's peak."""
    lean_from = len(ranges) - int(len(ranges) * LEAN_SHARE)
    calls = ((path, a, b, opts.keep_raw, i >= lean_from) for i, (a, b) in enumerate(ranges))
    try:
        yield from workers.in_workers(_syslog_range, calls, opts.jobs)
    except InputError as exc:
        fault.append(exc)


def _run_blocks(blocks: Iterator[bytes], opts: IngestOptions) -> Iterator[_Block]:
    """Process blocks in order, in worker processes when there is more than one block and
    more than one job; at most two blocks per worker are in flight (bounded memory)."""
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    if second is None or opts.jobs <= 1:
        yield _syslog_block(first, opts.keep_raw)
        if second is not None:
            yield _syslog_block(second, opts.keep_raw)
            for block in blocks:
                yield _syslog_block(block, opts.keep_raw)
        return
    # the stream's length is not known: its blocks past LEAN_STREAM_BYTES are read lean
    lean_from = LEAN_STREAM_BYTES // BLOCK_BYTES
    calls = (
        (block, opts.keep_raw, i >= lean_from) for i, block in enumerate(itertools.chain([first, second], blocks))
    )
    yield from workers.in_workers(_syslog_block, calls, opts.jobs)


def _syslog_piece(
    fr: syslog.Framed,
    matched: pd.DataFrame,
    prog: pa.Array,
    weight: np.ndarray,
    base: int,
    state: syslog.YearState,
    keep_raw: bool,
    groups: np.ndarray | None = None,
) -> pd.DataFrame:
    """The events of one block's matched rows (times unresolved: ``_t``/``_tkind``).
    ``groups``: per line of the block, the source it belongs to (:func:`read_syslog_batch`):
    each source's RFC 3164 years are counted on their own."""
    keep = (matched["role"] != "ignore").to_numpy(dtype=bool)
    m = matched if keep.all() else matched.loc[keep].reset_index(drop=True)
    rows = m["row"].to_numpy(dtype=np.int64)
    take = pa.array(rows)
    piece = m.drop(columns=["row", "pattern"])
    # while the blocks wait, line numbers within the block (int32) and weights in the
    # narrowest type that holds them (nearly always 1); joined, they widen as needed
    loc = fr.rows[rows] + base + 1
    piece["locator"] = loc.astype(np.int32) if loc.max(initial=0) <= np.iinfo(np.int32).max else loc
    piece["host"] = categorical(fr.host.take(take))
    piece["process"] = categorical(prog.take(take))
    # numbers in the schema's widths (pid < 2**32, port < 2**16); weight <= MAX_REPEAT
    piece["pid"] = pd.array(syslog.digits_to_int(fr.pid.take(take), MAXIMA["pid"]).to_pandas(), dtype=COLUMNS["pid"])
    if keep_raw:
        piece["raw"] = strings(fr.raw(rows))
    w = weight[rows]
    piece["weight"] = w.astype(np.uint8 if w.max(initial=1) <= np.iinfo(np.uint8).max else np.int32)
    for col in ("src_port", "dst_port"):
        if col in piece.columns:
            piece[col] = piece[col].astype(COLUMNS[col])
    fmt = fr.fmt[rows]
    ts = fr.ts.take(take)
    # One int64 per row until the whole source is read: µs since the epoch (UTC or local
    # wall time, per `_tkind`), or for RFC 3164 the packed year index/month/day/time.
    k = rows.size
    t = np.full(k, syslog.NAT, dtype=np.int64)
    kind = np.full(k, syslog.T_UTC, dtype=np.int8)
    code = syslog.FORMATS.index
    is3164 = fmt == code("rfc3164")
    iso = (fmt == code("rfc3339")) | (fmt == code("rfc5424"))
    epoch = fmt == code("epoch")
    if is3164.any():
        mine = None if groups is None else groups[fr.rows[rows][is3164]]
        got = syslog.rfc3164_parts(ts.filter(pa.array(is3164)), state, mine)
        t[is3164] = syslog.pack3164(got)
        kind[is3164] = syslog.T_3164
    if iso.any():
        micros, has_zone = syslog.iso_micros(ts.filter(pa.array(iso)))
        t[iso] = micros
        kind[iso] = np.where(has_zone, syslog.T_UTC, syslog.T_LOCAL)
    if epoch.any():
        secs = pc.cast(ts.filter(pa.array(epoch)), pa.float64()).to_numpy(zero_copy_only=False)
        t[epoch] = np.where(np.isnan(secs), syslog.NAT, np.nan_to_num(secs) * 1e6).astype(np.int64)
    piece["_t"] = t
    piece["_tkind"] = kind
    return piece


def file_size(path: str) -> int:
    """The size of the file at ``path`` (0 when it cannot be known: the reading says why)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
