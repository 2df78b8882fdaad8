"""Schedules: loading and refusing them, due times on a controllable clock, the scheduler."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ROOT
from workbench.errors import ConfigError
from workbench.jobs import JobRun, ScheduledJob, Scheduler, due_jobs, load_schedule, next_run_times

TEST_JOBS = ROOT / "tests" / "job_notebooks"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(hours: int = 0, minutes: int = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes)


def write(tmp_path, text: str):
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    return path


def test_a_schedule_file_is_loaded_and_checked_against_the_notebooks(tmp_path):
    path = write(tmp_path, """
[jobs.echo]
cron = "*/15 * * * *"
parameters = { label = "hello", count = 2 }
timeout = 60

[jobs.raises]
cron = "0 6 * * 1-5"
""")
    jobs = load_schedule(path, notebooks=TEST_JOBS)
    assert jobs["echo"] == ScheduledJob("echo", "*/15 * * * *", {"label": "hello", "count": 2}, 60)
    assert jobs["raises"].parameters == {}
    assert next_run_times(jobs, at(0, 1)) == {"echo": at(0, 15), "raises": at(6)}  # 2024-01-01: Monday


def test_the_shipped_schedule_loads():
    jobs = load_schedule()
    assert "backfill" in jobs and jobs["backfill"].parameters["exchange"] == "sim"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[jobs.echo]\ncron = "61 * * * *"', r"Job 'echo' has a bad cron expression '61 \* \* \* \*'"),
        ('[jobs.echo]\ncron = "* * *"', "Job 'echo' has a bad cron expression.*Wrong number of fields"),
        ('[jobs.echo]\ncron = "0 0 * * 8"', "Job 'echo' has a bad cron expression.*0-7"),
        ("[jobs.echo]\nparameters = {}", r"\[jobs.echo\] needs 'cron'"),
        ('[jobs.echo]\ncron = "0 * * * *"\nretries = 3', "unknown: retries"),
        ('[jobs.echo]\ncron = "0 * * * *"\nparameters = { count = "two" }', "job 'echo'.*'count' of echo is declared int"),
        ('[jobs.nope]\ncron = "0 * * * *"', "job 'nope': No job 'nope'"),
        ("[jobs.echo\n", "Cannot read the job schedule"),
    ],
)
def test_bad_schedules_are_refused_at_load_naming_the_job(tmp_path, table, message):
    with pytest.raises(ConfigError, match=message):
        load_schedule(write(tmp_path, table), notebooks=TEST_JOBS)


def test_due_jobs_fire_at_their_times_on_a_fake_clock():
    jobs = {"hourly": ScheduledJob("hourly", "0 * * * *"), "quarter": ScheduledJob("quarter", "*/15 * * * *")}
    fired, clock = [], T0
    while clock < at(2):  # advance a fake clock a minute at a time: no sleeping
        step = clock + timedelta(minutes=1)
        fired += [(name, when, step) for name, when in due_jobs(jobs, clock, step)]
        clock = step

    assert [(n, w) for n, w, _ in fired if n == "hourly"] == [("hourly", at(1)), ("hourly", at(2))]
    assert [w for n, w, _ in fired if n == "quarter"] == [at(0, m) for m in range(15, 120 + 1, 15)]
    assert all(when == now for _, when, now in fired)  # each fires the moment it is due
    assert [n for n, w, _ in fired if w == at(1)] == ["hourly", "quarter"]


@pytest.mark.parametrize(
    ("weekdays", "fires"),
    [("1-5", [1, 2, 3, 4, 5]), ("0", [7]), ("7", [7]), ("0-6", list(range(1, 8))), ("*/2", [2, 4, 6, 7]),
     ("1,3", [1, 3]), ("mon-fri", [1, 2, 3, 4, 5]), ("*", list(range(1, 8)))],
)
def test_weekdays_count_from_sunday_as_in_crontab(weekdays, fires):
    job = ScheduledJob("daily", f"0 6 * * {weekdays}")  # 2024-01-01 is a Monday, the 7th a Sunday
    days, clock = [], T0
    while (when := job.next_run(clock)) < at(24 * 7):
        days.append(when.day)
        clock = when + timedelta(minutes=1)
    assert days == fires


def test_missed_runs_are_coalesced_and_skipped_beyond_the_grace_time():
    jobs = {"hourly": ScheduledJob("hourly", "0 * * * *")}
    assert due_jobs(jobs, at(0), at(3, 2)) == [("hourly", at(3))]  # 1:00-3:00 missed: one run
    assert due_jobs(jobs, at(0), at(3, 6), misfire_grace_time=300) == []  # too late: wait for 4:00
    assert due_jobs(jobs, at(0), at(3, 6), misfire_grace_time=600) == [("hourly", at(3))]
    assert due_jobs(jobs, at(3), at(3, 59)) == []


def test_the_scheduler_runs_each_job_once_at_a_time_with_the_stated_policy(isolated_env):
    jobs = load_schedule(write(isolated_env, '[jobs.echo]\ncron = "*/5 * * * *"'), notebooks=TEST_JOBS)
    scheduler = Scheduler(jobs, notebooks=TEST_JOBS, misfire_grace_time=42)
    scheduler._scheduler.start(paused=True)
    try:
        (job,) = scheduler._scheduler.get_jobs()
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 42)
        assert scheduler.next_run_times() == next_run_times(jobs, datetime.now(UTC))
    finally:
        scheduler.shutdown()


def test_a_failing_or_refused_job_never_stops_the_scheduler(isolated_env, monkeypatch, caplog):
    outcomes = iter([RuntimeError("the kernel died"), JobRun(1, "echo", {}, "failed", error="boom"),
                     JobRun(2, "echo", {}, "succeeded")])

    def fake_run_job(name, parameters, **_):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr("workbench.jobs.schedule.run_job", fake_run_job)
    scheduler = Scheduler({"echo": ScheduledJob("echo", "* * * * *")}, notebooks=TEST_JOBS)
    with caplog.at_level(logging.INFO, logger="workbench.jobs.schedule"):
        for _ in range(3):
            scheduler.run("echo")
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR", "INFO"]
    assert "the kernel died" in caplog.text and "run 1 failed: boom" in caplog.text


def test_cli_schedule_runs_the_scheduler_until_interrupted(isolated_env, monkeypatch, capsys):
    from workbench.cli import main

    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("workbench.cli.jobs._wait_for_interrupt", interrupt)
    path = write(isolated_env, '[jobs.backfill]\ncron = "0 3 * * *"')
    assert main(["jobs", "schedule", "--schedule", str(path)]) == 0
    out = capsys.readouterr().out
    assert "backfill: next run" in out and "03:00:00+00:00" in out
    assert "stopping" in out
