"""``workbench jobs``: run, schedule and list papermill job notebooks."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from workbench.cli import app

jobs_app = typer.Typer(help="Scheduled jobs: papermill notebooks run, recorded and rendered.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

ScheduleOpt = typer.Option("--schedule", help="Schedule file (default: notebooks/jobs/schedule.toml).")


def _show(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        typer.echo(frame.to_string(index=False) if len(frame) else "(nothing)")


@jobs_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Job name: notebooks/jobs/NAME.ipynb or reports/NAME.ipynb.")],
    parameter: Annotated[list[str] | None, typer.Option("--parameter", "-p", help="key=value, repeatable.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the run is stopped (default 3600).")] = None,
) -> None:
    """Run a job now (values are converted to the notebook's declared types); exits 1
    unless it succeeds."""
    from workbench.errors import WorkbenchError
    from workbench.jobs.runner import run_job

    parameters = {}
    for item in parameter or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WorkbenchError(f"Parameter {item!r} is not of the form key=value.")
        parameters[key.strip()] = value
    result = run_job(name, parameters, timeout=timeout, coerce=True)
    typer.echo(str(result))
    if not result.ok:
        raise typer.Exit(1)


@jobs_app.command("list")
def list_(schedule: Annotated[Path | None, ScheduleOpt] = None) -> None:
    """The jobs found, with their schedules and next fire times (UTC)."""
    from workbench.jobs.notebooks import find_jobs
    from workbench.jobs.schedule import load_schedule

    scheduled = load_schedule(schedule)
    now = datetime.now(UTC)
    rows = [
        {"job": name, "notebook": str(path), "cron": scheduled[name].cron if name in scheduled else "",
         "next_run": scheduled[name].next_run(now) if name in scheduled else None}
        for name, path in find_jobs().items()
    ]
    _show(pd.DataFrame(rows, columns=["job", "notebook", "cron", "next_run"]))


@jobs_app.command("runs")
def runs(
    job: Annotated[str | None, typer.Option(help="Only this job's runs.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest runs.")] = 50,
) -> None:
    """The run history, newest first."""
    from workbench.config import load_settings
    from workbench.jobs.registry import JobRegistry

    with JobRegistry(load_settings().store_url) as registry:
        frame = registry.runs(job, limit)
    _show(frame[["id", "job", "status", "started", "ended", "parameters", "error", "html"]])


@jobs_app.command("schedule")
def schedule(
    schedule: Annotated[Path | None, ScheduleOpt] = None,
    misfire_grace_time: Annotated[float, typer.Option(help="Seconds a missed run may still start late.")] = 300.0,
) -> None:
    """Run the scheduler in the foreground until Ctrl+C."""
    from workbench.jobs.schedule import Scheduler, load_schedule

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scheduler = Scheduler(load_schedule(schedule), misfire_grace_time=misfire_grace_time)
    scheduler.start()
    for name, when in scheduler.next_run_times().items():
        typer.echo(f"{name}: next run {when}")
    try:
        _wait_for_interrupt()
    except KeyboardInterrupt:
        typer.echo("stopping: waiting for running jobs to finish")
    finally:
        scheduler.shutdown()


def _wait_for_interrupt() -> None:
    threading.Event().wait()  # only Ctrl+C (KeyboardInterrupt) ends it
