"""Writing normalized events out: JSON Lines and CSV, in bounded chunks.

Strings from logs are hostile. JSON escaping is the serializer's job; for CSV every cell
that a spreadsheet would take for a formula (``= + - @``, tab, carriage return) is
prefixed with ``'``. Timestamps are ISO 8601 UTC with a ``Z``.
"""

from __future__ import annotations

import csv
from typing import TextIO

import numpy as np
import pandas as pd

__all__ = ["write_events", "FORMATS", "csv_safe"]

FORMATS = ("jsonl", "csv")
CHUNK_ROWS = 50_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Neutralize a spreadsheet formula in one cell."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _iso(ts: pd.Series) -> np.ndarray:
    values = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    out = np.char.add(np.datetime_as_string(values, unit="us").astype(object), "Z")
    out[np.isnat(values)] = None
    return out


def _prepare(chunk: pd.DataFrame, for_csv: bool) -> pd.DataFrame:
    out = chunk.copy()
    out["timestamp"] = _iso(chunk["timestamp"])
    if for_csv:
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


def write_events(events: pd.DataFrame, fh: TextIO, fmt: str = "jsonl") -> int:
    """Write ``events`` to ``fh`` as ``jsonl`` or ``csv``; return the number of rows."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    for start in range(0, max(len(events), 1), CHUNK_ROWS):
        chunk = events.iloc[start : start + CHUNK_ROWS]
        if fmt == "csv":
            _prepare(chunk, True).to_csv(
                fh, index=False, header=start == 0, quoting=csv.QUOTE_MINIMAL, lineterminator="\n"
            )
        elif len(chunk):
            text = _prepare(chunk, False).to_json(orient="records", lines=True, force_ascii=False)
            fh.write(text if text.endswith("\n") else text + "\n")
    return len(events)
