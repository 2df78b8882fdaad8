"""JobsPage without a browser: schedules with next due times, runs with their reports, and
run-now off the event loop, refused while the job already runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import panel as pn
import pytest

from tests.conftest import ROOT
from workbench.config import load_settings
from workbench.errors import ConfigError
from workbench.jobs import JobRegistry
from workbench.ui.jobs_page import JobsPage, parse_overrides, preview_html, reports_static_dir

TEST_JOBS = ROOT / "tests" / "job_notebooks"
NOW = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)  # a Monday
REPORT = """<!DOCTYPE html><html><head><style>:root { --jp-ui-font-size1: 13px; }</style>
<script src="bokeh.js"></script></head><body><main><h1>Echo report</h1><p>plain 0.5</p>
<div data-root-id="p1"></div><script type="text/javascript">Bokeh.embed()</script>
</main></body></html>"""


@pytest.fixture
def schedule(tmp_path) -> Path:
    path = tmp_path / "schedule.toml"
    path.write_text(
        '[jobs.echo]\ncron = "*/15 * * * *"\nparameters = { label = "tick", count = 2 }\n'
        'timeout = 60\n\n[jobs.raises]\ncron = "0 6 * * 1-5"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def page(isolated_env, schedule) -> JobsPage:
    page = JobsPage(load_settings(), schedule=schedule, notebooks=TEST_JOBS, clock=lambda: NOW)
    yield page
    page.close()


def record(job: str, status: str, html: Path | None = None, error: str | None = None) -> int:
    with JobRegistry(load_settings().store_url) as registry:
        run_id = registry.start(job, {"label": "x"}, pid=1)
        notebook = html.with_suffix(".ipynb") if html else None
        registry.finish(
            run_id, status, html=str(html) if html else None,
            notebook=str(notebook) if notebook else None, error=error,
        )  # fmt: skip
    return run_id


def test_schedules_list_every_job_with_its_cron_and_next_run(page):
    table = page.schedules.set_index("job")
    assert list(table.index) == ["echo", "raises", "sleeps"]
    assert table.loc["echo", "cron"] == "*/15 * * * *"
    assert table.loc["echo", "next run (UTC)"] == "2024-01-01 00:15"
    assert table.loc["echo", "parameters"] == "label=tick, count=2"
    assert table.loc["echo", "timeout"] == "60 s"
    assert table.loc["raises", "next run (UTC)"] == "2024-01-01 06:00"
    assert (
        table.loc["sleeps", "cron"] == "not scheduled"
        and table.loc["sleeps", "next run (UTC)"] == ""
    )
    assert [b.label for b in page._button_row] == ["echo", "raises", "sleeps"]
    assert page._schedule_table.value is page.schedules


def test_the_shipped_schedule_and_jobs_are_listed(isolated_env):
    page = JobsPage.from_settings(load_settings())
    try:
        table = page.schedules.set_index("job")
        assert {"backfill", "daily_report", "optimize_strategy"} <= set(table.index)
        assert table.loc["daily_report", "cron"] == "15 0 * * *"
        assert table.loc["optimize_strategy", "next run (UTC)"]
        assert page.message == ""
    finally:
        page.close()


def test_a_bad_schedule_is_an_alert_and_the_jobs_can_still_run(isolated_env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[jobs.echo]\ncron = "61 * * * *"\n', encoding="utf-8")
    page = JobsPage(load_settings(), schedule=bad, notebooks=TEST_JOBS)
    try:
        assert page.alert_type == "danger" and "bad cron expression" in page.message
        assert set(page.schedules["cron"]) == {"not scheduled"}
        assert len(page._button_row) == 3
    finally:
        page.close()


def test_runs_are_listed_newest_first_with_status_and_their_reports_shown(page, isolated_env):
    report = isolated_env / "data" / "reports" / "echo" / "20240101T000000Z-1" / "echo.html"
    report.parent.mkdir(parents=True)
    report.write_text(REPORT, encoding="utf-8")
    (report.parent / "echo.ipynb").write_text("{}", encoding="utf-8")
    first = record("echo", "succeeded", report)
    record("raises", "failed", error="ZeroDivisionError: division by zero")
    page.refresh()

    assert list(page.runs["job"]) == ["raises", "echo"]
    assert list(page.runs["status"]) == ["failed", "succeeded"]
    assert page.runs.iloc[0]["error"] == "ZeroDivisionError: division by zero"
    assert page.schedules.set_index("job").loc["echo", "last run"].startswith("succeeded ")
    assert page._report_head.object == "Select a run to see its report."

    page._runs_table.selection = [1]  # as a click on the echo run does
    assert page.selected == 1
    assert f"Run {first} of echo: succeeded" in page._report_head.object
    assert str(report) in page._report_head.object
    preview = page._preview.object
    assert "<h1>Echo report</h1>" in preview and "plain 0.5" in preview
    assert "<script" not in preview and ":host {" in preview
    assert page._html_download.file == str(report) and not page._html_download.disabled
    assert page._html_download.filename == "echo-20240101T000000Z-1.html"
    assert page._notebook_download.file == str(report.parent / "echo.ipynb")

    page.selected = 0  # the failed run left no report
    assert "This run left no report" in page._report_head.object
    assert "ZeroDivisionError" in page._report_head.object
    assert page._html_download.disabled and page._preview.object == ""
    assert page._runs_table.selection == [0]

    record("echo", "succeeded")  # a newer run: the selection stays on the same run
    page.refresh()
    assert page.runs.iloc[page.selected]["job"] == "raises"


def test_links_to_reports_when_the_server_serves_them(isolated_env, schedule):
    report = isolated_env / "data" / "reports" / "echo" / "20240101T000000Z-1" / "echo.html"
    report.parent.mkdir(parents=True)
    report.write_text(REPORT, encoding="utf-8")
    record("echo", "succeeded", report)
    settings = load_settings()
    page = JobsPage(settings, schedule=schedule, notebooks=TEST_JOBS, report_url="/reports")
    try:
        assert page.runs.iloc[0]["link"] == "/reports/echo/20240101T000000Z-1/echo.html"
        assert "link" not in page._runs_table.hidden_columns
        page.selected = 0
        assert "[open](/reports/echo/20240101T000000Z-1/echo.html)" in page._report_head.object
    finally:
        page.close()
    assert reports_static_dir(settings) == {
        "reports": str((isolated_env / "data" / "reports").resolve())
    }


def test_a_refused_second_start_shows_an_alert(page):
    with JobRegistry(load_settings().store_url) as registry:
        registry.start("echo", {})  # this process holds the lock: echo is running

    run = asyncio.run(page.run_now("echo"))

    assert run is None
    assert page.alert_type == "danger"
    assert "**echo refused.**" in page.message and "'echo' is already running" in page.message
    assert list(page.runs["status"]) == ["refused", "running"]
    assert page.running == [] and not page._buttons["echo"].disabled


def test_bad_overrides_are_refused_before_anything_runs(page):
    page.overrides = "label"
    assert asyncio.run(page.run_now("echo")) is None
    assert "not key=value" in page.message and page.runs.empty
    page.overrides = "nope=1"
    assert asyncio.run(page.run_now("echo")) is None
    assert "echo has no parameter 'nope'" in page.message
    assert list(page.runs["status"]) == ["refused"]


def test_overrides_are_key_value_lines():
    assert parse_overrides("symbols=BTC/USDT\n\n# a comment\n day = 2024-03-01 \nx=a=b") == {
        "symbols": "BTC/USDT", "day": "2024-03-01", "x": "a=b",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="Line 2"):
        parse_overrides("a=1\n=2")


def test_preview_of_a_missing_report_says_so(tmp_path):
    assert "cannot be read" in preview_html(tmp_path / "gone.html")


@pytest.mark.slow
def test_run_now_runs_off_the_event_loop_and_shows_the_new_run(page):
    page.overrides = "count=3"

    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.1)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = asyncio.create_task(page.run_now("echo"))
        await asyncio.sleep(0.5)
        busy = (list(page.running), page._buttons["echo"].disabled, page._buttons["echo"].label)
        run = await started
        task.cancel()
        return run, ticks, busy

    run, ticks, busy = asyncio.run(scenario())

    assert busy == (["echo"], True, "echo (running…)")
    assert ticks > 20, "the event loop was blocked while the job ran"
    assert run is not None and run.ok, page.message
    assert run.parameters == {"label": "tick", "count": 3}  # the schedule's, then the override
    assert page.alert_type == "success" and f"run {run.id} succeeded" in page.message
    assert page.runs.iloc[0]["id"] == run.id and page.runs.iloc[0]["status"] == "succeeded"
    assert page.selected == 0
    assert "tickticktick 0.5" in page._preview.object  # what the job printed: label * count
    assert page._html_download.file == str(run.html)
    assert not page._buttons["echo"].disabled and page._buttons["echo"].label == "echo"


def test_the_page_lays_out_without_a_server(page):
    layout = page.__panel__()
    assert isinstance(layout, pn.Column)
    assert page._periodic is None  # only a served page refreshes itself
