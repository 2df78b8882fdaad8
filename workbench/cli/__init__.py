"""The ``workbench`` command: one Typer app, a sub-command group per domain."""

from __future__ import annotations

import click
import typer

from workbench.errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Trading Workbench: market data, backtests, jobs and the dashboard.",
    no_args_is_help=True,
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
    from workbench.cli import data, serve  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point: a WorkbenchError becomes a one-line message and exit status 1."""
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except WorkbenchError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("Aborted.", err=True)
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
