"""Scheduled reports: jobs from ``authtriage.toml``, incremental reading, history and
trends in SQLite, and the systemd/cron units that run them."""

from .jobs import Job, Schedule, load_schedule
from .runner import RunOutcome, run_job, run_jobs
from .state import Busy, State
from .units import units

__all__ = ["Job", "Schedule", "load_schedule", "RunOutcome", "run_jobs", "run_job", "Busy", "State", "units"]
