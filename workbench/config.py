"""One settings object, read from the environment and an optional ``workbench.toml``.

Precedence (highest first): constructor arguments, ``WORKBENCH_*`` environment variables,
``workbench.toml`` in the working directory (or the file named by ``WORKBENCH_CONFIG``),
then defaults. Secrets (exchange keys) come only from the environment or the system
keyring; a secret found in ``workbench.toml`` is refused, and :meth:`Settings.dump` never
shows one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from workbench.errors import ConfigError

SECRET_FIELDS = (
    "api_key",
    "api_secret",
    "api_password",
    "alpaca_api_key",
    "alpaca_api_secret",
)
KEYRING_SERVICE = "trading-workbench"


def _config_file() -> Path:
    return Path(os.environ.get("WORKBENCH_CONFIG", "workbench.toml"))


class _SecretFreeToml(TomlConfigSettingsSource):
    """The TOML source, refusing secrets: they belong in the environment or a keyring."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        leaked = sorted(set(values) & set(SECRET_FIELDS))
        if leaked:
            raise ConfigError(
                f"{self.toml_file_path} sets {', '.join(leaked)}: secrets are read only from the "
                f"environment (WORKBENCH_API_KEY, ...) or the system keyring. Remove them from "
                f"the file."
            )
        return values


class Settings(BaseSettings):
    """Where the workbench keeps its data and which outside systems it talks to."""

    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="forbid")

    data_dir: Path = Field(Path("data"), description="Runtime home: store, cache, models, reports.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file data_dir/workbench.db."
    )
    exchange: str = Field("binance", description="ccxt exchange id used by fetch and live feeds.")
    testnet: bool = Field(True, description="Use the exchange's testnet/sandbox when it has one.")
    dask_scheduler: str | None = Field(
        None, description="Address of a Dask scheduler; default: a local cluster."
    )
    seed: int = Field(7, description="Seed of the simulated market in the default path.")
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_password: SecretStr | None = None
    alpaca_api_key: SecretStr | None = None
    alpaca_api_secret: SecretStr | None = None
    alpaca_paper: bool = Field(True, description="Use Alpaca's paper-trading endpoints.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SecretFreeToml(settings_cls, _config_file())

    @field_validator("exchange")
    @classmethod
    def _lower_exchange(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def store_url(self) -> str:
        """The database URL in effect (the embedded SQLite file unless one is configured)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'workbench.db').resolve()}"

    def credentials(self) -> dict[str, str]:
        """Exchange credentials for ccxt (apiKey, secret, password), from env or keyring."""
        names = {"api_key": "apiKey", "api_secret": "secret", "api_password": "password"}
        return self._secrets(self.exchange, names)

    def alpaca_credentials(self) -> dict[str, str]:
        """Alpaca credentials (api_key, secret_key) as alpaca-py's clients name them."""
        return self._secrets("alpaca", {"alpaca_api_key": "api_key", "alpaca_api_secret": "secret_key"})

    def _secrets(self, service: str, names: dict[str, str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for field_name, key in names.items():
            secret: SecretStr | None = getattr(self, field_name)
            value = secret.get_secret_value() if secret else _keyring_secret(service, field_name)
            if value:
                found[key] = value
        return found

    def dump(self) -> dict[str, Any]:
        """The settings as plain values, safe to print: secrets only say whether they are set."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                value = "set" if value is not None else "not set"
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["store_url"] = make_url(self.store_url).render_as_string(hide_password=True)
        if self.database_url:
            out["database_url"] = out["store_url"]
        return out

    def __repr_args__(self):  # noqa: D105 - keep passwords in URLs out of reprs too
        for key, value in super().__repr_args__():
            if key == "database_url" and value:
                value = make_url(value).render_as_string(hide_password=True)
            yield key, value


def _keyring_secret(exchange: str, name: str) -> str | None:
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, f"{exchange}.{name}")
    except Exception:  # no keyring backend on this machine: the environment is the source
        return None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation problems into a clear :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"Invalid workbench settings ({problems}). Check the WORKBENCH_* environment "
            f"variables and {_config_file()}."
        ) from None
