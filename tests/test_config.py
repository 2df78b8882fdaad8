"""Settings: environment over workbench.toml over defaults; secrets never shown or read from files."""

from __future__ import annotations

import pytest

from workbench.config import load_settings
from workbench.errors import ConfigError


def test_defaults_are_the_embedded_path(isolated_env):
    settings = load_settings()
    assert settings.store_url == f"sqlite:///{(isolated_env / 'data' / 'workbench.db').resolve()}"
    assert settings.exchange == "binance" and settings.testnet is True
    assert settings.dask_scheduler is None


def test_toml_then_environment(isolated_env, monkeypatch):
    (isolated_env / "workbench.toml").write_text('exchange = "OKX"\ntestnet = false\ndask_scheduler = "tcp://127.0.0.1:8786"\n')
    settings = load_settings()
    assert (settings.exchange, settings.testnet, settings.dask_scheduler) == ("okx", False, "tcp://127.0.0.1:8786")
    monkeypatch.setenv("WORKBENCH_EXCHANGE", "bybit")
    assert load_settings().exchange == "bybit"


def test_a_secret_in_the_toml_file_is_refused(isolated_env):
    (isolated_env / "workbench.toml").write_text('api_secret = "abc"\n')
    with pytest.raises(ConfigError, match="api_secret.*environment"):
        load_settings()


def test_dump_never_shows_secrets(isolated_env, monkeypatch):
    monkeypatch.setenv("WORKBENCH_API_KEY", "key-PLANTED-123")
    monkeypatch.setenv("WORKBENCH_API_SECRET", "secret-PLANTED-456")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "postgresql+psycopg://trader:pw-PLANTED-789@db.local/wb")
    settings = load_settings()
    shown = repr(settings) + str(settings.dump())
    for planted in ("key-PLANTED-123", "secret-PLANTED-456", "pw-PLANTED-789"):
        assert planted not in shown
    assert settings.dump()["api_key"] == "set" and settings.dump()["api_password"] == "not set"
    assert settings.credentials() == {"apiKey": "key-PLANTED-123", "secret": "secret-PLANTED-456"}


def test_bad_values_name_the_setting(isolated_env, monkeypatch):
    monkeypatch.setenv("WORKBENCH_TESTNET", "perhaps")
    with pytest.raises(ConfigError, match="testnet"):
        load_settings()
    monkeypatch.delenv("WORKBENCH_TESTNET")
    (isolated_env / "workbench.toml").write_text('exchnage = "okx"\n')
    with pytest.raises(ConfigError, match="exchnage"):
        load_settings()
