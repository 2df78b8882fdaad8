"""``SimulatedMarket``: the default market source, seeded, offline and instant.

It serves several correlated symbols with regime-switching, clustered, fat-tailed
volatility, intraday volume seasonality, trades with aggressor sides, L2 books and
perpetual funding, in the data convention of :mod:`workbench.data.model`. A seed fixes the
whole path: any range, in any order of calls, gives the same data, and the live stream
continues that same path. The model itself lives in :mod:`._simulation`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from html import escape

import numpy as np
import pandas as pd

from workbench.data.model import OrderBook, bars_from_arrays, empty_bars, index_from_ms, to_funding
from workbench.data.sources._simulation import CATALOG, HOUR_MS, MarketModel, Trades
from workbench.data.sources.base import BarUpdate, TimeLike, as_timestamp
from workbench.data.timeframes import is_fixed, timeframe_ms
from workbench.errors import ConfigError, DataFormatError, UnknownSymbolError

DEFAULT_SYMBOLS: tuple[str, ...] = tuple(CATALOG)
_DEFAULT_START = "2024-01-01"
_PAGE_BARS, _PAGE_FUNDINGS = 1_000, 100  # what a request without a start returns
_FUNDING_MS = 8 * HOUR_MS
_MONDAY_MS = 4 * 86_400_000  # 1970-01-05: ccxt's weekly bars open on Mondays


class SimulatedMarket:
    """A seeded market with no network and no account: the workbench's default source.

    ``symbols`` may be any ``BASE/QUOTE`` pairs (unlisted ones get a plausible profile);
    every pair of symbols has return correlation ``correlation``. The market opens at
    ``start`` (floored to the hour) with bars of ``base_timeframe``, from which every other
    timeframe is aggregated. ``now`` fixes the simulated present (default: the wall clock),
    the default end of requests and start of streams; later times may still be asked for
    explicitly, as the seed fixes the whole path.
    """

    name = "sim"

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        seed: int = 7,
        start: TimeLike = _DEFAULT_START,
        base_timeframe: str = "1m",
        *,
        correlation: float = 0.8,
        now: TimeLike = None,
    ) -> None:
        self._symbols = _symbol_list(symbols)
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {seed!r}.")
        if not 0 <= correlation <= 1:
            raise ConfigError(
                f"correlation must be in [0, 1] (one market factor), not {correlation!r}."
            )
        base_ms = timeframe_ms(base_timeframe)
        if base_ms < 1_000 or HOUR_MS % base_ms:
            raise ConfigError(
                f"base_timeframe {base_timeframe!r} must split an hour into whole bars of at "
                f"least a second, such as '1s', '1m', '5m' or '1h'."
            )
        self.seed, self.base_timeframe, self.correlation = seed, base_timeframe, correlation
        opening = as_timestamp(start if start is not None else _DEFAULT_START, what="start")
        self.start: pd.Timestamp = opening.floor("h")
        self._now = as_timestamp(now, what="now")
        self._base_ms, self._genesis_ms = base_ms, _ms(self.start)
        self._model = MarketModel(seed, self._genesis_ms, base_ms, self._symbols, correlation)

    def __repr__(self) -> str:
        return (
            f"SimulatedMarket({self._symbols!r}, seed={self.seed}, start='{self.start}', "
            f"base_timeframe={self.base_timeframe!r}, correlation={self.correlation})"
        )

    @property
    def now(self) -> pd.Timestamp:
        """The simulated present: the fixed ``now`` if one was given, else the wall clock."""
        return self._now if self._now is not None else pd.Timestamp.now(tz="UTC")

    def symbols(self) -> list[str]:
        return list(self._symbols)

    # -- history ------------------------------------------------------------------------------

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Bars with open time in [start, end], aggregated from the base bars.

        Without ``end``, up to the last bar closed by ``now``; without ``start``, the last
        1,000 bars. Bars align as ccxt's do (epoch multiples, Monday weeks, calendar months).
        ``progress`` is accepted for the protocol's sake: history takes no time to make.
        """
        self._check_symbol(symbol)
        step = self._check_timeframe(timeframe)
        forming, _ = _bar_of(_ms(self.now), timeframe)
        start_ms, end_ms = _span(start, end, default_end=forming - 1, page_ms=_PAGE_BARS * step)
        return self._bars(symbol, timeframe, start_ms, end_ms)

    def fetch_trades(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None, *, limit: int | None = None
    ) -> pd.DataFrame:
        """Trades in [start, end] with the aggressor's side; each bar's trades go through its
        open, high, low and close and sum to its volume.

        Without ``end``, up to ``now``; without ``start``, the last hour. ``limit`` keeps
        the first trades after an explicit start, else the most recent ones, however far
        back they go (as ccxt does).
        """
        self._check_symbol(symbol)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise DataFormatError(f"limit must be a positive integer or None, not {limit!r}.")
        start_ms, end_ms = _span(start, end, default_end=_ms(self.now), page_ms=HOUR_MS)
        if start is None and limit is not None:
            start_ms = self._genesis_ms  # as far back as the limit needs
        trades = self._trades(symbol, start_ms, end_ms, limit=limit, latest=start is None)
        return pd.DataFrame(
            {
                "price": trades.price,
                "amount": trades.amount,
                "side": pd.array(np.where(trades.buy, "buy", "sell"), dtype="string"),
                "id": pd.array(trades.ids.astype(str), dtype="string"),
            },
            index=index_from_ms(trades.ts_ms),
        )

    def fetch_order_book(self, symbol: str, depth: int = 20, at: TimeLike = None) -> OrderBook:
        """The L2 book at ``at`` (default ``now``): ``depth`` levels a side, the last trade at
        the touch it hit, a spread of a few ticks, sizes growing away from the touch."""
        self._check_symbol(symbol)
        if not isinstance(depth, int) or depth < 1:
            raise DataFormatError(f"depth must be a positive integer, not {depth!r}.")
        stamp = as_timestamp(at, what="at") if at is not None else self.now
        bids, asks = self._model.book(symbol, self._since_open(_ms(stamp), "the book time"), depth)
        return OrderBook(symbol, stamp, bids, asks)

    def fetch_funding_rates(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Funding of the symbol's perpetual at 00:00, 08:00 and 16:00 UTC, with mark price.

        ``symbol`` may be spelled as the spot pair or the swap ('BTC/USDT:USDT'). The
        premium follows the last days' trend and the rate is Binance's formula, so most
        print the flat 0.01% while trends push them up or down. Without ``end``, up to
        ``now``; without ``start``, the last 100 fundings.
        """
        spot = symbol.split(":")[0]
        self._check_symbol(spot)
        start_ms, end_ms = _span(
            start, end, default_end=_ms(self.now), page_ms=_PAGE_FUNDINGS * _FUNDING_MS
        )
        first_hour = -(-(start_ms - self._genesis_ms) // HOUR_MS)
        hours, rate, mark = self._model.funding(
            spot, first_hour, (end_ms - self._genesis_ms) // HOUR_MS
        )
        frame = pd.DataFrame(
            {"funding_rate": rate, "mark_price": mark},
            index=index_from_ms(self._genesis_ms + hours * HOUR_MS),
        )
        return to_funding(frame)

    # -- live ---------------------------------------------------------------------------------

    async def stream_bars(
        self,
        symbols: Sequence[str],
        timeframe: str = "1m",
        speed: float = 1.0,
        *,
        start: TimeLike = None,
        updates: int = 6,
    ) -> AsyncIterator[BarUpdate]:
        """Bars of every symbol as they form, on a clock running ``speed`` simulated seconds a
        wall second (60: a minute bar a second), from ``start`` (default ``now``).

        Each bar is sent ``updates - 1`` times while forming (``closed=False``, built from
        its trades so far), then once closed, equal to ``fetch_ohlcv``'s bar. It waits with
        ``asyncio.sleep`` on the running loop (a notebook's own) and never ends by itself.
        """
        names = _symbol_list(symbols)
        for name in names:
            self._check_symbol(name)
        length = self._check_timeframe(timeframe)
        if not is_fixed(timeframe):
            raise DataFormatError(f"Stream a fixed timeframe (up to '1w'), not {timeframe!r}.")
        if not speed > 0 or not isinstance(updates, int) or updates < 1:
            raise ConfigError(
                f"speed must be positive and updates a positive integer; got speed={speed!r}, "
                f"updates={updates!r}."
            )
        stamp = as_timestamp(start, what="start") if start is not None else self.now
        origin = self._since_open(_ms(stamp), "the stream start")
        loop = asyncio.get_running_loop()
        wall_origin = loop.time()
        bar_open, _ = _bar_of(origin, timeframe)
        while True:
            for k in range(1, updates + 1):
                at = bar_open + length * k // updates
                if at <= origin:
                    continue
                await asyncio.sleep(
                    max(0.0, wall_origin + (at - origin) / 1000 / speed - loop.time())
                )
                for name in names:
                    yield self._update(name, timeframe, bar_open, at, closed=k == updates)
            bar_open += length

    def _update(
        self, symbol: str, timeframe: str, bar_open: int, at: int, *, closed: bool
    ) -> BarUpdate:
        if closed:
            values = self._bars(symbol, timeframe, bar_open, bar_open).iloc[0].tolist()
        else:
            values = self._forming(symbol, bar_open, at)
        stamp = pd.Timestamp(bar_open, unit="ms", tz="UTC")
        return BarUpdate(symbol, timeframe, stamp, *values, closed=closed)

    def _forming(self, symbol: str, bar_open: int, at: int) -> list[float]:
        """The bar opened at ``bar_open`` as its trades before ``at`` make it."""
        first = max(bar_open, self._genesis_ms)
        base_bar = (first - self._genesis_ms) // self._base_ms
        open_ = float(self._model.bars(symbol, base_bar, base_bar)[0, 0])
        trades = self._trades(symbol, first, at - 1)
        if trades.price.size == 0:
            return [open_, open_, open_, open_, 0.0]
        high, low = max(open_, float(trades.price.max())), min(open_, float(trades.price.min()))
        return [open_, high, low, float(trades.price[-1]), float(trades.amount.sum())]

    # -- display ------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        now = self.now
        head = (
            f"<b>SimulatedMarket</b> seed {self.seed}, open since {self.start:%Y-%m-%d %H:%M} UTC"
        )
        bar = (_ms(now) - self._genesis_ms) // self._base_ms - 1  # the last closed base bar
        if bar < 0:
            return f"{head}: not open yet at {now:%Y-%m-%d %H:%M} UTC."
        hour = bar * self._base_ms // HOUR_MS
        regime = "volatile" if self._model.volatile(hour) else "calm"
        rows = "".join(
            f"<tr><td>{escape(s)}</td><td>{self._model.bars(s, bar, bar)[3, 0]:.8g}</td>"
            f"<td>{self._model.annual_vol(s, hour):.0%}</td><td>{regime}</td></tr>"
            for s in self._symbols
        )
        return (
            f"{head}, now {now:%Y-%m-%d %H:%M} UTC<table><tr><th>symbol</th><th>last</th>"
            f"<th>volatility (annualised)</th><th>regime</th></tr>{rows}</table>"
        )

    # -- helpers ------------------------------------------------------------------------------

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self._symbols:
            raise UnknownSymbolError(
                f"The simulated market does not list {symbol!r}; it lists {self._symbols}. "
                f"Pass symbols=[...] to SimulatedMarket to add it.",
                exchange=self.name,
                symbol=symbol,
            )

    def _check_timeframe(self, timeframe: str) -> int:
        step = timeframe_ms(timeframe)
        if is_fixed(timeframe) and step % self._base_ms:
            raise DataFormatError(
                f"Timeframe {timeframe!r} is not a whole number of {self.base_timeframe} base "
                f"bars; ask for a multiple of {self.base_timeframe}."
            )
        return step

    def _since_open(self, at_ms: int, what: str) -> int:
        if at_ms < self._genesis_ms:
            raise DataFormatError(
                f"{what.capitalize()} {pd.Timestamp(at_ms, unit='ms', tz='UTC')} is before the "
                f"simulated market opened ({self.start})."
            )
        return at_ms

    def _bars(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        """Complete bars opening in [start_ms, end_ms] (the first may be the partial bar the
        market opened in, as on an exchange)."""
        first_open, first_close = _bar_of(max(start_ms, self._genesis_ms), timeframe)
        if first_open < start_ms:
            first_open = first_close
        _, stop = _bar_of(end_ms, timeframe)
        first = -(-(max(first_open, self._genesis_ms) - self._genesis_ms) // self._base_ms)
        last = -(-(stop - self._genesis_ms) // self._base_ms) - 1
        if last < first:
            return empty_bars()
        values = self._model.bars(symbol, first, last)
        opens, _ = _bins(self._genesis_ms + self._base_ms * np.arange(first, last + 1), timeframe)
        if timeframe_ms(timeframe) == self._base_ms:
            return bars_from_arrays(opens, values)
        starts = np.flatnonzero(np.diff(opens, prepend=opens[0] - 1))
        ends = np.append(starts[1:], opens.size) - 1
        aggregated = [
            values[0, starts],
            np.maximum.reduceat(values[1], starts),
            np.minimum.reduceat(values[2], starts),
            values[3, ends],
            np.add.reduceat(values[4], starts),
        ]
        return bars_from_arrays(opens[starts], np.stack(aggregated))

    def _trades(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        *,
        limit: int | None = None,
        latest: bool = False,
    ) -> Trades:
        """Trades in [start_ms, end_ms] as arrays; with a limit, only the first ``limit`` (the
        last ones if ``latest``), reading no more hours of trades than that takes."""
        first_hour = max(start_ms - self._genesis_ms, 0) // HOUR_MS
        hours = range(first_hour, (end_ms - self._genesis_ms) // HOUR_MS + 1)
        blocks, count = [], 0
        for hour in reversed(hours) if latest else hours:
            block = self._model.trades(symbol, hour)
            inside = (block.ts_ms >= start_ms) & (block.ts_ms <= end_ms)
            blocks.append(Trades(*(column[inside] for column in block)))
            count += int(inside.sum())
            if limit is not None and count >= limit:
                break
        if not blocks:
            return Trades.empty()
        joined = Trades(
            *(
                np.concatenate(column)
                for column in zip(*blocks[:: -1 if latest else 1], strict=True)
            )
        )
        kept = slice(None) if limit is None else slice(-limit, None) if latest else slice(limit)
        return Trades(*(column[kept] for column in joined))


def _symbol_list(symbols: Sequence[str] | str) -> list[str]:
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    malformed = [s for s in names if not isinstance(s, str) or s.count("/") != 1 or ":" in s]
    if not names or malformed or len(set(names)) != len(names):
        raise ConfigError(
            f"symbols must be distinct 'BASE/QUOTE' spot pairs such as 'BTC/USDT', not {names!r}."
        )
    return names


def _ms(stamp: pd.Timestamp) -> int:
    return stamp.value // 1_000_000


def _span(start: TimeLike, end: TimeLike, *, default_end: int, page_ms: int) -> tuple[int, int]:
    """[start, end] in epoch ms: ``end`` defaults to ``default_end``, ``start`` to a page before."""
    end_ms = _ms(as_timestamp(end, what="end")) if end is not None else default_end
    start_ms = _ms(as_timestamp(start, what="start")) if start is not None else end_ms - page_ms
    if end_ms < start_ms:
        raise DataFormatError(
            f"The end ({pd.Timestamp(end_ms, unit='ms', tz='UTC')}) is before the start "
            f"({pd.Timestamp(start_ms, unit='ms', tz='UTC')}); swap them."
        )
    return start_ms, end_ms


def _bar_of(at_ms: int, timeframe: str) -> tuple[int, int]:
    """Open and close time of the ``timeframe`` bar holding ``at_ms``."""
    opens, closes = _bins(np.array([at_ms]), timeframe)
    return int(opens[0]), int(closes[0])


def _bins(ts_ms: np.ndarray, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """Open and close time of the ``timeframe`` bar holding each time, aligned as ccxt's
    bars are: epoch multiples, weeks from Monday, calendar months and years."""
    step, unit = timeframe_ms(timeframe), timeframe[-1]
    if unit in "My":
        kind = f"datetime64[{unit.upper()}]"
        count = step // timeframe_ms(f"1{unit}")
        period = ts_ms.astype("datetime64[ms]").astype(kind).astype(np.int64) // count * count
        opens, closes = (
            (period + k).astype(kind).astype("datetime64[ms]").astype(np.int64) for k in (0, count)
        )
        return opens, closes
    origin = _MONDAY_MS if unit == "w" else 0
    opens = (ts_ms - origin) // step * step + origin
    return opens, opens + step
