"""US equities (QQQ, SPY, ...) from Alpaca's market-data API through alpaca-py, in the convention.

Bars come in time windows, each paged by alpaca-py (``next_page_token``): a long backfill
shows progress and a dropped connection retries one window, not the whole range. Alpaca
reports no aggressor for trades, so ``side`` is inferred with the tick rule
(:func:`tick_rule`). The order book is the top of book, the latest NBBO quote. Equities pay
no funding.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockTradesRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, AssetStatus
from alpaca.trading.requests import GetAssetsRequest
from tqdm.auto import tqdm

from workbench.config import Settings
from workbench.data._retry import Backoff, retry
from workbench.data.model import BAR_COLUMNS, OrderBook, to_bars, to_trades
from workbench.data.sources.base import BarUpdate, TimeLike, time_window
from workbench.data.timeframes import timeframe_ms
from workbench.errors import ConfigError, DataFormatError, SourceError, UnknownSymbolError

T = TypeVar("T")

_EARLIEST = pd.Timestamp("2015-01-01", tz="UTC")  # before Alpaca's first data
_LATEST = 1_000  # rows "the latest" means when no start is given
_TICK_CONTEXT = 100  # earlier trades fetched so the latest ones have a price move to follow
_WINDOW_BARS = 20_000  # wall-clock bars a request window spans: ~10,000 bars of sessions
_MAX_CAUSE = 300  # characters of Alpaca's own message kept in ours
_TRANSIENT = (requests.ConnectionError, requests.Timeout)
_KEY_VARS = ("WORKBENCH_ALPACA_API_KEY", "WORKBENCH_ALPACA_API_SECRET")
_UNITS = {
    "m": TimeFrameUnit.Minute,
    "h": TimeFrameUnit.Hour,
    "d": TimeFrameUnit.Day,
    "w": TimeFrameUnit.Week,
    "M": TimeFrameUnit.Month,
}


class AlpacaSource:
    """Bars, trades and top-of-book quotes of US equities from Alpaca.

    ``feed`` picks the data feed ('iex' on free plans, 'sip' with a subscription; default:
    the best your plan allows). ``adjustment`` normalises bars for corporate actions
    ('split' by default, so a split is no price jump; 'raw', 'dividend' or 'all').
    ``url_override`` points both Alpaca APIs elsewhere (a proxy, or a local test server).
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str | None = None,
        secret_key: str | None = None,
        *,
        paper: bool = True,
        feed: str | None = None,
        adjustment: str = "split",
        url_override: str | None = None,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        missing = [var for var, value in zip(_KEY_VARS, (api_key, secret_key)) if not value]
        if missing:
            raise ConfigError(
                f"Alpaca needs an API key and secret: set {' and '.join(missing)} in the "
                f"environment (or the system keyring). Keys: https://app.alpaca.markets."
            )
        try:
            self._feed = DataFeed(feed) if feed else None
            self._adjustment = Adjustment(adjustment)
        except ValueError as exc:
            raise ConfigError(f"Alpaca source: {exc}.") from None
        self._data = StockHistoricalDataClient(api_key, secret_key, url_override=url_override)
        self._trading = TradingClient(api_key, secret_key, paper=paper, url_override=url_override)
        self._backoff = backoff
        self._sleep = sleep
        self._listed: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> AlpacaSource:
        """Keys (``WORKBENCH_ALPACA_API_KEY``/``_SECRET``, or the keyring) and paper flag."""
        keys = settings.alpaca_credentials()
        return cls(
            keys.get("api_key"), keys.get("secret_key"), paper=settings.alpaca_paper, **options
        )

    def __repr__(self) -> str:
        feed = self._feed.value if self._feed else None
        return f"AlpacaSource(feed={feed!r}, adjustment={self._adjustment.value!r})"

    def symbols(self) -> list[str]:
        """Active US equities Alpaca lists."""
        query = GetAssetsRequest(asset_class=AssetClass.US_EQUITY, status=AssetStatus.ACTIVE)
        assets = self._call("get_all_assets", None, partial(self._trading.get_all_assets, query))
        return sorted(asset.symbol for asset in assets)

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Bars with open time in [start, end] (default end: now).

        Without ``start``, the latest 1000 bars. The progress bar counts request windows.
        """
        self._check(symbol)
        frame = _alpaca_timeframe(timeframe)
        first, last = time_window(start, end)
        if first is None:
            bars = self._bars(symbol, frame, _EARLIEST, last, limit=_LATEST, sort=Sort.DESC)[::-1]
        else:
            span = pd.Timedelta(_WINDOW_BARS * timeframe_ms(timeframe), "ms")
            windows = _split(first, last, span)
            bars = []
            desc = f"alpaca {symbol} {timeframe}"
            with tqdm(total=len(windows), unit="window", desc=desc, disable=not progress) as bar:
                for low, high in windows:
                    bars += self._bars(symbol, frame, low, high)
                    bar.update()
                    bar.set_postfix(bars=len(bars))
        rows = [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]
        return to_bars(pd.DataFrame(rows, columns=["timestamp", *BAR_COLUMNS]))

    def fetch_trades(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None, *, limit: int | None = None
    ) -> pd.DataFrame:
        """Trades in [start, end], the first ``limit`` of them; without ``start``, the latest.

        The latest means ``limit`` trades, 1000 by default. ``side`` is inferred with
        :func:`tick_rule`; ``id`` is Alpaca's, unique per exchange only.
        """
        self._check(symbol)
        first, last = time_window(start, end)
        if first is None:
            wanted = limit or _LATEST
            latest = self._trades(
                symbol, _EARLIEST, last, limit=wanted + _TICK_CONTEXT, sort=Sort.DESC
            )
            return self._tape(symbol, latest[::-1]).tail(wanted)
        return self._tape(symbol, self._trades(symbol, first, last, limit=limit))

    def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The top of book: the latest quote as one level a side (``depth`` has no effect)."""
        self._check(symbol)
        query = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=self._feed)
        quotes = self._call(
            "get_stock_latest_quote", symbol, partial(self._data.get_stock_latest_quote, query)
        )
        quote = quotes.get(symbol)
        if quote is None:
            raise SourceError(
                f"alpaca has no quote for {symbol}.", exchange=self.name, symbol=symbol
            )
        return OrderBook(
            symbol=symbol,
            timestamp=pd.Timestamp(quote.timestamp).tz_convert("UTC"),
            bids=_level(quote.bid_price, quote.bid_size),
            asks=_level(quote.ask_price, quote.ask_size),
        )

    def fetch_funding_rates(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Equities have no funding rates: always a SourceError."""
        raise SourceError(
            f"alpaca {symbol}: equities pay no funding; funding rates exist for perpetual swaps "
            f"(CcxtSource(..., market_type='swap')).",
            exchange=self.name,
            symbol=symbol,
        )

    def stream_bars(
        self, symbols: Sequence[str], timeframe: str = "1m"
    ) -> AsyncIterator[BarUpdate]:
        """Not available yet: a SourceError (poll :meth:`fetch_ohlcv`, or stream from ccxt)."""
        raise SourceError(
            "AlpacaSource does not stream yet; poll fetch_ohlcv for recent bars.",
            exchange=self.name,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _check(self, symbol: str) -> None:
        """Refuse a symbol Alpaca does not list (asked once per symbol)."""
        if symbol not in self._listed:
            self._call("get_asset", symbol, partial(self._trading.get_asset, symbol))
            self._listed.add(symbol)

    def _bars(
        self, symbol: str, frame: TimeFrame, low: pd.Timestamp, high: pd.Timestamp, **query: Any
    ) -> list[Any]:
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=frame,
            start=low.to_pydatetime(),
            end=high.to_pydatetime(),
            adjustment=self._adjustment,
            feed=self._feed,
            **query,
        )
        answer = self._call("get_stock_bars", symbol, partial(self._data.get_stock_bars, request))
        return answer.data.get(symbol, [])

    def _trades(
        self, symbol: str, low: pd.Timestamp, high: pd.Timestamp, **query: Any
    ) -> list[Any]:
        request = StockTradesRequest(
            symbol_or_symbols=symbol,
            start=low.to_pydatetime(),
            end=high.to_pydatetime(),
            feed=self._feed,
            **query,
        )
        answer = self._call(
            "get_stock_trades", symbol, partial(self._data.get_stock_trades, request)
        )
        return answer.data.get(symbol, [])

    def _tape(self, symbol: str, trades: list[Any]) -> pd.DataFrame:
        """Alpaca trades in the convention, sides by the tick rule."""
        try:
            sides = tick_rule(np.array([t.price for t in trades], dtype="float64"))
        except DataFormatError as exc:
            raise SourceError(
                f"alpaca fetch_trades {symbol}: {exc} Widen the range.",
                exchange=self.name,
                symbol=symbol,
            ) from None
        rows = [(t.timestamp, t.price, t.size, side, str(t.id)) for t, side in zip(trades, sides)]
        return to_trades(pd.DataFrame(rows, columns=["timestamp", "price", "amount", "side", "id"]))

    def _call(self, operation: str, symbol: str | None, call: Callable[[], T]) -> T:
        """One alpaca-py call: dropped connections retried with backoff, failures SourceErrors.

        (alpaca-py itself waits out rate limits, HTTP 429.)
        """
        try:
            return retry(
                call,
                backoff=self._backoff,
                retry_on=_TRANSIENT,
                what=_what(operation, symbol),
                explain=_cause,
                sleep=self._sleep,
            )
        except (APIError, *_TRANSIENT) as exc:
            raise self._failure(operation, symbol, exc) from None

    def _failure(self, operation: str, symbol: str | None, exc: Exception) -> SourceError:
        status = exc.status_code if isinstance(exc, APIError) else None
        if status == 404 and operation == "get_asset":
            return UnknownSymbolError(
                f"alpaca lists no asset {symbol!r} ({_cause(exc)}); check the ticker (e.g. 'QQQ').",
                exchange=self.name,
                symbol=symbol,
            )
        if isinstance(exc, _TRANSIENT):
            detail = f" after {self._backoff.attempts} attempts"
            hint = "Alpaca could not be reached; check the network and try again later."
        elif status in (401, 403):
            detail = f" (HTTP {status})"
            hint = (
                f"Check {' and '.join(_KEY_VARS)} (paper keys need alpaca_paper) and that your "
                f"data plan covers the feed (free plans: feed='iex')."
            )
        else:
            detail = f" (HTTP {status})"
            hint = "Alpaca refused the request; its message says why."
        return SourceError(
            f"{_what(operation, symbol)} failed{detail}: {_cause(exc)}. {hint}",
            exchange=self.name,
            symbol=symbol,
        )


def tick_rule(prices: np.ndarray) -> np.ndarray:
    """Aggressor sides ('buy'/'sell') inferred from price moves, for tapes that do not say.

    An uptick is a buy, a downtick a sell, an unchanged price keeps the side before it.
    Trades before the first move take the side that move implies for them (the reverse
    tick test: a price above the next one was a buy). A tape whose price never moves
    cannot be classified: DataFormatError.
    """
    if len(prices) == 0:
        return np.array([], dtype=object)
    moves = np.sign(np.diff(prices, prepend=prices[0]))
    moved = np.flatnonzero(moves)
    if moved.size == 0:
        raise DataFormatError(
            f"The {len(prices)} trades never change price, so the tick rule cannot tell buyers "
            f"from sellers."
        )
    last_move = np.maximum.accumulate(np.where(moves != 0, np.arange(len(prices)), moved[0]))
    signs = moves[last_move]
    signs[: moved[0]] = -moves[moved[0]]
    return np.where(signs > 0, "buy", "sell").astype(object)


def _alpaca_timeframe(timeframe: str) -> TimeFrame:
    timeframe_ms(timeframe)  # checks the spelling
    count, unit = int(timeframe[:-1]), timeframe[-1]
    try:
        return TimeFrame(count, _UNITS[unit])
    except (KeyError, ValueError):
        raise DataFormatError(
            f"Alpaca has no {timeframe!r} bars: it serves 1-59m, 1-23h, 1d, 1w and 1, 2, 3, 6 "
            f"or 12M."
        ) from None


def _split(
    first: pd.Timestamp, last: pd.Timestamp, span: pd.Timedelta
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[first, last] cut into consecutive windows of ``span``, ends inclusive, no overlap."""
    starts = pd.date_range(first, last, freq=span)
    ends = [*(starts[1:] - pd.Timedelta(1, "us")), last]
    return list(zip(starts, ends))


def _level(price: float, size: float) -> list[tuple[float, float]]:
    """One book level, or none where the side is empty (Alpaca quotes 0 for no bid or ask)."""
    return [(price, size)] if price > 0 and size > 0 else []


def _what(operation: str, symbol: str | None) -> str:
    return f"alpaca {operation}" + (f" {symbol}" if symbol else "")


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:_MAX_CAUSE]}"
