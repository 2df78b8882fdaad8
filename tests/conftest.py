"""Shared fixtures: the recorded market data beside the project, and isolated settings."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real recorded Binance data (skips where it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"recorded market data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def isolated_env(tmp_path, monkeypatch) -> Path:
    """A working directory with no workbench.toml and no WORKBENCH_* variables."""
    import os

    for key in list(os.environ):
        if key.startswith("WORKBENCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests save screenshots and rendered reports for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL server on 127.0.0.1 for this test session (skips without binaries)."""
    from tests.postgres import find_bin_dir, postgres_server

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    with postgres_server(bin_dir) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    """The same store tests on the embedded SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    base = request.getfixturevalue("postgres_url")
    return _fresh_database(base, f"t_{zlib.crc32(request.node.nodeid.encode())}")


def _fresh_database(base_url: str, name: str) -> str:
    """An empty database on the server, so each test starts clean."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)
