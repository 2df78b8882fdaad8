"""``workbench backtest``: run a built-in strategy over stored (or simulated) bars, and list,
show and compare the recorded runs."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import pandas as pd
import typer

from workbench.cli import app

if TYPE_CHECKING:
    from workbench.strategies import Strategy

backtest_app = typer.Typer(
    help="Backtests: run a strategy from the command line; list, show and compare runs.",
    no_args_is_help=True,
)
app.add_typer(backtest_app, name="backtest")

#: Bars the simulated market serves when no --start/--end say otherwise.
SIMULATED_BARS = 2_000
_SIMULATED = ("sim", "simulated")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _usage(message: str, command: str = "run") -> NoReturn:
    """A usage error: one line on stderr, exit status 2 (as Typer's own)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    typer.echo(f"Try 'workbench backtest {command} --help' for help.", err=True)
    raise typer.Exit(2)


def _show(frame: pd.DataFrame, **options: Any) -> None:
    with pd.option_context(
        "display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60
    ):
        typer.echo(frame.to_string(**options) if len(frame) else "(nothing)")


@backtest_app.command("run")
def run(
    strategy: Annotated[
        str, typer.Argument(help="A built-in strategy, e.g. MovingAverageCross (any case).")
    ],
    symbol: Annotated[
        list[str] | None,
        typer.Option(
            "--symbol",
            "-s",
            help="Symbol, ccxt spelling; repeat for a portfolio (default BTC/USDT).",
        ),
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Bar timeframe, ccxt spelling.")] = "1h",
    exchange: Annotated[
        str,
        typer.Option(
            help="Whose bars: 'sim' (the simulated market, also 'simulated') or an exchange id in the store."
        ),
    ] = "sim",
    start: Annotated[
        str | None, typer.Option(help="First bar time (ISO date or datetime, UTC).")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Last bar time (default: the last stored bar; simulated: 2,000 bars)."),
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE, repeatable."),
    ] = None,
    cash: Annotated[float, typer.Option(help="Starting cash in the quote currency.")] = 10_000.0,
    fees: Annotated[
        float, typer.Option(help="Fee rate, a fraction of traded value (0.001 = 0.1%).")
    ] = 0.0,
    slippage: Annotated[float, typer.Option(help="Slippage in basis points.")] = 0.0,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record the run in the store.")
    ] = True,
    note: Annotated[str, typer.Option(help="A note kept with the run record.")] = "",
) -> None:
    """Run a built-in strategy; print its stats and the recorded run's id.

    The bars come from the store; with the default exchange 'sim' and none stored, from the
    simulated market (seeded by the settings; without --start, its first 2,000 bars)."""
    from workbench.backtest.api import Backtest
    from workbench.backtest.records import format_stats, record_run
    from workbench.config import load_settings
    from workbench.data.timeframes import timeframe_ms
    from workbench.errors import DataFormatError

    cls = _strategy_class(strategy)
    instance = _strategy(cls, parameter or [])
    try:
        timeframe_ms(timeframe)
    except DataFormatError as exc:
        _usage(str(exc))
    symbols = list(dict.fromkeys(symbol or ["BTC/USDT"]))
    settings = load_settings()
    bars, source, seed = _bars(exchange.lower(), symbols, timeframe, start, end, settings)
    data = bars if len(bars) > 1 else bars[symbols[0]]
    result = Backtest(
        data, instance, cash=cash, fees=fees, slippage=slippage, symbol=symbols[0]
    ).run()

    first = min(f.index[0] for f in bars.values())
    last = max(f.index[-1] for f in bars.values())
    count = sum(len(f) for f in bars.values())
    typer.echo(
        f"{cls.__name__} {result.label} on {', '.join(symbols)} {timeframe}: {count:,} bars "
        f"{source}, {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC\n"
    )
    typer.echo(format_stats(result.stats))
    if record:
        name = "sim" if exchange.lower() in _SIMULATED else exchange.lower()
        saved = record_run(
            result, settings.store_url, seed=seed, note=note, exchange=name, timeframe=timeframe
        )
        typer.echo(f"\nrecorded as run {saved.id} (workbench backtest show {saved.id})")
    else:
        typer.echo("\nnot recorded (--no-record)")


@backtest_app.command("list")
def list_(
    strategy: Annotated[str | None, typer.Option(help="Only runs of this strategy class.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest runs.")] = 50,
) -> None:
    """The recorded runs, newest first, with their headline stats."""
    from workbench.backtest.records import BacktestRuns

    if strategy is not None:
        strategy = _known_name(strategy) or strategy
    with BacktestRuns.from_settings() as runs:
        frame = runs.list(strategy, limit)
    if not len(frame):
        typer.echo("(no runs recorded)")
        return
    table = pd.DataFrame(
        {
            "id": frame["id"],
            "created": frame["created"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "strategy": frame["strategy"],
            "label": frame["label"],
            "data": frame["symbols"]
            + " "
            + frame["timeframe"].fillna("")
            + " "
            + frame["exchange"].fillna(""),
            "return": frame["total_return"].map(_percent),
            "sharpe": frame["sharpe"].map(lambda v: f"{v:.2f}"),
            "max_dd": frame["max_drawdown"].map(_percent),
            "trades": frame["trades"],
            "final_equity": frame["final_equity"].map(lambda v: f"{v:,.2f}"),
            "code": frame["version"]
            + frame["commit"].map(
                lambda c: f" {c[:8]}{'+dirty' * c.endswith('+dirty')}" if c else ""
            ),
        }
    )
    _show(table, index=False)


@backtest_app.command("show")
def show(
    run_id: Annotated[int, typer.Argument(help="A run id (see workbench backtest list).")],
) -> None:
    """One run: what ran, on which data and code, and every stat."""
    from workbench.backtest.records import BacktestRuns

    with BacktestRuns.from_settings() as runs:
        typer.echo(str(runs.get(run_id)))


@backtest_app.command("compare")
def compare(
    ids: Annotated[list[int], typer.Argument(help="Run ids, side by side in this order.")],
) -> None:
    """Runs side by side: one column per run, its parameters, settings and every stat."""
    from workbench.backtest.records import BacktestRuns

    with BacktestRuns.from_settings() as runs:
        frame = runs.compare(ids)
    _show(frame.map(_cell))


# -- helpers ---------------------------------------------------------------------------------


def _known_name(name: str) -> str | None:
    from workbench.strategies import BUILTIN_STRATEGIES

    return next((known for known in BUILTIN_STRATEGIES if known.lower() == name.lower()), None)


def _strategy_class(name: str) -> type[Strategy]:
    from workbench.strategies import BUILTIN_STRATEGIES

    known = _known_name(name)
    if known is None:
        _usage(
            f"Unknown strategy {name!r}; the built-in strategies are: {', '.join(BUILTIN_STRATEGIES)}."
        )
    return BUILTIN_STRATEGIES[known]


def _parameters(cls: type[Strategy]) -> dict[str, Any]:
    return {name: p for name, p in cls.param.objects().items() if name != "name"}


def _strategy(cls: type[Strategy], items: list[str]) -> Strategy:
    """The strategy with ``NAME=VALUE`` items converted to its parameters' types; a usage
    error naming the valid parameters (with their defaults) otherwise."""
    from workbench.errors import WorkbenchError

    declared = _parameters(cls)
    valid = ", ".join(f"{name}={p.default}" for name, p in declared.items())
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            _usage(
                f"Parameter {item!r} is not of the form NAME=VALUE; {cls.__name__} takes: {valid}."
            )
        if key not in declared:
            _usage(f"{cls.__name__} has no parameter {key!r}; it takes: {valid}.")
        values[key] = _convert(cls.__name__, key, declared[key], text.strip())
    try:
        return cls(**values)
    except (ValueError, TypeError, WorkbenchError) as exc:
        _usage(f"{cls.__name__}({', '.join(items)}): {exc}")


def _convert(owner: str, name: str, declared: Any, text: str) -> Any:
    import param

    if declared.allow_None and text.lower() in ("none", "null", ""):
        return None
    try:
        if isinstance(declared, param.Boolean):
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if isinstance(declared, param.Integer):
            return int(text)
        if isinstance(declared, param.Number):
            return float(text)
    except ValueError:
        kind = {param.Boolean: "true or false", param.Integer: "a whole number"}.get(
            type(declared), "a number"
        )
        _usage(f"{owner} parameter {name!r} takes {kind}, not {text!r}.")
    if isinstance(declared, (param.Selector, param.String)):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bars(
    exchange: str, symbols: list[str], timeframe: str, start: str | None, end: str | None, settings
) -> tuple[dict[str, pd.DataFrame], str, int | None]:
    """The bars per symbol, a phrase saying where they came from, and the seed that made
    them (for simulated history)."""
    from workbench.data.store import MarketStore
    from workbench.errors import StoreError, WorkbenchError

    simulated = exchange in _SIMULATED
    name = "sim" if simulated else exchange
    bars: dict[str, pd.DataFrame] = {}
    with MarketStore(settings.store_url) as store:
        for symbol in symbols:
            try:
                frame = store.bars(name, symbol, timeframe, start, end)
            except StoreError:
                if not simulated:
                    raise
                break
            if not len(frame):
                if simulated:
                    break
                span = f" between {start or 'the first'} and {end or 'the last'} bar"
                raise WorkbenchError(f"The store holds no {name} {symbol} {timeframe} bars{span}.")
            bars[symbol] = frame
        else:
            return bars, f"from the store ({name})", None
    return _simulated(symbols, timeframe, start, end, settings.seed)


def _simulated(
    symbols: list[str], timeframe: str, start: str | None, end: str | None, seed: int
) -> tuple[dict[str, pd.DataFrame], str, int]:
    from workbench.data.sources.base import as_timestamp
    from workbench.data.sources.simulated import SimulatedMarket
    from workbench.data.timeframes import timeframe_ms

    market = SimulatedMarket(symbols, seed=seed)
    span = pd.Timedelta(milliseconds=timeframe_ms(timeframe) * SIMULATED_BARS - 1)
    first, last = as_timestamp(start, what="start"), as_timestamp(end, what="end")
    if first is None:
        first = market.start if last is None else last - span
    if last is None:
        last = min(first + span, market.now)
    bars = {symbol: market.fetch_ohlcv(symbol, timeframe, first, last) for symbol in symbols}
    empty = [symbol for symbol, frame in bars.items() if not len(frame)]
    if empty:
        from workbench.errors import WorkbenchError

        raise WorkbenchError(
            f"The simulated market has no {timeframe} bars between {first} and {last} (it "
            f"opens at {market.start}); choose a later --start or --end."
        )
    return bars, f"from the simulated market (seed {seed})", seed


def _percent(value: float) -> str:
    return f"{value:.2%}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        return f"{value:.6g}"
    return value
