"""The ``workbench`` command: one Typer app, a sub-command group per domain."""

from __future__ import annotations

import typer

from workbench.errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Trading Workbench: market data, backtests, jobs and the dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("config")
def config() -> None:
    """Show the settings in effect (secrets only say whether they are set)."""
    from workbench.config import load_settings

    for key, value in load_settings().dump().items():
        typer.echo(f"{key:16} {value}")


def _register() -> None:
    # Sub-command modules register themselves on import; imported here, not at the top,
    # so that each stays independent and `workbench --help` lists them all.
    from workbench.cli import backtest, data, jobs, serve  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: usage errors are Typer's (status 2), a
    WorkbenchError becomes a one-line message (status 1), never a traceback."""
    _register()
    try:
        app(args=argv, prog_name="workbench")
    except WorkbenchError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 1
    except SystemExit as exc:  # standalone mode ends every run with one
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
