"""The words of a finding: its cause's explanation, its cadence, reasons in plain English.

Every cause has one explanation template (``reports/templates/causes/<cause>.j2``) with
blocks ``title``, ``explanation``, ``impact`` and ``remediation``; they render to plain
text once per finding, into the report's document, and every format shows that text with
its own escaping. The analysis (a host's headline), the report's templates and the
scheduler's trends all take their wording from here: it depends on neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2

from ._jinja import Environment
from .resources import templates_dir
from .schema import UNKNOWN_HOST

__all__ = [
    "PLAIN",
    "HEADLINE",
    "every",
    "cadence_text",
    "explain",
    "headline",
    "host_name",
    "plural",
    "some",
    "when",
    "platform_words",
    "platform_headline",
]

PLAIN = {
    "unknown-user": "unknown",
    "bad-password": "given a wrong password",
    "account-disabled": "disabled",
    "account-locked": "locked out",
    "account-expired": "expired",
    "account-revoked": "revoked (disabled, expired or locked)",
    "password-expired": "holding an expired password",
    "password-must-change": "required to change its password",
    "logon-type-not-granted": "not allowed this kind of logon",
    "service-stopped": "stopped",
    "service-disabled": "disabled",
}
# a verdict as a host's headline says it
HEADLINE = {
    "attack": "harmful: an attack",
    "misconfiguration": "needs action",
    "user-error": "harmless",
    "unknown": "needs a look",
    "expected": "expected",
}
NO_FAILURES = "no failed logins found"


def every(seconds: float | None) -> str:
    """A cadence in words: "every 1 h", "every 5 min", "every 30 s" ("" without one)."""
    if not seconds:
        return ""
    if seconds % 3600 == 0:
        return f"every {int(seconds // 3600)} h"
    if seconds >= 60:
        return f"every {seconds / 60:.0f} min"
    return f"every {seconds:.0f} s"


def cadence_text(f: dict[str, Any]) -> str | None:
    """A finding's cadence and, when known, its beats: "every 1 h, 40 of 48 expected beats"."""
    if not f.get("cadence_seconds"):
        return None
    beats = f.get("beats")
    tail = f", {beats['observed']} of {beats['expected']} expected beats" if beats else ""
    return f"{every(f['cadence_seconds'])}{tail}"


def headline(top: dict[str, Any] | None) -> str:
    """A host's headline from its most urgent finding (explained), or that it has none."""
    if top is None:
        return NO_FAILURES
    return f"{top['title']} — {HEADLINE.get(top['verdict'], top['verdict'])}"


# the platform's login as a host's headline begins
PLATFORM_HEAD = {
    "failing": "Platform login failing",
    "blocked": "Platform login blocked",
    "ok": "Platform login works",
    "not-seen": "No platform login seen",
}
NOT_SEEN_TICKET = (
    "The logs of {host} show no login by the platform at all. Its connections may be dropped before "
    "anything is logged (a firewall that does not log), the logs may be of another server, or they may "
    "not cover the time of the failures. Please check the server's firewall for the platform's network and "
    "send the logs of the right server for the time the platform's action failed."
)


def when(iso: str | None) -> str:
    """An ISO time for people: "Nov 3 14:15 UTC" ("" for none)."""
    if not iso:
        return ""
    try:
        ts = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return iso
    return f"{ts:%b} {ts.day} {ts:%H:%M} UTC"


def _same_day(iso: str, other: str | None) -> str:
    """``iso`` for people, as "14:05 UTC" when on the day of ``other``."""
    full, day = when(iso), when(other)
    return full.split(" ", 2)[2] if day and full.split(" ")[:2] == day.split(" ")[:2] else full


def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text[:1].upper() + text[1:] + "." if text else ""


def platform_words(f: dict[str, Any] | None, host: str, p: dict[str, Any]) -> dict[str, str]:
    """The next step (one sentence) and the ticket paragraph of a host's platform login
    ``p``: its finding's cause template's ``next_step`` and ``ticket`` blocks, given the
    times as people read them; without a finding (not seen), what that can mean."""
    if f is None:
        return {"next_step": p["next_step"], "ticket": NOT_SEEN_TICKET.format(host=host)}
    changes = [c["time"] for c in (f.get("transition") or {}).get("password_changes") or []]
    ctx = _context(f) | {
        "since": when(p.get("since")),
        "last_success": when(p.get("last_success")),
        "changed": _same_day(changes[-1], p.get("since")) if changes else "",
    }
    tpl = _plain_env().get_template(f"{f['cause']}.j2")
    context = tpl.new_context(ctx)
    blocks = {name: " ".join("".join(fn(context)).split()) for name, fn in tpl.blocks.items()}
    return {"next_step": _sentence(blocks.get("next_step", "")), "ticket": blocks.get("ticket", "")}


def platform_headline(p: dict[str, Any], top: dict[str, Any] | None, attacks: dict[str, Any] | None) -> str:
    """A host's headline: the platform's login first ("Platform login failing since Nov 3
    14:15 UTC: the password changed at 14:05 — …"), then the most urgent other finding and
    the attacks, as context."""
    head = PLATFORM_HEAD[p["status"]]
    if p["status"] in ("failing", "blocked"):
        since = ""
        if p.get("since"):  # no success before it in these logs: it may have begun earlier
            since = f" since {'' if p.get('last_success') else 'at least '}{when(p['since'])}"
        step = p["next_step"].rstrip(".")
        parts = [f"{head}{since}: {step[:1].lower() + step[1:] if step[1:2].islower() else step}"]
    else:
        parts = [head]
    if top is not None and not (attacks and top["verdict"] == "attack" and top["cause"] != "success-after-attack"):
        parts.append(headline(top))
    if attacks:
        parts.append(attack_words(attacks, brief=True))
    elif top is None and p["status"] in ("ok", "not-seen"):
        parts.append(NO_FAILURES)
    return "; ".join([parts[0], *(_lower_first(x) for x in parts[1:] if x)])


def _lower_first(text: str) -> str:
    """A sentence's first letter in lower case after a semicolon ("Brute force" → "brute
    force"), but not an acronym's ("SSH")."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def attack_words(a: dict[str, Any], brief: bool = False) -> str:
    """A host's attack summary (:func:`analyzer.analysis.attack_summary`) in words: "attacks
    from 300 sources (1,157 attempts, none got in); 40 sources scanned (no login tried)"; with
    no source address logged, or only scanning, it says so. ``brief``: without the accounts."""
    out = []
    if a["attempts"]:
        got = "one got in" if a["succeeded"] else "none got in"
        who = f"from {plural(a['sources'], 'source')}" if a["sources"] else "with no source address logged"
        tried = "" if brief or not a["accounts"] else f", {plural(a['accounts'], 'account')} tried"
        out.append(f"attacks {who} ({plural(a['attempts'], 'attempt')}{tried}, {got})")
    scan = a.get("scanning")
    if scan:
        out.append(
            f"{plural(scan['sources'], 'source')} scanned ({plural(scan['connections'], 'connection')}, no login tried)"
        )
    return "; ".join(out)


def host_name(host: str | None) -> str:
    """A finding's host for people (findings keep ``None`` where the log names no host)."""
    return UNKNOWN_HOST if host is None else host


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 finding``, ``2,500 findings`` (``words``: the plural when it is not ``word`` + s)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def some(values: list, limit: int = 10) -> str:
    """A list for people: the first ``limit`` values, then how many more (the JSON report
    keeps them all)."""
    values = [str(v) for v in values]
    if len(values) <= limit:
        return ", ".join(values)
    return f"{', '.join(values[:limit])} and {len(values) - limit:,} more"


@cache
def _plain_env() -> jinja2.Environment:
    """For the cause explanations: plain text out, escaped later by each format."""
    env = Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "causes")),
        autoescape=False,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["some"] = some
    env.filters["plural"] = plural
    return env


def _context(f: dict) -> dict[str, Any]:
    """What a cause template reads of a finding."""
    reasons = f.get("reasons") or {}
    ports = sorted({str(e) for e in f.get("dst_ports", [])}) or ["22", "5985", "5986"]
    attempts = f.get("attempts", f.get("count", 0))  # a finding of report_version 1 counted records
    return {
        **f,
        "attempts": attempts,
        "connections": f.get("connections", attempts),
        "host": host_name(f.get("host")),
        "services": f.get("service") or [],
        "cadence": cadence_text(f),
        "reasons_text": ", ".join(PLAIN.get(r, r) for r in reasons) or "not stated",
        "ports_text": "TCP " + "/".join(ports),
    }


_FINDING_BLOCKS = ("title", "explanation", "impact", "remediation")  # a finding's; the platform's: platform_words


def _explain(f: dict) -> dict[str, Any]:
    tpl = _plain_env().get_template(f"{f['cause']}.j2")  # every cause has one: loading the causes checks it
    context = tpl.new_context(_context(f))
    blocks = {name: "".join(fn(context)).strip() for name, fn in tpl.blocks.items() if name in _FINDING_BLOCKS}
    return {
        "title": blocks.get("title", f["cause"]),
        "explanation": " ".join(blocks.get("explanation", "").split()),
        "impact": " ".join(blocks.get("impact", "").split()),
        "remediation": [line.strip() for line in blocks.get("remediation", "").splitlines() if line.strip()],
    }


def explain(findings: list[dict[str, Any]]) -> None:
    """Add each finding's prose (title, explanation, impact, remediation, cadence), once."""
    for f in findings:
        if "title" not in f:
            f.update(_explain(f))
            f["cadence_text"] = cadence_text(f)
