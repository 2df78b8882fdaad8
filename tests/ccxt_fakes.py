"""Offline stand-ins for Binance, so tests drive ccxt's real parsing with no network.

- :func:`static_binance` loads ccxt's own recorded markets and responses (``ccxt-static``).
- :class:`FakeBinanceRest` is an ``exchange.fetch`` replacement answering Binance's REST
  shapes (klines, aggTrades, fundingRate) from a table, honouring startTime/endTime/limit.
- :class:`BinanceStreamServer` is a websocket server on 127.0.0.1 speaking Binance's
  market-stream protocol (SUBSCRIBE, then whatever the test queues).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.pro
import pandas as pd
from websockets.asyncio.server import ServerConnection, serve

from workbench.data.timeframes import timeframe_ms

DROP = object()  # queued on a BinanceStreamServer: close the connection


def static_binance(shared_data: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """ccxt's recorded Binance markets and responses, with the fixture's known quirks fixed.

    The markets give precision as decimal places where ccxt now counts tick sizes, and the
    spot markets lack the ``linear``/``inverse`` keys (see ccxt-static/README.md).
    """
    static = shared_data / "ccxt-static"
    markets = json.loads((static / "markets" / "binance.json").read_text())
    for market in markets.values():
        precision = market.get("precision", {})
        market["precision"] = {k: 10.0**-v for k, v in precision.items() if v is not None}
        market.setdefault("linear", None)
        market.setdefault("inverse", None)
    responses = json.loads((static / "response" / "binance.json").read_text())
    return markets, responses


def offline_binance(markets: dict[str, Any], **config: Any) -> ccxt.binance:
    """A ccxt Binance with the recorded markets loaded and no way to reach the network.

    Its rate limiter is off: it would pace the fake requests as if they were real ones.
    """
    options = {"leverageBrackets": {}, **config.pop("options", {})}
    exchange = ccxt.binance({"enableRateLimit": False, "options": options, **config})
    exchange.set_markets(markets)
    exchange.fetch = _no_network
    return exchange


def _no_network(url: str, *args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"test tried to reach the network: {url}")


class FakeBinanceRest:
    """``exchange.fetch`` answering klines, aggTrades and fundingRate the way Binance does.

    ``page_cap`` is the exchange's own maximum page (it answers fewer rows than asked
    beyond it). With ``windowed`` the klines answer covers only [startTime, startTime +
    limit bars), as some exchanges do, so a gap longer than a page yields an empty page.
    """

    def __init__(
        self,
        *,
        bars: pd.DataFrame | None = None,
        trades: pd.DataFrame | None = None,
        funding: pd.DataFrame | None = None,
        page_cap: int = 1500,
        windowed: bool = False,
    ) -> None:
        self.tables = {"klines": bars, "aggTrades": trades, "fundingRate": funding}
        self.page_cap = page_cap
        self.windowed = windowed
        self.requests: list[dict[str, str]] = []
        self.answered: list[int] = []  # rows per answer

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        endpoint = parts.path.rsplit("/", 1)[-1]
        query = dict(parse_qsl(parts.query))
        self.requests.append({"endpoint": endpoint, **query})
        rows = self._select(self.tables[endpoint], query, endpoint)
        self.answered.append(len(rows))
        shape = {"klines": _klines, "aggTrades": _agg_trades, "fundingRate": _funding_rates}
        return shape[endpoint](rows, query)

    def _select(self, table: pd.DataFrame, query: dict[str, str], endpoint: str) -> pd.DataFrame:
        limit = min(int(query.get("limit", 500)), self.page_cap)
        if "startTime" not in query:
            return table.tail(limit)
        stamps = table["timestamp"]
        start = int(query["startTime"])
        end = int(query.get("endTime", stamps.max()))
        if self.windowed and endpoint == "klines":
            end = min(end, start + limit * timeframe_ms(query["interval"]) - 1)
        return table[(stamps >= start) & (stamps <= end)].head(limit)


def _klines(bars: pd.DataFrame, query: dict[str, str]) -> list[list[Any]]:
    """/api/v3/klines rows: numbers as strings, as Binance sends them."""
    step = timeframe_ms(query["interval"])
    columns = ["timestamp", "open", "high", "low", "close", "volume"]
    return [
        [int(t), *map(repr, ohlcv), int(t) + step - 1, "0", 1, "0", "0", "0"]
        for t, *ohlcv in bars[columns].itertuples(index=False)
    ]


def _agg_trades(trades: pd.DataFrame, query: dict[str, str]) -> list[dict[str, Any]]:
    """/fapi/v1/aggTrades rows (``m``: the buyer was the maker, so the seller was aggressor)."""
    columns = ["timestamp", "id", "side", "price", "amount"]
    return [
        {"a": int(i), "p": repr(p), "q": repr(q), "f": int(i), "l": int(i), "T": int(t),
         "m": side == "sell"}
        for t, i, side, p, q in trades[columns].itertuples(index=False)
    ]  # fmt: skip


def _funding_rates(funding: pd.DataFrame, query: dict[str, str]) -> list[dict[str, Any]]:
    """/fapi/v1/fundingRate rows."""
    columns = ["timestamp", "funding_rate", "mark_price"]
    return [
        {"symbol": query["symbol"], "fundingTime": int(t), "fundingRate": repr(r),
         "markPrice": repr(m)}
        for t, r, m in funding[columns].itertuples(index=False)
    ]  # fmt: skip


def kline_message(symbol_id: str, timeframe: str, stamp: int, close: float) -> dict[str, Any]:
    """One message of Binance's ``<symbol>@kline_<interval>`` stream (O 100, H 110, L 90, V 5)."""
    return {
        "e": "kline",
        "E": stamp + 1,
        "s": symbol_id,
        "k": {
            "t": stamp, "T": stamp + timeframe_ms(timeframe) - 1, "s": symbol_id, "i": timeframe,
            "f": 1, "L": 2, "o": "100", "c": str(close), "h": "110", "l": "90", "v": "5",
            "n": 2, "x": False, "q": "0", "V": "0", "Q": "0", "B": "0",
        },
    }  # fmt: skip


def trade_message(
    symbol_id: str, trade_id: int, stamp: int, price: float, amount: float, side: str
) -> dict[str, Any]:
    """One message of Binance's ``<symbol>@trade`` stream (``m``: the buyer was the maker)."""
    return {
        "e": "trade", "E": stamp + 1, "s": symbol_id, "t": trade_id, "p": str(price),
        "q": str(amount), "T": stamp, "m": side == "sell", "M": True,
    }  # fmt: skip


class BinanceStreamServer:
    """Binance's market streams on 127.0.0.1: answers SUBSCRIBE, then sends what is queued.

    Queue messages with :meth:`send` (or :data:`DROP` to cut the connection); ccxt.pro
    reaches it through :meth:`exchange`.
    """

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.streams: set[str] = set()
        self.connections = 0
        self.disconnections = 0

    async def __aenter__(self) -> BinanceStreamServer:
        self._server = await serve(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def exchange(self) -> ccxt.pro.binance:
        """A ccxt.pro Binance whose spot streams come from here (ccxt tells spot by '/stream')."""
        url = f"ws://127.0.0.1:{self.port}/stream"
        return ccxt.pro.binance({"urls": {"api": {"ws": {"spot": url}}}})

    async def send(self, message: Any) -> None:
        await self.outbox.put(message)

    async def subscribed(self, *streams: str) -> None:
        """Wait until the current connection has subscribed to ``streams``."""
        while not set(streams) <= self.streams:
            await asyncio.sleep(0.005)

    async def disconnected(self, count: int = 1) -> None:
        """Wait until ``count`` connections have ended."""
        while self.disconnections < count:
            await asyncio.sleep(0.005)

    async def _serve(self, connection: ServerConnection) -> None:
        self.connections += 1
        self.streams = set()
        writer = asyncio.create_task(self._write(connection))
        try:
            async for raw in connection:
                request = json.loads(raw)
                if request.get("method") == "SUBSCRIBE":
                    self.streams.update(request["params"])
                    await connection.send(json.dumps({"result": None, "id": request["id"]}))
        finally:
            writer.cancel()
            self.disconnections += 1

    async def _write(self, connection: ServerConnection) -> None:
        while True:
            message = await self.outbox.get()
            if message is DROP:
                await connection.close()
                return
            await connection.send(json.dumps(message))
