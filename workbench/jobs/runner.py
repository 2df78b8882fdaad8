"""``run_job``: execute a job notebook with papermill, publish its report, record the run.

A run is refused (:class:`JobRefusedError`, nothing executed or written) for an unknown job,
parameters the notebook does not declare or of the wrong type, secret-looking parameters,
or a job that is already running. Otherwise it returns a :class:`JobRun` whose status is
``succeeded``, ``failed`` (a cell raised, or an output leaked a secret) or ``timed_out``.
Reports go to ``data_dir/reports/<job>/<UTC timestamp>-<run id>/``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import load_settings
from workbench.jobs import _process
from workbench.jobs._report import SecretLeakError, publish
from workbench.errors import JobRefusedError
from workbench.jobs.notebooks import job_notebook
from workbench.jobs.parameters import validate
from workbench.jobs.registry import JobRegistry
from workbench.jobs.secrets import check_parameters, environment_secrets, find_leak, redact

if TYPE_CHECKING:
    from workbench.config import Settings

#: Seconds a run may take when no timeout is given.
DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class JobRun:
    """One finished run: its id in the registry, how it ended, where its report is."""

    id: int
    job: str
    parameters: dict[str, Any]
    status: str
    notebook: Path | None = None
    html: Path | None = None
    failed_cell: int | None = None
    failed_source: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def __str__(self) -> str:
        where = f"; report: {self.html}" if self.html else ""
        why = f": {self.error}" if self.error else ""
        cell = f" (cell {self.failed_cell})" if self.failed_cell is not None else ""
        return f"{self.job} run {self.id} {self.status}{cell}{why}{where}"


def run_job(
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    timeout: float | None = None,
    notebooks: Path | None = None,
    coerce: bool = False,
) -> JobRun:
    """Run job ``name`` (``notebooks/jobs/<name>.ipynb`` or ``notebooks/reports/``) with
    ``parameters``, stopping it after ``timeout`` seconds (default one hour). With
    ``coerce``, string values (command-line input) are converted to the declared types."""
    settings = settings or load_settings()
    parameters = dict(parameters or {})
    secrets = environment_secrets(settings)
    with JobRegistry(settings.store_url) as registry:
        try:
            check_parameters(parameters, secrets)
            notebook = job_notebook(name, notebooks)
            checked = validate(notebook, parameters, coerce=coerce)
            run_id = registry.start(name, checked)
        except JobRefusedError as exc:
            registry.refuse(name, redact(parameters, secrets), str(exc))
            raise
        run = JobRun(run_id, name, checked, "failed", error="the runner stopped unexpectedly")
        try:
            run = _execute(run, notebook, settings, timeout or DEFAULT_TIMEOUT, secrets)
        finally:
            registry.finish(
                run.id, run.status, notebook=_str(run.notebook), html=_str(run.html),
                failed_cell=run.failed_cell, failed_source=run.failed_source, error=run.error,
            )
    return run


def _execute(
    run: JobRun, notebook: Path, settings: Settings, timeout: float, secrets: Mapping[str, str]
) -> JobRun:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = settings.data_dir.resolve() / "reports" / run.job / f"{stamp}-{run.id}"
    with tempfile.TemporaryDirectory(prefix=f"workbench-{run.job}-") as scratch:
        executed = Path(scratch) / f"{run.job}.ipynb"
        outcome = _process.execute(
            notebook, executed, run.parameters, env=_kernel_env(settings), timeout=timeout
        )
        run = replace(run, **vars(_scrubbed(outcome, secrets)))
        if not executed.exists():
            return run
        try:
            paths = publish(executed, run_dir, secrets)
        except SecretLeakError as leak:
            return replace(
                run, status="failed",
                error=f"the output holds the value of {leak.variable}; nothing was written",
            )
    return replace(run, notebook=paths[0], html=paths[1])


def _kernel_env(settings: Settings) -> dict[str, str]:
    """The environment, pointing the kernel at the same data directory and store."""
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(settings.data_dir.resolve())}
    if settings.database_url:
        env["WORKBENCH_DATABASE_URL"] = settings.database_url
    return env


def _scrubbed(outcome: _process.Outcome, secrets: Mapping[str, str]) -> _process.Outcome:
    """The outcome, with any failure text that holds a secret withheld."""
    for field in ("failed_source", "error"):
        leaked = find_leak(getattr(outcome, field) or "", secrets)
        if leaked:
            outcome = replace(outcome, **{field: f"<withheld: holds the value of {leaked}>"})
    return outcome


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
