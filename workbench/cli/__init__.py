"""The ``workbench`` command: one Typer app, a sub-command group per domain."""

from __future__ import annotations

import typer

from workbench.errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Trading Workbench: market data, backtests, jobs and the dashboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Sub-command modules register themselves on import; imported here, not at top, so
    # that `workbench --help` stays quick and each module stays independent.
    from workbench.cli import data, serve  # noqa: F401


def main() -> None:
    """Entry point: run the app, turning a WorkbenchError into a one-line message and exit 1."""
    _register()
    try:
        app(standalone_mode=False)
    except WorkbenchError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None
    except (typer.Exit, typer.Abort) as exc:
        raise SystemExit(getattr(exc, "exit_code", 1)) from None
