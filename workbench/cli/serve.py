"""``workbench serve``: the dashboard on http://localhost:5006."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli import app


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on. Beyond localhost a login must be configured.")
    ] = "localhost",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5006,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a browser tab.")] = False,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(help="host:port a browser uses to reach a remote dashboard (repeatable)."),
    ] = None,
) -> None:
    """Serve the dashboard until Ctrl+C, with a /liveness endpoint for health checks.

    Beyond localhost it needs a login: WORKBENCH_AUTH_FILE and WORKBENCH_COOKIE_SECRET.
    """
    from workbench.ui.server import serve_dashboard  # Panel is slow to import: only when serving

    serve_dashboard(host, port, show=show, allow_origins=allow_origin or ())
