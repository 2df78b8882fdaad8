"""A throwaway PostgreSQL server on 127.0.0.1 for tests (initdb + pg_ctl in a temp dir)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def find_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> tuple[list[str], int | None]:
    """PostgreSQL refuses to run as root: under root, run it as the 'postgres' user."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        uid = None
    if uid is None:
        raise RuntimeError("running as root and there is no 'postgres' user to run the server as")
    return ["runuser", "-u", "postgres", "--"], uid


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL, stop it and delete its files."""
    prefix, uid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="wb-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if uid is not None:
        for path in (root, sockets):
            os.chown(path, uid, -1)
    port = _free_port()
    run = lambda *args: subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        run(bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", root / "server.log", "-w", "-t", "60", "start")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
