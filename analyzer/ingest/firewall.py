"""The Windows Firewall's log (``pfirewall.log``, W3C extended format): columns from its
``#Fields:`` header, local times (``--tz``); inbound TCP drops become firewall-drop events
(:func:`read_pfirewall`).

The log names no host: once every input is read, its events take the one host of the logs
beside it (:func:`beside_plan`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..schema import COLUMNS, MAXIMA, conform, empty_events
from .sources import Source
from .syslog import MAX_LINE_BYTES, line_list
from .types import IngestOptions, InputReport

__all__ = ["HOSTLESS_FORMATS", "beside_plan", "read_pfirewall"]


def read_pfirewall(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """Windows Firewall log: columns from its `#Fields:` header, local time (`--tz`).

    Inbound TCP drops become firewall-drop events; allowed traffic is irrelevant here."""
    lines = src.read().decode("utf-8", "replace").splitlines()
    fields: list[str] | None = None
    rows: list[dict] = []
    too_long: list[int] = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            rep.irrelevant += 1
            continue
        if len(line) > MAX_LINE_BYTES:  # (characters: at least as many bytes) no firewall writes one
            too_long.append(no)
            rep.unparsed += 1
            continue
        if line.startswith("#"):
            rep.irrelevant += 1
            if line.startswith("#Fields:"):
                fields = line.split(":", 1)[1].split()
            continue
        parts = line.split()
        if fields is None or len(parts) < len(fields):
            rep.unparsed += 1
            rep.sample_unparsed([line])
            continue
        rec = dict(zip(fields, parts, strict=False))
        action = rec.get("action", "").upper()
        path = rec.get("path", "-").upper()
        if action != "DROP" or rec.get("protocol", "").upper() != "TCP" or path == "SEND":
            rep.irrelevant += 1
            continue
        rows.append(
            {
                "when": f"{rec.get('date')} {rec.get('time')}",
                "locator": no,
                "src_ip": rec.get("src-ip"),
                "dst_ip": rec.get("dst-ip"),
                "src_port": rec.get("src-port"),
                "dst_port": rec.get("dst-port"),
                "pid": rec.get("pid"),
                "raw": line if opts.keep_raw else None,
            }
        )
        rep.used += 1
    rep.lines = len(lines)
    if too_long:
        rep.warnings.append(f"line(s) longer than {MAX_LINE_BYTES // 1024} KiB not read: {line_list(too_long)}")
    if not rows:
        return empty_events()
    frame = pd.DataFrame(rows)
    naive = pd.to_datetime(frame.pop("when"), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    zone = opts.zone()
    local = pd.DatetimeIndex(naive).tz_localize(
        zone if opts.tz else "UTC", ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    frame["timestamp"] = local.tz_convert("UTC").as_unit("us")
    rep.assumptions["timezone"] = f"{opts.tz or 'UTC'} for pfirewall.log local times" + (
        "" if opts.tz else " (assumed; use --tz)"
    )
    for col in ("src_ip", "dst_ip"):
        frame[col] = frame[col].replace("-", None)
    for col in ("src_port", "dst_port", "pid"):
        nums = pd.to_numeric(frame[col].replace("-", None), errors="coerce", dtype_backend="numpy_nullable")
        frame[col] = nums.where((nums >= 0) & (nums <= MAXIMA[col])).astype("Float64").astype(COLUMNS[col])
    frame["action"] = "firewall-drop"
    frame["outcome"] = "blocked"
    frame["service"] = "network"
    frame["reason"] = "firewall"
    frame["auth_method"] = "TCP"
    frame["source"] = src.name
    frame["log"] = "pfirewall"
    if not opts.keep_raw:
        frame = frame.drop(columns=["raw"])
    for col in frame.columns:
        if frame[col].dtype == object and col != "raw":
            frame[col] = frame[col].astype("category")
    ev = conform(frame)
    rep.events += len(ev)
    return ev


HOSTLESS_FORMATS = ("pfirewall",)  # logs that name no host: given the one host of the logs beside them


def _folders(name: str) -> Iterator[str]:
    """The folders an input lies in, nearest first: ``t.zip!DC01/fw/pfirewall.log`` →
    ``t.zip!DC01/fw``, ``t.zip!DC01``, ``t.zip``, then the archive's own folders."""
    while (cut := max(name.rfind("/"), name.rfind("!"))) > 0:
        name = name[:cut]
        yield name


def beside_plan(pairs: dict[str, set[str]], hostless: set[str], reports: list[InputReport]) -> dict[str, str]:
    """A Windows Firewall log names no host: its events take the host of the logs beside it
    (the nearest folder up whose other logs name any host), when those name exactly one;
    else they stay without one. The input's assumptions say so. ``pairs``: per source the
    hosts its events name; ``hostless``: the sources with events that name none. Returns
    per source the host its host-less events take."""
    moves: dict[str, str] = {}
    for rep in reports:
        if rep.format not in HOSTLESS_FORMATS or not rep.events:
            continue
        for folder in _folders(rep.name):
            inside = (folder + "/", folder + "!")
            near = set().union(*(hs for name, hs in pairs.items() if name != rep.name and name.startswith(inside)))
            if near:
                break
        else:
            continue
        if len(near) != 1 or rep.name not in hostless:
            continue
        (h,) = near
        moves[rep.name] = h
        rep.assumptions["host"] = (
            f"{h} for {rep.name.rsplit('/', 1)[-1].rsplit('!', 1)[-1]}, which names none: "
            f"the one host of the other logs in {folder}"
        )
    return moves
