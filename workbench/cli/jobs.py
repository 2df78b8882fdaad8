"""``workbench jobs``: run, schedule and list papermill job notebooks."""

from __future__ import annotations

import typer

from workbench.cli import app

jobs_app = typer.Typer(help="Scheduled jobs: papermill notebooks run, recorded and rendered.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
