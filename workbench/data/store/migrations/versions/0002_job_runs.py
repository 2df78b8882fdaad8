"""Job runs: one row per papermill job run (the job runner's registry and lock).

A partial unique index allows at most one ``running`` row per job, so two processes that
start the same job at once cannot both win, on SQLite and PostgreSQL alike.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ONE_RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True)),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("notebook", sa.Text),
        sa.Column("html", sa.Text),
        sa.Column("failed_cell", sa.Integer),
        sa.Column("failed_source", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_job_runs_job_started", "job_runs", ["job", "started"])
    op.create_index(
        "uq_job_runs_one_running", "job_runs", ["job"], unique=True,
        sqlite_where=_ONE_RUNNING, postgresql_where=_ONE_RUNNING,
    )


def downgrade() -> None:
    op.drop_table("job_runs")
