"""Scheduled jobs: papermill runs parameterised notebooks, renders and records them.

``run_job("backfill", {"symbols": "BTC/USDT"})`` runs ``notebooks/jobs/backfill.ipynb``;
``JobRegistry`` is the history; ``load_schedule`` and ``Scheduler`` run jobs on cron
schedules.
"""

from workbench.errors import JobRefusedError
from workbench.jobs.notebooks import find_jobs
from workbench.jobs.registry import JobRegistry
from workbench.jobs.runner import JobRun, run_job
from workbench.jobs.schedule import ScheduledJob, Scheduler, due_jobs, load_schedule, next_run_times

__all__ = [
    "JobRefusedError",
    "JobRegistry",
    "JobRun",
    "ScheduledJob",
    "Scheduler",
    "due_jobs",
    "find_jobs",
    "load_schedule",
    "next_run_times",
    "run_job",
]
