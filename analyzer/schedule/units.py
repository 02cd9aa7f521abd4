"""Ready-to-install systemd units and a cron line for a configuration's jobs."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from .jobs import Schedule

__all__ = ["units", "executable"]


def executable() -> str:
    """The authtriage command as installed (the console script beside this Python)."""
    beside = Path(sys.executable).with_name("authtriage")
    if beside.exists():
        return str(beside)
    found = shutil.which("authtriage")
    return found or f"{sys.executable} -m analyzer"


def _calendar_to_cron(spec: str) -> str | None:
    """``*-*-* HH:MM`` / ``daily`` / ``hourly`` → a cron schedule; None when there is no simple equivalent."""
    s = spec.strip()
    if s == "daily":
        return "0 0 * * *"
    if s == "hourly":
        return "0 * * * *"
    parts = s.split()
    if len(parts) == 2 and parts[0] == "*-*-*":
        hm = parts[1].split(":")
        if len(hm) in (2, 3) and all(p.isdigit() for p in hm[:2]):
            return f"{int(hm[1])} {int(hm[0])} * * *"
    return None


def _quoted(assignment: str) -> str:
    """A systemd ``Environment=`` assignment in double quotes (spaces kept)."""
    return '"' + assignment.replace("\\", "\\\\").replace('"', '\\"') + '"'


def units(schedule: Schedule, command: str | None = None) -> dict[str, str]:
    """``authtriage.service``, ``authtriage.timer`` and a crontab line."""
    exe = command or executable()
    run = f"{exe} schedule run --config {shlex.quote(str(schedule.path))}"
    writable = sorted({str(j.output) for j in schedule.jobs} | {str(schedule.state.parent)})
    inputs = [i for j in schedule.jobs for i in j.inputs]
    readable = sorted({str(Path(i).parent) if any(c in i for c in "*?[") else i for i in inputs})
    service = "\n".join(
        [
            "[Unit]",
            "Description=authtriage scheduled failed-login reports",
            "Documentation=https://pypi.org/project/authtriage/",
            "After=local-fs.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={run}",
            "Nice=10",
            "IOSchedulingClass=idle",
            "NoNewPrivileges=yes",
            # no PrivateTmp: a configuration, logs or reports under /tmp would vanish from the
            # service's view. It writes the reports and the state (ReadWritePaths), and any
            # scratch file beside the state (TMPDIR, which SQLite reads too: /tmp is read-only)
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            f"ReadWritePaths={' '.join(shlex.quote(p) for p in writable)}",
            f"Environment={_quoted('TMPDIR=' + str(schedule.state.parent))}",
            f"# reads: {' '.join(readable)}",
            "# exit status 75: another run was still going; the timer simply tries again next time",
            "SuccessExitStatus=75",
            "",
        ]
    )
    timer = "\n".join(
        [
            "[Unit]",
            "Description=Run authtriage's scheduled reports",
            "",
            "[Timer]",
            f"OnCalendar={schedule.on_calendar}",
            "RandomizedDelaySec=10min",
            "Persistent=true",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    cron_spec = _calendar_to_cron(schedule.on_calendar) or "30 2 * * *"
    log = shlex.quote(str(schedule.state.parent / "authtriage-cron.log"))
    cron = f"{cron_spec} {run} >>{log} 2>&1\n"
    return {"authtriage.service": service, "authtriage.timer": timer, "crontab": cron}
