"""Reports: one document (the JSON), rendered to HTML, Markdown or text with Jinja.

The document comes complete from the analysis (:mod:`analyzer.summary`: verdicts, headlines,
the timeline, each finding's explanation as plain text); this module only renders it. Every
format shows its text with its own escaping: HTML by Jinja's autoescape, Markdown and
text by the filters below. Strings from logs are hostile; nothing in a report executes,
breaks a table or moves a terminal's cursor.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import orjson
import pandas as pd

from ._jinja import Environment
from .errors import UsageError
from .prose import PLAIN, attack_words, host_name, plural, some
from .resources import templates_dir

__all__ = [
    "FORMATS",
    "TEXT_WIDTH",
    "render",
    "for_host",
    "host_sections",
    "format_for",
    "md_escape",
    "text_escape",
    "cut",
    "wrap",
    "relative_to",
]

# per host, the findings shown besides the platform's and those needing action (never cut), by
# the formats meant for reading in a terminal or a ticket
FINDINGS_SHOWN = {"text": 20, "md": 30}  # per host, besides the platform's and those needing action
ATTACKS_SHOWN = {"text": 10, "md": 15}  # per host, below its attack summary
TRENDS_SHOWN = 10  # per kind (new, continuing, …) in the text report's "what changed"
FORMATS = ("json", "html", "md", "text", "ticket")  # ticket: each host's paragraph for the customer
ALIASES = {"txt": "text"}  # other names a format is asked for by
_EXT = {
    ".json": "json",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "text",
    ".text": "text",
    ".ticket": "ticket",
}
# the text report's width: a file's (and a pipe's) lines are at most this long; a terminal's
# are as wide as the terminal, but never narrower than MIN_WIDTH
TEXT_WIDTH = 80
MIN_WIDTH = 30
# control characters (ANSI escapes), and the marks that reorder text in a line (a user name
# with U+202E shows its letters backwards: "Trojan Source"): shown as escapes, never acted on
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# what makes markup anywhere in a line (brackets suffice against links and images: "(" and "!"
# mean nothing without them), and what does at a line's start (a heading, a list item, a quote)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_MD_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+(?=[.)]))")
_MD_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)://|\b(www)\.")  # what GitHub's Markdown links by itself


def format_for(path: str | None, explicit: str | None, terminal: bool) -> str:
    """--format wins (``txt`` is ``text``); else the output file's extension (none: JSON, for
    automation writing to ``/dev/stdout`` or a pipe); else text on a terminal, JSON otherwise.
    An extension that names no format is a :class:`UsageError` (``report.pdf`` is not JSON)."""
    if explicit:
        fmt = ALIASES.get(explicit, explicit)
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {explicit!r}: give {_names()}")
        return fmt
    if path:
        suffix = Path(path).suffix.lower()
        if not suffix:
            return "json"
        if suffix not in _EXT:
            raise UsageError(
                f"cannot tell a report format from {path}'s extension {suffix!r}: give --format {_names()}, "
                f"or name the file {', '.join(sorted(set(_EXT) - {'.htm', '.markdown', '.text'}))}"
            )
        return _EXT[suffix]
    return "text" if terminal else "json"


def host_sections(
    doc: dict[str, Any], limit: int | None = None, attacks_limit: int | None = None
) -> list[dict[str, Any]]:
    """Per host (in the document's order) its findings as its section shows them: the
    platform's finding and those needing action (``first``, never cut), the attacks (at most
    ``attacks_limit``: their summary says the rest) and the rest (at most ``limit``: a host's
    hundreds of attack findings never push out its expected traffic) in ``rest``, how many
    were cut; each as (number, finding), the number its place in the document's findings plus one."""
    from .analysis import section_of, section_order

    findings = doc.get("findings") or []
    by_host: dict[str, list[int]] = {}
    for i, f in enumerate(findings):
        by_host.setdefault(host_name(f["host"]), []).append(i)
    out = []
    for h in doc.get("hosts") or []:
        pf = (h.get("platform") or {}).get("finding")
        order = h.get("findings")
        if order is None:  # a document from before the hosts' sections
            order = section_order(findings, by_host.get(h["name"], []), pf)
        items = [(i + 1, findings[i]) for i in order if 0 <= i < len(findings)]
        first = [(n, f) for n, f in items if n - 1 == pf or section_of(f) == 1]
        never_cut = {n for n, _ in first}
        rest = [(n, f) for n, f in items if n not in never_cut]
        shown = rest
        if limit is not None:  # the attacks (summarized above them) and the rest capped apart
            attacks = [x for x in rest if x[1]["verdict"] == "attack"][: attacks_limit or limit]
            others = [x for x in rest if x[1]["verdict"] != "attack"][:limit]
            keep = {n for n, _ in attacks + others}
            shown = [x for x in rest if x[0] in keep]
        out.append(
            {
                "host": h,
                "first": first,
                "attacks": [(n, f) for n, f in rest if f["verdict"] == "attack"],
                "rest": shown,
                "cut": len(rest) - len(shown),
            }
        )
    return out


def for_host(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The document of one host: its findings (the hosts' indices into them renumbered),
    timeline and totals; an unknown name is a :class:`UsageError` naming the hosts."""
    names = [h["name"] for h in doc.get("hosts") or []]
    if name not in names:  # host names are case-insensitive, and a short name names its FQDN
        folded = name.casefold()
        like = [n for n in names if n.casefold() == folded] or [
            n for n in names if n.casefold().split(".", 1)[0] == folded.split(".", 1)[0]
        ]
        if len(like) != 1:
            listed = ", ".join(names) if names else "none"
            raise UsageError(f"no host {name!r} in these logs (--host): the hosts are {listed}")
        name = like[0]
    host = dict(next(h for h in doc["hosts"] if h["name"] == name))
    keep = [i for i, f in enumerate(doc["findings"]) if host_name(f["host"]) == name]
    new = {old: k for k, old in enumerate(keep)}
    if host.get("findings") is not None:
        host["findings"] = [new[i] for i in host["findings"] if i in new]
    if host.get("platform"):
        p = host["platform"] = dict(host["platform"])
        p["finding"] = new.get(p["finding"]) if p.get("finding") is not None else None
    tl = dict(doc.get("timeline") or {"bucket_seconds": None, "start": None, "hosts": {}})
    tl["hosts"] = {h: v for h, v in (tl.get("hosts") or {}).items() if h == name}
    found = [doc["findings"][i] for i in keep]
    totals = dict(doc.get("totals") or {}, findings=len(found))
    out = dict(doc, hosts=[host], findings=found, timeline=tl, totals=totals)
    if "sources_across_hosts" in doc:  # of the sources that attacked this host, those seen on others too
        from .analysis import sources_across_hosts

        mine = {ip for f in found if f["verdict"] == "attack" for ip in f["src_ips"]}
        out["sources_across_hosts"] = sources_across_hosts(doc["findings"], only=mine)
    return out


def _names() -> str:
    return ", ".join(FORMATS[:-1]) + " or " + FORMATS[-1]


def _show_control(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", text)


def md_escape(value: Any) -> str:
    """Markdown-safe (tables included): markup escaped, no newlines, no control bytes."""
    if value is None:
        return ""
    text = _MD_SPECIAL.sub(r"\\\1", _show_control(str(value).replace("\r", " ").replace("\n", " ")))
    text = _MD_AUTOLINK.sub(lambda m: f"{m[1]}:\\/\\/" if m[1] else f"{m[2]}\\.", text)
    return _MD_LINE_START.sub(_line_start, text)  # a value may begin a line: "- x", "# x", "1. x"


def _line_start(m: re.Match) -> str:
    mark = m[2]
    return m[1] + (mark + "\\" if mark[0].isdigit() else "\\" + mark)


def text_escape(value: Any) -> str:
    """Terminal-safe: control characters (ANSI escapes) shown, not interpreted."""
    return "" if value is None else _show_control(str(value))


# ---------------------------------------------------------------------------------
# the text report's lines: measured in terminal cells, after escaping


def _line_text(value: Any) -> str:
    """Escaped (idempotent: an escape has no control characters left), a tab a space: what
    is measured is what the terminal shows."""
    return text_escape(value).replace("\t", " ")


def _cell(ch: str) -> int:
    """Cells one character takes: 2 for East Asian wide and full-width ones, 0 for combining
    marks and format characters (a zero-width space), else 1."""
    if ch < "\u0300":
        return 1
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _cells(text: str) -> int:
    return len(text) if text.isascii() else sum(map(_cell, text))


def _head(text: str, cells: int) -> str:
    """The longest start of ``text`` that takes at most ``cells`` (at least one character)."""
    if text.isascii():
        return text[: max(cells, 1)]
    used = 0
    for i, ch in enumerate(text):
        used += _cell(ch)
        if used > cells:
            return text[: max(i, 1)]
    return text


def cut(value: Any, width: int) -> str:
    """One line of at most ``width`` cells: cut with "…" when longer (the JSON and HTML
    reports keep the whole text)."""
    text = _line_text(value).replace("\n", " ")
    if _cells(text) <= width:
        return text
    return _head(text, width - 1) + "…"


def _fill(words: Iterable[str], width: int, first: str, rest: str) -> list[str]:
    """Words into lines of at most ``width`` cells, the first line after ``first``, the
    others after ``rest``; a word longer than a line is broken."""
    lines: list[str] = []
    prefix, line, used = first, [], _cells(first)
    for word in words:
        n = _cells(word)
        if line and used + 1 + n <= width:
            line.append(word)
            used += 1 + n
            continue
        if line:
            lines.append(prefix + " ".join(line))
            prefix, line, used = rest, [], _cells(rest)
        while n > width - used and len(word) > 1:
            piece = _head(word, width - used)
            lines.append(prefix + piece)
            word = word[len(piece) :]
            prefix, used, n = rest, _cells(rest), _cells(word)
        line.append(word)
        used += n
    if line or not lines:
        lines.append(prefix + " ".join(line))
    return [x.rstrip() for x in lines]


def wrap(value: Any, width: int, indent: str = "", hang: str | None = None) -> str:
    """Text wrapped to ``width`` cells: each line after ``indent`` (lines after the first
    after ``hang``, default ``indent``); its own line breaks kept."""
    hang = indent if hang is None else hang
    out: list[str] = []
    for i, para in enumerate(_line_text(value).split("\n")):
        out.extend(_fill(para.split(), width, indent if i == 0 else hang, hang))
    return "\n".join(out)


def wrap_list(values: list, width: int, label: str, limit: int = 10, sep: str = ",") -> str:
    """``label`` and the first ``limit`` values, wrapped between values (a value longer
    than a line cut with "…"), then "(+N)" for the rest; lines after the first aligned
    under the first value."""
    hang = " " * _cells(label)
    room = max(width - len(hang), 1)
    shown = [cut(v, room - len(sep)) for v in values[:limit]]
    words = [v + sep for v in shown[:-1]] + shown[-1:]
    if len(values) > limit:
        words.append(f"(+{len(values) - limit:,})")
    return "\n".join(_fill(words, width, label, hang))


def relative_to(where: Any, base: str | None) -> str:
    """An input's name (or an evidence place, ``name:locator``) below ``base`` as the part
    after it; anything else as it is."""
    text = str(where)
    if base and text.startswith(base + os.sep):
        return text[len(base) + 1 :]
    return text


def common_base(doc: dict[str, Any]) -> str | None:
    """The directory holding every input the report read (archive members: the archive),
    as the inputs were named; None when they share none but the root or the current
    directory, or some are named by path from here and others from the root."""
    dirs = {
        os.path.dirname(name.split("!", 1)[0])
        for i in doc.get("inputs") or []
        if (name := str(i.get("name") or "")) and not name.startswith("<")
    }
    if not dirs:
        return None
    try:
        base = os.path.commonpath(sorted(dirs))
    except ValueError:  # absolute and relative names mixed
        return None
    return base if base not in ("", ".", os.sep) else None


@cache
def _env() -> jinja2.Environment:
    env = Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package; no stat per lookup
    )
    env.filters["md"] = md_escape
    env.filters["tx"] = text_escape
    env.filters["plain"] = lambda r: PLAIN.get(str(r), str(r).replace("-", " "))
    env.filters["some"] = some
    env.filters["host"] = host_name
    env.filters["plural"] = plural
    env.filters["wrap"] = wrap
    env.filters["cut"] = cut
    env.filters["wraplist"] = wrap_list
    env.filters["rel"] = relative_to
    env.filters["attack_words"] = attack_words
    env.globals["window_text"] = window_text
    env.globals["attempts_text"] = attempts_text
    env.globals["input_labels"] = input_labels
    return env


def attempts_text(f: dict[str, Any]) -> str:
    """"1 attempt (0 failed), T" or "N attempts (M failed), T1 – T2": a finding's size and span."""
    first, last = f.get("first_seen"), f.get("last_seen")
    span = first if first == last else f"{first or '?'} – {last or '?'}"
    n, conns = f.get("attempts", f["count"]), f.get("connections")  # report_version 1 counted records
    count = f"{n:,} attempt{'' if n == 1 else 's'} ({f['failures']:,} failed)"
    if conns is not None:
        connections = f"{conns:,} connection{'' if conns == 1 else 's'}"
        count = f"{count} in {connections}" if n else f"{connections}, no login attempt"
    return f"{count}, {span}" if span else count


def input_labels(doc: dict[str, Any], base: str | None = None) -> list[str]:
    """Per input: its name (below ``base``), its format, what it could not read."""
    out = []
    for i in doc.get("inputs") or []:
        parts = [i.get("format") or "skipped"]
        if i.get("unparsed"):
            parts.append(f"{i['unparsed']:,} unparsed")
        if i.get("error"):
            parts.append(f"ERROR {i['error']}")
        out.append(f"{relative_to(i['name'], base)} ({', '.join(parts)})")
    return out


def window_text(doc: dict[str, Any]) -> str:
    """The --since/--until window for people, with what it left out ("" without one, and for
    a scheduled report, which states its own window)."""
    w = doc.get("window") or {}
    since, until = w.get("since"), w.get("until")
    if (since is None and until is None) or "schedule" in doc:
        return ""

    def when(iso: str) -> str:  # to the second, as a relative --since gives microseconds
        return pd.Timestamp(iso).tz_convert("UTC").floor("s").isoformat().replace("+00:00", "Z")

    bounds = " and ".join(
        b for b in (f"at or after {when(since)}" if since else "", f"before {when(until)}" if until else "") if b
    )
    left = int(w.get("left_out") or 0)
    if not left:
        return f"Only events {bounds}: every event read is inside this window."
    span = f" (the events read run from {w['read_first']} to {w['read_last']})" if w.get("read_first") else ""
    return f"Only events {bounds}: {left:,} event(s) read lie outside this window and are left out{span}."


# the timeline's colours: what a cause means, in four kinds (legend order)
KINDS = ("platform", "attack", "expected", "other")
KIND_LABEL = {"platform": "platform login failing", "attack": "attack", "expected": "expected", "other": "other"}
AXIS_LABELS = 6  # about this many times along the timeline's axis


def kind_of(cause: str) -> str:
    """A cause's colour in the timeline (:data:`KINDS`): the platform's failing or blocked
    login, an attack, expected traffic (the platform's working login too), or other."""
    from .classify.causes import load_causes

    c = load_causes().by_id.get(cause)
    if c is None:
        return "other"
    if c.platform in ("failing", "blocked"):
        return "platform"
    return c.verdict if c.verdict in ("attack", "expected") else "other"


def _axis(start: str | None, bucket: int | None, n: int, width: float) -> list[dict[str, Any]]:
    """Labelled times along the axis: about AXIS_LABELS, at bucket edges, each with its date
    where the date changes."""
    if not start or not bucket or not n:
        return []
    t0 = pd.Timestamp(start)
    step = max(1, math.ceil(n / AXIS_LABELS))
    out, day = [], None
    for i in range(0, n + 1, step):
        t = t0 + pd.Timedelta(seconds=bucket * i)
        label = f"{t:%H:%M}" if t.date() == day else f"{t:%b} {t.day} {t:%H:%M}"  # the date where it changes
        day = t.date()
        out.append({"x": round(width * i / n, 2), "label": label, "anchor": "start" if i == 0 else "middle"})
    if out and out[-1]["x"] > width * 0.92:
        out[-1]["anchor"] = "end"
    return out


def _svg_bars(
    series: dict[str, list[int]], start: str | None = None, bucket: int | None = None, width: int = 640,
    height: int = 120,
) -> dict[str, Any]:  # fmt: skip
    """Stacked bars per bucket, one colour per kind of cause (:func:`kind_of`), and the
    labelled times of the axis below them: numbers for the SVG template."""
    kinds: dict[str, list[int]] = {}
    causes: dict[str, list[str]] = {}
    for cause in sorted(series):
        k = kind_of(cause)
        row = kinds.setdefault(k, [0] * len(series[cause]))
        kinds[k] = [a + b for a, b in zip(row, series[cause], strict=True)]
        causes.setdefault(k, []).append(cause)
    order = [k for k in KINDS if k in kinds]
    n = len(next(iter(series.values()))) if series else 0
    totals = [sum(kinds[k][i] for k in order) for i in range(n)]
    peak = max(totals or [1]) or 1
    bar_w = width / max(n, 1)
    rects = []
    for i in range(n):
        y = height
        for kind in order:
            v = kinds[kind][i]
            if not v:
                continue
            h = max(1.0, height * v / peak)
            y -= h
            rects.append(
                {
                    "x": round(i * bar_w, 2),
                    "y": round(y, 2),
                    "w": round(max(bar_w - 1, 1), 2),
                    "h": round(h, 2),
                    "kind": kind,
                    "v": v,
                    "causes": ", ".join(causes[kind]),
                }
            )
    legend = [{"kind": k, "label": KIND_LABEL[k], "causes": causes[k]} for k in order]
    return {
        "rects": rects,
        "legend": legend,
        "peak": peak,
        "width": width,
        "height": height,
        "axis": _axis(start, bucket, n, width),
    }


def _spark(values: list[int]) -> str:
    marks = " ▁▂▃▄▅▆▇█"
    peak = max(values or [0])
    if not peak:
        return ""
    return "".join(marks[min(8, math.ceil(8 * v / peak))] if v else " " for v in values)


def _merged(values: list[int], step: int) -> list[int]:
    """Counts of ``step`` buckets at a time (a timeline too long for a line)."""
    return [sum(values[i : i + step]) for i in range(0, len(values), step)] if step > 1 else values


# the text report's timeline line: 4 spaces, the cause in 24 cells, a space, the marks
_SPARK_AT = 4 + 24 + 1


def render(doc: dict[str, Any], fmt: str, width: int = TEXT_WIDTH) -> str:
    """The report document (:func:`analyzer.summary.summarize`'s) in one format; ``text``
    in lines of at most ``width`` cells (at least MIN_WIDTH)."""
    if fmt == "json":  # orjson: the standard library's encoder is pure Python once it indents
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    tl = doc.get("timeline") or {"hosts": {}}
    charts = {h: _svg_bars(v, tl.get("start"), tl.get("bucket_seconds")) for h, v in tl["hosts"].items()}
    limit = FINDINGS_SHOWN.get(fmt)
    sections = host_sections(doc, limit, ATTACKS_SHOWN.get(fmt))
    context: dict[str, Any] = {"limit": limit or 10**9, "charts": charts, "sections": sections}
    if fmt in ("text", "ticket"):
        width = max(int(width), MIN_WIDTH)
        n = max((len(v) for series in tl["hosts"].values() for v in series.values()), default=0)
        step = math.ceil(n / max(width - _SPARK_AT, 1)) or 1  # buckets per mark, so that a line fits
        context |= {"width": width, "base": common_base(doc), "spark_step": step, "trends_shown": TRENDS_SHOWN}
        context["sparks"] = {h: {c: _spark(_merged(v, step)) for c, v in s.items()} for h, s in tl["hosts"].items()}
    else:
        context["sparks"] = {host: {c: _spark(v) for c, v in series.items()} for host, series in tl["hosts"].items()}
    out = _env().get_template(f"report.{fmt}.j2").render(doc=doc, **context)
    # HTML escapes markup but not control and reordering characters (the other formats' filters
    # show them already): shown in one pass over the page, which has none of its own
    return _show_control(out) if fmt == "html" else out
