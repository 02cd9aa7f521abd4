"""Scheduled jobs, read from ``[[job]]`` tables of ``authtriage.toml``::

    [schedule]
    state = "/var/lib/authtriage/state.sqlite"   # default: <output of the first job>/state.sqlite
    on_calendar = "*-*-* 02:30"                  # systemd timer (and the cron line): default daily 02:30

    [[job]]
    name = "web01"
    inputs = ["/var/log/auth.log*", "/var/log/secure*"]
    output = "/var/lib/authtriage/reports"
    formats = ["html", "json"]
    keep = 30                  # reports kept per format
    window_days = 7            # findings are computed over this many days of stored events
    [job.platform]             # overrides [platform] for this job
    networks = ["198.51.100.0/24"]

Relative paths are relative to the file's directory.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import Profile, check_networks, load_profile
from ..errors import UsageError

__all__ = ["Job", "Schedule", "load_schedule"]

FORMATS = ("json", "html", "md", "text")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_JOB_KEYS = {"name", "inputs", "output", "formats", "keep", "window_days", "platform", "rules"}
_PLATFORM_KEYS = {"networks", "accounts", "ports", "timezone"}


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    inputs: tuple[str, ...]
    output: Path  # reports go to output/name/
    formats: tuple[str, ...] = ("html", "json")
    keep: int = 30
    window_days: float = 7.0
    profile: Profile = Profile()
    rules: tuple[Path, ...] = ()

    @property
    def directory(self) -> Path:
        return self.output / self.name


@dataclass(frozen=True, slots=True)
class Schedule:
    path: Path  # the config file
    jobs: tuple[Job, ...]
    state: Path
    on_calendar: str = "*-*-* 02:30"
    cluster: str | None = None  # [cluster] address: a Dask scheduler that analyzes the jobs' hosts

    def job(self, name: str) -> Job:
        for j in self.jobs:
            if j.name == name:
                return j
        raise UsageError(f"{self.path}: no job named {name!r} (jobs: {', '.join(j.name for j in self.jobs)})")


def _fail(path: Path, where: str, message: str) -> UsageError:
    return UsageError(f"{path}: {where}: {message}")


def _job(path: Path, base: Path, index: int, raw: Any, profile: Profile) -> Job:
    where = f"[[job]] #{index + 1}"
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(path, where, "name must be letters, digits, '.', '_' or '-' (a directory name)")
    where = f"job {name!r}"
    unknown = set(raw) - _JOB_KEYS
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)} (known: {sorted(_JOB_KEYS)})")
    inputs = raw.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        raise _fail(path, where, "inputs must be a non-empty list of paths or globs")
    output = raw.get("output")
    if not isinstance(output, str) or not output:
        raise _fail(path, where, "output (a directory) is required")
    formats = raw.get("formats", ["html", "json"])
    if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
        raise _fail(path, where, f"formats must be a list of {', '.join(FORMATS)}")
    keep = raw.get("keep", 30)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise _fail(path, where, "keep must be a whole number of reports, at least 1")
    window = raw.get("window_days", 7)
    if not isinstance(window, int | float) or isinstance(window, bool) or not 0 < window <= 366:
        raise _fail(path, where, "window_days must be a number of days between 0 and 366")
    rules = raw.get("rules", [])
    if isinstance(rules, str):
        rules = [rules]
    overrides = raw.get("platform", {})
    if not isinstance(overrides, dict) or set(overrides) - _PLATFORM_KEYS:
        raise _fail(path, where, f"[job.platform] takes only {sorted(_PLATFORM_KEYS)}")
    job_profile = profile
    if "networks" in overrides:
        job_profile = replace(job_profile, networks=tuple(check_networks(overrides["networks"], f"{path} {where}")))
    if "accounts" in overrides:
        job_profile = replace(job_profile, accounts=tuple(str(a) for a in overrides["accounts"]))
    if "ports" in overrides:
        job_profile = replace(job_profile, ports=tuple(int(p) for p in overrides["ports"]))
    if "timezone" in overrides:
        job_profile = replace(job_profile, timezone=str(overrides["timezone"]))
    return Job(
        name=name,
        inputs=tuple(str(_resolve(base, i)) for i in inputs),
        output=_resolve(base, output),
        formats=tuple(dict.fromkeys(formats)),
        keep=keep,
        window_days=float(window),
        profile=job_profile,
        rules=tuple(_resolve(base, r) for r in rules),
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_schedule(path: str | Path | None = None) -> Schedule:
    """The jobs of a config file (``--config``, ``$AUTHTRIAGE_CONFIG`` or ./authtriage.toml)."""
    profile = load_profile(path)
    if profile.path is None:
        raise UsageError("no configuration: give --config FILE (or set AUTHTRIAGE_CONFIG) with [[job]] tables")
    cfg = Path(profile.path).resolve()
    doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    base = cfg.parent
    raw_jobs = doc.get("job", [])
    if not isinstance(raw_jobs, list) or not raw_jobs:
        raise UsageError(f"{cfg}: no [[job]] tables: a scheduled run needs at least one job")
    jobs = tuple(_job(cfg, base, i, raw, profile) for i, raw in enumerate(raw_jobs))
    names = [j.name for j in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{cfg}: job names must be unique: {', '.join(dupes)}")
    sched = doc.get("schedule", {})
    if not isinstance(sched, dict) or set(sched) - {"state", "on_calendar"}:
        raise UsageError(f"{cfg}: [schedule] takes only state and on_calendar")
    state = _resolve(base, sched["state"]) if "state" in sched else jobs[0].output / "state.sqlite"
    on_calendar = str(sched.get("on_calendar", "*-*-* 02:30"))
    return Schedule(path=cfg, jobs=jobs, state=state, on_calendar=on_calendar, cluster=profile.cluster)
