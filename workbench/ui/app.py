"""The dashboard: a Panel template around the workbench's views, built per browser session.

``create_app()`` runs once per session, so every visitor gets their own market source,
views, streaming task and store connection; each view stops its stream when its session is
destroyed. Its pages are tabs: *Market* (live candles), *Strategy lab* (backtests, sweeps
and recorded runs, over the same simulated market and the settings' store), *Live paper*
(a strategy paper-trading the simulated market, with its controls), *Data health* (the
store under the settings' data directory) and *Jobs* (schedules, runs, reports, run now).
Served by ``workbench serve``, or directly with ``panel serve workbench/ui/app.py``.
"""

from __future__ import annotations

import panel as pn

from workbench.config import Settings, load_settings
from workbench.data.sources.simulated import SimulatedMarket
from workbench.ui.data_health import DataHealth
from workbench.ui.jobs_page import JobsPage
from workbench.ui.live_paper import LivePaperView
from workbench.ui.market_view import MarketView
from workbench.ui.strategy_lab import StrategyLab

#: Simulated seconds per wall second in the default market: a new 1m bar every 2 seconds.
SPEED = 30.0


def create_app(
    settings: Settings | None = None, *, speed: float = SPEED
) -> pn.template.BootstrapTemplate:
    """The dashboard over the embedded default: a simulated market seeded from the settings,
    a strategy lab over it, and the health of the settings' store."""
    settings = settings or load_settings()
    market = SimulatedMarket(seed=settings.seed)
    pages = pn.Tabs(
        ("Market", MarketView(market, stream_options={"speed": speed})),
        ("Strategy lab", StrategyLab(market, settings=settings)),
        ("Live paper", LivePaperView.from_settings(settings, speed=speed)),
        ("Data health", DataHealth.from_settings(settings)),
        ("Jobs", JobsPage.from_settings(settings)),
        dynamic=True,  # a page is drawn when first opened, so the market shows at once
        sizing_mode="stretch_both",
    )
    return pn.template.BootstrapTemplate(title="Trading Workbench", main=[pages])


if pn.state.served:  # `panel serve workbench/ui/app.py`
    create_app().servable()
