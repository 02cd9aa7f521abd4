"""Small array helpers shared by the ingest and analysis steps."""

from __future__ import annotations

import numpy as np

__all__ = ["run_starts"]


def run_starts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``keys``: where each run of equal keys begins (int32; an array has fewer
    than 2**31 rows) and how long it is."""
    if not keys.size:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]).astype(np.int32)
    return starts, np.diff(np.r_[starts, np.int32(keys.size)])
