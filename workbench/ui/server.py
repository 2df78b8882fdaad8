"""Serving the dashboard: on localhost by default, behind a login whenever it listens beyond.

A login is Panel's basic auth: a JSON file of ``{"user": "password"}`` named by
``WORKBENCH_AUTH_FILE`` and a cookie-signing secret in ``WORKBENCH_COOKIE_SECRET``. Both
come only from the environment, and neither the secret nor the file's contents are ever
printed or logged.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config import Settings
from workbench.errors import ConfigError

AUTH_FILE_ENV = "WORKBENCH_AUTH_FILE"
COOKIE_SECRET_ENV = "WORKBENCH_COOKIE_SECRET"
MIN_SECRET_LENGTH = 32
_HOW_TO_AUTH = (
    f"Set {AUTH_FILE_ENV} to a JSON file of {{\"user\": \"password\"}} pairs and "
    f"{COOKIE_SECRET_ENV} to a random string of at least {MIN_SECRET_LENGTH} characters "
    f"(python -c \"import secrets; print(secrets.token_urlsafe(32))\")"
)


@dataclass(frozen=True)
class BasicAuth:
    """Where the users are and the secret that signs login cookies (never shown in reprs)."""

    users_file: Path
    cookie_secret: str = field(repr=False)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to any interface
        return False


def auth_from_env(environ: Mapping[str, str] = os.environ) -> BasicAuth | None:
    """The login configured in the environment, checked; None when none is configured."""
    users_file, secret = environ.get(AUTH_FILE_ENV, ""), environ.get(COOKIE_SECRET_ENV, "")
    if not users_file and not secret:
        return None
    if not users_file or not secret:
        missing = AUTH_FILE_ENV if not users_file else COOKIE_SECRET_ENV
        raise ConfigError(
            f"Dashboard login is half configured: {missing} is not set. {_HOW_TO_AUTH}."
        )
    path = Path(users_file).expanduser()
    try:
        users = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{AUTH_FILE_ENV} names {path}, which cannot be read ({exc.strerror})."
        ) from None
    except ValueError:
        raise ConfigError(
            f"{AUTH_FILE_ENV} names {path}, which is not valid JSON. {_HOW_TO_AUTH}."
        ) from None
    if not (
        isinstance(users, dict)
        and users
        and all(isinstance(u, str) and isinstance(p, str) and u and p for u, p in users.items())
    ):
        raise ConfigError(
            f"{path} must hold a JSON object of non-empty user names and passwords, "
            f"like {{\"alice\": \"...\"}}."
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{COOKIE_SECRET_ENV} is too short. {_HOW_TO_AUTH}.")
    return BasicAuth(path.resolve(), secret)


def serve_dashboard(
    host: str = "localhost",
    port: int = 5006,
    *,
    show: bool = False,
    allow_origins: Sequence[str] = (),
    settings: Settings | None = None,
) -> None:
    """Serve the dashboard until interrupted, with a ``/liveness`` endpoint.

    Refuses to listen beyond localhost without a login configured (see module docs).
    ``allow_origins`` adds the ``host:port`` names browsers use to reach a remote server.
    """
    auth = auth_from_env()
    if auth is None and not is_loopback(host):
        raise ConfigError(
            f"Refusing to serve the dashboard on {host}: beyond localhost it needs a login. "
            f"{_HOW_TO_AUTH}, or serve on localhost (the default)."
        )
    import panel as pn  # only now: it takes seconds to import

    from workbench.ui.app import create_app
    login = {}
    if auth is not None:
        login = {"basic_auth": str(auth.users_file), "cookie_secret": auth.cookie_secret}
    origins = [f"localhost:{port}", f"127.0.0.1:{port}", f"{host}:{port}", *allow_origins]
    origins = list(dict.fromkeys(origins))
    notes = ["login required"] if auth else []
    if not is_loopback(host):
        notes.append(f"browsers may reach it as {', '.join(origins)}; add more with --allow-origin")
    url = f"http://{'localhost' if is_loopback(host) else host}:{port}"

    def session() -> pn.template.BaseTemplate:  # called per browser session
        return create_app(settings)

    try:
        server = pn.serve(
            session,
            address=host,
            port=port,
            show=show,
            start=False,
            title="Trading Workbench",
            websocket_origin=origins,
            liveness=True,
            verbose=False,
            **login,
        )
    except OSError as exc:
        raise ConfigError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Is another dashboard "
            f"running? Pass --port to choose another port."
        ) from None
    details = f" ({'; '.join(notes)})" if notes else ""
    print(f"Trading Workbench dashboard on {url}{details}; Ctrl+C stops it.", flush=True)
    server.start()
    server.io_loop.start()
