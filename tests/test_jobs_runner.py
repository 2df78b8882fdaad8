"""The job runner: papermill runs, reports, the registry and its lock, refusals."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import psutil
import pytest

from tests.conftest import ROOT
from workbench.cli import main
from workbench.config import load_settings
from workbench.data.store import MarketStore
from workbench.jobs import JobRefusedError, JobRegistry, run_job
from workbench.jobs.parameters import declared_parameters, validate

TEST_JOBS = ROOT / "tests" / "job_notebooks"
ECHO = TEST_JOBS / "jobs" / "echo.ipynb"


def history(job: str | None = None):
    with JobRegistry(load_settings().store_url) as registry:
        return registry.runs(job)


def kernels() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


# -- runs ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_backfill_fills_the_store_and_renders_a_report_without_code(isolated_env):
    run = run_job("backfill", {"symbols": "BTC/USDT,ETH/USDT", "start": "2024-01-01", "end": "2024-01-03"})

    assert run.ok, run
    assert run.html.parent.parent == isolated_env / "data" / "reports" / "backfill"
    html = run.html.read_text()
    for heading in ("Backfill: sim 1h", "Bars added", "Quality per symbol", "Findings"):
        assert heading in html
    assert "open_source(" not in html  # code cells are left out of the report
    executed = nbformat.read(run.notebook, as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    with MarketStore.from_settings() as store:
        assert len(store.bars("sim", "ETH/USDT", "1h")) == 49
    row = history("backfill").iloc[0]
    assert (row.status, row.html, row.parameters["start"]) == ("succeeded", str(run.html), "2024-01-01")
    assert row.ended > row.started


@pytest.mark.slow
def test_a_failing_job_is_recorded_with_its_cell_and_error_and_the_next_job_runs(isolated_env):
    failed = run_job("raises", notebooks=TEST_JOBS)
    after = run_job("echo", {"label": "next"}, notebooks=TEST_JOBS)

    assert failed.status == "failed"
    assert failed.error == "ZeroDivisionError: division by zero"
    assert "1 / divisor" in failed.failed_source
    assert failed.html.exists()  # the partial report helps to see what went wrong
    assert after.ok
    rows = history().set_index("job")
    assert rows.loc["raises", "status"] == "failed"
    assert rows.loc["raises", "failed_cell"] == failed.failed_cell
    assert rows.loc["raises", "error"] == failed.error
    assert rows.loc["echo", "status"] == "succeeded"


@pytest.mark.slow
def test_a_job_over_its_timeout_is_stopped_with_its_kernel(isolated_env):
    run = run_job("sleeps", {"seconds": 120.0}, timeout=8, notebooks=TEST_JOBS)

    assert run.status == "timed_out"
    assert "timed out after 8 s" in run.error
    assert history("sleeps").iloc[0].status == "timed_out"
    assert not kernels()


def test_a_second_start_of_a_running_job_is_refused(isolated_env):
    with JobRegistry(load_settings().store_url) as registry:
        registry.start("echo", {})  # this process holds the lock: it is alive

    with pytest.raises(JobRefusedError, match="'echo' is already running"):
        run_job("echo", notebooks=TEST_JOBS)
    assert not (isolated_env / "data" / "reports").exists()
    assert list(history("echo").status) == ["refused", "running"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"nope": 1}, "echo has no parameter 'nope'; it takes: label: str"),
        ({"count": "3"}, "'count' of echo is declared int"),
        ({"count": 1.5}, "'count' of echo is declared int"),
        ({"reveal": 1}, "'reveal' of echo is declared bool"),
        ({"count": True}, "'count' of echo is declared int"),
        ({"label": None}, "'label' of echo is declared str"),
    ],
)
def test_unknown_or_mistyped_parameters_are_refused_before_anything_runs(isolated_env, parameters, message):
    with pytest.raises(JobRefusedError, match=message):
        run_job("echo", parameters, notebooks=TEST_JOBS)
    assert not (isolated_env / "data" / "reports").exists()
    assert history("echo").iloc[0].status == "refused"


def test_an_unknown_job_is_refused_with_the_known_ones(isolated_env):
    with pytest.raises(JobRefusedError, match="No job 'nope'.*Known jobs: echo, raises, sleeps"):
        run_job("nope", notebooks=TEST_JOBS)


# -- parameters ----------------------------------------------------------------------------


def test_declared_parameters_take_their_type_from_the_default():
    declared = declared_parameters(ECHO)
    assert {name: p.type for name, p in declared.items()} == {
        "label": str, "count": int, "ratio": float, "reveal": bool, "variable": str,
    }
    assert declared["ratio"].default == 0.5


def test_command_line_strings_are_converted_to_the_declared_types():
    import datetime as dt

    converted = validate(ECHO, {"label": "x", "count": "3", "ratio": "2", "reveal": "yes"}, coerce=True)
    assert converted == {"label": "x", "count": 3, "ratio": 2.0, "reveal": True}
    assert validate(ECHO, {"ratio": 2, "label": dt.date(2024, 1, 5)}) == {"ratio": 2.0, "label": "2024-01-05"}
    with pytest.raises(JobRefusedError, match="'reveal' of echo is declared bool; cannot read 'maybe'"):
        validate(ECHO, {"reveal": "maybe"}, coerce=True)
    with pytest.raises(JobRefusedError, match="'count' of echo is declared int; cannot read '1.5'"):
        validate(ECHO, {"count": "1.5"}, coerce=True)


def test_the_shipped_job_notebooks_are_committed_without_outputs():
    for path in (ROOT / "notebooks" / "jobs").glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert not [c for c in notebook.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells)


# -- registry ------------------------------------------------------------------------------


def test_the_registry_records_runs_and_holds_one_lock_per_job(store_url):
    with JobRegistry(store_url) as registry:
        first = registry.start("backfill", {"symbols": "BTC/USDT"})
        with pytest.raises(JobRefusedError, match="already running"):
            registry.start("backfill", {})
        other = registry.start("report", {})  # other jobs are not blocked
        assert registry.running("backfill")["id"] == first
        registry.finish(first, "failed", failed_cell=2, failed_source="1 / 0", error="ZeroDivisionError: x")
        assert registry.running("backfill") is None
        again = registry.start("backfill", {})
        registry.finish(again, "succeeded", notebook="a.ipynb", html="a.html")
        registry.finish(other, "timed_out", error="timed out")

        runs = registry.runs()
        assert list(runs.id) == [again, other, first]
        assert list(registry.runs("backfill", limit=1).status) == ["succeeded"]
        row = runs.set_index("id").loc[first]
        assert (row.status, row.failed_cell, row.error) == ("failed", 2, "ZeroDivisionError: x")
        assert row.parameters == {"symbols": "BTC/USDT"}
        assert str(runs.started.dt.tz) == "UTC"


def test_a_stale_lock_from_a_dead_process_does_not_block(store_url):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with JobRegistry(store_url) as registry:
        stale = registry.start("backfill", {}, pid=int(dead.stdout))
        fresh = registry.start("backfill", {})

        runs = registry.runs("backfill").set_index("id")
        assert runs.loc[stale, "status"] == "failed"
        assert "stale" in runs.loc[stale, "error"]
        assert registry.running("backfill")["id"] == fresh


# -- command line --------------------------------------------------------------------------


def test_cli_refuses_a_secret_parameter_and_lists_jobs_and_runs(isolated_env, capsys):
    assert main(["jobs", "run", "backfill", "-p", "api_key=abc"]) == 1
    assert "looks like a secret" in capsys.readouterr().err
    assert main(["jobs", "run", "backfill", "-p", "start"]) == 1
    assert "key=value" in capsys.readouterr().err

    assert main(["jobs", "list"]) == 0
    listing = capsys.readouterr().out
    assert "backfill" in listing and "5 * * * *" in listing
    assert main(["jobs", "runs", "--job", "backfill"]) == 0
    runs = capsys.readouterr().out
    assert "refused" in runs and "abc" not in runs
