"""A backtest result as one standalone HTML file that opens offline.

``write_report(result, path)`` writes the strategy's label and period, its statistics
(percentages as %, durations in words), the interactive chart of :mod:`.plot`, the trades
(the first ``TRADE_ROWS``, with a note when there are more) and the settings the run used.
BokehJS is inlined (no CDN, no web fonts), so the file works without a network and can be
mailed or archived as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
from bokeh.embed import file_html
from bokeh.models import Plot
from bokeh.resources import INLINE

from workbench.backtest.plot import plot_result

TRADE_ROWS = 500

# As workbench.backtest.metrics defines them: average win and loss are trade returns,
# expectancy is pnl in the quote currency.
PERCENT = {
    "total_return",
    "annual_return",
    "volatility",
    "max_drawdown",
    "win_rate",
    "exposure",
    "average_win",
    "average_loss",
}
RATIO = {"sharpe", "sortino", "calmar", "profit_factor"}
LABELS = {
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Max drawdown duration",
    "win_rate": "Win rate",
    "trades": "Trades (closed)",
}
TRADE_HEADERS = [
    ("#", "num"),
    ("symbol", ""),
    ("side", ""),
    ("quantity", "num"),
    ("entry (UTC)", ""),
    ("entry price", "num"),
    ("exit (UTC)", ""),
    ("exit price", "num"),
    ("fees", "num"),
    ("funding", "num"),
    ("pnl", "num"),
    ("return", "num"),
    ("duration", "num"),
]

_STYLE = """
html, body { height: auto; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
       sans-serif; color: #1f2933; background: #fff; }
main { max-width: 1500px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 4px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e4e7eb; }
.period { color: #52606d; margin: 0 0 8px; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr));
         gap: 0 28px; }
.stat { display: flex; justify-content: space-between; padding: 4px 2px;
        border-bottom: 1px solid #f0f2f4; }
.stat span { color: #52606d; }
.stat b { font-weight: 600; font-variant-numeric: tabular-nums; }
.chart { width: 100%; }
.scroll { max-height: 560px; overflow: auto; border: 1px solid #e4e7eb; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; text-align: left; white-space: nowrap; }
th { position: sticky; top: 0; background: #f5f7fa; border-bottom: 1px solid #d9dee3;
     font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; }
.win { color: #2e7d32; } .loss { color: #c62828; }
.note { color: #52606d; font-size: 13px; margin: 6px 0; }
.settings { display: flex; gap: 40px; flex-wrap: wrap; }
.settings table { width: auto; min-width: 280px; }
.settings td:first-child { color: #52606d; }
"""

_TEMPLATE = """
{% block postamble %}<style>{{ style }}</style>{% endblock %}
{% block contents %}
<main>
{{ header }}
<div class="chart">{{ embed(roots.chart) }}</div>
{{ footer }}
</main>
{% endblock %}
"""


def write_report(result: Any, path: str | Path) -> Path:
    """Write ``result`` as a standalone HTML report at ``path`` (folders made as needed);
    return the path."""
    path = Path(path)
    chart = hv.render(plot_result(result), backend="bokeh")
    chart.name = "chart"
    for figure in chart.select({"type": Plot}):
        # Canvas draws the thinned lines well, needs no GPU, and spares the file BokehJS's
        # WebGL bundle (about 270 kB).
        figure.output_backend = "canvas"
    title = _title(result)
    header = "\n".join(
        [
            f"<h1>{_e(title)}</h1>",
            f'<p class="period">{_e(_period(result))}</p>',
            "<h2>Statistics</h2>",
            _stats_html(getattr(result, "stats", None)),
            "<h2>Chart</h2>",
        ]
    )
    footer = "\n".join(
        [
            "<h2>Trades</h2>",
            _trades_html(result.trades),
            "<h2>Settings</h2>",
            _settings_html(result),
        ]
    )
    page = file_html(
        chart,
        resources=INLINE,
        title=f"{title} · backtest report",
        template=_TEMPLATE,
        template_variables={"style": _STYLE, "header": header, "footer": footer},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# -- sections --------------------------------------------------------------------------------


def _title(result: Any) -> str:
    return str(getattr(result, "label", "") or "Backtest")


def _period(result: Any) -> str:
    """``ETH/BTC · 5,760 bars of 5 min · 2018-01-10 04:55 → 2018-01-30 04:50 UTC``."""
    equity = result.equity
    parts = [", ".join(map(str, result.bars))]
    if len(equity):
        spacing = pd.Series(equity.index).diff().median() if len(equity) > 1 else None
        bars = f"{len(equity):,} bars"
        parts.append(f"{bars} of {format_duration(spacing)}" if spacing is not None else bars)
        parts.append(f"{_time(equity.index[0])} → {_time(equity.index[-1])} UTC")
    return " · ".join(parts)


def _stats_html(stats: pd.Series | None) -> str:
    if stats is None or len(stats) == 0:
        return '<p class="note">No statistics.</p>'
    rows = [
        f'<div class="stat"><span>{_e(_label(key))}</span><b>{_e(format_stat(key, value))}</b></div>'
        for key, value in stats.items()
    ]
    return '<div class="stats">\n' + "\n".join(rows) + "\n</div>"


def _trades_html(trades: pd.DataFrame | None) -> str:
    if trades is None or trades.empty:
        return '<p class="note">No trades.</p>'
    shown = trades.head(TRADE_ROWS)
    head = "".join(_cell("th", name, cls) for name, cls in TRADE_HEADERS)
    body = "\n".join(_trade_row(i + 1, row) for i, row in enumerate(shown.to_dict("records")))
    note = ""
    if len(trades) > len(shown):
        note = (
            f'<p class="note">Showing the first {len(shown):,} of {len(trades):,} trades; '
            "all of them are in <code>result.trades</code>.</p>"
        )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
    return f'{note}<div class="scroll">{table}</div>'


def _trade_row(number: int, trade: Mapping[str, Any]) -> str:
    pnl = trade.get("pnl", np.nan)
    outcome = "win" if pnl > 0 else "loss" if pnl < 0 else ""
    still_open = bool(trade.get("open", False)) or pd.isna(trade.get("exit_time"))
    exit_time = "open" if still_open else _time(trade.get("exit_time"))
    cells = [
        (str(number), "num"),
        (str(trade.get("symbol", "")), ""),
        (str(trade.get("side", "")), ""),
        (format_number(trade.get("quantity")), "num"),
        (_time(trade.get("entry_time")), ""),
        (format_number(trade.get("entry_price")), "num"),
        (exit_time, ""),
        (format_number(trade.get("exit_price")) if not still_open else "—", "num"),
        (format_number(trade.get("fees")), "num"),
        (format_number(trade.get("funding")), "num"),
        (format_number(pnl), f"num {outcome}"),
        (format_percent(trade.get("return")), f"num {outcome}"),
        (format_duration(trade.get("duration")), "num"),
    ]
    tds = "".join(_cell("td", text, cls) for text, cls in cells)
    return f'<tr class="trade{" open" if still_open else ""}">{tds}</tr>'


def _cell(tag: str, text: str, cls: str) -> str:
    attribute = f' class="{cls}"' if cls else ""
    return f"<{tag}{attribute}>{_e(text)}</{tag}>"


def _settings_html(result: Any) -> str:
    settings = dict(getattr(result, "settings", None) or {})
    params = dict(getattr(result, "params", None) or {})
    strategy = getattr(result, "strategy", None)
    if strategy is not None:
        settings.setdefault("strategy", type(strategy).__name__)
    blocks = [
        _key_values("Run", settings.items(), "No settings recorded."),
        _key_values("Strategy parameters", params.items(), "No parameters."),
    ]
    return '<div class="settings">' + "".join(blocks) + "</div>"


def _key_values(caption: str, items: Iterable[tuple[str, Any]], empty: str) -> str:
    rows = "".join(
        f"<tr><td>{_e(str(key))}</td><td>{_e(format_setting(key, value))}</td></tr>"
        for key, value in items
    )
    body = f"<table>{rows}</table>" if rows else f'<p class="note">{_e(empty)}</p>'
    return f"<div><h3>{_e(caption)}</h3>{body}</div>"


# -- formatting ------------------------------------------------------------------------------


def format_stat(key: str, value: Any) -> str:
    """One statistic as a person reads it: ``12.34%``, ``6 d 3 h``, ``1.52``, ``1,234.5``."""
    if _missing(value):
        return "—"
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return format_duration(value)
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return f"{_time(value)} UTC"
    if key in PERCENT:
        return format_percent(value)
    if key == "trades":
        return f"{int(value):,}"
    if key == "turnover":
        return f"{float(value):,.2f}×"
    if key in RATIO:
        return "∞" if math.isinf(float(value)) else f"{float(value):,.2f}"
    return format_number(value)


def format_number(value: Any) -> str:
    """Six significant digits (never an exponent), thousands separated; amounts of 10,000 and
    more to two decimals."""
    if _missing(value):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    number = float(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if abs(number) >= 10_000:
        return f"{number:,.2f}"
    if abs(number) >= 1:
        return f"{number:,.6g}"
    # Six significant digits without an exponent: 0.0000292800 BTC reads as 0.00002928.
    return np.format_float_positional(number, precision=6, fractional=False, trim="-")


def format_percent(value: Any) -> str:
    return "—" if _missing(value) else f"{float(value):.2%}"


def format_duration(value: Any) -> str:
    """A duration in its two largest units: ``20 d``, ``6 d 3 h``, ``3 h 25 min``, ``45 s``."""
    if _missing(value):
        return "—"
    seconds = int(round(pd.Timedelta(value).total_seconds()))
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    units = [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)]
    parts = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count:,} {name}")
        if parts and len(parts) == 2:
            break
        if parts and count == 0:
            break
    return sign + (" ".join(parts) if parts else "0 s")


def format_setting(key: str, value: Any) -> str:
    """A run setting in the units ``Backtest`` takes it in: fees as a fraction of traded
    value (also shown as %), slippage in basis points, latency in milliseconds."""
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if key == "fees":
        return f"{value:g} ({value * 100:.4g}%)"
    if key == "slippage":
        return f"{value:g} bps"
    if key == "latency_ms":
        return f"{value:g} ms"
    return format_number(value)


def _label(key: str) -> str:
    return LABELS.get(key, str(key).replace("_", " ").capitalize())


def _time(value: Any) -> str:
    if _missing(value):
        return "—"
    stamp = pd.Timestamp(value)
    if stamp.tz is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _e(text: str) -> str:
    return html.escape(text, quote=True)
