"""NUL holes in text logs.

A machine that crashes while a log is being written can leave a run of NUL bytes where the
lost blocks were: the file's size had grown, its data never reached the disk. A freshly
rotated ``auth.log`` then starts with some KiB of zeros, and the lines written after the
reboot follow them (on the same line: a hole holds no newline). rsyslog and journald never
write a NUL byte into a line, so a run of them is taken for such a hole: the line is read
from the text after its last NUL byte, what came before on that line (zeros, and the start
of a line the hole cut short) is skipped, and the input's warnings name the lines. Line
numbers do not change: only newlines count lines, and none is removed.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["cut", "warning", "head_without_holes", "NONE"]

# per line that held NUL bytes: its index (in the block, then its line number), the first and
# one past the last NUL byte's offset in the line, the number of NUL bytes
NONE = np.empty((0, 4), dtype=np.int64)
MAX_HEAD_RUNS = 8  # more runs of NUL bytes than this in an input's first bytes: binary data, not holes
_NUL_RUN = re.compile(rb"\x00+")


def cut(block: bytes) -> tuple[bytes, np.ndarray]:
    """``block`` with each line that holds NUL bytes cut to the text after its last one, and
    those lines (see :data:`NONE`). A block without NUL bytes comes back as it is (one
    ``memchr``)."""
    if b"\x00" not in block:
        return block, NONE
    buf = np.frombuffer(block, dtype=np.uint8)
    # runs of NUL bytes [start, stop): few, however long (arrays the size of the block are bytes)
    edges = np.flatnonzero(np.diff((buf == 0).view(np.int8), prepend=np.int8(0), append=np.int8(0)))
    start, stop = edges[0::2], edges[1::2]
    nl = np.flatnonzero(buf == 10)
    line_of = np.searchsorted(nl, start)  # newlines before each run: its line's index (sorted)
    first_run = np.flatnonzero(np.diff(line_of, prepend=-1))  # each line's first run
    last_run = np.append(first_run[1:], start.size) - 1
    lines = line_of[first_run]
    begin = np.concatenate(([0], nl + 1))[lines]  # where those lines begin
    first, last = start[first_run], stop[last_run] - 1
    counts = np.add.reduceat(stop - start, first_run)
    end = last.copy()  # the last byte cut
    if last[-1] == buf.size - 1:  # a last line (no newline) of NUL bytes only: one stays, and it stays a line
        end[-1] -= 1
    # drop [begin, last] of each such line: +1 where a cut begins, -1 after it ends (one cut a
    # line, so no two marks fall on one byte)
    mark = np.zeros(buf.size + 1, dtype=np.int8)
    mark[begin] += 1
    mark[end + 1] -= 1
    keep = np.cumsum(mark[:-1], dtype=np.int8) == 0
    found = np.stack([lines, first - begin, last + 1 - begin, counts], axis=1).astype(np.int64)
    return buf[keep].tobytes(), found


def warning(found: np.ndarray) -> str:
    """What the warnings say of the lines :func:`cut` found, their first column line numbers."""
    most = 5
    where = ", ".join(f"{n} (bytes {a + 1:,}–{b:,})" for n, a, b, _ in found[:most].tolist())
    if len(found) > most:
        where += f" and {len(found) - most} more"
    nul = int(found[:, 3].sum())
    text = int((found[:, 2] - found[:, 3]).sum())  # skipped with them: text before or between them
    said = (
        f"NUL bytes (a crash hole?) on line {where}: skipped, the line read from the text after them"
        if len(found) == 1
        else f"NUL bytes (a crash hole?) on lines {where}: {nul:,} in all, skipped, each line read from the text "
        "after its last NUL byte"
    )
    if text:
        cut_short = "a line" if len(found) == 1 else "lines"
        said += f"; {text:,} bytes of text before them ({cut_short} the hole cut short) were skipped with them"
    return said


def head_without_holes(head: bytes) -> bytes | None:
    """An input's first bytes as :func:`cut` leaves them, for telling a text log by its
    lines; None when there is nothing to cut, or so many runs of NUL bytes that this is
    binary data rather than text with a hole in it."""
    if b"\x00" not in head or not head.strip(b"\x00"):
        return None
    if len(_NUL_RUN.findall(head)) > MAX_HEAD_RUNS:
        return None
    return cut(head)[0]
