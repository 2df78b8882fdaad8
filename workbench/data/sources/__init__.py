"""Market sources: the simulated default, ccxt exchanges, Alpaca equities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.data.sources.base import BarUpdate, MarketSource

if TYPE_CHECKING:
    from workbench.config import Settings

__all__ = ["BarUpdate", "MarketSource", "open_source"]


def open_source(name: str | None = None, settings: Settings | None = None) -> MarketSource:
    """The source called ``name``: ``sim`` (the simulated market), ``alpaca``, or a ccxt
    exchange id; by default the exchange in the settings."""
    from workbench.config import load_settings

    settings = settings or load_settings()
    name = (name or settings.exchange).lower()
    if name == "sim":
        from workbench.data.sources.simulated import SimulatedMarket

        return SimulatedMarket(seed=settings.seed)
    if name == "alpaca":
        from workbench.data.sources.alpaca_source import AlpacaSource

        return AlpacaSource.from_settings(settings)
    from workbench.data.sources.ccxt_source import CcxtSource

    return CcxtSource.from_settings(settings.model_copy(update={"exchange": name}))
