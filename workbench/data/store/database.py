"""``Database``: what every store object shares — an engine on a migrated schema, closing,
a masked repr, and write transactions that take the lock up front."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from sqlalchemy import Connection, Engine

from workbench.data.store._engine import open_engine, safe_url


class Database:
    """A handle on the workbench database at ``url`` (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine = open_engine(url)
        self._dialect = self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({safe_url(self.url)!r})"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite, so writers queue, not fail)."""
        with self._engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn
