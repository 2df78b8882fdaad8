"""``JobRegistry``: every job run in the store's ``job_runs`` table, and the per-job lock.

The lock is the ``running`` row itself: a partial unique index (migration 0002) lets only one
exist per job. A row left ``running`` by a process that died (same host, pid gone) is stale;
the next :meth:`JobRegistry.start` marks it failed instead of refusing forever.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psutil
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from workbench.data.store.database import Database
from workbench.errors import JobRefusedError

STATUSES = ("running", "succeeded", "failed", "timed_out", "refused")

job_runs = Table(
    "job_runs",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(128), nullable=False),
    Column("parameters", Text, nullable=False),  # JSON
    Column("status", String(16), nullable=False),  # one of STATUSES
    Column("started", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True)),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),  # the runner's process, to detect stale locks
    Column("notebook", Text),  # executed notebook path
    Column("html", Text),  # HTML report path
    Column("failed_cell", Integer),
    Column("failed_source", Text),  # an excerpt of the failing cell
    Column("error", Text),  # "ename: evalue", or why the run timed out or was refused
)


def _now() -> datetime:
    return datetime.now(UTC)


class JobRegistry(Database):
    """Job runs recorded in the workbench store (SQLite by default, PostgreSQL by URL)."""

    def start(self, job: str, parameters: dict[str, Any], *, pid: int | None = None) -> int:
        """Record a run of ``job`` as running, held by process ``pid`` (default this one), and
        return its id; refuse when one already runs (a stale row, whose process on this host
        is gone, is closed as failed first)."""
        row = {
            "job": job, "parameters": json.dumps(parameters), "status": "running",
            "started": _now(), "host": socket.gethostname(), "pid": pid or os.getpid(),
        }
        with self._write() as conn:
            self._close_stale(conn, job)
        try:
            with self._write() as conn:
                return conn.execute(insert(job_runs).values(row).returning(job_runs.c.id)).scalar_one()
        except IntegrityError:
            holder = self.running(job)
            where = f" (run {holder['id']}, pid {holder['pid']} on {holder['host']})" if holder else ""
            raise JobRefusedError(
                f"Job {job!r} is already running{where}; wait for it to finish."
            ) from None

    def refuse(self, job: str, parameters: dict[str, Any], reason: str) -> int:
        """Record a refused run (it never started), so the history shows the attempt."""
        now = _now()
        row = {
            "job": job, "parameters": json.dumps(parameters, default=str), "status": "refused",
            "started": now, "ended": now, "host": socket.gethostname(), "pid": os.getpid(),
            "error": reason,
        }
        with self._write() as conn:
            return conn.execute(insert(job_runs).values(row).returning(job_runs.c.id)).scalar_one()

    def finish(self, run_id: int, status: str, **details: Any) -> None:
        """Close run ``run_id`` with ``status`` and any of: notebook, html, failed_cell,
        failed_source, error."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of {STATUSES[1:]}, not {status!r}")
        with self._write() as conn:
            conn.execute(
                update(job_runs).where(job_runs.c.id == run_id)
                .values(status=status, ended=_now(), **details)
            )

    def running(self, job: str) -> dict[str, Any] | None:
        """The running row of ``job`` (id, pid, host, started, ...), or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(job_runs).where(job_runs.c.job == job, job_runs.c.status == "running")
            ).mappings().first()
        return dict(row) if row else None

    def runs(self, job: str | None = None, limit: int = 50) -> pd.DataFrame:
        """The newest ``limit`` runs (of ``job``, or of all jobs), newest first."""
        query = select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(job_runs.c.job == job)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        frame = pd.DataFrame(rows, columns=[c.name for c in job_runs.columns])
        for column in ("started", "ended"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["parameters"] = frame["parameters"].map(json.loads)
        return frame

    def _close_stale(self, conn: Connection, job: str) -> None:
        row = conn.execute(
            select(job_runs.c.id, job_runs.c.pid, job_runs.c.host)
            .where(job_runs.c.job == job, job_runs.c.status == "running")
        ).first()
        if row and row.host == socket.gethostname() and not psutil.pid_exists(row.pid):
            conn.execute(
                update(job_runs).where(job_runs.c.id == row.id).values(
                    status="failed", ended=_now(),
                    error=f"stale: the runner (pid {row.pid}) died before finishing",
                )
            )
