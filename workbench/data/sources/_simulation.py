"""The price model behind :class:`~workbench.data.sources.simulated.SimulatedMarket`.

Two layers make history both fast and random-access:

- An hourly **skeleton**, grown from genesis in fixed chunks: a Markov-switching
  calm/volatile regime times a log-volatility AR(1), and each hour's log return of every
  symbol (a common market factor plus an idiosyncratic part). Its cumulative sum gives the
  opening price of any hour without generating a single bar before it.
- **Base bars**, filled in a day at a time: Student-t innovations scaled by an intrahour
  log-volatility AR(1) and an intraday seasonality, bridged so that each hour ends exactly
  at the skeleton's price. High and low follow the extreme-value law of Brownian motion;
  volume follows seasonality, volatility and the bar's absolute return.

Every draw comes from a generator keyed by (seed, stream, symbol, chunk), so a range is the
same whatever was asked before. Trades and books are drawn on demand, conditioned on bars.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np

HOUR_MS = 3_600_000
DAY_HOURS = 24
_WEEK_HOURS = 168
_YEAR_MS = 365.25 * 86_400_000
_MONDAY_HOUR = 72  # hours from Monday 00:00 to the epoch, a Thursday

# Dynamics shared by every symbol.
TAIL_DOF = 4.0  # Student-t degrees of freedom of bar innovations
CALM_HOURS, VOLATILE_HOURS = 168.0, 48.0  # mean length of a regime spell
VOLATILE_RATIO = 2.2  # volatility of the volatile regime over the calm one's
HOURLY_PHI, HOURLY_SD = float(np.exp(-1 / 12)), 0.35  # log-vol AR(1) from hour to hour
FINE_MEMORY_MS, FINE_SD = 10 * 60_000, 0.25  # log-vol AR(1) from bar to bar within an hour
SKELETON_CHUNK = 1024  # hours drawn from one skeleton generator
TRADES_PER_MINUTE = 40.0
BOOK_LEVEL_SHARE = 0.02  # a book level's size as a share of a minute's mean volume
FUNDING_EVERY_HOURS, FUNDING_TREND_HOURS = 8, 72  # the premium follows a 3-day trend
PREMIUM_PER_TREND, PREMIUM_SD = 0.005, 0.0002
INTEREST, INTEREST_BAND, FUNDING_CAP = 0.0001, 0.0005, 0.0075  # Binance's formula and cap

_VOLATILE_SHARE = VOLATILE_HOURS / (CALM_HOURS + VOLATILE_HOURS)
_CALM_LEVEL = 1 / np.sqrt(1 - _VOLATILE_SHARE + _VOLATILE_SHARE * VOLATILE_RATIO**2)
_VOLATILE_LEVEL = VOLATILE_RATIO * _CALM_LEVEL  # so the mean variance is the profile's

# Intraday activity: extra trading around the US open, the European open and the UTC close.
_SESSIONS = ((14.5, 1.6, 1.1), (8.5, 1.3, 0.45), (0.5, 1.0, 0.5))  # (UTC hour, width, extra)
_WEEKEND_ACTIVITY = 0.65


@dataclass(frozen=True)
class Profile:
    """What makes a symbol look like itself: price at genesis, tick, volatility, activity."""

    price: float
    tick: float
    annual_vol: float
    volume: float  # mean base-asset volume per minute

    @cached_property
    def _decimals(self) -> int:
        return max(-int(Decimal(str(self.tick)).as_tuple().exponent), 0)

    def prices(self, ticks: np.ndarray) -> np.ndarray:
        """Prices from whole numbers of ticks, as the floats nearest their decimal spelling."""
        return np.round(ticks * self.tick, self._decimals)

    def on_tick(self, price: np.ndarray) -> np.ndarray:
        """Prices rounded to the tick grid, never below one tick."""
        return self.prices(np.maximum(np.round(price / self.tick), 1))


CATALOG: dict[str, Profile] = {
    "BTC/USDT": Profile(42_300.0, 0.01, 0.55, 25.0),
    "ETH/USDT": Profile(2_280.0, 0.01, 0.65, 300.0),
    "SOL/USDT": Profile(101.0, 0.01, 0.95, 1_800.0),
    "XRP/USDT": Profile(0.615, 0.0001, 0.75, 600_000.0),
    "DOGE/USDT": Profile(0.0897, 0.00001, 0.90, 1_500_000.0),
}


def profile_of(symbol: str) -> Profile:
    """The catalogue's profile, or a plausible one derived from the symbol's name."""
    if symbol in CATALOG:
        return CATALOG[symbol]
    price = 10 ** (4 * zlib.crc32(symbol.encode()) / 2**32 - 1)  # 0.1 to 1,000
    tick = 10.0 ** int(np.floor(np.log10(price)) - 4)
    return Profile(round(price / tick) * tick, tick, 0.8, 100_000 / price)


class _Stream(IntEnum):
    """Independent random streams; each generator is keyed by (seed, stream, ...)."""

    SKELETON = 0
    SYMBOL_SKELETON = 1
    MARKET_DAY = 2
    SYMBOL_DAY = 3
    TRADES = 4
    BOOK = 5


class Trades(NamedTuple):
    """Trades of one symbol as arrays: ``buy`` when the aggressor bought; ``ids`` are the
    bar's number times a million plus the trade's place in it, unique and increasing."""

    ts_ms: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    buy: np.ndarray
    ids: np.ndarray

    @classmethod
    def empty(cls) -> Trades:
        whole, real = np.empty(0, dtype=np.int64), np.empty(0)
        return cls(whole, real, real, np.empty(0, dtype=bool), whole)


def ar1(x0: np.ndarray | float, phi: float, shocks: np.ndarray) -> np.ndarray:
    """``x[..., j] = phi * x[..., j-1] + shocks[..., j]`` along the last axis, from ``x0``.

    Closed form ``phi**j * cumsum(shocks / phi**j)``: exact, and stable while ``phi**-n``
    stays finite, which every chunk here keeps (``n * (1 - phi)`` below 100).
    """
    powers = phi ** np.arange(shocks.shape[-1])
    return powers * (phi * np.asarray(x0)[..., None] + np.cumsum(shocks / powers, axis=-1))


def _regime_path(rng: np.random.Generator, volatile: bool, hours: int) -> np.ndarray:
    """``hours`` steps of the calm/volatile Markov chain after an hour in state ``volatile``.

    Spells are geometric, hence memoryless: the first one may end at once, as it may
    after any hour of the chain.
    """
    calm = rng.geometric(1 / CALM_HOURS, hours)
    wild = rng.geometric(1 / VOLATILE_HOURS, hours)
    states = (np.arange(hours) % 2 == 0) == volatile
    lengths = np.where(states, wild, calm)
    lengths[0] -= 1
    return np.repeat(states, lengths)[:hours]


def activity(hour_of_week: np.ndarray) -> np.ndarray:
    """Relative trading activity at a fractional hour of the week (Monday 00:00 UTC is 0)."""
    hour = hour_of_week % DAY_HOURS
    level = np.ones_like(hour)
    for centre, width, extra in _SESSIONS:
        gap = (hour - centre + 12) % DAY_HOURS - 12
        level += extra * np.exp(-0.5 * (gap / width) ** 2)
    return level * np.where(hour_of_week >= 5 * DAY_HOURS, _WEEKEND_ACTIVITY, 1.0)


def _student(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(TAIL_DOF, shape) / np.sqrt(TAIL_DOF / (TAIL_DOF - 2))


def _bridge(path: np.ndarray, variance: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Rows of ``path`` pinned to sum to ``total``, the gap spread by share of variance."""
    gap = total[:, None] - path.sum(axis=1, keepdims=True)
    return path + gap * variance / variance.sum(axis=1, keepdims=True)


def _extreme(move: np.ndarray, sd: np.ndarray, exponential: np.ndarray, sign: int) -> np.ndarray:
    """Maximum (sign 1) or minimum (-1) of a Brownian bridge from 0 to ``move``."""
    return 0.5 * (move + sign * np.sqrt(move**2 + 2 * sd**2 * exponential))


class MarketModel:
    """The seeded path of every symbol: skeleton, base bars, trades, books and funding.

    Base bars, hours and days are addressed by their number since genesis.
    """

    def __init__(
        self, seed: int, genesis_ms: int, base_ms: int, symbols: list[str], correlation: float
    ) -> None:
        self.seed, self.genesis_ms, self.base_ms = seed, genesis_ms, base_ms
        self.bars_per_hour = HOUR_MS // base_ms
        self.profiles = {s: profile_of(s) for s in symbols}
        self._keys = {s: zlib.crc32(s.encode()) for s in symbols}
        self._loading = np.sqrt(correlation), np.sqrt(1 - correlation)
        self._bar_sd = {
            s: p.annual_vol * np.sqrt(base_ms / _YEAR_MS) for s, p in self.profiles.items()
        }
        self._mean_volume = {s: p.volume * base_ms / 60_000 for s, p in self.profiles.items()}
        self._fine_phi = float(np.exp(-base_ms / FINE_MEMORY_MS))
        self._first_hour_of_week = (genesis_ms // HOUR_MS + _MONDAY_HOUR) % _WEEK_HOURS
        phase = (np.arange(self.bars_per_hour) + 0.5) / self.bars_per_hour
        volume_season = activity(np.arange(_WEEK_HOURS)[:, None] + phase)
        self._volume_season = volume_season / volume_season.mean()  # by hour of week and bar
        self._vol_season = np.sqrt(self._volume_season)  # mean square 1
        # The skeleton, grown by _grow(): per hour the regime, log-vol and volatility level,
        # the market factor's and each symbol's own return at unit volatility, and the log
        # price at the hour's open (one more entry than hours).
        self._volatile = np.empty(0, dtype=bool)
        self._logvol, self._level, self._factor = np.empty(0), np.empty(0), np.empty(0)
        self._idio = {s: np.empty(0) for s in symbols}
        self._premium_noise = {s: np.empty(0) for s in symbols}
        self._log_open = {s: np.array([np.log(p.price)]) for s, p in self.profiles.items()}
        # Caches: a few days a symbol for streams and trades, and about a year of the market's
        # path, which every symbol's history shares (some 10 MB at 1m bars).
        self.day = lru_cache(maxsize=4 * len(symbols))(self._day)
        market_days = max(2, 370 * 1440 // (DAY_HOURS * self.bars_per_hour))
        self._market_day = lru_cache(maxsize=market_days)(self._market)
        self.trades = lru_cache(maxsize=256)(self._trades)

    def _rng(self, stream: _Stream, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, *key])

    def _hour_of_week(self, hours: np.ndarray) -> np.ndarray:
        return (self._first_hour_of_week + hours) % _WEEK_HOURS

    # -- skeleton ---------------------------------------------------------------------------

    def ensure(self, hours: int) -> None:
        """Grow the skeleton to cover at least ``hours`` hours from genesis."""
        while len(self._level) < hours:
            self._grow()

    def _grow(self) -> None:
        done, n = len(self._level), SKELETON_CHUNK
        rng = self._rng(_Stream.SKELETON, done // n)
        if done:
            volatile, logvol = bool(self._volatile[-1]), self._logvol[-1]
        else:  # the stationary distribution
            volatile, logvol = rng.random() < _VOLATILE_SHARE, HOURLY_SD * rng.standard_normal()
        volatile = _regime_path(rng, volatile, n)
        shocks = HOURLY_SD * np.sqrt(1 - HOURLY_PHI**2) * rng.standard_normal(n)
        logvol = ar1(logvol, HOURLY_PHI, shocks)
        level = np.where(volatile, _VOLATILE_LEVEL, _CALM_LEVEL) * np.exp(logvol - HOURLY_SD**2)
        season = self._vol_season[self._hour_of_week(np.arange(done, done + n))]
        hour_sd = level * np.sqrt((season**2).sum(axis=1))
        factor = hour_sd * rng.standard_normal(n)
        self._volatile = np.append(self._volatile, volatile)
        self._logvol = np.append(self._logvol, logvol)
        self._level = np.append(self._level, level)
        self._factor = np.append(self._factor, factor)
        market, own = self._loading
        for symbol, key in self._keys.items():
            srng = self._rng(_Stream.SYMBOL_SKELETON, key, done // n)
            idio = hour_sd * srng.standard_normal(n)
            self._idio[symbol] = np.append(self._idio[symbol], idio)
            self._premium_noise[symbol] = np.append(
                self._premium_noise[symbol], srng.standard_normal(n)
            )
            moves = self._bar_sd[symbol] * (market * factor + own * idio)
            log_open = self._log_open[symbol]
            self._log_open[symbol] = np.append(log_open, log_open[-1] + np.cumsum(moves))

    def volatile(self, hour: int) -> bool:
        self.ensure(hour + 1)
        return bool(self._volatile[hour])

    def annual_vol(self, symbol: str, hour: int) -> float:
        """The symbol's annualised volatility in that hour, before intraday seasonality."""
        self.ensure(hour + 1)
        return float(self.profiles[symbol].annual_vol * self._level[hour])

    # -- base bars --------------------------------------------------------------------------

    def bars(self, symbol: str, first: int, last: int) -> np.ndarray:
        """Base bars ``first`` to ``last`` (inclusive) as a (5, n) array, BAR_COLUMNS order."""
        per_day = DAY_HOURS * self.bars_per_hour
        first_day, last_day = first // per_day, last // per_day
        window = slice(first - first_day * per_day, last - first_day * per_day + 1)
        if first_day == last_day:
            return self.day(symbol, first_day)[:, window].copy()  # the cached day stays intact
        return self._days(symbol, first_day, last_day - first_day + 1)[:, window]

    def _day(self, symbol: str, day: int) -> np.ndarray:
        block = self._days(symbol, day, 1)
        block.flags.writeable = False  # shared by the cache
        return block

    def _days(self, symbol: str, first_day: int, n_days: int) -> np.ndarray:
        days = range(first_day, first_day + n_days)
        hours = np.arange(first_day * DAY_HOURS, (first_day + n_days) * DAY_HOURS)
        self.ensure(int(hours[-1]) + 2)
        state, unit_sd, factor = _stack(self._market_day(day) for day in days)
        own_draws, high_draws, low_draws, volume_draws = _stack(
            self._symbol_draws(symbol, day) for day in days
        )
        idio = _bridge(unit_sd * own_draws, unit_sd**2, self._idio[symbol][hours])
        market, own = self._loading
        returns = self._bar_sd[symbol] * (market * factor + own * idio)
        bar_sd = self._bar_sd[symbol] * unit_sd

        log_open = self._log_open[symbol]
        close_log = log_open[hours, None] + np.cumsum(returns, axis=1)
        close_log[:, -1] = log_open[hours + 1]  # end each hour exactly on the skeleton
        open_log = np.concatenate([log_open[hours, None], close_log[:, :-1]], axis=1)
        move = close_log - open_log
        profile = self.profiles[symbol]
        open_, close = profile.on_tick(np.exp(open_log)), profile.on_tick(np.exp(close_log))
        high = profile.on_tick(np.exp(open_log + _extreme(move, bar_sd, high_draws, 1)))
        low = profile.on_tick(np.exp(open_log + _extreme(move, bar_sd, low_draws, -1)))
        volume = (
            self._mean_volume[symbol]
            * self._volume_season[self._hour_of_week(hours)]
            * state**0.8
            * (0.45 + 0.7 * np.abs(returns) / bar_sd)  # busier when the price moves
            * np.exp(0.4 * volume_draws - 0.08)
        )
        ohlcv = [
            open_,
            np.maximum(high, np.maximum(open_, close)),
            np.minimum(low, np.minimum(open_, close)),
            close,
            volume,
        ]
        return np.stack(ohlcv).reshape(5, -1)

    def _market(self, day: int) -> tuple[np.ndarray, ...]:
        """A day of the market, (24, bars an hour) each: the volatility state (regime and
        log-vol), each bar's unit volatility (with seasonality) and the factor's path."""
        hours = np.arange(day * DAY_HOURS, (day + 1) * DAY_HOURS)
        rng = self._rng(_Stream.MARKET_DAY, day)
        shocks = rng.standard_normal((DAY_HOURS, self.bars_per_hour + 1))
        scale = np.sqrt(1 - self._fine_phi**2)
        fine_logvol = FINE_SD * ar1(shocks[:, 0], self._fine_phi, scale * shocks[:, 1:])
        state = self._level[hours, None] * np.exp(fine_logvol - FINE_SD**2)
        unit_sd = state * self._vol_season[self._hour_of_week(hours)]
        draws = _student(rng, (DAY_HOURS, self.bars_per_hour))
        return state, unit_sd, _bridge(unit_sd * draws, unit_sd**2, self._factor[hours])

    def _symbol_draws(self, symbol: str, day: int) -> tuple[np.ndarray, ...]:
        """A day of a symbol's innovations and its high, low and volume noise."""
        rng = self._rng(_Stream.SYMBOL_DAY, self._keys[symbol], day)
        shape = (DAY_HOURS, self.bars_per_hour)
        return (
            _student(rng, shape),
            rng.exponential(size=shape),
            rng.exponential(size=shape),
            rng.standard_normal(shape),
        )

    # -- trades, books, funding -------------------------------------------------------------

    def _trades(self, symbol: str, hour: int) -> Trades:
        """An hour of trades, bar by bar: through each bar's open, high, low and close, the
        amounts summing to its volume, the aggressor leaning with the tick and the bar."""
        first_bar = hour * self.bars_per_hour
        open_, high, low, close, volume = self.bars(
            symbol, first_bar, first_bar + self.bars_per_hour - 1
        )
        profile = self.profiles[symbol]
        rng = self._rng(_Stream.TRADES, self._keys[symbol], hour)
        rate = TRADES_PER_MINUTE * self.base_ms / 60_000
        counts = 3 + rng.poisson(rate * volume / self._mean_volume[symbol])
        bar = np.repeat(np.arange(counts.size), counts)
        k = np.arange(bar.size) - (np.cumsum(counts) - counts)[bar] + 1  # 1..count in its bar
        price = profile.on_tick(_trade_path(rng, counts, bar, k, open_, high, low, close))
        price = np.clip(price, low[bar], high[bar])

        tick_move = np.sign(price - np.where(k == 1, open_[bar], np.roll(price, 1)))
        direction = np.divide(
            close - open_, high - low, out=np.zeros(counts.size), where=high > low
        )
        buy = rng.random(bar.size) < 0.5 + 0.3 * tick_move + 0.15 * direction[bar]
        weights = rng.lognormal(0.0, 1.0, bar.size)
        amount = volume[bar] * weights / np.bincount(bar, weights)[bar]
        offset = np.sort(bar + rng.random(bar.size)) - bar  # sorted within each bar
        ts_ms = self.genesis_ms + ((first_bar + bar + offset) * self.base_ms).astype(np.int64)
        return Trades(ts_ms, price, amount, buy, (first_bar + bar) * 1_000_000 + k)

    def last_trade(self, symbol: str, at_ms: int) -> tuple[float, bool]:
        """Price and aggressor (True: a buy) of the last trade at or before ``at_ms``."""
        hour = (at_ms - self.genesis_ms) // HOUR_MS
        for block in (self.trades(symbol, h) for h in (hour, hour - 1) if h >= 0):
            i = int(np.searchsorted(block.ts_ms, at_ms, side="right")) - 1
            if i >= 0:
                return float(block.price[i]), bool(block.buy[i])
        return float(self.bars(symbol, 0, 0)[0, 0]), True  # before the first trade: the open

    def book(self, symbol: str, at_ms: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Bid and ask ladders (price, amount) at ``at_ms``. The last trade sits at the touch
        it hit (a buy took the ask, so the last price is the best ask; a sell, the best bid);
        a few levels are left empty and sizes grow away from the touch."""
        last, buy = self.last_trade(symbol, at_ms)
        profile = self.profiles[symbol]
        rng = self._rng(_Stream.BOOK, self._keys[symbol], at_ms)
        last_ticks, spread = round(last / profile.tick), int(rng.geometric(0.6))
        gaps = 1 + rng.poisson(0.4, size=(2, depth))
        gaps[:, 0] = 0
        away = np.cumsum(gaps, axis=1)  # ticks from the touch
        bid_ticks = last_ticks - spread * buy - away[0]
        ask_ticks = last_ticks + spread * (not buy) + away[1]
        sizes = BOOK_LEVEL_SHARE * profile.volume * np.sqrt(1 + np.arange(depth))
        sizes = sizes * rng.lognormal(0.0, 0.5, (2, depth))
        listed = bid_ticks > 0
        bids = np.column_stack([profile.prices(bid_ticks[listed]), sizes[0, listed]])
        return bids, np.column_stack([profile.prices(ask_ticks), sizes[1]])

    def funding(self, symbol: str, first_hour: int, last_hour: int) -> tuple[np.ndarray, ...]:
        """Funding events within the hours given: (hour, rate, mark price).

        The premium follows the last days' trend plus noise; the rate is Binance's: the
        premium plus the interest clamped to a band around it, capped.
        """
        hours = np.arange(max(first_hour, 0), last_hour + 1)
        hours = hours[(self.genesis_ms // HOUR_MS + hours) % FUNDING_EVERY_HOURS == 0]
        if hours.size == 0:
            return hours, np.empty(0), np.empty(0)
        self.ensure(int(hours[-1]) + 1)
        log_open = self._log_open[symbol]
        trend = log_open[hours] - log_open[np.maximum(hours - FUNDING_TREND_HOURS, 0)]
        premium = PREMIUM_PER_TREND * trend + PREMIUM_SD * self._premium_noise[symbol][hours]
        rate = premium + np.clip(INTEREST - premium, -INTEREST_BAND, INTEREST_BAND)
        mark = self.profiles[symbol].on_tick(np.exp(log_open[hours]) * (1 + premium))
        return hours, np.clip(rate, -FUNDING_CAP, FUNDING_CAP), mark


def _stack(days: Iterable[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    """Per-day tuples of (24, n) arrays joined day after day into (24 * days, n) arrays."""
    return [np.concatenate(parts) for parts in zip(*days, strict=True)]


def _trade_path(
    rng: np.random.Generator,
    counts: np.ndarray,
    bar: np.ndarray,
    k: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
) -> np.ndarray:
    """Trade prices through each bar's extremes: trade ``k`` of a bar's ``counts`` lies on
    the line open -> first extreme -> second extreme -> close (the low first in an up bar),
    scattered around it except at the knots, which it hits exactly."""
    first = 1 + (rng.random(counts.size) * (counts - 1)).astype(np.int64)
    second = 1 + (rng.random(counts.size) * (counts - 2)).astype(np.int64)
    second += second >= first  # two distinct positions in 1..count-1
    up = close >= open_
    at = np.stack(
        [np.zeros(counts.size), np.minimum(first, second), np.maximum(first, second), counts],
        axis=1,
    )
    value = np.stack([open_, np.where(up, low, high), np.where(up, high, low), close], axis=1)
    leg = (k > at[bar, 1]).astype(np.int64) + (k > at[bar, 2])
    frac = (k - at[bar, leg]) / (at[bar, leg + 1] - at[bar, leg])
    line = value[bar, leg] + frac * (value[bar, leg + 1] - value[bar, leg])
    return line + 0.3 * (high - low)[bar] * np.sqrt(frac * (1 - frac)) * rng.standard_normal(
        bar.size
    )
