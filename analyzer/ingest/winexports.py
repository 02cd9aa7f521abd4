"""Readers of Windows event exports: Event Viewer's "Save as XML" and ``wevtutil qe
/f:xml`` (:func:`read_windows_xml`), ``Get-WinEvent | ConvertTo-Json``
(:func:`read_windows_json`). Their records go the way EVTX records go
(:func:`.winreaders.finish_records`)."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pandas as pd

from ..errors import InputError
from .evtx import record_from_xml
from .records import Record
from .sources import Source, loads_text
from .types import IngestOptions, InputReport
from .windows import load_semantics
from .winreaders import finish_records

__all__ = ["read_windows_json", "read_windows_xml"]

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.S)
_DATE_MS = re.compile(r"/Date\((-?\d+)\)/")


def _decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")  # (an export cut at an odd byte)
    return data.decode("utf-8-sig", "replace")


def read_windows_xml(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """Event Viewer "Save as XML" (<Events> root) or `wevtutil qe /f:xml` (bare <Event>s)."""
    text = _XML_DECL.sub("", _decode_text(src.read()))
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        try:
            root = ET.fromstring(f"<Events>{text}</Events>")
        except ET.ParseError as exc:
            raise InputError(f"not well-formed XML: {exc}") from exc
    events = [root] if root.tag.endswith("Event") and not root.tag.endswith("Events") else list(root)
    sem = load_semantics()
    counts = {"records": len(events)}
    records: list[Record] = []
    for el in events:
        try:
            rec = record_from_xml(el)
        except (ET.ParseError, ValueError) as exc:
            rep.unparsed += 1
            rep.sample_unparsed([f"{type(exc).__name__}: {exc}"])
            continue
        if sem.wanted(rec.channel, rec.event_id):
            records.append(rec)
    return finish_records(records, rep, src, opts, "windows-xml", counts)


def _ps_time(value: object) -> str | None:
    if isinstance(value, str):
        m = _DATE_MS.search(value)
        if m:
            t = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(m.group(1)))
            return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value
    if isinstance(value, dict):  # ConvertTo-Json -Depth gives {"value": "/Date(..)/", "DateTime": ...}
        return _ps_time(value.get("value") or value.get("DateTime"))
    return None


def read_windows_json(src: Source, opts: IngestOptions, rep: InputReport) -> pd.DataFrame:
    """`Get-WinEvent | ConvertTo-Json`: values by position in Properties, names from the table."""
    try:
        doc = loads_text(_decode_text(src.read()))
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}") from exc
    items = doc if isinstance(doc, list) else [doc]
    sem = load_semantics()
    counts = {"records": len(items)}
    records: list[Record] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        eid = item.get("Id")
        channel = item.get("LogName")
        if not sem.wanted(channel, eid):
            continue
        values = [(p.get("Value") if isinstance(p, dict) else p) for p in item.get("Properties") or []]
        names = sem.properties.get(int(eid), [])
        data = {n: (None if v is None else str(v)) for n, v in zip(names, values, strict=False)}
        records.append(
            Record(
                record_id=item.get("RecordId"),
                time=_ps_time(item.get("TimeCreated")),
                event_id=int(eid),
                channel=channel,
                provider=item.get("ProviderName"),
                computer=item.get("MachineName"),
                data=data,
            )
        )
    return finish_records(records, rep, src, opts, "windows-json", counts)
