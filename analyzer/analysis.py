"""Host roles and findings: what the classified events mean, per host and cause."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .classify.engine import Classified, periodicity
from .config import Profile

__all__ = ["host_roles", "findings", "FINDING_KEYS", "VERDICT_RANK", "analyze_events"]

DC_EVENT_IDS = (4768, 4769, 4771)
DS_CHANNELS = ("Directory Service", "DFS Replication", "DNS Server", "Active Directory Web Services")
WINDOWS_LOGS = ("evtx", "windows-xml", "windows-json", "pfirewall")
LINUX_LOGS = ("syslog", "journal")
# how a cause's events are gathered into findings (besides host and cause)
FINDING_KEYS: dict[str, list[str]] = {
    "password-spray": ["src_ip"],
    "user-enumeration": ["src_ip"],
    "distributed-attack": ["user"],
    "brute-force": ["user"],
    "probe-service-down": ["service"],
    "probe-firewall-blocked": ["src_ip"],
}
DEFAULT_KEYS = ["src_ip", "user"]
# what needs action first
VERDICT_RANK = {"attack": 0, "misconfiguration": 1, "user-error": 2, "unknown": 3, "expected": 4}
CAUSE_FIRST = {"success-after-attack": -1}
CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2}


def host_roles(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Each host's role, with the evidence that decided it."""
    out = []
    if events.empty:
        return out
    for host, ev in events.groupby(events["host"].astype(object).fillna("(unknown host)"), sort=True):
        evidence: list[str] = []
        ids = ev["event_id"].dropna().astype(int)
        dc_ids = sorted(set(ids[ids.isin(DC_EVENT_IDS)]))
        channels = set(ev["channel"].dropna().astype(str))
        logs = set(ev["log"].dropna().astype(str))
        if dc_ids:
            evidence.append(
                f"Kerberos KDC events {', '.join(map(str, dc_ids))} in its own Security log (only DCs log them)"
            )
        ds = sorted(channels & set(DS_CHANNELS))
        if ds:
            evidence.append(f"directory-service channels: {', '.join(ds)}")
        if evidence:
            role = "domain-controller"
        elif logs & set(WINDOWS_LOGS) or channels:
            role = "windows"
            evidence.append(f"Windows event logs ({', '.join(sorted(logs & set(WINDOWS_LOGS)))}), no KDC events")
        elif logs & set(LINUX_LOGS):
            role = "linux"
            evidence.append(f"Linux logs ({', '.join(sorted(logs & set(LINUX_LOGS)))})")
        else:
            role = "unknown"
            evidence.append("no log kind that tells")
        out.append({"name": host, "role": role, "role_evidence": evidence})
    return out


def iso_utc(ts) -> str | None:
    """A timestamp as ISO 8601 UTC with a Z (None for a missing one)."""
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat().replace("+00:00", "Z")


def _counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(object).dropna().value_counts()
    return {str(k): int(v) for k, v in vc.items()}


# causes where "it used to work" is the point: show the last success and password changes
TRANSITION_CAUSES = {
    "probe-password-mismatch",
    "probe-account-unusable",
    "probe-dc-account",
    "probe-root-refused",
    "stale-credentials",
}


class _History:
    """Successes and password changes per (host, account), looked up per finding."""

    def __init__(self, events: pd.DataFrame) -> None:
        ok = events[(events["outcome"] == "success") & (events["action"] == "logon")]
        self.ok = {
            key: grp["timestamp"]
            for key, grp in ok.groupby([ok["host"].astype(object), ok["user"].astype(object)], sort=False)
        }
        ch = events[events["action"] == "password-change"]
        self.changes = {
            host: grp.sort_values("timestamp") for host, grp in ch.groupby(ch["host"].astype(object), sort=False)
        }

    def transition(self, host: Any, users: list[str], first_failure) -> dict | None:
        if not users or first_failure is None or pd.isna(first_failure):
            return None
        last_ok = None
        for u in users:
            times = self.ok.get((host, u))
            before = times[times < first_failure] if times is not None else ()
            if len(before) and (last_ok is None or before.max() > last_ok):
                last_ok = before.max()
        changes = self.changes.get(host)
        if last_ok is None and changes is None:
            return None
        near: list[dict] = []
        if changes is not None:
            start = (last_ok if last_ok is not None else first_failure - pd.Timedelta(days=1)) - pd.Timedelta(hours=1)
            sel = changes[(changes["timestamp"] >= start) & (changes["timestamp"] <= first_failure)]
            near = [
                {
                    "time": iso_utc(r["timestamp"]),
                    "user": None if pd.isna(r["user"]) else str(r["user"]),
                    "where": f"{r['source']}:{r['locator']}",
                }
                for _, r in sel.iterrows()
            ]
        return {"last_success": iso_utc(last_ok), "first_failure": iso_utc(first_failure), "password_changes": near}


_FINDING_COLUMNS = [
    "host",
    "timestamp",
    "user",
    "src_ip",
    "service",
    "reason",
    "action",
    "outcome",
    "source",
    "locator",
    "raw",
    "dst_port",
]


def _sorted_unique(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna()})


def findings(events: pd.DataFrame, cls: Classified, profile: Profile, examples: int = 3) -> list[dict[str, Any]]:
    """Classified events gathered per (host, cause, source, account), ranked by urgency.

    One groupby per cause computes the counts and times; per finding only its small
    lists (accounts, sources, reasons, examples) are built."""
    if events.empty:
        return []
    ev = events.assign(
        cause=cls.cause.astype(object),
        verdict=cls.verdict.astype(object),
        confidence=cls.confidence.astype(object),
        rule=cls.rule.astype(object),
        cadence=cls.cadence,
    )
    needed = [*_FINDING_COLUMNS, "cause", "verdict", "confidence", "rule", "cadence"]
    ev = ev.loc[ev["cause"].notna(), needed]
    if ev.empty:
        return []
    history = _History(events)
    out: list[dict[str, Any]] = []
    for cause, by_cause in ev.groupby("cause", sort=False):
        keys = ["host", *FINDING_KEYS.get(cause, DEFAULT_KEYS)]
        frame = by_cause.assign(**{k: by_cause[k].astype(object) for k in keys}).sort_values("timestamp")
        gid = frame.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
        frame = frame.assign(_g=gid)
        secs = (frame["timestamp"].astype("int64") // 1_000_000).to_numpy()
        per, med = periodicity(gid, secs, profile.thresholds["periodic_max_cv"], 4)
        g = frame.groupby("_g", sort=True)
        first, last, size = g["timestamp"].min(), g["timestamp"].max(), g.size()
        rule_cad = g["cadence"].median()
        fail_mask = frame["outcome"].isin(["failure", "blocked"])
        first_fail = frame[fail_mask].groupby("_g")["timestamp"].min()
        heads = frame.groupby("_g", sort=True).head(examples)
        shown: dict[int, list[dict]] = {}
        for gi, src, loc, raw in zip(heads["_g"], heads["source"], heads["locator"], heads["raw"], strict=True):
            shown.setdefault(int(gi), []).append({"where": f"{src}:{loc}", "text": None if pd.isna(raw) else str(raw)})
        for gi, grp in g:
            measured = rule_cad.get(gi)  # by the rule's periodicity condition, else measured here
            fallback = float(med[gi]) if per[gi] else None
            cadence = fallback if measured is None or pd.isna(measured) else float(measured)
            beats = None
            if cadence:
                t = np.sort(secs[gid == gi])
                attempts = 1 + int((np.diff(t) >= 30).sum())  # events within 30 s are one attempt
                expected = int(round((last[gi] - first[gi]).total_seconds() / cadence)) + 1
                beats = {"expected": expected, "observed": attempts}
            confidence = min(grp["confidence"].dropna(), key=lambda c: CONFIDENCE_RANK.get(c, 9), default="low")
            users = _sorted_unique(grp["user"])
            host = grp["host"].iloc[0]
            notes = []
            if cause.startswith("probe-") and not profile.networks and cause != "probe-service-down":
                notes.append(
                    "recognized by its cadence and account alone; to confirm it is the platform, add the platform's "
                    "network to [platform] networks in authtriage.toml (or --platform-net) and run again"
                )
            ff = first_fail.get(gi)
            out.append(
                {
                    "cause": cause,
                    "verdict": grp["verdict"].iloc[0],
                    "confidence": confidence,
                    "rule": grp["rule"].iloc[0],
                    "host": None if pd.isna(host) else str(host),
                    "service": _sorted_unique(grp["service"]),
                    "src_ips": _sorted_unique(grp["src_ip"]),
                    "dst_ports": sorted({int(p) for p in grp["dst_port"].dropna()}),
                    "users": users,
                    "reasons": _counts(grp["reason"]),
                    "actions": _counts(grp["action"]),
                    "count": int(size[gi]),
                    "failures": int(fail_mask[grp.index].sum()),
                    "first_seen": iso_utc(first[gi]),
                    "last_seen": iso_utc(last[gi]),
                    "cadence_seconds": cadence,
                    "beats": beats,
                    "transition": history.transition(host, users, ff) if cause in TRANSITION_CAUSES else None,
                    "examples": shown.get(int(gi), []),
                    "notes": notes,
                }
            )
    out.sort(
        key=lambda f: (
            CAUSE_FIRST.get(f["cause"], 0),
            VERDICT_RANK.get(f["verdict"], 9),
            CONFIDENCE_RANK.get(f["confidence"], 9),
            -f["count"],
        )
    )
    return out


def analyze_events(events: pd.DataFrame, ruleset, profile: Profile) -> dict[str, Any]:
    """Roles, classification and findings for a set of events."""
    from .classify.engine import classify

    hosts = host_roles(events)
    roles = {h["name"]: h["role"] for h in hosts}
    cls = classify(events, ruleset, profile, roles)
    found = findings(events, cls, profile)
    failures = events["outcome"].isin(["failure", "blocked"]).to_numpy()
    unclassified = int((cls.cause.astype(object) == "unclassified").to_numpy()[failures].sum())
    return {"hosts": hosts, "findings": found, "classification": cls, "unclassified": unclassified}
