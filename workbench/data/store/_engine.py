"""Engines for the store: SQLite in WAL mode by default, PostgreSQL by URL; migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from workbench.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def open_engine(url: str) -> Engine:
    """An engine for ``url``, connected once to prove it works, with migrations applied."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"Database URL {url!r} is not a SQLAlchemy URL; use e.g. "
            f"'sqlite:///data/workbench.db' or 'postgresql+psycopg://user@host/db'."
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(parsed, connect_args=_connect_args(parsed), pool_pre_ping=True)
    except NoSuchModuleError:
        raise StoreError(
            f"No database driver for {safe_url(url)}: the workbench supports SQLite and "
            f"PostgreSQL (postgresql+psycopg://...)."
        ) from None
    try:
        _migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        cause = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(
            f"Cannot open the market store at {safe_url(url)}: {cause}. Check "
            f"WORKBENCH_DATABASE_URL (or database_url in workbench.toml) and that the server "
            f"is running."
        ) from None
    return engine


def _connect_args(url) -> dict:
    return {"connect_timeout": 10} if url.get_backend_name() == "postgresql" else {}


def _sqlite_engine(url) -> Engine:
    in_memory = not url.database or url.database == ":memory:"
    if not in_memory:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # An in-memory database lives in one connection: share it (StaticPool) or it vanishes.
    pool = {"poolclass": StaticPool} if in_memory else {}
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **pool)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's begin event issue BEGIN (pysqlite's own handling would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # Writers take the lock up front, so two writers queue instead of failing mid-way.
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it already is)."""
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
