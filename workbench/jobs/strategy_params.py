"""Strategy parameters as jobs take them and keep them.

Job parameters are plain strings (papermill and ``workbench jobs run -p key=value``), so a
strategy's parameters are written in a simple text form, read against the strategy's own
declared parameters (types and bounds)::

    parse_params("MovingAverageCross", "fast=10, slow=50, long_only=true")
    parse_grid("MovingAverageCross", "fast=5,10,20; slow=30,50,100")

A name may also be followed by a colon (``"fast: 5,10,20; slow: 30,50,100"``): papermill
cannot read a job's declared default when its line holds more than one ``=``, so the job
notebooks write their defaults that way.

The ``optimize_strategy`` job saves the parameters its walk-forward chose, with where they
came from, as one JSON file per strategy and symbol::

    <data_dir>/strategies/<Strategy>/<symbol, percent-encoded>.json
    e.g. data/strategies/MovingAverageCross/BTC%2FUSDT.json

written atomically (a temporary file in the same folder, then renamed over the old one), so
a reader never sees half a file. The live strategy (or the ``daily_report`` job) picks them
up with::

    params = load_best_params("MovingAverageCross", "BTC/USDT")    # {} when none are saved
    strategy = BUILTIN_STRATEGIES["MovingAverageCross"](**params)

and :func:`read_best_params` gives the whole record: the parameters, the grid's choice, the
symbol's exchange and timeframe, the objective, the walk-forward window that chose them,
its out-of-sample figures, when they were saved and by which code version.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import param

from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.strategies import Strategy

#: Folder under ``settings.data_dir`` holding the saved best parameters.
FOLDER = "strategies"
#: Version of the saved file's layout.
FORMAT = 1
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


# -- strategies and their parameters as text ------------------------------------------------


def strategy_class(name: str) -> type[Strategy]:
    """The built-in strategy called ``name``; a ConfigError listing the built-ins if none is."""
    from workbench.strategies import BUILTIN_STRATEGIES

    cls = BUILTIN_STRATEGIES.get(str(name).strip())
    if cls is None:
        raise ConfigError(
            f"No strategy {name!r}; the built-in strategies are: {', '.join(BUILTIN_STRATEGIES)}."
        )
    return cls


def parse_params(strategy: str | type[Strategy], text: str) -> dict[str, Any]:
    """``"fast=10, slow=50, long_only=true"`` as the strategy's typed parameters; an empty
    text is no parameters. Unknown names, values of the wrong type or out of bounds, and
    contradictions between them (``fast >= slow``) are refused with a ConfigError."""
    cls = _class(strategy)
    values: dict[str, Any] = {}
    for item in _items(text, ","):
        name, value = _split(cls, item, "params", "fast=10")
        if name in values:
            raise ConfigError(f"params: {name!r} is given twice in {text!r}.")
        values[name] = _value(cls, name, value)
    check_params(cls, values)
    return values


def parse_grid(strategy: str | type[Strategy], text: str) -> dict[str, list[Any]]:
    """``"fast=5,10,20; slow=30,50,100"`` as a grid for a sweep or walk-forward: each
    parameter's values, typed and checked against its bounds, in the order given."""
    cls = _class(strategy)
    grid: dict[str, list[Any]] = {}
    for item in _items(text, ";"):
        name, values = _split(cls, item, "grid", "fast=5,10,20; slow=30,50,100")
        if name in grid:
            raise ConfigError(f"grid: {name!r} is given twice in {text!r}.")
        parsed = [_value(cls, name, value) for value in _items(values, ",")]
        if not parsed:
            raise ConfigError(f"grid: {name!r} has no values; list them, e.g. {name}=5,10,20.")
        grid[name] = list(dict.fromkeys(parsed))
    if not grid:
        raise ConfigError(
            f"grid is empty: give at least one parameter of {cls.__name__} and its values, "
            f"e.g. {_example(cls)}."
        )
    return grid


def check_params(strategy: str | type[Strategy], params: Mapping[str, Any]) -> None:
    """Refuse parameters the strategy would refuse (unknown, out of bounds, contradicting)."""
    cls = _class(strategy)
    unknown = sorted(set(params) - set(_parameters(cls)))
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no parameter(s) {unknown}; it takes: {', '.join(_parameters(cls))}."
        )
    try:
        cls(**params)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{cls.__name__}({format_params(params)}): {exc}") from None


def format_params(params: Mapping[str, Any]) -> str:
    """Parameters in the text form :func:`parse_params` reads: ``fast=10, slow=50``."""
    return ", ".join(f"{name}={_text(value)}" for name, value in params.items())


def _class(strategy: str | type[Strategy]) -> type[Strategy]:
    return strategy if isinstance(strategy, type) else strategy_class(strategy)


def _parameters(cls: type[Strategy]) -> list[str]:
    return [name for name in cls.param if name != "name"]


def _items(text: str, separator: str) -> list[str]:
    return [item.strip() for item in str(text).split(separator) if item.strip()]


def _split(cls: type[Strategy], item: str, what: str, example: str) -> tuple[str, str]:
    cut = min((item.find(mark) for mark in "=:" if mark in item), default=-1)
    name, value = (item[:cut].strip(), item[cut + 1 :]) if cut >= 0 else ("", "")
    if not name:
        raise ConfigError(f"{what}: cannot read {item!r}; write name=value, e.g. {example}.")
    if name not in _parameters(cls):
        raise ConfigError(
            f"{what}: {cls.__name__} has no parameter {name!r}; it takes: "
            f"{', '.join(_parameters(cls))}."
        )
    return name, value.strip()


def _value(cls: type[Strategy], name: str, text: str) -> Any:
    """``text`` as the value of parameter ``name``: its type, within its bounds or choices."""
    declared = cls.param[name]
    low = text.lower()
    if low in {"none", "null"} and declared.allow_None:
        return None
    try:
        if isinstance(declared, param.Boolean):
            if low not in _TRUE | _FALSE:
                raise ValueError
            return low in _TRUE
        if isinstance(declared, param.Integer):
            value: Any = int(text)
        elif isinstance(declared, param.Number):
            value = float(text)
        elif isinstance(declared, param.Selector):
            if text not in declared.objects:
                raise ConfigError(
                    f"{cls.__name__}.{name} is one of {declared.objects}, not {text!r}."
                )
            return text
        else:
            return text
    except ValueError:
        kind = type(declared).__name__.lower()
        raise ConfigError(
            f"{cls.__name__}.{name} is {_article(kind)} {kind}; cannot read {text!r}."
        ) from None
    _check_bounds(cls, name, declared, value)
    return value


def _check_bounds(cls: type[Strategy], name: str, declared: param.Number, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{cls.__name__}.{name} must be finite, not {value}.")
    low, high = declared.bounds or (None, None)
    low_in, high_in = getattr(declared, "inclusive_bounds", (True, True))
    too_low = low is not None and (value < low or (value == low and not low_in))
    too_high = high is not None and (value > high or (value == high and not high_in))
    if too_low or too_high:
        span = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
        raise ConfigError(f"{cls.__name__}.{name}={value} is out of its bounds {span}.")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _example(cls: type[Strategy]) -> str:
    """A grid of two numeric parameters around their defaults, e.g. ``fast=5,10,20; ...``."""
    numeric = [
        n for n in _parameters(cls)
        if isinstance(cls.param[n], param.Number) and cls.param[n].default is not None
    ]  # fmt: skip
    parts = []
    for name in numeric[:2]:
        d = cls.param[name].default
        values = (max(d // 2, 1), d, d * 2) if isinstance(d, int) else (d / 2, d, d * 2)
        parts.append(f"{name}={','.join(f'{v:g}' for v in values)}")
    return "; ".join(parts)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


# -- best parameters, saved for the live strategy ----------------------------------------------


@dataclass(frozen=True)
class BestParams:
    """Saved best parameters of a strategy on a symbol, with their provenance (the file's
    other fields: exchange, timeframe, objective, window, out_of_sample, saved, code...)."""

    strategy: str
    symbol: str
    params: dict[str, Any]
    provenance: dict[str, Any]
    path: Path

    def build(self) -> Strategy:
        """The strategy with these parameters."""
        return strategy_class(self.strategy)(**self.params)


def best_params_path(strategy: str, symbol: str, settings: Settings | None = None) -> Path:
    """Where the best parameters of ``strategy`` on ``symbol`` are kept: one JSON file per
    strategy and symbol, the symbol percent-encoded (``BTC/USDT`` -> ``BTC%2FUSDT.json``)."""
    cls = strategy_class(strategy)
    if not str(symbol).strip():
        raise ConfigError("A symbol is needed to save or load best parameters.")
    return _root(settings) / cls.__name__ / f"{quote(str(symbol).strip(), safe='')}.json"


def save_best_params(
    strategy: str,
    symbol: str,
    params: Mapping[str, Any],
    *,
    timeframe: str,
    objective: str,
    window: Mapping[str, Any],
    out_of_sample: Mapping[str, Any],
    exchange: str | None = None,
    settings: Settings | None = None,
    **details: Any,
) -> Path:
    """Save ``params`` as the best of ``strategy`` on ``symbol`` (replacing earlier ones,
    atomically) and return the file's path.

    ``params`` must construct the strategy (they are checked); the provenance kept with
    them is ``timeframe``, ``objective``, the ``window`` that chose them (e.g. train and
    test spans), its ``out_of_sample`` figures, the ``exchange``, any ``details`` (plain
    values: timestamps become ISO strings, NaN null), the time and the code version."""
    from workbench.backtest.records import code_version

    cls = strategy_class(strategy)
    params = {name: _plain(value) for name, value in params.items() if name != "name"}
    check_params(cls, params)
    version, commit = code_version()
    record = {
        "format": FORMAT,
        "strategy": cls.__name__,
        "symbol": str(symbol).strip(),
        "params": params,
        "exchange": exchange,
        "timeframe": timeframe,
        "objective": objective,
        "window": _plain(dict(window)),
        "out_of_sample": _plain(dict(out_of_sample)),
        **{name: _plain(value) for name, value in details.items()},
        "saved": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": {"version": version, "commit": commit},
    }
    path = best_params_path(cls.__name__, symbol, settings)
    _write_atomically(path, json.dumps(record, indent=2, allow_nan=False) + "\n")
    return path


def read_best_params(
    strategy: str, symbol: str, settings: Settings | None = None
) -> BestParams | None:
    """The saved best parameters of ``strategy`` on ``symbol`` with their provenance, or
    None when none are saved; a ConfigError naming the file when it cannot be used."""
    path = best_params_path(strategy, symbol, settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read the saved best parameters {path}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        raise ConfigError(f"{path} holds no 'params' object; run optimize_strategy again.")
    if record.get("symbol") != str(symbol).strip():
        raise ConfigError(
            f"{path} holds the parameters of {record.get('symbol')!r}, not {symbol!r}."
        )
    params = record.pop("params")
    try:
        check_params(strategy, params)
    except ConfigError as exc:
        raise ConfigError(f"The saved best parameters in {path} no longer fit: {exc}") from None
    cls_name = strategy_class(strategy).__name__
    record.pop("strategy", None)
    record.pop("symbol", None)
    return BestParams(cls_name, str(symbol).strip(), params, record, path)


def load_best_params(
    strategy: str, symbol: str, settings: Settings | None = None
) -> dict[str, Any]:
    """The saved best parameters of ``strategy`` on ``symbol``, ready for
    ``BUILTIN_STRATEGIES[strategy](**params)``; ``{}`` (the strategy's defaults) when none
    are saved."""
    saved = read_best_params(strategy, symbol, settings)
    return {} if saved is None else dict(saved.params)


def _root(settings: Settings | None) -> Path:
    if settings is None:
        from workbench.config import load_settings

        settings = load_settings()
    return Path(settings.data_dir).resolve() / FOLDER


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


def _plain(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars as numbers, times as ISO strings, NaN as null."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or isinstance(value, (bool, int, str)):
        return None if value is pd.NaT else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, pd.Timedelta):
        return str(value)
    return str(value)
