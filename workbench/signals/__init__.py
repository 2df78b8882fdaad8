"""Signals from order flow, order books, market structure and the trading clock.

::

    from workbench.signals import KILLZONES, imbalance_events, session_label, structure_breaks
    imbalance_events(trades, "15s", 0.6)   # when one side starts to dominate the tape
    book_imbalance(books, levels=5)        # NOBI of each order-book snapshot
    structure_breaks(bars)                 # BOS / CHoCH on confirmed swings
    session_label(bars, KILLZONES)         # which killzone each bar opens in

Modules: :mod:`.orderflow` (trade tapes: delta, CVD, imbalance; volume-confirmed moves),
:mod:`.book` (order-book imbalance, depth, liquidity events), :mod:`.structure` (swings,
fair value gaps, breaks of structure, order blocks), :mod:`.sessions` (sessions and
killzones).

Conventions

- Inputs follow the data convention (:mod:`workbench.data.model`): trade tapes with
  ``amount`` and ``side`` (the aggressor), bars with ``open, high, low, close, volume``,
  :class:`~workbench.data.model.OrderBook` snapshots; all on a sorted DatetimeIndex.
- Results are pandas, aligned with the input (or one row per event), with named columns.
- No look-ahead: a value sits at the time it becomes known. Rolling windows look only
  backwards; a swing is written at the bar that confirms it, ``right`` bars after the
  pivot; a gap's fill time is the bar that filled it. Cutting or changing the data after
  a time never changes a value up to it; the tests check that for every detector.
- Bad input (unsorted index, missing columns, unknown sides, no rows, a window without
  a unit) raises :class:`~workbench.errors.DataFormatError` saying what and where; a
  malformed :class:`SessionWindow` or :class:`Sessions` (configuration) a
  :class:`~workbench.errors.ConfigError`.
"""

from workbench.signals.book import (
    book_imbalance,
    depth_within,
    liquidity_change,
    liquidity_events,
)
from workbench.signals.combine import Combined, SignalAggregator, volatility_rank
from workbench.signals.orderflow import (
    cvd,
    flow_imbalance,
    imbalance_events,
    trade_delta,
    volume_confirmation,
    volume_delta,
)
from workbench.signals.sessions import (
    EXCHANGE_SESSIONS,
    KILLZONES,
    NEW_YORK_KILLZONES,
    SESSIONS,
    SessionWindow,
    Sessions,
    session_flags,
    session_label,
)
from workbench.signals.signal import Signal, signals_from_frame, signals_to_frame
from workbench.signals.structure import (
    fair_value_gaps,
    order_blocks,
    structure_breaks,
    swings,
)

__all__ = [
    "Combined",
    "EXCHANGE_SESSIONS",
    "KILLZONES",
    "NEW_YORK_KILLZONES",
    "SESSIONS",
    "SessionWindow",
    "Sessions",
    "Signal",
    "SignalAggregator",
    "book_imbalance",
    "cvd",
    "depth_within",
    "fair_value_gaps",
    "flow_imbalance",
    "imbalance_events",
    "liquidity_change",
    "liquidity_events",
    "order_blocks",
    "session_flags",
    "session_label",
    "signals_from_frame",
    "signals_to_frame",
    "structure_breaks",
    "swings",
    "trade_delta",
    "volume_confirmation",
    "volatility_rank",
    "volume_delta",
]
