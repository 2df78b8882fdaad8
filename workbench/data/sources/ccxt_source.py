"""Market data from any ccxt exchange: REST history and ccxt.pro streams, in the convention.

``CcxtSource("binance")`` serves spot markets, ``CcxtSource("binance", market_type="swap")``
perpetuals. History is paged forward from ``start`` to ``end``. Transient failures
(timeouts, rate limits, an exchange briefly down) are retried with backoff; what the
exchange refuses (a bad symbol, bad keys) fails at once. Streams run on the caller's event
loop, so ``async for`` works in a Jupyter cell as it is.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing, asynccontextmanager
from functools import partial
from operator import itemgetter
from typing import Any, Literal, TypeVar, get_args

import ccxt
import ccxt.pro
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.config import Settings
from workbench.data._retry import Backoff, retry, retry_async
from workbench.data.model import BAR_COLUMNS, OrderBook, to_bars, to_funding, to_trades
from workbench.data.sources.base import BarUpdate, TimeLike, time_window
from workbench.data.timeframes import bar_index, timeframe_ms
from workbench.errors import ConfigError, SourceError, UnknownSymbolError

MarketType = Literal["spot", "swap"]
T = TypeVar("T")
Row = TypeVar("Row")

_log = logging.getLogger(__name__)
_HOUR_MS = 3_600_000
_MAX_CAUSE = 300  # characters of the exchange's own message kept in ours
_HINTS: tuple[tuple[type[Exception], str], ...] = (
    (
        ccxt.AuthenticationError,
        "Check the API key and secret (WORKBENCH_API_KEY, WORKBENCH_API_SECRET) and their "
        "permissions; a testnet source needs testnet keys.",
    ),
    (ccxt.BadSymbol, "source.symbols() lists the symbols it serves."),
    (ccxt.NotSupported, "ccxt does not offer this for this exchange; try another exchange."),
    (
        ccxt.OperationFailed,
        "The exchange is unreachable, overloaded or rate-limiting; check the network and try "
        "again later.",
    ),
    (ccxt.BaseError, "The exchange refused the request; its message says why."),
)


class CcxtSource:
    """Bars, trades, order books and funding of one ccxt exchange, spot or perpetual swaps.

    ``exchange`` is a ccxt id, or a configured ccxt exchange used as it is (tests inject one
    whose ``fetch`` answers offline). ``credentials`` are ccxt's (``apiKey``, ``secret``,
    ``password``), as :meth:`Settings.credentials` gives them; ``testnet`` switches to the
    exchange's sandbox where it has one. ``stream_exchange`` builds the ccxt.pro exchange the
    streams use; by default the same id, keys and testnet setting.
    """

    def __init__(
        self,
        exchange: str | ccxt.Exchange = "binance",
        *,
        market_type: MarketType = "spot",
        testnet: bool = False,
        credentials: Mapping[str, str] | None = None,
        stream_exchange: Callable[[], Any] | None = None,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if market_type not in get_args(MarketType):
            raise ConfigError(f"market_type must be 'spot' or 'swap', not {market_type!r}.")
        self.market_type: MarketType = market_type
        self.testnet = testnet
        config = {
            "enableRateLimit": True,
            "options": {"defaultType": market_type},
            **(credentials or {}),
        }
        if isinstance(exchange, ccxt.Exchange):
            self._exchange = exchange
        else:
            self._exchange = _open(ccxt, exchange, config, testnet)
        # The store key: sandbox data must never mix with the live exchange's history.
        sandbox = getattr(self._exchange, "isSandboxModeEnabled", False)
        self.name: str = f"{self._exchange.id}-testnet" if sandbox else self._exchange.id
        self._stream_exchange = stream_exchange or partial(
            _open, ccxt.pro, self._exchange.id, config, testnet
        )
        self._backoff = backoff
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls, settings: Settings, *, market_type: MarketType = "spot", **options: Any
    ) -> CcxtSource:
        """The configured exchange (``WORKBENCH_EXCHANGE``), its testnet flag and its keys."""
        return cls(
            settings.exchange,
            market_type=market_type,
            testnet=settings.testnet,
            credentials=settings.credentials(),
            **options,
        )

    @property
    def exchange(self) -> ccxt.Exchange:
        """The underlying ccxt exchange, for what this source does not wrap (tickers, ...)."""
        return self._exchange

    def __repr__(self) -> str:
        return (
            f"CcxtSource({self.name!r}, market_type={self.market_type!r}, testnet={self.testnet})"
        )

    # -- REST -------------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        """Unified symbols of this market type, e.g. 'BTC/USDT' (spot), 'BTC/USDT:USDT' (swap)."""
        return sorted(s for s, m in self._markets().items() if m["type"] == self.market_type)

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Bars with open time in [start, end] (default end: now, whose bar may still be forming).

        Without ``start``, the exchange's latest page of bars. The progress bar counts bars
        received against bars expected, so a backfill that stops short of 100% had gaps.
        """
        self._market(symbol)
        step = timeframe_ms(timeframe)
        first, last = time_window(start, end)
        limit = self._page_size(symbol, "fetchOHLCV")
        pages = _pages(
            self._pager("fetch_ohlcv", symbol, timeframe, limit=limit),
            _ms(first),
            _ms(last),
            stamp=itemgetter(0),
            key=itemgetter(0),
            step=step,
            skip=limit * step,
        )
        total = None if first is None else len(bar_index(first, last, timeframe))
        candles: list[list[Any]] = []
        with tqdm(
            total=total, unit="bar", desc=f"{self.name} {symbol} {timeframe}", disable=not progress
        ) as bar:
            for fresh in pages:
                candles.extend(fresh)
                bar.update(len(fresh))
        candles.sort(key=itemgetter(0))
        return to_bars(pd.DataFrame([c[:6] for c in candles], columns=["timestamp", *BAR_COLUMNS]))

    def fetch_trades(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None, *, limit: int | None = None
    ) -> pd.DataFrame:
        """Trades in [start, end], side = aggressor; without ``start``, the exchange's latest.

        ``limit`` caps how many: the first ones from ``start``, or the latest ones.
        """
        self._market(symbol)
        first, last = time_window(start, end)
        page = limit if first is None else self._page_size(symbol, "fetchTrades")
        pages = _pages(
            self._pager("fetch_trades", symbol, limit=page),
            _ms(first),
            _ms(last),
            stamp=_timestamp,
            key=_trade_key,
            step=0,  # trades share milliseconds: page again from the newest one's time
            skip=_HOUR_MS,  # the widest window exchanges answer per trade request (Binance)
        )
        trades: list[dict[str, Any]] = []
        for fresh in pages:
            trades.extend(fresh)
            if limit is not None and len(trades) >= limit:
                break
        trades.sort(key=_timestamp)
        return _trades(trades[:limit])

    def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The current L2 book, ``depth`` levels a side (passed to the exchange as its limit)."""
        self._market(symbol)
        book = self._call(
            "fetch_order_book", symbol, partial(self._exchange.fetch_order_book, symbol, depth)
        )
        return _order_book(symbol, book, depth)

    def fetch_funding_rates(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Funding-rate history of a perpetual, with the mark price where the exchange gives it."""
        if self.market_type != "swap":
            raise SourceError(
                f"{self.name} {symbol}: funding rates exist only for perpetual swaps; use "
                f"CcxtSource({self.name!r}, market_type='swap') and a symbol like 'BTC/USDT:USDT'.",
                exchange=self.name,
                symbol=symbol,
            )
        self._market(symbol)
        first, last = time_window(start, end)
        limit = self._page_size(symbol, "fetchFundingRateHistory")
        pages = _pages(
            self._pager("fetch_funding_rate_history", symbol, limit=limit),
            _ms(first),
            _ms(last),
            stamp=_timestamp,
            key=_timestamp,
            step=1,
            skip=limit * _HOUR_MS,  # hourly funding is the most frequent schedule
        )
        rates = sorted((rate for fresh in pages for rate in fresh), key=_timestamp)
        rows = [(r["timestamp"], r["fundingRate"], _mark_price(r)) for r in rates]
        return to_funding(pd.DataFrame(rows, columns=["timestamp", "funding_rate", "mark_price"]))

    # -- streams ----------------------------------------------------------------------------

    async def stream_bars(
        self, symbols: Sequence[str], timeframe: str = "1m"
    ) -> AsyncIterator[BarUpdate]:
        """Live bars on the running event loop, forming bars included.

        Every update of a forming bar comes with ``closed=False``; when a newer bar of the
        same symbol starts, the previous one is repeated once with ``closed=True``. Dropped
        connections are retried. Leaving the loop (or ``aclose()``) closes the connection.
        """
        closer = _BarCloser(timeframe)
        async with self._stream(symbols, "watch_ohlcv", timeframe) as batches:
            async for symbol, candles in batches:
                for update in closer.updates(symbol, candles):
                    yield update

    async def stream_trades(
        self, symbols: Sequence[str]
    ) -> AsyncIterator[tuple[str, pd.DataFrame]]:
        """Live trades on the running event loop: (symbol, new trades in the convention)."""
        async with self._stream(symbols, "watch_trades") as batches:
            async for symbol, trades in batches:
                yield symbol, _trades(trades)

    async def stream_order_books(
        self, symbols: Sequence[str], depth: int = 20
    ) -> AsyncIterator[OrderBook]:
        """Live L2 books on the running event loop, one snapshot per change."""
        async with self._stream(symbols, "watch_order_book", depth) as batches:
            async for symbol, book in batches:
                yield _order_book(symbol, book, depth)

    @asynccontextmanager
    async def _stream(
        self, symbols: Sequence[str], operation: str, *args: Any
    ) -> AsyncIterator[AsyncIterator[tuple[str, Any]]]:
        """A ccxt.pro exchange watching ``symbols`` with ``operation``, closed on exit."""
        symbols = [symbols] if isinstance(symbols, str) else list(symbols)
        if not symbols:
            raise SourceError(f"{self.name} {operation}: no symbols to stream.", exchange=self.name)
        markets = await asyncio.to_thread(self._markets)  # loading them may take a while
        for symbol in symbols:
            self._market(symbol)
        exchange = self._stream_exchange()
        exchange.set_markets(markets, self._exchange.currencies)
        method = getattr(exchange, operation)

        async def watch(symbol: str) -> Any:
            return await self._watch(operation, symbol, partial(method, symbol, *args))

        try:
            async with aclosing(_merge(symbols, watch)) as batches:
                yield batches
        finally:
            await exchange.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _markets(self, symbol: str | None = None) -> dict[str, dict[str, Any]]:
        if not self._exchange.markets:
            self._call("load_markets", symbol, self._exchange.load_markets)
        return self._exchange.markets

    def _market(self, symbol: str) -> dict[str, Any]:
        """The market of ``symbol``, or an error saying what the exchange lists instead."""
        market = self._markets(symbol).get(symbol)
        if market is not None and market["type"] == self.market_type:
            return market
        if market is not None:
            advice = f"it is a {market['type']} market"
            if market["type"] in get_args(MarketType):
                advice += f": use CcxtSource({self.name!r}, market_type={market['type']!r})"
        else:
            close = difflib.get_close_matches(symbol, self.symbols(), n=3)
            advice = f"close matches: {', '.join(close)}" if close else "see source.symbols()"
        raise UnknownSymbolError(
            f"{self.name} lists no {self.market_type} market {symbol!r}; {advice}.",
            exchange=self.name,
            symbol=symbol,
        )

    def _page_size(self, symbol: str, method: str) -> int:
        """Rows per request of ``method`` (a ccxt method name such as 'fetchOHLCV').

        ccxt's ``maxEntriesPerRequest`` option for the method if set, else the exchange's
        documented maximum, else ccxt's default (1000).
        """
        documented = self._exchange.feature_value(symbol, method, "limit")
        return self._exchange.handle_max_entries_per_request_and_params(method, documented)[0]

    def _pager(
        self, operation: str, symbol: str, *head: Any, limit: int | None
    ) -> Callable[[int | None], list[Any]]:
        """``since -> page``: one retried ``exchange.<operation>(symbol, *head, since, limit)``."""
        method = getattr(self._exchange, operation)
        return lambda since: self._call(
            operation, symbol, partial(method, symbol, *head, since, limit)
        )

    def _call(self, operation: str, symbol: str | None, call: Callable[[], T]) -> T:
        """One REST call: transient failures retried with backoff, every failure a SourceError."""
        try:
            return retry(
                call,
                backoff=self._backoff,
                retry_on=ccxt.OperationFailed,
                what=self._what(operation, symbol),
                explain=self._cause,
                sleep=self._sleep,
            )
        except ccxt.BaseError as exc:
            raise self._failure(operation, symbol, exc) from None

    async def _watch(self, operation: str, symbol: str, call: Callable[[], Awaitable[T]]) -> T:
        """:meth:`_call` for ccxt.pro: a dropped connection is re-watched after a pause."""
        try:
            return await retry_async(
                call,
                backoff=self._backoff,
                retry_on=ccxt.OperationFailed,
                what=self._what(operation, symbol),
                explain=self._cause,
            )
        except ccxt.BaseError as exc:
            raise self._failure(operation, symbol, exc) from None

    def _failure(self, operation: str, symbol: str | None, exc: ccxt.BaseError) -> SourceError:
        gave_up = isinstance(exc, ccxt.OperationFailed)
        tries = f" after {self._backoff.attempts} attempts" if gave_up else ""
        hint = next(text for kind, text in _HINTS if isinstance(exc, kind))
        error = UnknownSymbolError if isinstance(exc, ccxt.BadSymbol) else SourceError
        return error(
            f"{self._what(operation, symbol)} failed{tries}: {self._cause(exc)}. {hint}",
            exchange=self.name,
            symbol=symbol,
        )

    def _what(self, operation: str, symbol: str | None) -> str:
        return f"{self.name} {operation}" + (f" {symbol}" if symbol else "")

    def _cause(self, exc: BaseException) -> str:
        """The exchange's complaint, shortened, with every credential blanked out."""
        text = str(exc)
        for name in self._exchange.requiredCredentials:
            secret = getattr(self._exchange, name, None)
            if isinstance(secret, str) and secret:
                text = text.replace(secret, "***")
        if len(text) > _MAX_CAUSE:
            text = text[:_MAX_CAUSE] + "…"
        return f"{type(exc).__name__}: {text}"


class _BarCloser:
    """Turns ccxt.pro candle batches into BarUpdates, closing a bar when a newer one starts."""

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe
        self._forming: dict[str, list[Any]] = {}

    def updates(self, symbol: str, candles: Iterable[list[Any]]) -> Iterator[BarUpdate]:
        for candle in sorted(candles, key=itemgetter(0)):
            forming = self._forming.get(symbol)
            if forming is not None and candle[0] < forming[0]:
                continue  # a late tick of a bar already reported closed
            if forming is not None and candle[0] > forming[0]:
                yield self._update(symbol, forming, closed=True)
            self._forming[symbol] = list(candle)
            yield self._update(symbol, candle, closed=False)

    def _update(self, symbol: str, candle: list[Any], *, closed: bool) -> BarUpdate:
        stamp, open_, high, low, close, volume = candle[:6]
        return BarUpdate(
            symbol, self.timeframe, _utc(stamp),
            float(open_), float(high), float(low), float(close), float(volume), closed,
        )  # fmt: skip


def _open(module: Any, exchange_id: str, config: Mapping[str, Any], testnet: bool) -> Any:
    """A ccxt (or ccxt.pro) exchange by id, in sandbox mode when asked and it has one."""
    if exchange_id not in module.exchanges:
        close = difflib.get_close_matches(exchange_id, module.exchanges, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "see ccxt.exchanges"
        raise SourceError(
            f"{module.__name__} has no exchange {exchange_id!r}; {hint}", exchange=exchange_id
        )
    exchange = getattr(module, exchange_id)(dict(config))
    if testnet:
        if exchange.urls.get("test"):
            exchange.set_sandbox_mode(True)
        else:  # e.g. binance, whose spot testnet ccxt replaced by "demo trading"
            _log.warning("%s has no testnet in ccxt; reading its live market data.", exchange_id)
    return exchange


def _pages(
    fetch: Callable[[int | None], list[Row]],
    start_ms: int | None,
    end_ms: int,
    *,
    stamp: Callable[[Row], int],
    key: Callable[[Row], Hashable],
    step: int,
    skip: int,
) -> Iterator[list[Row]]:
    """The new rows in [start_ms, end_ms] of each page, paging forward in time.

    After a page the cursor moves to its newest row plus ``step``. A page with nothing newer
    moves it ``skip`` ahead instead, so exchanges that answer one time window per request,
    and stretches without data, do not end a backfill early. Rows seen before (same
    ``key``) are dropped. Without ``start_ms``: one page, the exchange's latest.
    """
    if start_ms is None:
        yield [row for row in fetch(None) if stamp(row) <= end_ms]
        return
    seen: set[Hashable] = set()
    since = start_ms
    while since <= end_ms:
        page = fetch(since)
        fresh = {key(r): r for r in page if start_ms <= stamp(r) <= end_ms and key(r) not in seen}
        seen.update(fresh)
        yield list(fresh.values())
        newest = max(map(stamp, page), default=None)
        since = newest + step if newest is not None and newest + step > since else since + skip


async def _merge(
    symbols: Sequence[str], watch: Callable[[str], Awaitable[T]]
) -> AsyncIterator[tuple[str, T]]:
    """One watch loop per symbol, interleaved as results arrive; the first failure ends it.

    The queue holds one result per symbol, so a slow consumer makes ccxt.pro coalesce
    updates instead of letting them pile up here.
    """
    queue: asyncio.Queue[tuple[str, T | Exception]] = asyncio.Queue(maxsize=len(symbols))

    async def pump(symbol: str) -> None:
        try:
            while True:
                await queue.put((symbol, await watch(symbol)))
        except Exception as exc:  # handed to the consumer, who raises it
            await queue.put((symbol, exc))

    tasks = [asyncio.create_task(pump(symbol)) for symbol in symbols]
    try:
        while True:
            symbol, result = await queue.get()
            if isinstance(result, Exception):
                raise result
            yield symbol, result
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _ms(stamp: pd.Timestamp | None) -> int | None:
    return None if stamp is None else stamp.value // 1_000_000


def _utc(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _timestamp(entry: Mapping[str, Any]) -> int:
    return entry["timestamp"]


def _trade_key(trade: Mapping[str, Any]) -> Hashable:
    """A trade's id, or what tells it apart where the exchange gives none."""
    return trade["id"] or (trade["timestamp"], trade["price"], trade["amount"], trade["side"])


def _trades(trades: list[dict[str, Any]]) -> pd.DataFrame:
    return to_trades(pd.DataFrame(trades, columns=["timestamp", "price", "amount", "side", "id"]))


def _mark_price(rate: Mapping[str, Any]) -> float:
    """ccxt's mark price of a funding entry, else the one in the exchange's raw reply."""
    value = rate.get("markPrice") or (rate.get("info") or {}).get("markPrice")
    return float(value) if value not in (None, "") else np.nan


def _order_book(symbol: str, book: Mapping[str, Any], depth: int) -> OrderBook:
    """The convention's book; stamped on receipt when the exchange sends no time."""
    stamp = book.get("timestamp")
    return OrderBook(
        symbol=symbol,
        timestamp=_utc(stamp) if stamp else pd.Timestamp.now("UTC"),
        bids=[level[:2] for level in book["bids"][:depth]],
        asks=[level[:2] for level in book["asks"][:depth]],
    )
