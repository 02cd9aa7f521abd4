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


def _iso(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat().replace("+00:00", "Z")


def _counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(object).dropna().value_counts()
    return {str(k): int(v) for k, v in vc.items()}


def _transition(events: pd.DataFrame, host: Any, users: list[str], first_failure) -> dict | None:
    """For an account that used to work: its last success before the failures began, and
    any password change around that time."""
    if not users:
        return None
    same = (events["host"].astype(object) == host) & events["user"].astype(object).isin(users)
    before = events[same & (events["timestamp"] < first_failure)]
    ok = before[(before["outcome"] == "success") & (before["action"] == "logon")]
    changes = events[(events["host"].astype(object) == host) & (events["action"] == "password-change")]
    if ok.empty and changes.empty:
        return None
    last_ok = ok["timestamp"].max() if len(ok) else None
    window_start = last_ok if last_ok is not None else first_failure - pd.Timedelta(days=1)
    near = changes[
        (changes["timestamp"] >= window_start - pd.Timedelta(hours=1)) & (changes["timestamp"] <= first_failure)
    ]
    return {
        "last_success": _iso(last_ok),
        "first_failure": _iso(first_failure),
        "password_changes": [
            {
                "time": _iso(r["timestamp"]),
                "user": None if pd.isna(r["user"]) else str(r["user"]),
                "where": f"{r['source']}:{r['locator']}",
            }
            for _, r in near.iterrows()
        ],
    }


def findings(events: pd.DataFrame, cls: Classified, profile: Profile, examples: int = 3) -> list[dict[str, Any]]:
    """Classified events gathered per (host, cause, source, account), ranked by urgency."""
    if events.empty:
        return []
    ev = events.assign(
        cause=cls.cause.astype(object),
        verdict=cls.verdict.astype(object),
        confidence=cls.confidence.astype(object),
        rule=cls.rule.astype(object),
        cadence=cls.cadence,
    )
    ev = ev[ev["cause"].notna()]
    out: list[dict[str, Any]] = []
    for cause, by_cause in ev.groupby("cause", sort=False):
        keys = ["host", *FINDING_KEYS.get(cause, DEFAULT_KEYS)]
        frame = by_cause.assign(**{k: by_cause[k].astype(object) for k in keys})
        for _, grp in frame.groupby(keys, dropna=False, sort=False):
            grp = grp.sort_values("timestamp")
            first, last = grp["timestamp"].min(), grp["timestamp"].max()
            cad = grp["cadence"].dropna()
            cadence = float(cad.median()) if len(cad) else None
            if cadence is None and len(grp) >= 4:
                t = (grp["timestamp"].astype("int64") // 1_000_000).to_numpy()
                per, med = periodicity(np.zeros(len(t), dtype=np.int64), t, profile.thresholds["periodic_max_cv"], 4)
                cadence = float(med[0]) if per[0] else None
            beats = None
            if cadence:
                secs = np.sort((grp["timestamp"].astype("int64") // 1_000_000).to_numpy())
                attempts = 1 + int((np.diff(secs) >= 30).sum())  # events within 30 s are one attempt
                expected = int(round((last - first).total_seconds() / cadence)) + 1
                beats = {"expected": expected, "observed": attempts}
            confidence = min(grp["confidence"].dropna(), key=lambda c: CONFIDENCE_RANK.get(c, 9), default="low")
            failures = grp[grp["outcome"].isin(["failure", "blocked"])]
            users = sorted({str(u) for u in grp["user"].dropna()})
            notes = []
            if cause.startswith("probe-") and not profile.networks and cause != "probe-service-down":
                notes.append(
                    "recognized by its cadence and account alone; to confirm it is the platform, add the platform's "
                    "network to [platform] networks in authtriage.toml (or --platform-net) and run again"
                )
            out.append(
                {
                    "cause": cause,
                    "verdict": grp["verdict"].iloc[0],
                    "confidence": confidence,
                    "rule": grp["rule"].iloc[0],
                    "host": None if pd.isna(grp["host"].iloc[0]) else str(grp["host"].iloc[0]),
                    "service": sorted({str(s) for s in grp["service"].dropna()}),
                    "src_ips": sorted({str(s) for s in grp["src_ip"].dropna()}),
                    "users": users,
                    "reasons": _counts(grp["reason"]),
                    "actions": _counts(grp["action"]),
                    "count": int(len(grp)),
                    "failures": int(len(failures)),
                    "first_seen": _iso(first),
                    "last_seen": _iso(last),
                    "cadence_seconds": cadence,
                    "beats": beats,
                    "transition": _transition(events, grp["host"].iloc[0], users, failures["timestamp"].min())
                    if len(failures)
                    else None,
                    "examples": [
                        {"where": f"{r['source']}:{r['locator']}", "text": None if pd.isna(r["raw"]) else str(r["raw"])}
                        for _, r in grp.head(examples).iterrows()
                    ],
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
