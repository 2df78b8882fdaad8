"""Cron schedules for jobs, from a TOML file, run by APScheduler 3.

``notebooks/jobs/schedule.toml`` holds one table per job::

    [jobs.backfill]
    cron = "0 * * * *"          # minute hour day month weekday (0 = Sunday), in UTC
    parameters = { symbols = "BTC/USDT" }
    timeout = 1800              # seconds (default: the runner's one hour)

Missed-run policy: a job never runs twice at once (APScheduler's ``max_instances=1``, and
the runner's lock across processes). Fire times missed while a run was still going or the
scheduler was down are coalesced into one run, made only if it can start within
``misfire_grace_time`` seconds of its fire time (default 5 minutes); otherwise it is skipped
and the next fire time is awaited. A failing or refused run is logged and recorded, and
the scheduler carries on. :func:`due_jobs` states the same policy as a pure function of
the clock, so it can be checked without waiting.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from workbench.errors import ConfigError, WorkbenchError
from workbench.jobs._cron import cron_trigger
from workbench.jobs.notebooks import NOTEBOOKS, job_notebook
from workbench.jobs.parameters import validate
from workbench.jobs.runner import run_job

if TYPE_CHECKING:
    from workbench.config import Settings

SCHEDULE = NOTEBOOKS / "jobs" / "schedule.toml"
MISFIRE_GRACE_TIME = 300.0
_KEYS = {"cron", "parameters", "timeout"}
_TICK = timedelta(microseconds=1)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """A job on a cron schedule (UTC), with the parameters and timeout of its runs."""

    name: str
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    trigger: CronTrigger = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            trigger = cron_trigger(self.cron)
        except ValueError as exc:
            raise ConfigError(
                f"Job {self.name!r} has a bad cron expression {self.cron!r}: {exc}. Use five "
                f"fields, minute hour day month weekday, e.g. '0 * * * *' for hourly."
            ) from None
        object.__setattr__(self, "trigger", trigger)

    def next_run(self, now: datetime) -> datetime | None:
        """The first fire time at or after ``now``."""
        return self.trigger.get_next_fire_time(None, now)


def load_schedule(path: Path | None = None, *, notebooks: Path | None = None) -> dict[str, ScheduledJob]:
    """The jobs in the schedule file, each checked (cron, notebook, parameters) at load."""
    path = path or SCHEDULE
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8")).get("jobs", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read the job schedule {path}: {exc}") from None
    jobs = {}
    for name, table in tables.items():
        unknown = set(table) - _KEYS
        if unknown or "cron" not in table:
            raise ConfigError(
                f"{path}: [jobs.{name}] needs 'cron' and may set 'parameters' and 'timeout'"
                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "") + "."
            )
        job = ScheduledJob(name, table["cron"], dict(table.get("parameters", {})), table.get("timeout"))
        try:
            validate(job_notebook(name, notebooks), job.parameters)
        except WorkbenchError as exc:
            raise ConfigError(f"{path}: job {name!r}: {exc}") from None
        jobs[name] = job
    return jobs


def next_run_times(jobs: dict[str, ScheduledJob], now: datetime) -> dict[str, datetime | None]:
    """When each job fires next, at or after ``now``."""
    return {name: job.next_run(now) for name, job in jobs.items()}


def due_jobs(
    jobs: dict[str, ScheduledJob],
    since: datetime,
    now: datetime,
    misfire_grace_time: float = MISFIRE_GRACE_TIME,
) -> list[tuple[str, datetime]]:
    """The runs the scheduler makes at ``now`` when it last looked at ``since``: per job,
    the latest fire time in (since, now] (missed ones coalesced), if not older than the
    grace time; ordered by fire time."""
    due = []
    for name, job in jobs.items():
        latest, fire = None, job.next_run(since + _TICK)
        while fire is not None and fire <= now:
            latest, fire = fire, job.next_run(fire + _TICK)
        if latest is not None and (now - latest).total_seconds() <= misfire_grace_time:
            due.append((name, latest))
    return sorted(due, key=lambda item: item[1])


class Scheduler:
    """Runs scheduled jobs in the background (``start``/``shutdown``) under the policy above."""

    def __init__(
        self,
        jobs: dict[str, ScheduledJob],
        *,
        settings: Settings | None = None,
        notebooks: Path | None = None,
        misfire_grace_time: float = MISFIRE_GRACE_TIME,
    ) -> None:
        self.jobs = jobs
        self._settings = settings
        self._notebooks = notebooks
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_time},
        )
        for job in jobs.values():
            self._scheduler.add_job(self.run, job.trigger, args=[job.name], id=job.name, name=job.name)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        self._scheduler.shutdown(wait=wait)

    def next_run_times(self) -> dict[str, datetime | None]:
        """When APScheduler will fire each job next (None before ``start``)."""
        return {job.id: getattr(job, "next_run_time", None) for job in self._scheduler.get_jobs()}

    def run(self, name: str) -> None:
        """One run of a scheduled job; a failure or refusal is logged, never raised, so the
        scheduler keeps going."""
        job = self.jobs[name]
        try:
            result = run_job(
                name, job.parameters, settings=self._settings, timeout=job.timeout,
                notebooks=self._notebooks,
            )
        except Exception:
            log.exception("scheduled job %s could not run", name)
            return
        (log.info if result.ok else log.error)("scheduled %s", result)
