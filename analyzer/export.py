"""Writing normalized events out: JSON Lines and CSV, in bounded chunks.

Strings from logs are hostile. JSON strings are escaped column by column in Arrow exactly
as orjson escapes them (orjson itself for the rare value with control characters); for
CSV every cell
that a spreadsheet would take for a formula (``= + - @``, tab, carriage return) is
prefixed with ``'``. Timestamps are ISO 8601 UTC with a ``Z``.
"""

from __future__ import annotations

import csv
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TextIO

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .ingest.workers import usable_cpus

__all__ = ["write_events", "FORMATS", "csv_safe"]

FORMATS = ("jsonl", "csv")
CHUNK_ROWS = 20_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Neutralize a spreadsheet formula in one cell."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _iso_text(ts: pd.Series) -> pa.Array:
    """UTC timestamps as ISO 8601 text with microseconds and a ``Z`` (nulls stay null)."""
    arr = pa.array(ts.dt.tz_convert("UTC").dt.tz_localize(None).array).cast(pa.timestamp("us"))
    text = pc.replace_substring(pc.cast(arr, pa.string()), " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, "Z", "")  # null in, null out


def _prepare_csv(chunk: pd.DataFrame) -> pd.DataFrame:
    out = chunk.copy()
    out["timestamp"] = _iso_text(chunk["timestamp"]).to_numpy(zero_copy_only=False)
    for name in out.columns:
        col = out[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = [csv_safe(c) for c in col.cat.categories]
            if len(set(cats)) == len(cats):
                out[name] = col.cat.rename_categories(cats)
            else:  # a neutralized value collides with an existing one
                out[name] = col.astype(object).map(csv_safe)
        elif col.dtype == object or str(col.dtype).startswith("string"):
            out[name] = col.astype(object).map(csv_safe)
    return out


def _json(value: str) -> str:
    """One string as JSON."""
    return orjson.dumps(value).decode()


# what JSON allows raw inside strings but line-splitting readers (Python's splitlines,
# JavaScript) take for a line end: escaped in every line
_LINE_ENDS = (("\u0085", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _no_line_ends(rows: pa.Array) -> pa.Array:
    """Escape U+0085, U+2028 and U+2029 in ``rows`` (one test when all is ASCII)."""
    if not (_data(rows) >= 0x80).any():
        return rows
    for raw, escaped in _LINE_ENDS:
        rows = pc.replace_substring(rows, raw, escaped)
    return rows


def _data(text: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a string array's values, back to back (no copy)."""
    if len(text) == 0 or text.buffers()[2] is None:
        return np.empty(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)[text.offset : text.offset + len(text) + 1]
    return np.frombuffer(text.buffers()[2], dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]


def _json_text(text: pa.Array) -> pa.Array:
    """Strings as JSON strings, escaped as orjson does: backslash and quote by Arrow for
    every value, values with control characters by orjson itself (nulls stay null)."""
    quoted = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', quoted, '"', "")
    if not (_data(text) < 0x20).any():  # one pass over the bytes; control characters are rare
        return quoted
    control = pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f]"), False)
    if pc.any(control).as_py():
        rows = np.flatnonzero(control.to_numpy(zero_copy_only=False))
        fixed = pa.array([_json(v) for v in text.take(pa.array(rows)).to_pylist()], pa.string())
        quoted = pc.replace_with_mask(quoted, control, fixed)
    return quoted


def _json_values(col: pd.Series, timestamps: bool = False) -> pa.Array:
    """Each row's value as JSON text (``null`` when missing). Each distinct value of a
    categorical is encoded once; numbers are cast by Arrow; free text is escaped
    column-wise (:func:`_json_text`)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        encoded = pa.array([_json(str(c)) for c in col.cat.categories] + ["null"])
        codes = col.cat.codes.to_numpy()
        return encoded.take(pa.array(np.where(codes >= 0, codes, len(encoded) - 1)))
    if timestamps:  # ISO 8601 text: nothing in it needs escaping
        return pc.fill_null(pc.binary_join_element_wise('"', _iso_text(col), '"', ""), "null")
    if pd.api.types.is_integer_dtype(col.dtype):
        return pc.fill_null(pc.cast(pa.array(col.array), pa.string()), "null")
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow":
        text = pa.array(col.array)
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        text = text if pa.types.is_string(text.type) else pc.cast(text, pa.string())
        return pc.fill_null(_json_text(text), "null")
    values = [None if v is None or v is pd.NA or v != v else _json(str(v)) for v in col.tolist()]
    return pc.fill_null(pa.array(values, pa.string()), "null")


def _json_lines(chunk: pd.DataFrame) -> pa.Buffer:
    """Rows as JSON objects, one per line, in one join over the columns' value texts with
    the keys between them: UTF-8 in one buffer."""
    pieces: list = []
    for i, name in enumerate(chunk.columns):
        pieces.append(pa.scalar(("{" if i == 0 else ",") + _json(name) + ":"))
        pieces.append(_json_values(chunk[name], timestamps=name == "timestamp"))
    pieces.append(pa.scalar("}\n" if len(pieces) else "{}\n"))
    rows = _no_line_ends(pc.binary_join_element_wise(*pieces, ""))
    width = np.int64 if pa.types.is_large_string(rows.type) else np.int32
    offsets = np.frombuffer(rows.buffers()[1], dtype=width)[rows.offset : rows.offset + len(rows) + 1]
    return rows.buffers()[2].slice(int(offsets[0]), int(offsets[-1]) - int(offsets[0]))


def write_events(events: pd.DataFrame, fh: TextIO, fmt: str = "jsonl", threads: int | None = None) -> int:
    """Write ``events`` to ``fh`` as ``jsonl`` or ``csv``; return the number of rows.
    JSON Lines are built by ``threads`` threads (default: one per CPU), a few chunks
    ahead of the one being written; Arrow's kernels, most of the work, run unlocked."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    starts = range(0, max(len(events), 1), CHUNK_ROWS)
    if fmt == "csv":
        for start in starts:
            chunk = events.iloc[start : start + CHUNK_ROWS]
            _prepare_csv(chunk).to_csv(
                fh, index=False, header=start == 0, quoting=csv.QUOTE_MINIMAL, lineterminator="\n"
            )
        return len(events)
    if not len(events):
        return 0
    # JSON Lines are built as UTF-8 bytes: straight to a UTF-8 text file's buffer
    binary = getattr(fh, "buffer", None) if (getattr(fh, "encoding", "") or "").lower() in ("utf-8", "utf8") else None
    if binary is not None:
        fh.flush()

    def build(start: int) -> pa.Buffer:
        return _json_lines(events.iloc[start : start + CHUNK_ROWS])

    workers = max(1, threads or usable_cpus())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead: deque[Future[pa.Buffer]] = deque()
        for start in starts:
            ahead.append(pool.submit(build, start))
            if len(ahead) > workers:
                _write_bytes(fh, binary, ahead.popleft().result())
        while ahead:
            _write_bytes(fh, binary, ahead.popleft().result())
    return len(events)


def _write_bytes(fh: TextIO, binary, data: pa.Buffer) -> None:
    if binary is not None:
        binary.write(memoryview(data))
    else:
        fh.write(data.to_pybytes().decode("utf-8"))
